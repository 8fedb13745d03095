//! `vmbench doctor`: what this host can run, each with the fix when missing.

use super::say;
use crate::backend::{docker, qemu};
use crate::guest;
use crate::protocol::Instructions;
use crate::scenario::Engine;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// json: `{"ok", "problems", "checks": [{"status": "ok" | "warning" | "missing", "what", "detail"}]}`.
    #[arg(long, value_enum, default_value_t = super::TextOrJson::Text)]
    pub format: super::TextOrJson,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Finding {
    status: &'static str,
    what: String,
    detail: String,
}

/// The findings so far; as text each is printed the moment it is known
/// (the KVM and runtime probes take seconds), as JSON all at the end.
struct Report {
    problems: usize,
    format: super::TextOrJson,
    findings: Vec<Finding>,
}

impl Report {
    fn new(format: super::TextOrJson) -> Self {
        Report {
            problems: 0,
            format,
            findings: Vec::new(),
        }
    }
    fn add(&mut self, status: &'static str, what: &str, detail: impl AsRef<str>) {
        let detail = detail.as_ref().to_string();
        if self.format == super::TextOrJson::Text {
            say!("{status:<8} {what:<8} {detail}");
        }
        self.findings.push(Finding {
            status,
            what: what.to_string(),
            detail,
        });
    }
    fn ok(&mut self, what: &str, detail: impl AsRef<str>) {
        self.add("ok", what, detail);
    }
    fn warn(&mut self, what: &str, detail: impl AsRef<str>) {
        self.add("warning", what, detail);
    }
    fn missing(&mut self, what: &str, detail: impl AsRef<str>) {
        self.problems += 1;
        self.add("missing", what, detail);
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "ok": self.problems == 0, "problems": self.problems, "checks": self.findings })
    }
}

pub fn exec(args: DoctorArgs) -> anyhow::Result<i32> {
    super::runtime()?.block_on(async {
        let mut report = Report::new(args.format);
        check_agent(&mut report);
        let qemu = check_qemu(&mut report).await;
        let kernel = check_kernel(&mut report);
        check_kvm(&mut report, qemu.as_deref(), kernel.as_deref()).await;
        for engine in Engine::ALL {
            check_engine(&mut report, engine).await;
        }
        check_libvirt(&mut report).await;
        check_guest_tools(&mut report);
        check_app_tools(&mut report);
        if args.format == super::TextOrJson::Json {
            super::print_json(&report.json())?;
        }
        Ok(if report.problems == 0 { 0 } else { 1 })
    })
}

fn check_agent(report: &mut Report) {
    match guest::agent::linkage(guest::agent::bytes()) {
        guest::agent::Linkage::Static => report.ok(
            "agent",
            format!(
                "static, {} bytes, sha256 {}",
                guest::agent::bytes().len(),
                &guest::agent::sha256()[..16]
            ),
        ),
        other => report.missing(
            "agent",
            format!("the embedded agent is not static ({other:?}); rebuild with `cargo build --release`"),
        ),
    }
}

async fn check_qemu(report: &mut Report) -> Option<std::path::PathBuf> {
    let path = match qemu::find_qemu(None) {
        Ok(p) => p,
        Err(e) => {
            report.missing("qemu", format!("{e:#}"));
            return None;
        }
    };
    match qemu::qemu_version(&path).await {
        Ok(v) => report.ok("qemu", format!("{} ({v})", path.display())),
        Err(e) => report.missing("qemu", format!("{e:#}")),
    }
    match qemu::check_sandbox(&path, "each qemu target").await {
        Ok(()) => report.ok("sandbox", format!("QEMU accepts -sandbox {}", qemu::cmdline::SANDBOX)),
        Err(e) => report.missing("sandbox", format!("{e:#}")),
    }
    Some(path)
}

