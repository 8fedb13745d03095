//! The console line format shared by the host and `vmbench-agent`.
//!
//! The agent writes every line the host acts on as
//! `VMBENCH1 <nonce> <json>\n`, where the nonce is chosen by the host for
//! each launch. Anything else on the console (kernel messages, firmware
//! noise, a previous launch's leftovers) is not a protocol line and is only
//! kept for error messages. The host tells the agent what to do with
//! `vmbench.<key>=<value>` tokens: on the kernel command line in a VM, as
//! argv in a container or a native process.
//!
//! This module is compiled into the static agent too, so it depends on
//! nothing but serde.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// First word of every protocol line; the digit is the protocol version.
pub const MAGIC: &str = "VMBENCH1";
/// Prefix of instruction tokens on the kernel command line or argv.
pub const TOKEN_PREFIX: &str = "vmbench.";
/// The token that opens every set of instructions (`vmbench.nonce=...`).
pub const NONCE_TOKEN: &str = "vmbench.nonce=";
/// The marker on a firmware-booted guest's kernel command line (written in
/// its bootloader's configuration) that sends the agent to the SMBIOS OEM
/// strings for its instructions: the bootloader's command line is fixed,
/// the instructions change with every launch.
pub const SMBIOS_MARKER: &str = "vmbench.instructions=smbios";

/// How an SMBIOS OEM string that carries instructions starts.
pub const SMBIOS_PREFIX: &str = "vmbench:";

/// The SMBIOS OEM string (type 11) that carries `tokens` to a guest booted
/// by firmware, whose kernel command line is fixed in its bootloader.
pub fn smbios_instructions(tokens: &[String]) -> String {
    format!("{SMBIOS_PREFIX}{}", tokens.join(" "))
}

/// The instruction tokens among the strings of raw SMBIOS type 11 tables
/// (`/sys/firmware/dmi/entries/11-*/raw`: a 5-byte header, then
/// NUL-terminated strings ending with an empty one).
pub fn tokens_from_smbios_oem(raw: &[u8]) -> Option<Vec<String>> {
    let length = *raw.get(1)? as usize;
    raw.get(length..)?
        .split(|&b| b == 0)
        .take_while(|s| !s.is_empty())
        .filter_map(|s| std::str::from_utf8(s).ok())
        .find_map(|s| s.strip_prefix(SMBIOS_PREFIX))
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
}

/// The environment variable that carries the instructions to an agent run
/// as a service of a container's own init (the init's environment, which
/// services do not inherit, is read from `/proc/1/environ`).
pub const INSTRUCTIONS_ENV: &str = "VMBENCH_INSTRUCTIONS";

/// The port the agent listens on for the host inside a VM or container
/// (behind NAT: QEMU's user network, a container bridge).
pub const AGENT_PORT: u16 = 7777;
/// nginx's port inside a VM or container (the seed lab's `-p 8080:80`).
pub const HTTP_PORT: u16 = 80;
/// MariaDB's port inside a VM or container.
pub const SQL_PORT: u16 = 3306;

