//! Builds the static `vmbench-agent` and hands its path to the harness.
//!
//! The agent must be one static executable that runs as PID 1 in a VM, as the
//! entrypoint of a `FROM scratch` image and as a native child process. Cargo
//! has no per-binary RUSTFLAGS, and `+crt-static` on the host target breaks
//! proc-macros (and libvirt, which only ships as a shared library), so the
//! harness cannot simply be built static too. Instead this script runs a
//! second cargo build of this same package with only the `agent` feature,
//! an explicit `--target` (so proc-macros stay dynamic) and `+crt-static`,
//! into its own target directory (see [`agent_target_dir`]). The harness
//! embeds the result with `include_bytes!`, so a `vmbench` binary always
//! carries the matching agent.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Where the nested build puts its artifacts: never inside the package
/// directory (that breaks `cargo package` and `cargo install --path .`,
/// which check that a build leaves the sources alone). By default the build
/// script's own `OUT_DIR`. When a target directory was chosen explicitly
/// (an absolute `CARGO_TARGET_DIR`, or `VMBENCH_AGENT_TARGET_DIR`), its
/// `agent/` subdirectory instead: `OUT_DIR` differs between `cargo build`,
/// `cargo test` and `cargo clippy` and between feature sets, and each would
/// otherwise build the agent again.
fn agent_target_dir() -> PathBuf {
    if let Some(dir) = env::var_os("VMBENCH_AGENT_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    match env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("agent"),
        _ => PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("agent"),
    }
}

fn main() {
    for path in [
        "src/agent",
        "src/protocol.rs",
        "src/stats/percentile.rs",
        "src/bin/vmbench-agent.rs",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=VMBENCH_AGENT_PROFILE");
    println!("cargo:rerun-if-env-changed=VMBENCH_AGENT_TARGET_DIR");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    if env::var_os("CARGO_FEATURE_HARNESS").is_none() {
        // This is the nested agent build itself (or a build without the
        // harness): nothing to embed.
        return;
    }
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        panic!(
            "vmbench runs on x86_64 Linux only: its agent is built for {AGENT_TARGET} and booted in x86_64 guests \
             (this build is for {})",
            env::var("TARGET").unwrap_or_default()
        );
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let target_dir = agent_target_dir();
    let profile = env::var("VMBENCH_AGENT_PROFILE").unwrap_or_else(|_| "agent".to_string());
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());

    let mut cmd = Command::new(cargo);
    cmd.current_dir(&manifest_dir)
        .args(["build", "--bin", "vmbench-agent", "--no-default-features", "--features", "agent"])
        .args(["--target", AGENT_TARGET, "--profile", &profile])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static");
    // The outer cargo's view of the build must not leak into the inner one:
    // clippy's wrapper, the outer target dir and the outer RUSTFLAGS.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars_os() {
        if let Some(key) = key.to_str() {
            if key.starts_with("CARGO_FEATURE_") || key.starts_with("CARGO_CFG_") || key.starts_with("DEP_") {
                cmd.env_remove(key);
            }
        }
    }
    let status = cmd.status().expect("failed to run the nested cargo build of vmbench-agent");
    if !status.success() {
        panic!("building the static vmbench-agent failed ({status}); see the cargo output above");
    }
    let dir_name = if profile == "dev" { "debug" } else { profile.as_str() };
    let agent = target_dir.join(AGENT_TARGET).join(dir_name).join("vmbench-agent");
    assert!(agent.exists(), "the nested build did not produce {}", agent.display());
    println!("cargo:rustc-env=VMBENCH_AGENT_BIN={}", agent.display());
    println!("cargo:rerun-if-changed={}", agent.display());
}