/// What `[[guest]]` systems need on the host; a warning, since the main
/// job (vmbench's own guests) needs none of it.
fn check_guest_tools(report: &mut Report) {
    let tools = guest::rootfs::host_tools();
    let missing: Vec<String> = tools
        .iter()
        .filter(|(_, _, present)| !present)
        .map(|(name, purpose, _)| format!("{name} ({purpose})"))
        .collect();
    if missing.is_empty() {
        report.ok("guests", format!("{} tools and files for [[guest]] systems present", tools.len()));
    } else {
        report.warn(
            "guests",
            format!("[[guest]] systems lack: {}; scripts/setup.sh installs them", missing.join(", ")),
        );
    }
}

/// What the application workloads need natively (nginx, MariaDB) and for
/// `reference = 1` (wrk, sysbench), and what a tap network needs; warnings,
/// since the main job needs none of it.
fn check_app_tools(report: &mut Report) {
    let tools: [(&str, &[&str], &str); 5] = [
        ("nginx", &["/usr/sbin/nginx", "/usr/local/sbin/nginx"], "http natively"),
        ("mariadbd", &["/usr/sbin/mariadbd", "/usr/local/sbin/mariadbd"], "sql natively"),
        ("wrk", &["/usr/bin/wrk", "/usr/local/bin/wrk"], "http reference = 1"),
        ("sysbench", &["/usr/bin/sysbench", "/usr/local/bin/sysbench"], "sql reference = 1"),
        ("ip", &["/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip"], "network = \"tap\""),
    ];
    let missing: Vec<String> = tools
        .iter()
        .filter(|(_, paths, _)| !paths.iter().any(|p| std::path::Path::new(p).exists()))
        .map(|(name, _, purpose)| format!("{name} ({purpose})"))
        .collect();
    if missing.is_empty() {
        report.ok("applications", "nginx, mariadbd, wrk, sysbench and ip present");
    } else {
        report.warn(
            "applications",
            format!("missing: {}; scripts/setup.sh installs them", missing.join(", ")),
        );
    }
}

fn check_kernel(report: &mut Report) -> Option<std::path::PathBuf> {
    match guest::kernel::find(None) {
        Ok(k) => {
            report.ok("kernel", format!("{} (from {}, {} bytes)", k.path.display(), k.source, k.bytes));
            Some(k.path)
        }
        Err(e) => {
            report.missing("kernel", format!("{e:#}"));
            None
        }
    }
}

async fn check_kvm(report: &mut Report, qemu: Option<&std::path::Path>, kernel: Option<&std::path::Path>) {
    if let Err(why) = qemu::accel::device_check() {
        report.warn("kvm", format!("not usable: {why}; VMs run under TCG (emulation)"));
        return;
    }
    let (Some(qemu), Some(kernel)) = (qemu, kernel) else {
        report.warn("kvm", "/dev/kvm answers, but without QEMU and a kernel no guest can prove it works");
        return;
    };
    let initramfs = match guest::initramfs::for_kernel(kernel, false, &guest::agent::Agent::embedded()) {
        Ok(i) => i,
        Err(e) => {
            report.missing("kvm", format!("cannot build the initramfs for the probe: {e:#}"));
            return;
        }
    };
    let verdict = qemu::accel::probe(qemu, kernel, &initramfs.path).await;
    if verdict.kvm_works {
        report.ok("kvm", verdict.reason);
    } else {
        report.warn("kvm", format!("{}; accel = \"auto\" uses TCG (emulation)", verdict.reason));
    }
}

