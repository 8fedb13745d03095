//! Raw TOML → [`Scenario`], with every check that launches nothing.

use super::error::{Locator, ScenarioError};
use super::raw::{RawScenario, RawWorkload};
use super::*;
use std::collections::HashSet;
use std::ops::RangeInclusive;
use toml::Spanned;

pub(super) type Result<T> = std::result::Result<T, ScenarioError>;

pub const DEFAULT_REPETITIONS: i64 = 10;
pub const DEFAULT_WARMUP: i64 = 1;
pub const DEFAULT_TIMEOUT_S: f64 = 120.0;

pub fn validate(path: &Path, text: &str) -> Result<Scenario> {
    let file = path.display().to_string();
    let loc = Locator { file: &file, text };
    let raw: RawScenario = toml::from_str(text).map_err(|e| loc.error_at(e.span(), e.message().trim()))?;
    // Every table is checked, and every error of the file reported at once
    // (the first in each table); the checks across tables need them all.
    let mut errors = Vec::new();
    let top = top_level(&loc, &raw, &mut errors);
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let guests = kept(&mut errors, super::guests::guests_from_raw(&loc, &raw.guest, base_dir));
    // Targets name guests: checked only against guests that are all valid.
    let targets = guests
        .as_ref()
        .map(|guests| targets_from_raw(&loc, &raw, base_dir, guests, &mut errors));
    let workloads: Vec<Workload> = raw
        .workload
        .iter()
        .enumerate()
        .filter_map(|(i, w)| kept(&mut errors, workload_from_raw(&loc, i, w)))
        .collect();
    let (Some(top), Some(guests), Some(targets), true) = (top, guests, targets, errors.is_empty()) else {
        return Err(ScenarioError::all(errors));
    };
    let target_cpus = top.cpuset.as_ref().map_or_else(usable_cpus, |s| s.len() as u64);
    check_cpus(&loc, &raw, &targets, target_cpus)?;
    cross_check(&loc, &raw, &targets, &workloads, target_cpus)?;
    check_disk_space(&loc, &raw, &workloads)?;
    Ok(Scenario {
        name: top.name,
        description: raw.description.map(|d| d.into_inner()).unwrap_or_default(),
        repetitions: top.repetitions,
        auto: top.auto,
        warmup: top.warmup,
        timeout: top.timeout,
        cpuset: top.cpuset,
        accounting: top.accounting,
        guests,
        targets,
        workloads,
        path: path.to_path_buf(),
        text: text.to_string(),
    })
}

/// The scenario's own keys, checked.
struct TopLevel {
    name: String,
    repetitions: u32,
    auto: Option<AutoRepetitions>,
    warmup: u32,
    timeout: Duration,
    cpuset: Option<CpuSet>,
    accounting: Accounting,
}

/// The top-level keys (and that there are targets and workloads); each
/// problem goes to `errors`, and `None` comes back if there was any.
fn top_level(loc: &Locator, raw: &RawScenario, errors: &mut Vec<ScenarioError>) -> Option<TopLevel> {
    let before = errors.len();
    let whole = Some(0..0);
    let name = raw
        .name
        .as_ref()
        .ok_or_else(|| loc.error(whole.clone(), "name", "missing: every scenario needs a `name`"));
    let name = kept(errors, name.and_then(|n| check_name(loc, n, "name").map(|()| n)));
    let repetitions = kept(errors, repetitions_from_raw(loc, raw));
    let warmup = kept(errors, int_in(loc, raw.warmup.as_ref(), "warmup", 0..=10_000, DEFAULT_WARMUP));
    let timeout_s = kept(
        errors,
        float_in(loc, raw.timeout_s.as_ref(), "timeout_s", 0.001..=86_400.0, DEFAULT_TIMEOUT_S),
    );
    if raw.target.is_empty() {
        errors.push(loc.error(whole.clone(), "target", "no `[[target]]`: a scenario needs at least one target"));
    }
    if raw.workload.is_empty() {
        errors.push(loc.error(whole, "workload", "no `[[workload]]`: add `[[workload]]` with `kind = \"boot\"`"));
    }
    let cpuset = kept(errors, cpuset_from_raw(loc, raw.cpuset.as_ref()));
    let accounting = kept(
        errors,
        one_of(
            loc,
            raw.accounting.as_ref(),
            "accounting",
            &[("process", Accounting::Process), ("cgroup", Accounting::Cgroup)],
            Accounting::Cgroup,
        ),
    )?;
    kept(errors, check_run_as(loc, raw, accounting));
    let ((repetitions, auto), cpuset) = (repetitions?, cpuset?);
    (errors.len() == before).then(|| TopLevel {
        name: name.map(|n| n.get_ref().clone()).unwrap_or_default(),
        repetitions,
        auto,
        warmup: warmup.unwrap_or_default() as u32,
        timeout: Duration::from_secs_f64(timeout_s.unwrap_or(DEFAULT_TIMEOUT_S)),
        cpuset,
        accounting,
    })
}

