//! The `vmbench` binary: everything happens in the library.

fn main() {
    std::process::exit(vmbench::cli::main());
}