/// What a trial measures. The scenario, the agent, the samples and the
/// reports all speak of workloads by this type; its lowercase name is what
/// files and instructions carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "harness", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Boot,
    Cpu,
    Memory,
    Syscall,
    Disk,
    Network,
    /// nginx in the target, vmbench's HTTP load generator on the host.
    Http,
    /// MariaDB in the target, vmbench's MySQL-protocol client on the host.
    Sql,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 8] = [
        WorkloadKind::Boot,
        WorkloadKind::Cpu,
        WorkloadKind::Memory,
        WorkloadKind::Syscall,
        WorkloadKind::Disk,
        WorkloadKind::Network,
        WorkloadKind::Http,
        WorkloadKind::Sql,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Boot => "boot",
            WorkloadKind::Cpu => "cpu",
            WorkloadKind::Memory => "memory",
            WorkloadKind::Syscall => "syscall",
            WorkloadKind::Disk => "disk",
            WorkloadKind::Network => "network",
            WorkloadKind::Http => "http",
            WorkloadKind::Sql => "sql",
        }
    }

    /// The ports inside the target the host must reach for this workload:
    /// the agent's own (the network workload's echo and sink, an
    /// application workload's control connection) and the server's. A
    /// published container or a VM's user network forwards each of them.
    pub fn guest_ports(self) -> &'static [u16] {
        match self {
            WorkloadKind::Network => &[AGENT_PORT],
            WorkloadKind::Http => &[AGENT_PORT, HTTP_PORT],
            WorkloadKind::Sql => &[AGENT_PORT, SQL_PORT],
            _ => &[],
        }
    }

    /// Whether the host drives this workload over the network (the agent
    /// listens and announces where).
    pub fn host_driven(self) -> bool {
        !self.guest_ports().is_empty()
    }

    /// The kind called `name`, as scenarios and instructions write it.
    pub fn parse(name: &str) -> Option<WorkloadKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message from the agent to the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "harness", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// The agent is running. Sent first, before any workload.
    Ready {
        /// `CLOCK_BOOTTIME` when the agent started, in ns. In a VM this is
        /// the guest kernel's boot time up to init; elsewhere it is the host's
        /// uptime and means nothing for boot.
        boottime_ns: u64,
        /// From the agent's first instruction to this line being written, in
        /// ns: mounting, reading instructions, loading modules.
        init_ns: u64,
        /// The agent's process id (1 in a VM).
        pid: u32,
        /// The agent's resident memory when it printed this line.
        #[serde(default)]
        rss_bytes: u64,
        /// The kernel the agent sees (`uname -r`): the guest's in a VM,
        /// gVisor's own in runsc, the host's in a container.
        kernel: String,
        /// The clocksource behind `CLOCK_MONOTONIC` (`tsc`, `kvm-clock`,
        /// `jiffies`, ...) as sysfs shows it; `None` where sysfs has none
        /// (gVisor) and from older agents. Under `jiffies` every duration the
        /// agent measures, `init_ns` included, is quantised to a timer tick.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clocksource: Option<String>,
        /// `clock_getres(CLOCK_MONOTONIC)` in ns: 1 whenever high-resolution
        /// timers run (whatever the clocksource resolves), the tick length
        /// without them. The measured resolution follows in [`AgentFacts`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clock_getres_ns: Option<u64>,
    },
    /// What the agent sees of its target, sent right after `ready` (not in
    /// it: reading these files before the ready line would lengthen the
    /// boot being measured). Not sent by the boot workload, whose `exit_ms`
    /// covers the agent's whole life.
    Facts(AgentFacts),
    /// The boot before the agent started, as the guest's own init measured
    /// it, in ms: systemd's `kernel`, `initrd` and `userspace` (up to
    /// `multi-user.target`), as `systemd-analyze` reports them. Sent after
    /// `ready` by an agent run as a systemd unit; the phases a guest cannot
    /// know (a container has no kernel or initrd of its own) are absent.
    Phases(BTreeMap<String, f64>),
    /// A host-driven workload listens on this port (inside the target): the
    /// network workload's echo and sink, or the control connection of an
    /// application workload, whose server is then up and described.
    Listening {
        port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<ServerFacts>,
    },
    /// A region of an agent-driven workload whose host CPU per unit of work
    /// is wanted begins (`units` absent) or ends, having done `units` of
    /// `unit`; the host reads the target's CPU time as each line arrives and
    /// reports `host_cpu_per_<unit>_us`.
    Region {
        unit: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        units: Option<f64>,
    },
    /// Measurements of one workload; metric names carry their unit.
    Result { workload: String, metrics: BTreeMap<String, f64> },
    /// The workload failed; the text is the agent's own explanation.
    Error { message: String },
    /// This target cannot run the workload at all (not a failure).
    Unsupported { reason: String },
    /// Nothing more will follow.
    Done,
}

/// The server an application workload started, as the agent started it:
/// what changes its results, recorded next to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "harness", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct ServerFacts {
    /// `nginx`, `mariadb`.
    pub name: String,
    /// As the program reports it (`nginx version: nginx/1.22.1`).
    pub version: Option<String>,
    /// The port it listens on inside the target.
    pub port: u16,
    /// Worker processes or threads.
    pub workers: usize,
    /// Its settings that change results (`innodb_flush_log_at_trx_commit`, ...).
    pub settings: BTreeMap<String, String>,
    /// The file system its files live on (`ext4`, `overlay`, `tmpfs`).
    pub data_fs: Option<String>,
}