async fn check_engine(report: &mut Report, engine: Engine) {
    let what = engine.as_str();
    let address = docker::engine_address(engine, None);
    let client = match docker::connect(engine, &address).await {
        Ok(c) => c,
        Err(e) => return report.missing(what, format!("{e:#}")),
    };
    let version = client.version().await.ok();
    let (runtimes, default) = match client.info().await {
        Ok(info) => {
            let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
            names.sort();
            (names.join(", "), info.default_runtime)
        }
        Err(_) => ("unknown".to_string(), None),
    };
    let (v, api) = version
        .map(|v| (v.version.unwrap_or_default(), v.api_version.unwrap_or_default()))
        .unwrap_or_default();
    report.ok(what, format!("{address}: {engine} {v} (API {api}); runtimes: {runtimes}"));
    // Through Podman's compatible API only its default runtime can be
    // chosen (see docker::check_runtime), so only that one is tried.
    let runtimes = match (engine, default) {
        (Engine::Podman, Some(default)) => {
            report.ok(
                "runtime",
                format!("Podman lists {runtimes} in its configuration, but its Docker-compatible API always runs its default, {default}"),
            );
            default
        }
        _ => runtimes,
    };
    check_runtimes(report, engine, &client, &runtimes).await;
}

#[cfg(feature = "libvirt")]
async fn check_libvirt(report: &mut Report) {
    let uri = crate::backend::libvirt::DEFAULT_URI;
    match tokio::task::spawn_blocking(move || crate::backend::libvirt::versions(uri)).await {
        Ok(Ok(v)) => report.ok("libvirt", format!("{uri}: libvirt {}, hypervisor {}", v.library, v.hypervisor)),
        Ok(Err(e)) => report.missing("libvirt", format!("{e:#}")),
        Err(e) => report.missing("libvirt", e.to_string()),
    }
}

#[cfg(not(feature = "libvirt"))]
async fn check_libvirt(report: &mut Report) {
    report.warn(
        "libvirt",
        "built without the `libvirt` feature: backend = \"libvirt\" targets cannot run",
    );
}

/// Starts one container per OCI runtime the daemon offers and says which
/// cannot run here, with the daemon's own reason.
async fn check_runtimes(report: &mut Report, engine: Engine, client: &bollard::Docker, runtimes: &str) {
    let image = match docker::image::ensure(client, guest::agent::bytes(), &guest::agent::sha256()).await {
        Ok(image) => image,
        Err(e) => return report.missing("image", format!("cannot build the agent image: {e:#}")),
    };
    for runtime in runtimes.split(", ").filter(|r| !r.is_empty() && !r.starts_with("io.containerd")) {
        let spec = crate::scenario::ContainerSpec {
            engine,
            runtime: runtime.to_string(),
            cpus: 1.0,
            memory_mib: 64,
            host: None,
            pids_limit: 64,
            network: crate::scenario::ContainerNetwork::Bridge,
            guest: None,
            storage: crate::scenario::ServerStorage::Layer,
            agent: None,
        };
        let run_id = format!("doctor-{}", std::process::id());
        let plan =
            docker::spec::ContainerPlan::new(&spec, &image.tag, Instructions::new("probe", "boot").to_tokens()).labelled(&run_id, runtime);
        let name = format!("{}{run_id}-{runtime}-probe", docker::spec::NAME_PREFIX);
        match docker::probe_runtime(client, &plan, &name).await {
            Ok(()) => report.ok("runtime", format!("{engine} {runtime} starts containers")),
            Err(e) => report.warn("runtime", format!("{engine}: {e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_keep_their_status_and_json_counts_the_problems() {
        let mut report = Report::new(super::super::TextOrJson::Json);
        report.ok("qemu", "/usr/bin/qemu-system-x86_64 (8.2)");
        report.warn("kvm", "not usable");
        report.missing("libvirt", "no daemon");
        let json = report.json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["problems"], 1);
        let statuses: Vec<&str> = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["ok", "warning", "missing"]);
        assert_eq!(json["checks"][2]["what"], "libvirt");
        assert_eq!(json["checks"][2]["detail"], "no daemon");
        let mut fine = Report::new(super::super::TextOrJson::Json);
        fine.warn("kvm", "TCG");
        assert_eq!(fine.json()["ok"], true, "a warning is no problem");
    }
}
