//! Where the agent finds its instructions: a kernel command line
//! (`/proc/cmdline`, split on white space), a raw SMBIOS OEM string table
//! (`protocol::tokens_from_smbios_oem`), a NUL-separated environment block
//! (`agent::service::from_environ`); then `Instructions::from_tokens`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::agent_instructions(data));
