//! The static workload program that runs inside every target; see
//! `vmbench::agent`.

fn main() {
    std::process::exit(vmbench::agent::run());
}
