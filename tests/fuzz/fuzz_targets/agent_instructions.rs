//! Where the agent finds its instructions: a kernel command line
//! (`/proc/cmdline`, split on white space), a raw SMBIOS OEM string table
//! (`protocol::tokens_from_smbios_oem`), a NUL-separated environment block
//! (`agent::service::from_environ`); then `Instructions::from_tokens`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmbench::protocol::{tokens_from_smbios_oem, Instructions};

fn parse(tokens: &[String]) {
    let _ = Instructions::from_tokens(tokens.iter().map(String::as_str));
}

fuzz_target!(|data: &[u8]| {
    let cmdline: Vec<String> = String::from_utf8_lossy(data).split_whitespace().map(str::to_string).collect();
    parse(&cmdline);
    if let Some(tokens) = tokens_from_smbios_oem(data) {
        parse(&tokens);
    }
    parse(&vmbench::agent::service::from_environ(data));
});
