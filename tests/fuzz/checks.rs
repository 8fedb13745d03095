//! What each fuzz target checks, one function per target: the targets in
//! `fuzz_targets/` hand libFuzzer's inputs to these, and the main crate's
//! `tests/fuzz_seeds.rs` runs every seed in `corpus/` through them on the
//! stable toolchain (in CI, where no nightly toolchain builds libFuzzer).
//! A panic is a finding.
#![allow(dead_code)] // each target uses one of these

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;
use vmbench::console::{Console, TAIL_LINES, TAIL_LINE_BYTES};
use vmbench::protocol::{decode_line, encode_line, tokens_from_smbios_oem, Instructions};

/// A target's check of one input.
pub type Check = fn(&[u8]);

/// Every target by name, as its binary and its seed directory are named.
pub const TARGETS: &[(&str, Check)] = &[
    ("scenario", scenario),
    ("console", console),
    ("protocol_line", protocol_line),
    ("agent_instructions", agent_instructions),
    ("run_json", run_json),
    ("samples_jsonl", samples_jsonl),
    ("summary_json", summary_json),
    ("thresholds", thresholds),
];

/// The nonce the console and protocol targets expect; the seeds carry it.
pub const NONCE: &str = "f022f022f022f022";

/// This process's scratch directory, emptied of earlier files by each writer.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vmbench-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the fuzz scratch directory");
        dir
    })
}

/// Writes `files` (name, bytes) into the scratch directory, removing the
/// names in `absent`, and returns it.
pub fn run_dir(files: &[(&str, &[u8])], absent: &[&str]) -> &'static Path {
    let dir = scratch_dir();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("writing a fuzz input");
    }
    for name in absent {
        let _ = std::fs::remove_file(dir.join(name));
    }
    dir
}

/// The scenario parser and validator (`vmbench validate`, `vmbench run`): a
/// user's TOML. Errors must name a line inside the text.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: every file the scenario names is
    // missing, so validation never reads the host's files.
    match vmbench::scenario::parse(Path::new("/nonexistent/vmbench-fuzz/s.toml"), text) {
        Ok(scenario) => {
            let _ = scenario.target_cpus();
        }
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(e.line <= lines, "error line {} beyond the text's {lines} lines: {e}", e.line);
            let _ = e.to_string();
        }
    }
}

/// The console splitter and protocol parser: bytes from a guest, read in
/// chunks of any size. The first two input bytes choose the chunk sizes; the
/// rest is the console stream. Fed whole or in chunks, the report and the
/// kept lines must be the same, and the kept lines stay bounded.
pub fn console(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let (seed, stream) = data.split_at(2);
    let mut state = u16::from_le_bytes([seed[0], seed[1]]) as u32 | 1;
    let at = Instant::now();

    let mut whole = Console::new(NONCE);
    whole.feed(at, stream);
    whole.finish(at);

    let mut chunked = Console::new(NONCE);
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift: chunk sizes from 1 to 64 bytes, as reads of a pipe vary.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 64 + 1).min(rest.len());
        chunked.feed(at, &rest[..n]);
        rest = &rest[n..];
    }
    chunked.finish(at);

    assert_eq!(whole.report, chunked.report, "chunking changed what was read");
    assert_eq!(whole.tail(), chunked.tail(), "chunking changed the kept lines");
    let tail = whole.tail();
    assert!(tail.len() <= TAIL_LINES);
    for line in &tail {
        assert!(
            line.len() <= TAIL_LINE_BYTES + 4 + " [line truncated]".len(),
            "kept line of {} bytes",
            line.len()
        );
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "control character kept: {line:?}"
        );
    }
}

/// One console line as the protocol reads it (`protocol::decode_line`), and
/// the same text as instruction tokens (`Instructions::from_tokens`):
/// instructions that parse must survive their own formatting.
pub fn protocol_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Ok(message) = decode_line(line, NONCE) {
            let again = encode_line(NONCE, &message);
            assert!(
                decode_line(again.trim_end_matches('\n'), NONCE).is_ok(),
                "re-encoded line does not parse: {again}"
            );
        }
    }
    if let Ok(instructions) = Instructions::from_tokens(text.split_whitespace()) {
        let tokens = instructions.to_tokens();
        let again = Instructions::from_tokens(tokens.iter().map(String::as_str)).expect("formatted instructions parse");
        assert_eq!(instructions, again);
    }
}

/// Where the agent finds its instructions: a kernel command line
/// (`/proc/cmdline`, split on white space), a raw SMBIOS OEM string table
/// (`protocol::tokens_from_smbios_oem`), a NUL-separated environment block
/// (`agent::service::from_environ`); then `Instructions::from_tokens`.
pub fn agent_instructions(data: &[u8]) {
    fn parse(tokens: &[String]) {
        let _ = Instructions::from_tokens(tokens.iter().map(String::as_str));
    }
    let cmdline: Vec<String> = String::from_utf8_lossy(data).split_whitespace().map(str::to_string).collect();
    parse(&cmdline);
    if let Some(tokens) = tokens_from_smbios_oem(data) {
        parse(&tokens);
    }
    parse(&vmbench::agent::service::from_environ(data));
}

/// `run.json` as a user may edit it or a crash may leave it, read as every
/// command reads a run (`rundir::load`: schema check, then record and
/// samples), and, when it reads, summarised as `vmbench report` does.
pub fn run_json(data: &[u8]) {
    let dir = run_dir(&[("run.json", data), ("samples.jsonl", b"")], &[]);
    if let Ok(run) = vmbench::rundir::load(dir) {
        let _ = vmbench::report::summary::build(&run.record, &run.samples);
    }
}

/// `samples.jsonl` as a user may edit it or a crash may tear it
/// (`rundir::read_samples`), and the samples that read summarised against a
/// real run's record, as `vmbench report` and `vmbench check` do.
const RUN_JSON: &[u8] = include_bytes!("corpus/run_json/native-boot.json");

pub fn samples_jsonl(data: &[u8]) {
    let dir = run_dir(&[("run.json", RUN_JSON), ("samples.jsonl", data)], &[]);
    let Ok(samples) = vmbench::rundir::read_samples(dir) else {
        return;
    };
    let record = vmbench::rundir::read_run_record(dir).expect("the fixed run.json reads");
    let _ = vmbench::report::summary::build(&record, &samples);
}

/// `summary.json` as `vmbench history` reads it (`history::collect`: the
/// summary when it parses, else the run's own files; here there are none, so
/// a summary that does not parse is an error, never a crash).
pub fn summary_json(data: &[u8]) {
    let dir = run_dir(&[("summary.json", data)], &["run.json", "samples.jsonl"]);
    let dirs = [dir.to_path_buf()];
    for metric in ["ready_ms", "exit_ms"] {
        let _ = vmbench::history::collect(&dirs, metric, None);
    }
}

/// A thresholds file (`vmbench check --thresholds`, `vmbench export
/// --thresholds`): `compare::thresholds::load`, then the bounds checked
/// against a real run's samples.
const SAMPLES: &str = include_str!("corpus/samples_jsonl/native-boot.jsonl");

pub fn thresholds(data: &[u8]) {
    let dir = run_dir(&[("thresholds.toml", data)], &[]);
    let Ok(thresholds) = vmbench::compare::thresholds::load(&dir.join("thresholds.toml")) else {
        return;
    };
    let samples: Vec<vmbench::rundir::Sample> = SAMPLES.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let targets = vec!["native".to_string()];
    for row in vmbench::compare::thresholds::check(&thresholds, &targets, &samples) {
        let _ = (row.pass, row.value);
    }
}