/// The target as the agent sees it from inside: its clock, CPU, caches,
/// memory and kernel settings. Every field is optional on reading, so lines
/// from older or newer agents still parse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "harness", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct AgentFacts {
    /// Measured resolution of `CLOCK_MONOTONIC` in ns: the smallest non-zero
    /// step between successive readings (also the `clock_res_ns` metric).
    /// `None`: the clock did not advance.
    pub clock_res_ns: Option<u64>,
    /// `model name` of the first CPU in `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// How many flags `/proc/cpuinfo` lists for the first CPU.
    pub cpu_flags: usize,
    /// Those of a few flags that change results (TSC reliability, vector
    /// units, crypto, hypervisor) that are present.
    pub cpu_key_flags: Vec<String>,
    /// CPUs the agent may run on.
    pub cpus: usize,
    /// cpu0's caches as sysfs lists them.
    pub caches: Vec<CacheFact>,
    /// Transparent huge pages: the selected mode of
    /// `/sys/kernel/mm/transparent_hugepage/enabled` (`always`, `madvise`, `never`).
    pub thp: Option<String>,
    /// `/sys/devices/system/cpu/vulnerabilities`, summarised; `None` when
    /// the directory is missing.
    pub mitigations: Option<MitigationSummary>,
    /// Memory the agent may still use, in bytes: `MemAvailable`, or less
    /// when a cgroup limit leaves less room.
    pub memory_available_bytes: Option<u64>,
}

/// One CPU cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "harness", derive(schemars::JsonSchema))]
pub struct CacheFact {
    pub level: u8,
    /// `Data`, `Instruction` or `Unified`.
    pub kind: String,
    pub size_bytes: u64,
}

/// The CPU vulnerability files, compactly: how many there are and which
/// say `Vulnerable` (unmitigated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "harness", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct MitigationSummary {
    pub listed: usize,
    pub vulnerable: Vec<String>,
}

/// How the agent leaves when it runs as PID 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "harness", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExitMode {
    /// `reboot(RB_AUTOBOOT)`: QEMU started with `-no-reboot` exits at once.
    Reboot,
    /// `reboot(RB_POWER_OFF)`: needs ACPI in the guest (libvirt domains).
    Poweroff,
}

impl ExitMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitMode::Reboot => "reboot",
            ExitMode::Poweroff => "poweroff",
        }
    }
}

/// What the host asks one launch of the agent to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Instructions {
    pub nonce: String,
    pub workload: String,
    /// Workload parameters (`vmbench.p.<name>=<value>`).
    pub params: BTreeMap<String, String>,
    pub exit: ExitMode,
    /// Where disk workloads do their I/O: a block device in a VM, a file in a
    /// host directory elsewhere.
    pub scratch: Option<String>,
    /// Where the network workload listens, `address:port` (port 0: any).
    pub listen: Option<String>,
    /// A VM's own address on its NIC, `a.b.c.d/prefix` (a tap network);
    /// `None`: QEMU's user network's 10.0.2.15/24.
    pub address: Option<String>,
}

impl Instructions {
    pub fn new(nonce: impl Into<String>, workload: impl Into<String>) -> Self {
        Instructions {
            nonce: nonce.into(),
            workload: workload.into(),
            params: BTreeMap::new(),
            exit: ExitMode::Reboot,
            scratch: None,
            listen: None,
            address: None,
        }
    }

    /// The tokens that carry these instructions, in a stable order.
    pub fn to_tokens(&self) -> Vec<String> {
        let mut tokens = vec![
            format!("{TOKEN_PREFIX}nonce={}", self.nonce),
            format!("{TOKEN_PREFIX}workload={}", self.workload),
        ];
        if self.exit != ExitMode::Reboot {
            tokens.push(format!("{TOKEN_PREFIX}exit={}", self.exit.as_str()));
        }
        if let Some(scratch) = &self.scratch {
            tokens.push(format!("{TOKEN_PREFIX}scratch={scratch}"));
        }
        if let Some(listen) = &self.listen {
            tokens.push(format!("{TOKEN_PREFIX}listen={listen}"));
        }
        if let Some(address) = &self.address {
            tokens.push(format!("{TOKEN_PREFIX}addr={address}"));
        }
        for (key, value) in &self.params {
            tokens.push(format!("{TOKEN_PREFIX}p.{key}={value}"));
        }
        tokens
    }