/// The value of a check that passed; the error of one that failed goes to
/// `errors`.
fn kept<T>(errors: &mut Vec<ScenarioError>, checked: Result<T>) -> Option<T> {
    checked.map_err(|e| errors.push(e)).ok()
}

/// A QEMU that changes its user loses its parent-death signal (the kernel
/// clears it), so it no longer dies with a killed vmbench; vmbench then
/// finds it by its cgroup, which only cgroup accounting gives it.
fn check_run_as(loc: &Locator, raw: &RawScenario, accounting: Accounting) -> Result<()> {
    // Only VM targets: on others `run_as` is already an error of its own.
    let vms = raw
        .target
        .iter()
        .enumerate()
        .filter(|(_, t)| t.get_ref().kind.as_ref().is_some_and(|k| k.get_ref() == "vm"));
    for (i, t) in vms {
        if let (Some(user), Accounting::Process) = (&t.get_ref().run_as, accounting) {
            return Err(loc.error(
                Some(user.span()),
                &format!("target[{i}].run_as"),
                "`run_as` needs accounting = \"cgroup\" (the default): a QEMU that changed its user no longer dies with \
                 vmbench (the kernel clears its parent-death signal), and vmbench finds it again by its cgroup",
            ));
        }
    }
    Ok(())
}

/// Every `[[target]]`, each name once; the error of each target that is
/// not valid goes to `errors`.
fn targets_from_raw(loc: &Locator, raw: &RawScenario, base_dir: &Path, guests: &[Guest], errors: &mut Vec<ScenarioError>) -> Vec<Target> {
    let mut targets = Vec::new();
    let mut seen = HashSet::new();
    for (i, target) in raw.target.iter().enumerate() {
        let Some(t) = kept(errors, super::targets::target_from_raw(loc, i, target, base_dir, guests)) else {
            continue;
        };
        if !seen.insert(t.name.clone()) {
            let span = target.get_ref().name.as_ref().map(|n| n.span());
            errors.push(loc.error(span, &format!("target[{i}].name"), format!("duplicate target name `{}`", t.name)));
            continue;
        }
        targets.push(t);
    }
    targets
}

fn workload_from_raw(loc: &Locator, i: usize, w: &Spanned<RawWorkload>) -> Result<Workload> {
    let key = |k: &str| format!("workload[{i}].{k}");
    let table = Some(w.span());
    let kind = w
        .get_ref()
        .kind
        .as_ref()
        .ok_or_else(|| loc.error(table.clone(), &key("kind"), "missing: set `kind`, e.g. \"boot\""))?;
    let names: Vec<String> = crate::agent::workloads::all().iter().map(|w| format!("\"{}\"", w.name())).collect();
    let agent_workload = crate::agent::workloads::find(kind.get_ref()).ok_or_else(|| {
        loc.error(
            Some(kind.span()),
            &key("kind"),
            format!("unknown workload `{}`; expected one of {}", kind.get_ref(), names.join(", ")),
        )
    })?;
    let specs = agent_workload.params();
    let raw = &w.get_ref().params;
    for (name, value) in raw {
        let span = loc.find_key(w.span(), name).or(table.clone());
        let Some(spec) = specs.iter().find(|s| s.name == name) else {
            let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
            let takes = if known.is_empty() {
                "it takes none".to_string()
            } else {
                format!("it takes {}", known.join(", "))
            };
            return Err(loc.error(
                span,
                &key(name),
                format!("unknown key `{name}` for workload \"{}\" ({takes})", kind.get_ref()),
            ));
        };
        let number = value
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| loc.error(span.clone(), &key(name), format!("must be a whole number ≥ 0 ({})", spec.doc)))?;
        crate::agent::workloads::params::check(spec, number).map_err(|e| loc.error(span, &key(name), e))?;
    }
    let params = specs
        .iter()
        .map(|spec| {
            let value = raw
                .get(spec.name)
                .and_then(|v| v.as_integer())
                .map(|n| n as u64)
                .unwrap_or(spec.default);
            (spec.name.to_string(), value.to_string())
        })
        .collect();
    Ok(Workload {
        kind: crate::protocol::WorkloadKind::parse(kind.get_ref()).expect("every agent workload has a kind"),
        params,
    })
}

