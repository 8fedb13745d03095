//! Builds the static `vmbench-agent` and hands its path to the harness.
//!
//! The agent must be one static executable that runs as PID 1 in a VM, as the
//! entrypoint of a `FROM scratch` image and as a native child process. Cargo
//! has no per-binary RUSTFLAGS, and `+crt-static` on the host target breaks
//! proc-macros (and libvirt, which only ships as a shared library), so the
//! harness cannot simply be built static too. Instead this script runs a
//! second cargo build of this same package with only the `agent` feature,
//! an explicit `--target` (so proc-macros stay dynamic) and `+crt-static`,
//! into its own target directory. The harness embeds the result with
//! `include_bytes!`, so a `vmbench` binary always carries the matching agent.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";

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
    if env::var_os("CARGO_FEATURE_HARNESS").is_none() {
        // This is the nested agent build itself (or a build without the
        // harness): nothing to embed.
        return;
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // Keep the nested build's artifacts next to the outer ones so they are
    // reused between `cargo build`, `cargo test` and `cargo clippy`.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("target"))
        .join("agent");
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
