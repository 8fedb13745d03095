//! The scenario parser and validator (`vmbench validate`, `vmbench run`): a
//! user's TOML. Errors must name a line inside the text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
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
});