    /// Reads instructions from tokens; tokens without the `vmbench.` prefix
    /// (other kernel parameters) are ignored. With no tokens at all the agent
    /// runs the boot workload with an empty nonce.
    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut instructions = Instructions::new("", "boot");
        for token in tokens {
            let Some(rest) = token.strip_prefix(TOKEN_PREFIX) else {
                continue;
            };
            let (key, value) = rest.split_once('=').ok_or_else(|| format!("instruction `{token}` has no `=`"))?;
            match key {
                "nonce" => {
                    if !value.chars().all(|c| c.is_ascii_alphanumeric()) || value.len() > 64 {
                        return Err(format!("nonce `{value}` must be at most 64 ASCII letters or digits"));
                    }
                    instructions.nonce = value.to_string();
                }
                "workload" => instructions.workload = value.to_string(),
                "scratch" => instructions.scratch = Some(value.to_string()),
                "listen" => instructions.listen = Some(value.to_string()),
                "addr" => instructions.address = Some(value.to_string()),
                "exit" => {
                    instructions.exit = match value {
                        "reboot" => ExitMode::Reboot,
                        "poweroff" => ExitMode::Poweroff,
                        other => return Err(format!("unknown exit mode `{other}`")),
                    }
                }
                _ => match key.strip_prefix("p.") {
                    Some(param) if !param.is_empty() => {
                        instructions.params.insert(param.to_string(), value.to_string());
                    }
                    _ => return Err(format!("unknown instruction `{token}`")),
                },
            }
        }
        Ok(instructions)
    }
}

/// Formats one protocol line, newline included.
pub fn encode_line(nonce: &str, message: &AgentMessage) -> String {
    let json = serde_json::to_string(message).expect("agent messages always serialize");
    format!("{MAGIC} {nonce} {json}\n")
}

/// Why a console line is not a message for this launch.
#[derive(Debug, Clone, PartialEq)]
pub enum LineError {
    /// Not a protocol line at all: kernel output, firmware noise.
    NotProtocol,
    /// A protocol line for another launch.
    WrongNonce,
    /// Claims to be for this launch but its JSON does not parse.
    Malformed(String),
}