/// `cpuset`: a CPU list of this host, `"all"` for no pinning, or (absent)
/// every CPU but the first, which vmbench keeps for itself.
fn cpuset_from_raw(loc: &Locator, raw: Option<&Spanned<String>>) -> Result<Option<CpuSet>> {
    let host = CpuSet::allowed();
    let Some(raw) = raw else {
        return Ok(CpuSet::default_for(&host));
    };
    if raw.get_ref() == "all" {
        return Ok(None);
    }
    let set = CpuSet::parse(raw.get_ref()).map_err(|e| loc.error(Some(raw.span()), "cpuset", e))?;
    let missing = CpuSet::new(set.cpus().iter().copied().filter(|c| !host.cpus().contains(c)).collect());
    if !missing.is_empty() {
        return Err(loc.error(
            Some(raw.span()),
            "cpuset",
            format!("CPU {missing} is not one vmbench may use on this host (it has {host})"),
        ));
    }
    if set == host && host.len() > 1 {
        return Err(loc.error(
            Some(raw.span()),
            "cpuset",
            format!("cpuset {set} leaves no CPU for vmbench's own measuring; leave one out, or say cpuset = \"all\" for no pinning"),
        ));
    }
    Ok(Some(set))
}

/// A container's CPU quota must fit the CPUs it is pinned to.
fn check_cpus(loc: &Locator, raw: &RawScenario, targets: &[Target], target_cpus: u64) -> Result<()> {
    for (i, target) in targets.iter().enumerate() {
        if let TargetSpec::Container(c) = &target.spec {
            if c.cpus > target_cpus as f64 {
                let span = loc.find_key(raw.target[i].span(), "cpus").or(Some(raw.target[i].span()));
                return Err(loc.error(
                    span,
                    &format!("target[{i}].cpus"),
                    format!(
                        "cpus = {} is more than the {target_cpus} CPU(s) every target is pinned to (`cpuset`)",
                        c.cpus
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that need both targets and workloads: threads against vCPUs and
/// memory workloads against the memory a target has.
fn cross_check(loc: &Locator, raw: &RawScenario, targets: &[Target], workloads: &[Workload], target_cpus: u64) -> Result<()> {
    for (i, workload) in workloads.iter().enumerate() {
        let span_of = |param: &str| loc.find_key(raw.workload[i].span(), param).or(Some(raw.workload[i].span()));
        let threads = workload.param("threads").unwrap_or(0);
        let needed_mib = memory_needed_mib(workload);
        for target in targets {
            let (cpus, memory_mib) = match &target.spec {
                TargetSpec::Vm(vm) => (vm.vcpus as u64, Some((vm.memory_mib as u64).saturating_sub(VM_KERNEL_RESERVE_MIB))),
                TargetSpec::Container(c) => (target_cpus, Some(c.memory_mib as u64)),
                TargetSpec::Native(_) => (target_cpus, None),
            };
            if threads > cpus {
                return Err(loc.error(
                    span_of("threads"),
                    &format!("workload[{i}].threads"),
                    format!("threads = {threads} is more than target `{}` has CPUs ({cpus})", target.name),
                ));
            }
            if let (Some(have), Some(need)) = (memory_mib, needed_mib) {
                if need > have {
                    return Err(loc.error(
                        span_of("stream_mib"),
                        &format!("workload[{i}].stream_mib"),
                        format!(
                            "the memory workload needs about {need} MiB (the larger of 3 × stream_mib and 9/8 × chase_mib) but target `{}` can give it only {have} MiB; lower the sizes or raise memory_mib",
                            target.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A disk workload's file must fit in the free space of the file system that
/// holds vmbench's scratch directory (one file at a time per target).
fn check_disk_space(loc: &Locator, raw: &RawScenario, workloads: &[Workload]) -> Result<()> {
    for (i, workload) in workloads.iter().enumerate() {
        let Some(mib) = workload
            .param("file_mib")
            .filter(|_| workload.kind == crate::protocol::WorkloadKind::Disk)
        else {
            continue;
        };
        let scratch = crate::cache::dir();
        let Some(free) = free_bytes(&scratch) else { continue };
        if mib * 1024 * 1024 > free {
            let span = loc.find_key(raw.workload[i].span(), "file_mib").or(Some(raw.workload[i].span()));
            return Err(loc.error(
                span,
                &format!("workload[{i}].file_mib"),
                format!(
                    "{mib} MiB is more than the {} MiB free where scratch files go ({})",
                    free / (1024 * 1024),
                    scratch.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Free bytes of the file system holding `path` (or its nearest existing parent).
fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills a plain struct for a valid C path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Guest memory the kernel and the agent's initramfs keep for themselves.
const VM_KERNEL_RESERVE_MIB: u64 = 64;

/// The memory workload's peak, as the agent will allocate it (with
/// `stream_mib = 0` the agent fits its arrays to the memory it sees, so only
/// its smallest choice counts here).
fn memory_needed_mib(workload: &Workload) -> Option<u64> {
    (workload.kind == crate::protocol::WorkloadKind::Memory).then(|| {
        crate::agent::workloads::memory::needed_mib(workload.param("stream_mib").unwrap_or(0), workload.param("chase_mib").unwrap_or(0))
    })
}

pub(super) fn check_name(loc: &Locator, name: &Spanned<String>, key: &str) -> Result<()> {
    let n = name.get_ref();
    let ok = !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !n.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(loc.error(
            Some(name.span()),
            key,
            format!("`{n}` is not a valid name: use 1 to 64 letters, digits, `-`, `_` or `.`"),
        ))
    }
}

pub(super) fn one_of<T: Copy>(loc: &Locator, value: Option<&Spanned<String>>, key: &str, choices: &[(&str, T)], default: T) -> Result<T> {
    let Some(value) = value else { return Ok(default) };
    choices
        .iter()
        .find(|(name, _)| *name == value.get_ref())
        .map(|&(_, v)| v)
        .ok_or_else(|| {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            loc.error(
                Some(value.span()),
                key,
                format!("unknown value `{}`; expected one of {}", value.get_ref(), names.join(", ")),
            )
        })
}

/// `repetitions` as a number, or `"auto"` with its three bounds.
fn repetitions_from_raw(loc: &Locator, raw: &RawScenario) -> Result<(u32, Option<AutoRepetitions>)> {
    let auto_keys = [
        ("min_repetitions", &raw.min_repetitions),
        ("max_repetitions", &raw.max_repetitions),
        ("target_cov", &raw.target_cov),
    ];
    let is_auto = raw.repetitions.as_ref().is_some_and(|r| r.get_ref().as_str().is_some());
    if !is_auto {
        if let Some((key, Some(value))) = auto_keys.iter().find(|(_, v)| v.is_some()) {
            return Err(loc.error(Some(value.span()), key, "only applies with repetitions = \"auto\""));
        }
        let n = int_in(loc, raw.repetitions.as_ref(), "repetitions", 1..=100_000, DEFAULT_REPETITIONS)?;
        return Ok((n as u32, None));
    }
    let value = raw.repetitions.as_ref().expect("checked above");
    if value.get_ref().as_str() != Some("auto") {
        return Err(loc.error(
            Some(value.span()),
            "repetitions",
            format!("must be a whole number or \"auto\", not {}", describe(value.get_ref())),
        ));
    }
    let min = int_in(loc, raw.min_repetitions.as_ref(), "min_repetitions", 2..=100_000, 5)? as u32;
    let max = int_in(loc, raw.max_repetitions.as_ref(), "max_repetitions", 2..=100_000, 50)? as u32;
    if max < min {
        let span = raw.max_repetitions.as_ref().or(raw.min_repetitions.as_ref()).map(Spanned::span);
        return Err(loc.error(span, "max_repetitions", format!("{max} is less than min_repetitions ({min})")));
    }
    let target_cov = float_in(loc, raw.target_cov.as_ref(), "target_cov", 0.0001..=1.0, 0.05)?;
    Ok((max, Some(AutoRepetitions { min, max, target_cov })))
}

pub(super) fn int_in(
    loc: &Locator,
    value: Option<&Spanned<toml::Value>>,
    key: &str,
    range: RangeInclusive<i64>,
    default: i64,
) -> Result<i64> {
    let Some(value) = value else { return Ok(default) };
    let n = value.get_ref().as_integer().ok_or_else(|| {
        loc.error(
            Some(value.span()),
            key,
            format!("must be a whole number, not {}", describe(value.get_ref())),
        )
    })?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(loc.error(
            Some(value.span()),
            key,
            format!("{n} is out of range: must be from {} to {}", range.start(), range.end()),
        ))
    }
}

pub(super) fn float_in(
    loc: &Locator,
    value: Option<&Spanned<toml::Value>>,
    key: &str,
    range: RangeInclusive<f64>,
    default: f64,
) -> Result<f64> {
    let Some(value) = value else { return Ok(default) };
    let n = match value.get_ref() {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(i) => *i as f64,
        other => return Err(loc.error(Some(value.span()), key, format!("must be a number, not {}", describe(other)))),
    };
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(loc.error(
            Some(value.span()),
            key,
            format!("{n} is out of range: must be from {} to {}", range.start(), range.end()),
        ))
    }
}

pub(super) fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("the string \"{s}\""),
        toml::Value::Float(f) => format!("the number {f}"),
        other => format!("a {}", other.type_str()),
    }
}
