//! The container a trial creates, as data: the Engine API body and the
//! equivalent `docker run` line. Pure, tested without a daemon.

use crate::scenario::ContainerSpec;
use bollard::models::{ContainerCreateBody, HostConfig};
use std::collections::HashMap;

/// Label carried by every container vmbench creates; its value is the run id,
/// so leftovers of one run (or of all runs) can be found and removed.
pub const RUN_LABEL: &str = "vmbench.run";
/// Label with the target name, for people reading `docker ps`.
pub const TARGET_LABEL: &str = "vmbench.target";
/// Name prefix of every container vmbench creates.
pub const NAME_PREFIX: &str = "vmbench-";
/// Where disk workloads find the host's scratch directory.
pub const SCRATCH_MOUNT: &str = "/scratch";

/// Bind-mounts `dir` read-write at [`SCRATCH_MOUNT`]; the root stays read-only.
pub fn mount_scratch(body: &mut ContainerCreateBody, dir: &std::path::Path) {
    let host = body.host_config.get_or_insert_with(Default::default);
    host.binds
        .get_or_insert_with(Vec::new)
        .push(format!("{}:{SCRATCH_MOUNT}:rw", dir.display()));
}

/// Gives the container the network the network workload needs: a bridge
/// with the agent's port published on 127.0.0.1 (an ephemeral host port), or
/// the host's own network stack.
pub fn enable_network(body: &mut ContainerCreateBody, mode: crate::scenario::ContainerNetwork) {
    use crate::scenario::ContainerNetwork;
    let port = format!("{}/tcp", crate::agent::workloads::network::GUEST_PORT);
    body.network_disabled = Some(false);
    let host = body.host_config.get_or_insert_with(Default::default);
    match mode {
        ContainerNetwork::Host => host.network_mode = Some("host".to_string()),
        ContainerNetwork::Bridge => {
            host.network_mode = Some("bridge".to_string());
            let binding = bollard::models::PortBinding {
                host_ip: Some("127.0.0.1".to_string()),
                host_port: Some(String::new()),
            };
            host.port_bindings = Some(HashMap::from([(port.clone(), Some(vec![binding]))]));
            body.exposed_ports = Some(vec![port]);
        }
    }
}

/// Where the agent listens in the container for `mode`.
pub fn listen_address(mode: crate::scenario::ContainerNetwork) -> String {
    match mode {
        crate::scenario::ContainerNetwork::Host => "127.0.0.1:0".to_string(),
        crate::scenario::ContainerNetwork::Bridge => format!("0.0.0.0:{}", crate::agent::workloads::network::GUEST_PORT),
    }
}

/// Where the agent sits in the image.
pub const AGENT_PATH: &str = "/vmbench-agent";

const MIB: i64 = 1024 * 1024;

/// Safe defaults plus the scenario's limits: no network, every capability
/// dropped, no privilege escalation, read-only root, a pids limit.
pub fn create_body(spec: &ContainerSpec, image: &str, run_id: &str, target: &str, cmd: Vec<String>) -> ContainerCreateBody {
    let labels = HashMap::from([
        (RUN_LABEL.to_string(), run_id.to_string()),
        (TARGET_LABEL.to_string(), target.to_string()),
    ]);
    let memory = i64::from(spec.memory_mib) * MIB;
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(cmd),
        labels: Some(labels),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            runtime: Some(spec.runtime.clone()),
            network_mode: Some("none".to_string()),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            readonly_rootfs: Some(true),
            pids_limit: Some(spec.pids_limit),
            nano_cpus: Some((spec.cpus * 1e9).round() as i64),
            memory: Some(memory),
            // Same as memory: no swap, so the limit is the limit.
            memory_swap: Some(memory),
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `docker run` line that repeats one launch by hand.
pub fn reproduce(spec: &ContainerSpec, image: &str, cmd: &[String]) -> Vec<String> {
    let mut argv: Vec<String> = [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
    ]
    .map(String::from)
    .to_vec();
    for (flag, value) in [
        ("--pids-limit", spec.pids_limit.to_string()),
        ("--cpus", format!("{}", spec.cpus)),
        ("--memory", format!("{}m", spec.memory_mib)),
        ("--memory-swap", format!("{}m", spec.memory_mib)),
        ("--runtime", spec.runtime.clone()),
    ] {
        argv.push(flag.to_string());
        argv.push(value);
    }
    argv.push(image.to_string());
    argv.extend(cmd.iter().cloned());
    argv
}

/// The settings recorded in `run.json` next to the numbers.
pub fn settings(spec: &ContainerSpec) -> std::collections::BTreeMap<String, String> {
    [
        ("network", "none".to_string()),
        ("cap_drop", "ALL".to_string()),
        ("security_opt", "no-new-privileges".to_string()),
        ("read_only_rootfs", "true".to_string()),
        ("pids_limit", spec.pids_limit.to_string()),
        ("memory_mib", spec.memory_mib.to_string()),
        ("network_workload", spec.network.as_str().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Engine;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            engine: Engine::Docker,
            runtime: "runc".into(),
            cpus: 1.5,
            memory_mib: 256,
            host: None,
            pids_limit: 64,
            network: crate::scenario::ContainerNetwork::Bridge,
        }
    }

    #[test]
    fn containers_are_locked_down_and_limited() {
        let body = create_body(&spec(), "vmbench/agent:abc", "run1", "docker", vec!["vmbench.nonce=x".into()]);
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.pids_limit, Some(64));
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.memory, Some(256 * MIB));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.runtime.as_deref(), Some("runc"));
        assert_eq!(body.labels.as_ref().unwrap()[RUN_LABEL], "run1");
        assert_eq!(body.cmd.clone().unwrap(), vec!["vmbench.nonce=x".to_string()]);
        assert_eq!(host.binds, None);
        let mut body = body;
        mount_scratch(&mut body, std::path::Path::new("/cache/scratch/r/t"));
        assert_eq!(
            body.host_config.unwrap().binds.unwrap(),
            vec!["/cache/scratch/r/t:/scratch:rw".to_string()]
        );
    }

    #[test]
    fn reproduce_line_matches_the_api_settings() {
        let argv = reproduce(&spec(), "img:1", &["vmbench.nonce=repro".to_string()]);
        let joined = argv.join(" ");
        assert!(joined.starts_with("docker run --rm --network none --cap-drop ALL"));
        assert!(joined.contains("--cpus 1.5 --memory 256m --memory-swap 256m --runtime runc img:1 vmbench.nonce=repro"));
    }
}