/// Parses one console line (without its newline) for the launch `nonce`.
pub fn decode_line(line: &str, nonce: &str) -> Result<AgentMessage, LineError> {
    // Serial consoles may put a carriage return or other bytes first.
    let line = line.trim_end_matches('\r');
    let Some(start) = line.find(MAGIC) else {
        return Err(LineError::NotProtocol);
    };
    let rest = &line[start + MAGIC.len()..];
    let rest = rest.strip_prefix(' ').ok_or(LineError::NotProtocol)?;
    let (line_nonce, json) = rest.split_once(' ').ok_or(LineError::NotProtocol)?;
    if line_nonce != nonce {
        return Err(LineError::WrongNonce);
    }
    serde_json::from_str(json).map_err(|e| LineError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_travel_in_an_smbios_oem_string() {
        let tokens = vec!["vmbench.nonce=ab".to_string(), "vmbench.workload=boot".to_string()];
        let oem = smbios_instructions(&tokens);
        // Type 11, length 5, handle, one string; then the strings.
        let mut raw = vec![11u8, 5, 0x00, 0x0b, 2];
        raw.extend_from_slice(b"other\0");
        raw.extend_from_slice(oem.as_bytes());
        raw.extend_from_slice(b"\0\0");
        assert_eq!(tokens_from_smbios_oem(&raw), Some(tokens));
        assert_eq!(tokens_from_smbios_oem(&[11, 5, 0, 0, 1, b'x', 0, 0]), None);
        assert_eq!(tokens_from_smbios_oem(&[11]), None);
    }

    #[test]
    fn a_line_round_trips() {
        let msg = AgentMessage::Ready {
            boottime_ns: 12,
            init_ns: 3,
            pid: 1,
            rss_bytes: 4096,
            kernel: "6.1.0".into(),
            clocksource: Some("tsc".into()),
            clock_getres_ns: Some(1),
        };
        let line = encode_line("abc123", &msg);
        assert!(line.ends_with('\n'));
        assert_eq!(decode_line(line.trim_end(), "abc123"), Ok(msg));
    }

    #[test]
    fn a_ready_line_from_an_older_agent_still_parses() {
        let old = r#"VMBENCH1 n {"type":"ready","boottime_ns":1,"init_ns":2,"pid":1,"kernel":"6.1"}"#;
        let Ok(AgentMessage::Ready {
            clocksource,
            clock_getres_ns,
            ..
        }) = decode_line(old, "n")
        else {
            panic!("an old ready line must parse")
        };
        assert_eq!((clocksource, clock_getres_ns), (None, None));
    }

    #[test]
    fn facts_round_trip_and_tolerate_missing_fields() {
        let facts = AgentFacts {
            clock_res_ns: Some(4_000_000),
            cpu_model: Some("QEMU Virtual CPU".into()),
            cpu_flags: 40,
            caches: vec![CacheFact {
                level: 3,
                kind: "Unified".into(),
                size_bytes: 16 << 20,
            }],
            mitigations: Some(MitigationSummary {
                listed: 2,
                vulnerable: vec!["mds".into()],
            }),
            ..Default::default()
        };
        let line = encode_line("n", &AgentMessage::Facts(facts.clone()));
        assert_eq!(decode_line(line.trim_end(), "n"), Ok(AgentMessage::Facts(facts)));
        let sparse = r#"VMBENCH1 n {"type":"facts","thp":"madvise"}"#;
        let Ok(AgentMessage::Facts(f)) = decode_line(sparse, "n") else {
            panic!("sparse facts must parse")
        };
        assert_eq!((f.thp.as_deref(), f.cpu_flags), (Some("madvise"), 0));
    }

    #[test]
    fn other_nonces_and_noise_are_not_messages() {
        let line = encode_line("abc", &AgentMessage::Done);
        assert_eq!(decode_line(line.trim_end(), "xyz"), Err(LineError::WrongNonce));
        assert_eq!(
            decode_line("[    0.97] Run /init as init process", "abc"),
            Err(LineError::NotProtocol)
        );
        assert_eq!(decode_line("VMBENCH1abc {}", "abc"), Err(LineError::NotProtocol));
        assert!(matches!(decode_line("VMBENCH1 abc {not json", "abc"), Err(LineError::Malformed(_))));
    }

    #[test]
    fn a_line_after_console_garbage_still_parses() {
        let line = format!("\x1b[0m{}\r", encode_line("n1", &AgentMessage::Done).trim_end());
        assert_eq!(decode_line(&line, "n1"), Ok(AgentMessage::Done));
    }

    #[test]
    fn instructions_round_trip_through_tokens() {
        let mut ins = Instructions::new("a1b2", "cpu");
        ins.params.insert("threads".into(), "2".into());
        ins.exit = ExitMode::Poweroff;
        ins.scratch = Some("/dev/vda".into());
        ins.listen = Some("0.0.0.0:7777".into());
        let tokens = ins.to_tokens();
        let parsed = Instructions::from_tokens(tokens.iter().map(String::as_str)).unwrap();
        assert_eq!(parsed, ins);
    }

    #[test]
    fn instructions_ignore_other_kernel_parameters() {
        let cmdline = "console=ttyS0 quiet panic=-1 vmbench.nonce=ff00 vmbench.workload=boot";
        let parsed = Instructions::from_tokens(cmdline.split_whitespace()).unwrap();
        assert_eq!(parsed.nonce, "ff00");
        assert_eq!(parsed.workload, "boot");
        assert_eq!(parsed.exit, ExitMode::Reboot);
    }

    #[test]
    fn bad_instructions_are_rejected() {
        assert!(Instructions::from_tokens(["vmbench.nonce"]).is_err());
        assert!(Instructions::from_tokens(["vmbench.nonce=a b"]).is_err());
        assert!(Instructions::from_tokens(["vmbench.colour=red"]).is_err());
        assert!(Instructions::from_tokens(["vmbench.exit=explode"]).is_err());
    }
}
