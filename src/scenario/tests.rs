use super::*;

const GOOD: &str = r#"name = "boot"
description = "d"
repetitions = 3
warmup = 0
timeout_s = 30

[[target]]
name = "vm"
kind = "vm"
machine = "q35"
accel = "tcg"
vcpus = 2
memory_mib = 512

[[target]]
name = "ctr"
kind = "container"
runtime = "runc"
cpus = 1
memory_mib = 128

[[target]]
name = "native"
kind = "native"

[[workload]]
kind = "boot"
"#;

fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
    parse(Path::new("s.toml"), text)
}

/// Replaces the first occurrence of `from` in the good scenario.
fn bad(from: &str, to: &str) -> ScenarioError {
    assert!(GOOD.contains(from), "{from} not in GOOD");
    parse_str(&GOOD.replacen(from, to, 1)).expect_err("should be rejected")
}

#[test]
fn a_good_scenario_parses_into_types() {
    let s = parse_str(GOOD).unwrap();
    assert_eq!((s.name.as_str(), s.repetitions, s.warmup), ("boot", 3, 0));
    assert_eq!(s.timeout, Duration::from_secs(30));
    let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!("vm") };
    assert_eq!(
        (vm.machine, vm.accel, vm.vcpus, vm.memory_mib),
        (Machine::Q35, AccelChoice::Tcg, 2, 512)
    );
    assert_eq!(vm.kernel, KernelChoice::Auto);
    let TargetSpec::Container(c) = &s.targets[1].spec else {
        panic!("container")
    };
    assert_eq!(
        (c.engine, c.runtime.as_str(), c.cpus, c.memory_mib, c.pids_limit),
        (Engine::Docker, "runc", 1.0, 128, 64)
    );
    assert_eq!(s.targets[2].spec, TargetSpec::Native(NativeSpec::default()));
    assert_eq!(s.workloads[0], Workload::boot());
}

#[test]
fn defaults_fill_what_is_left_out() {
    let s = parse_str("name = \"x\"\n[[target]]\nname = \"v\"\nkind = \"vm\"\n[[workload]]\nkind = \"boot\"\n").unwrap();
    assert_eq!((s.repetitions, s.warmup), (10, 1));
    assert_eq!(s.timeout, Duration::from_secs(120));
    let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
    assert_eq!(
        (vm.machine, vm.accel, vm.vcpus, vm.memory_mib),
        (Machine::Microvm, AccelChoice::Auto, 1, 256)
    );
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = bad("vcpus = 2", "vcpu = 2");
    assert_eq!((e.line, e.key.as_str()), (12, "target[0].vcpu"));
    assert!(e.message.contains("unknown field `vcpu`"), "{e}");
    assert!(e.to_string().starts_with("s.toml:12:"), "{e}");
}

#[test]
fn wrong_type_names_line_and_key() {
    let e = bad("repetitions = 3", "repetitions = \"three\"");
    assert_eq!((e.line, e.key.as_str()), (3, "repetitions"));
    assert!(e.message.contains("whole number"), "{e}");
    let e = bad("runtime = \"runc\"", "runtime = 5");
    assert_eq!((e.line, e.key.as_str()), (18, "target[1].runtime"));
}

#[test]
fn syntax_errors_have_a_line() {
    let e = bad("warmup = 0", "warmup = = 0");
    assert_eq!(e.line, 4);
    assert_eq!(e.key, "warmup");
}

#[test]
fn ranges_are_enforced() {
    let e = bad("repetitions = 3", "repetitions = 0");
    assert_eq!((e.line, e.key.as_str()), (3, "repetitions"));
    assert!(e.message.contains("out of range"), "{e}");
    let e = bad("memory_mib = 512", "memory_mib = 16");
    assert_eq!(e.key, "target[0].memory_mib");
    let e = bad("vcpus = 2", "vcpus = 0");
    assert_eq!(e.key, "target[0].vcpus");
    let e = bad("timeout_s = 30", "timeout_s = -1");
    assert_eq!(e.key, "timeout_s");
    let e = bad("cpus = 1", "cpus = 10000");
    assert_eq!(e.key, "target[1].cpus");
}

#[test]
fn unknown_enum_values_list_the_choices() {
    let e = bad("kind = \"vm\"", "kind = \"vz\"");
    assert_eq!((e.line, e.key.as_str()), (9, "target[0].kind"));
    let e = bad("machine = \"q35\"", "machine = \"pc\"");
    assert!(e.message.contains("\"microvm\", \"q35\""), "{e}");
    let e = bad("accel = \"tcg\"", "accel = \"hvf\"");
    assert_eq!(e.key, "target[0].accel");
    let e = bad("kind = \"boot\"", "kind = \"fly\"");
    assert_eq!(e.key, "workload[0].kind");
}

#[test]
fn duplicate_target_names_are_rejected() {
    let e = bad("name = \"ctr\"", "name = \"vm\"");
    assert_eq!((e.line, e.key.as_str()), (16, "target[1].name"));
    assert!(e.message.contains("duplicate"), "{e}");
}

#[test]
fn keys_of_another_kind_are_rejected() {
    let e = bad("runtime = \"runc\"", "runtime = \"runc\"\nmachine = \"q35\"");
    assert_eq!((e.line, e.key.as_str()), (19, "target[1].machine"));
    assert!(e.message.contains("does not apply"), "{e}");
}

#[test]
fn missing_kernel_file_is_an_error() {
    let e = bad("vcpus = 2", "vcpus = 2\nkernel = \"/nonexistent/bzImage\"");
    assert_eq!(e.key, "target[0].kernel");
    assert!(e.message.contains("does not exist"), "{e}");
}

#[test]
fn missing_pieces_are_named() {
    assert_eq!(parse_str("[[target]]\nname=\"a\"\nkind=\"native\"\n").unwrap_err().key, "name");
    assert_eq!(
        parse_str("name = \"x\"\n[[workload]]\nkind = \"boot\"\n").unwrap_err().key,
        "target"
    );
    assert_eq!(
        parse_str("name = \"x\"\n[[target]]\nname = \"a\"\nkind = \"native\"\n")
            .unwrap_err()
            .key,
        "workload"
    );
    let e = parse_str("name = \"x\"\n[[target]]\nname = \"a\"\n[[workload]]\nkind = \"boot\"\n").unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (2, "target[0].kind"));
}

#[test]
fn unknown_workload_parameters_point_at_their_line() {
    let e = bad("kind = \"boot\"", "kind = \"boot\"\nsize_mib = 4");
    assert_eq!((e.line, e.key.as_str()), (28, "workload[0].size_mib"));
}

#[test]
fn names_must_be_safe_for_files_and_containers() {
    let e = bad("name = \"native\"", "name = \"a b/c\"");
    assert_eq!(e.key, "target[2].name");
}

#[test]
fn a_missing_file_is_an_error_without_a_line() {
    let e = load(Path::new("/nonexistent/scenario.toml")).unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.to_string().starts_with("/nonexistent/scenario.toml: cannot read"), "{e}");
}

#[test]
fn shipped_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            match load(&path) {
                Ok(_) => {}
                // spectrum.toml has a libvirt target: a build without the
                // feature refuses it, rightly, and says how to get it.
                Err(e) if !cfg!(feature = "libvirt") && e.message.contains("built without libvirt support") => {}
                Err(e) => panic!("{e}"),
            }
            count += 1;
        }
    }
    assert!(count >= 2, "expected boot.toml and boot-q35.toml");
}

#[test]
fn workload_parameters_are_validated_with_defaults_filled_in() {
    let s = parse_str(&GOOD.replace("kind = \"boot\"", "kind = \"cpu\"\nsha_mib = 2")).unwrap();
    let cpu = &s.workloads[0];
    assert_eq!(
        (cpu.kind.as_str(), cpu.param("sha_mib"), cpu.param("matrix_n")),
        ("cpu", Some(2), Some(128))
    );
    let e = bad("kind = \"boot\"", "kind = \"cpu\"\nsha_mib = 0");
    assert_eq!((e.line, e.key.as_str()), (28, "workload[0].sha_mib"));
    assert!(e.message.contains("out of range"), "{e}");
    let e = bad("kind = \"boot\"", "kind = \"cpu\"\nsha_mib = \"big\"");
    assert!(e.message.contains("whole number"), "{e}");
    let e = bad("kind = \"boot\"", "kind = \"memory\"\nstream_gib = 1");
    assert!(e.message.contains("it takes stream_mib"), "{e}");
}

#[test]
fn threads_above_a_vms_vcpus_are_rejected() {
    let e = bad("kind = \"boot\"", "kind = \"cpu\"\nthreads = 3");
    assert_eq!((e.line, e.key.as_str()), (28, "workload[0].threads"));
    assert!(e.message.contains("target `vm`"), "{e}");
}

#[test]
fn a_memory_workload_must_fit_in_the_target() {
    // 3 × 160 MiB of STREAM arrays do not fit in a 512 MiB VM (64 MiB kept for the guest kernel).
    let e = bad("kind = \"boot\"", "kind = \"memory\"\nstream_mib = 160");
    assert_eq!(e.key, "workload[0].stream_mib");
    assert!(
        e.message.contains("needs about 480 MiB") && e.message.contains("target `vm`"),
        "{e}"
    );
    // The defaults (arrays fitted by the agent, a 128 MiB chase) need 144 MiB.
    let e = bad("kind = \"boot\"", "kind = \"memory\"");
    assert!(
        e.message.contains("needs about 144 MiB") && e.message.contains("target `ctr`"),
        "{e}"
    );
    assert!(parse_str(&GOOD.replace("kind = \"boot\"", "kind = \"memory\"\nstream_mib = 16\nchase_mib = 16")).is_ok());
}

#[test]
fn a_disk_file_larger_than_the_free_space_is_rejected() {
    let e = bad("kind = \"boot\"", "kind = \"disk\"\nfile_mib = 1000000");
    assert_eq!((e.line, e.key.as_str()), (28, "workload[0].file_mib"));
    assert!(e.message.contains("free where scratch files go"), "{e}");
    assert!(parse_str(&GOOD.replace("kind = \"boot\"", "kind = \"disk\"\nfile_mib = 16")).is_ok());
}

#[cfg(feature = "libvirt")]
#[test]
fn a_libvirt_target_defaults_to_q35_and_the_system_uri() {
    let s = parse_str(&GOOD.replacen("machine = \"q35\"", "backend = \"libvirt\"", 1)).unwrap();
    let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
    assert_eq!(
        (vm.backend, vm.machine, vm.uri.as_str()),
        (VmBackend::Libvirt, Machine::Q35, "qemu:///system")
    );
    let e = bad("machine = \"q35\"", "machine = \"microvm\"\nbackend = \"libvirt\"");
    assert_eq!(e.key, "target[0].machine");
    assert!(e.message.contains("libvirt cannot run the microvm machine type"), "{e}");
    let e = bad("machine = \"q35\"", "machine = \"q35\"\nbackend = \"libvirt\"\nuri = \"system\"");
    assert_eq!(e.key, "target[0].uri");
}

#[cfg(not(feature = "libvirt"))]
#[test]
fn a_libvirt_target_needs_a_build_with_the_libvirt_feature() {
    let e = bad("machine = \"q35\"", "machine = \"q35\"\nbackend = \"libvirt\"");
    assert_eq!(e.key, "target[0].backend");
    assert!(e.message.contains("--features libvirt"), "{e}");
}

#[test]
fn qemu_runs_sandboxed_unless_the_target_says_sandbox_false() {
    let vm = |s: &Scenario| match &s.targets[0].spec {
        TargetSpec::Vm(vm) => vm.sandbox,
        _ => panic!("vm"),
    };
    assert!(vm(&parse_str(GOOD).unwrap()));
    let off = parse_str(&GOOD.replacen("vcpus = 2", "vcpus = 2\nsandbox = false", 1)).unwrap();
    assert!(!vm(&off));
}

#[test]
fn a_sandbox_that_is_not_a_boolean_names_line_and_key() {
    let e = bad("vcpus = 2", "vcpus = 2\nsandbox = \"off\"");
    assert_eq!((e.line, e.key.as_str()), (13, "target[0].sandbox"));
    assert!(e.to_string().starts_with("s.toml:13:"), "{e}");
}

#[test]
fn sandbox_applies_only_to_vm_targets() {
    let e = bad("cpus = 1", "cpus = 1\nsandbox = false");
    assert_eq!((e.line, e.key.as_str()), (20, "target[1].sandbox"));
    assert!(e.message.contains("does not apply to a target of kind \"container\""), "{e}");
}

#[cfg(feature = "libvirt")]
#[test]
fn libvirt_keeps_its_own_sandbox() {
    let e = bad("machine = \"q35\"", "backend = \"libvirt\"\nsandbox = false");
    assert_eq!((e.line, e.key.as_str()), (11, "target[0].sandbox"));
    assert!(e.message.contains("seccomp_sandbox"), "{e}");
}

#[test]
fn a_native_target_may_name_another_agent_program_that_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("guest"), b"#!").unwrap();
    let text = GOOD.replacen("kind = \"native\"", "kind = \"native\"\nagent = \"guest\"", 1);
    let s = parse(&dir.path().join("s.toml"), &text).unwrap();
    assert_eq!(
        s.targets[2].spec,
        TargetSpec::Native(NativeSpec {
            agent: Some(dir.path().join("guest"))
        })
    );
    let e = parse(&dir.path().join("s.toml"), &text.replace("\"guest\"", "\"gone\"")).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (25, "target[2].agent"));
    assert!(e.message.contains("program `gone` does not exist"), "{e}");
}

#[test]
fn a_vm_or_container_agent_must_be_static_and_run_where_an_agent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(dir.path().join("static"), crate::guest::agent::bytes()).unwrap();
    std::fs::copy("/proc/self/exe", dir.path().join("dynamic")).unwrap();
    std::fs::write(dir.path().join("script"), b"#!/bin/sh\n").unwrap();
    let with = |target: &str, program: &str| {
        GOOD.replacen(
            &format!("kind = \"{target}\"\n"),
            &format!("kind = \"{target}\"\nagent = \"{program}\"\n"),
            1,
        )
    };
    let s = parse(&file, &with("vm", "static")).unwrap();
    let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
    assert_eq!(vm.agent, Some(dir.path().join("static")));
    let s = parse(&file, &with("container", "static")).unwrap();
    let TargetSpec::Container(ctr) = &s.targets[1].spec else { panic!() };
    assert_eq!(ctr.agent, Some(dir.path().join("static")));
    for (target, program, why, line) in [
        ("vm", "dynamic", "it needs the dynamic loader", 10),
        ("container", "script", "it is not an ELF executable", 18),
    ] {
        let e = parse(&file, &with(target, program)).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains(why) && e.message.contains("link it statically"), "{e}");
    }
    // A guest that runs its own entrypoint runs no agent to replace.
    let own = format!(
        "{}\n[[guest]]\nname = \"web\"\nimage = \"nginx:1\"\ninit = \"image\"\nready = {{ tcp = 80 }}\n",
        with("container", "static").replacen("memory_mib = 128", "memory_mib = 128\nguest = \"web\"\nnetwork = \"bridge\"", 1)
    );
    let e = parse(&file, &own).unwrap_err();
    assert!(e.key.ends_with(".agent") && e.message.contains("runs no agent"), "{e}");
}

#[test]
fn uri_applies_only_to_libvirt_targets() {
    let e = bad("machine = \"q35\"", "machine = \"q35\"\nuri = \"qemu:///system\"");
    assert_eq!(e.key, "target[0].uri");
    assert!(e.message.contains("only applies to backend = \"libvirt\""), "{e}");
}

#[test]
fn a_podman_target_parses() {
    let s = parse_str(&GOOD.replacen("runtime = \"runc\"", "runtime = \"runc\"\nengine = \"podman\"", 1)).unwrap();
    let TargetSpec::Container(c) = &s.targets[1].spec else { panic!() };
    assert_eq!(c.engine, Engine::Podman);
}

#[test]
fn repetitions_auto_takes_its_bounds_and_defaults() {
    let s = parse_str(&GOOD.replacen(
        "repetitions = 3",
        "repetitions = \"auto\"\nmax_repetitions = 20\ntarget_cov = 0.02",
        1,
    ))
    .unwrap();
    let auto = s.auto.unwrap();
    assert_eq!((auto.min, auto.max, auto.target_cov), (5, 20, 0.02));
    assert_eq!(s.repetitions, 20, "the plan runs at most the maximum");
    assert!(parse_str(GOOD).unwrap().auto.is_none());
}

#[test]
fn repetitions_auto_errors_name_their_key() {
    let e = bad("repetitions = 3", "repetitions = \"often\"");
    assert_eq!(e.key, "repetitions");
    assert!(e.message.contains("\"auto\""), "{e}");
    let e = bad(
        "repetitions = 3",
        "repetitions = \"auto\"\nmin_repetitions = 10\nmax_repetitions = 4",
    );
    assert_eq!(e.key, "max_repetitions");
    let e = bad("repetitions = 3", "repetitions = 3\ntarget_cov = 0.05");
    assert_eq!(e.key, "target_cov");
    assert!(e.message.contains("only applies with repetitions = \"auto\""), "{e}");
}

const GUESTS: &str = r#"name = "full"

[[guest]]
name = "debian"
rootfs = { distro = "debian", suite = "bookworm", packages = ["nginx", "curl", "nginx"] }

[[guest]]
name = "bare"
rootfs = { suite = "bookworm" }
init = "agent"

[[target]]
name = "vm"
kind = "vm"
guest = "debian"

[[target]]
name = "ctr"
kind = "container"
guest = "bare"

[[workload]]
kind = "boot"
"#;

fn bad_guests(from: &str, to: &str) -> ScenarioError {
    assert!(GUESTS.contains(from), "{from} not in GUESTS");
    parse_str(&GUESTS.replacen(from, to, 1)).expect_err("should be rejected")
}

#[test]
fn guests_are_parsed_and_targets_carry_the_one_they_name() {
    let s = parse_str(GUESTS).unwrap();
    assert_eq!(s.guests.len(), 2);
    let debian = &s.guests[0];
    assert_eq!(debian.init, GuestInit::Systemd, "systemd is the default init of a guest");
    let rootfs = debian.rootfs().expect("a rootfs guest");
    assert_eq!(rootfs.packages, ["curl", "nginx"], "sorted, without duplicates");
    assert_eq!(rootfs.mirror, DEFAULT_DEBIAN_MIRROR);
    let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
    assert_eq!(vm.guest.as_ref(), Some(debian));
    assert_eq!(vm.machine, Machine::Microvm);
    let TargetSpec::Container(ctr) = &s.targets[1].spec else { panic!() };
    assert_eq!(ctr.guest.as_ref().map(|g| g.init), Some(GuestInit::Agent));
}

#[test]
fn guest_errors_name_their_line_and_key() {
    let e = bad_guests("guest = \"bare\"", "guest = \"ubuntu\"");
    assert_eq!((e.line, e.key.as_str()), (20, "target[1].guest"));
    assert!(
        e.message.contains("no guest named `ubuntu`") && e.message.contains("`debian`, `bare`"),
        "{e}"
    );
    let e = bad_guests("\"nginx\", \"curl\"", "\"Nginx\"");
    assert_eq!((e.line, e.key.as_str()), (5, "guest[0].rootfs.packages"));
    assert!(e.message.contains("`Nginx` is not a Debian package name"), "{e}");
    let e = bad_guests("suite = \"bookworm\" }\ninit", "suite = \"Book worm\" }\ninit");
    assert_eq!(e.key, "guest[1].rootfs.suite");
    let e = bad_guests("rootfs = { suite = \"bookworm\" }", "rootfs = { distro = \"debian\" }");
    assert!(e.key == "guest[1].rootfs.suite" && e.message.contains("missing"), "{e}");
    let e = bad_guests(
        "rootfs = { suite = \"bookworm\" }",
        "rootfs = { distro = \"fedora\", suite = \"40\" }",
    );
    assert_eq!(e.key, "guest[1].rootfs.distro");
    let e = bad_guests("init = \"agent\"", "init = \"openrc\"");
    assert!(e.key == "guest[1].init" && e.message.contains("\"systemd\""), "{e}");
    let e = bad_guests("name = \"bare\"", "name = \"debian\"");
    assert!(e.message.contains("duplicate guest name"), "{e}");
    let e = bad_guests("rootfs = { suite = \"bookworm\" }", "rootfs = { suite = \"bookworm\", size = 3 }");
    assert!(e.message.contains("size"), "{e}");
    let e = bad_guests("rootfs = { suite = \"bookworm\" }\n", "");
    assert!(e.key == "guest[1]" && e.line == 7 && e.message.contains("missing"), "{e}");
    assert!(e.message.contains("`image = ") && e.message.contains("`dockerfile = "), "{e}");
    let e = bad_guests(
        "[[target]]\nname = \"vm\"",
        "[[target]]\nname = \"native\"\nkind = \"native\"\nguest = \"debian\"\n[[target]]\nname = \"vm\"",
    );
    assert_eq!(e.key, "target[0].guest");
}

#[test]
fn a_guest_vm_boots_its_own_kernel_under_qemu_or_libvirt() {
    let e = bad_guests("guest = \"debian\"", "guest = \"debian\"\nkernel = \"/boot/vmlinuz\"");
    assert_eq!(e.key, "target[0].kernel");
    assert!(e.message.contains("kernel installed in its own root file system"), "{e}");
    if cfg!(feature = "libvirt") {
        let s = parse_str(&GUESTS.replacen("guest = \"debian\"", "guest = \"debian\"\nbackend = \"libvirt\"", 1)).unwrap();
        let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
        assert_eq!((vm.backend, vm.machine), (VmBackend::Libvirt, Machine::Q35));
        // A disk of the user's own stays with the qemu backend.
        let e = parse_disk(&DISK.replace("guest = \"cloud\"", "guest = \"cloud\"\nbackend = \"libvirt\""))
            .1
            .unwrap_err();
        assert!(e.key == "target[0].guest" && e.message.contains("changing its owner"), "{e}");
    }
}

#[test]
fn firmware_boot_needs_a_guest_and_q35() {
    let s = parse_str(&GUESTS.replace("guest = \"debian\"", "guest = \"debian\"\nmachine = \"q35\"\nboot = \"uefi\"")).unwrap();
    let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
    assert_eq!(vm.boot, BootPath::Uefi);
    let e = bad_guests("guest = \"debian\"", "guest = \"debian\"\nboot = \"bios\"");
    assert_eq!((e.line, e.key.as_str()), (16, "target[0].boot"));
    assert!(e.message.contains("machine = \"q35\""), "{e}");
    let e = bad_guests("guest = \"debian\"", "machine = \"q35\"\nboot = \"bios\"");
    assert!(e.key == "target[0].boot" && e.message.contains("[[guest]]"), "{e}");
    let e = bad_guests("guest = \"debian\"", "guest = \"debian\"\nboot = \"coreboot\"");
    assert!(e.message.contains("\"uefi\""), "{e}");
    let e = bad_guests("guest = \"bare\"", "guest = \"bare\"\nboot = \"bios\"");
    assert!(e.message.contains("does not apply"), "{e}");
}

/// A scenario file in a directory of its own, next to `files`.
fn parse_in_dir(text: &str, files: &[&str]) -> (tempfile::TempDir, Result<Scenario, ScenarioError>) {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "FROM scratch\n").unwrap();
    }
    let result = parse(&dir.path().join("s.toml"), text);
    (dir, result)
}

const OWN: &str = r#"name = "own"

[[guest]]
name = "app"
dockerfile = "app/Dockerfile"

[[guest]]
name = "pulled"
image = "registry.example:5000/team/app:1.2"
init = "systemd"

[[guest]]
name = "saved"
image_archive = "app.tar"

[[target]]
name = "ctr"
kind = "container"
guest = "app"

[[workload]]
kind = "boot"
"#;

#[test]
fn a_guest_can_be_an_image_a_dockerfile_or_an_archive_of_your_own() {
    let (dir, s) = parse_in_dir(OWN, &["app/Dockerfile", "app.tar"]);
    let s = s.unwrap();
    assert_eq!(s.guests[0].source, GuestSource::Dockerfile(dir.path().join("app/Dockerfile")));
    assert_eq!(
        s.guests[0].init,
        GuestInit::Agent,
        "the agent is the default init of an image of your own"
    );
    assert_eq!(s.guests[1].source, GuestSource::Image("registry.example:5000/team/app:1.2".into()));
    assert_eq!(s.guests[1].init, GuestInit::Systemd);
    assert_eq!(s.guests[2].source, GuestSource::ImageArchive(dir.path().join("app.tar")));
    assert!(s.guests.iter().all(|g| g.source.is_own_image() && g.rootfs().is_none()));
    let TargetSpec::Container(c) = &s.targets[0].spec else { panic!() };
    assert_eq!(c.guest.as_ref().map(|g| g.source.key()), Some("dockerfile"));
}

#[test]
fn own_image_errors_name_their_line_and_key() {
    let files = ["app/Dockerfile", "app.tar"];
    let bad = |from: &str, to: &str| {
        assert!(OWN.contains(from), "{from} not in OWN");
        parse_in_dir(&OWN.replacen(from, to, 1), &files).1.expect_err("should be rejected")
    };
    let e = bad("app/Dockerfile", "app/Containerfile");
    assert_eq!((e.line, e.key.as_str()), (5, "guest[0].dockerfile"));
    assert!(
        e.message.contains("`app/Containerfile` does not exist") && e.message.contains("relative to the scenario file"),
        "{e}"
    );
    let e = bad("\"app.tar\"", "\"app\"");
    assert_eq!((e.line, e.key.as_str()), (14, "guest[2].image_archive"));
    assert!(e.message.contains("is not a file"), "{e}");
    let e = bad(
        "dockerfile = \"app/Dockerfile\"",
        "dockerfile = \"app/Dockerfile\"\nimage = \"app:1\"",
    );
    assert_eq!((e.line, e.key.as_str()), (6, "guest[0].image"));
    assert!(
        e.message.contains("exactly one source") && e.message.contains("`dockerfile`"),
        "{e}"
    );
    let e = bad(
        "image_archive = \"app.tar\"",
        "image_archive = \"app.tar\"\nrootfs = { suite = \"bookworm\" }",
    );
    assert_eq!(e.key, "guest[2].rootfs", "the later of the two sources in the file is named");
    assert!(e.message.contains("already has `image_archive`"), "{e}");
    let e = bad("dockerfile = \"app/Dockerfile\"\n", "");
    assert!(e.key == "guest[0]" && e.line == 3 && e.message.contains("missing"), "{e}");
    for reference in ["App:1", "app:", "app:-x", "a b", "app@sha256:12", "sha256:xyz", "/app", "app//x"] {
        let e = bad("\"registry.example:5000/team/app:1.2\"", &format!("{reference:?}"));
        assert_eq!((e.line, e.key.as_str()), (9, "guest[1].image"), "{reference}");
        assert!(e.message.contains("is not an image reference"), "{e}");
    }
    let e = bad("init = \"systemd\"", "init = \"image\"");
    assert_eq!((e.line, e.key.as_str()), (10, "guest[1].ready"));
    assert!(e.message.contains("missing") && e.message.contains("ready = { tcp = PORT }"), "{e}");
    let e = bad("guest = \"app\"", "guest = \"app\"\nmemory_mib = 5");
    assert_eq!(e.key, "target[0].memory_mib", "the target's own checks still apply");
}

#[test]
fn image_references_follow_the_engines_grammar() {
    for good in [
        "app",
        "app:1.0",
        "team/app:latest",
        "localhost:5000/app",
        "registry.example/a/b-c_d.e:v1_2",
        "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        assert!(is_image_reference(good), "{good}");
    }
    for bad in ["", "App", "app:", ":1", "app:a b", "-app", "app/", "app:.x", "app@md5:00"] {
        assert!(!is_image_reference(bad), "{bad}");
    }
}

#[test]
fn a_vm_cannot_boot_an_image_of_your_own_nor_init_image_a_tree() {
    let text = OWN.replace("kind = \"container\"", "kind = \"vm\"");
    let e = parse_in_dir(&text, &["app/Dockerfile", "app.tar"]).1.unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (19, "target[0].guest"));
    assert!(
        e.message.contains("container image (`dockerfile`)") && e.message.contains("only container targets run"),
        "{e}"
    );
    let e = bad_guests("init = \"agent\"", "init = \"image\"");
    assert_eq!(e.key, "guest[1].init");
    assert!(e.message.contains("applies to an image of your own"), "{e}");
}

#[test]
fn an_image_run_as_it_is_needs_one_ready_probe() {
    let files = ["app/Dockerfile", "app.tar"];
    let with = |ready: &str| OWN.replace("init = \"systemd\"", &format!("init = \"image\"\nready = {ready}"));
    let s = parse_in_dir(&with("{ tcp = 80 }"), &files).1.unwrap();
    assert_eq!(
        (s.guests[1].init, s.guests[1].ready.clone()),
        (GuestInit::Image, Some(ReadyProbe::Tcp(80)))
    );
    let s = parse_in_dir(&with("{ console = \"^ready$\" }"), &files).1.unwrap();
    assert_eq!(s.guests[1].ready, Some(ReadyProbe::Console("^ready$".into())));
    let bad = |ready: &str| parse_in_dir(&with(ready), &files).1.unwrap_err();
    let e = bad("{ tcp = 0 }");
    assert_eq!((e.line, e.key.as_str()), (11, "guest[1].ready.tcp"));
    let e = bad("{ console = \"(\" }");
    assert!(
        e.key == "guest[1].ready.console" && e.message.contains("not a regular expression"),
        "{e}"
    );
    let e = bad("{ tcp = 80, console = \"x\" }");
    assert!(e.key == "guest[1].ready" && e.message.contains("exactly one"), "{e}");
    let s = parse_in_dir(&with("{ http = \"/health\" }"), &files).1.unwrap();
    let http = ReadyProbe::Http {
        port: 80,
        path: "/health".into(),
        status: 200,
    };
    assert_eq!(s.guests[1].ready, Some(http));
    let s = parse_in_dir(&with("{ http = \"/\", port = 8080, status = 204 }"), &files)
        .1
        .unwrap();
    assert_eq!(
        s.guests[1].ready.as_ref().map(ReadyProbe::describe).as_deref(),
        Some("http:8080/=204")
    );
    let e = bad("{ http = \"health\" }");
    assert!(e.key == "guest[1].ready.http" && e.message.contains("not a request path"), "{e}");
    let e = bad("{ http = \"/\", status = 99 }");
    assert_eq!(e.key, "guest[1].ready.status");
    let e = bad("{ tcp = 80, status = 200 }");
    assert!(
        e.key == "guest[1].ready.status" && e.message.contains("belongs to an `http` probe"),
        "{e}"
    );
    let e = bad("{ grpc = 50051 }");
    assert!(e.message.contains("grpc"), "{e}");
    // A probe replaces the agent's ready line where no agent runs, or where
    // systemd boots the system; the agent as PID 1 needs its instructions.
    let s = parse_in_dir(
        &OWN.replace("init = \"systemd\"", "init = \"systemd\"\nready = { tcp = 80 }"),
        &files,
    )
    .1
    .unwrap();
    assert_eq!(
        (s.guests[1].init, s.guests[1].ready.clone()),
        (GuestInit::Systemd, Some(ReadyProbe::Tcp(80)))
    );
    let e = parse_in_dir(&OWN.replace("init = \"systemd\"", "init = \"agent\"\nready = { tcp = 80 }"), &files)
        .1
        .unwrap_err();
    assert!(
        e.key == "guest[1].ready" && e.message.contains("applies to init = \"image\" or \"systemd\""),
        "{e}"
    );
    // The published path publishes the agent's port, not the probe's.
    let text = with("{ tcp = 80 }").replace("guest = \"app\"", "guest = \"pulled\"\nnetwork = \"published\"");
    let e = parse_in_dir(&text, &files).1.unwrap_err();
    assert_eq!(e.key, "target[0].network");
}

const DISK: &str = r#"name = "disk"

[[guest]]
name = "cloud"
disk = "images/cloud.qcow2"
ready = { console = "login:" }

[[target]]
name = "vm"
kind = "vm"
guest = "cloud"

[[workload]]
kind = "boot"
"#;

/// `DISK` parsed in a directory holding `images/cloud.qcow2` (a qcow2 v3
/// header over `base.img`, a raw disk with an MBR signature) and `notes.txt`.
fn parse_disk(text: &str) -> (tempfile::TempDir, Result<Scenario, ScenarioError>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    let mut raw = vec![0u8; 4096];
    raw[510..512].copy_from_slice(b"\x55\xaa");
    std::fs::write(dir.path().join("images/base.img"), &raw).unwrap();
    let mut qcow2 = vec![0u8; 4096];
    qcow2[..4].copy_from_slice(b"QFI\xfb");
    qcow2[4..8].copy_from_slice(&3u32.to_be_bytes());
    qcow2[8..16].copy_from_slice(&1024u64.to_be_bytes());
    qcow2[16..20].copy_from_slice(&8u32.to_be_bytes());
    qcow2[24..32].copy_from_slice(&(2u64 << 30).to_be_bytes());
    qcow2[1024..1032].copy_from_slice(b"base.img");
    std::fs::write(dir.path().join("images/cloud.qcow2"), &qcow2).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a disk\n").unwrap();
    std::fs::write(dir.path().join("vmlinuz"), "kernel").unwrap();
    let result = parse(&dir.path().join("s.toml"), text);
    (dir, result)
}

#[test]
fn a_disk_of_your_own_boots_by_bios_on_q35_with_no_agent_unless_a_kernel_is_given() {
    let (dir, s) = parse_disk(DISK);
    let s = s.unwrap();
    let disk = s.guests[0].source.disk().expect("a disk guest");
    assert_eq!(disk.path, dir.path().join("images/cloud.qcow2"));
    assert_eq!(
        (disk.format, disk.detected.as_str()),
        (crate::disk_image::DiskFormat::Qcow2, "qcow2 (version 3)")
    );
    assert_eq!(s.guests[0].init, GuestInit::Image, "no agent is in a disk vmbench did not make");
    let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
    assert_eq!((vm.boot, vm.machine), (BootPath::Bios, Machine::Q35));
    // With a kernel: a direct boot, on the default machine.
    let text = DISK.replace(
        "guest = \"cloud\"",
        "guest = \"cloud\"\nkernel = \"vmlinuz\"\ninitrd = \"images/base.img\"\nkernel_args = [\"root=/dev/vda1\"]",
    );
    let s = parse_disk(&text).1.unwrap();
    let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
    assert_eq!((vm.boot, vm.machine), (BootPath::Direct, Machine::Microvm));
    assert_eq!(vm.initrd.as_ref().map(|p| p.ends_with("images/base.img")), Some(true));
    let s = parse_disk(&DISK.replace("guest = \"cloud\"", "guest = \"cloud\"\nboot = \"uefi\""))
        .1
        .unwrap();
    let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
    assert_eq!(vm.boot, BootPath::Uefi);
}

#[test]
fn disk_errors_name_their_line_and_key_and_say_what_the_file_is() {
    let bad = |from: &str, to: &str| {
        assert!(DISK.contains(from), "{from} not in DISK");
        parse_disk(&DISK.replacen(from, to, 1)).1.expect_err("should be rejected")
    };
    let e = bad("images/cloud.qcow2", "notes.txt");
    assert_eq!((e.line, e.key.as_str()), (5, "guest[0].disk"));
    assert!(e.message.contains("`notes.txt` is not a disk image"), "{e}");
    let e = bad("images/cloud.qcow2", "images/gone.qcow2");
    assert!(e.key == "guest[0].disk" && e.message.contains("does not exist"), "{e}");
    let e = bad("ready = { console = \"login:\" }", "");
    assert!(e.key == "guest[0].ready" && e.message.contains("missing"), "{e}");
    let e = bad("ready =", "init = \"systemd\"\nready =");
    assert!(e.key == "guest[0].init" && e.message.contains("no agent runs in it"), "{e}");
    let e = bad("kind = \"vm\"", "kind = \"container\"");
    assert!(e.key == "target[0].guest" && e.message.contains("only VM targets boot"), "{e}");
    let e = bad("guest = \"cloud\"", "guest = \"cloud\"\nboot = \"direct\"");
    assert!(e.key == "target[0].kernel" && e.message.contains("missing"), "{e}");
    let e = bad("guest = \"cloud\"", "guest = \"cloud\"\nmachine = \"microvm\"");
    assert!(e.key == "target[0].boot" && e.message.contains("q35"), "{e}");
    let e = bad("guest = \"cloud\"", "guest = \"cloud\"\nkernel_args = [\"quiet\"]");
    assert!(e.key == "target[0].kernel_args" && e.message.contains("own bootloader"), "{e}");
    let e = bad("guest = \"cloud\"", "guest = \"cloud\"\nnetwork = \"tap\"");
    assert!(e.key == "target[0].network" && e.message.contains("ready` probe"), "{e}");
    let e = bad("guest = \"cloud\"", "guest = \"cloud\"\nagent = \"notes.txt\"");
    assert_eq!(e.key, "target[0].agent");
    // A VM cannot be probed by a bare TCP connection (QEMU's user network
    // accepts it before the guest does), nor on the tap path.
    let e = bad("{ console = \"login:\" }", "{ tcp = 22 }");
    assert!(
        e.key == "target[0].guest" && e.message.contains("accepts the host's connection"),
        "{e}"
    );
    // A bare file system has no bootloader for firmware.
    let (dir, _) = parse_disk(DISK);
    let mut ext = vec![0u8; 4096];
    ext[1080..1082].copy_from_slice(b"\x53\xef");
    std::fs::write(dir.path().join("images/root.ext4"), &ext).unwrap();
    let text = DISK.replace("images/cloud.qcow2", "images/root.ext4");
    let e = parse(&dir.path().join("s.toml"), &text).unwrap_err();
    assert!(e.key == "target[0].boot" && e.message.contains("bare file system"), "{e}");
    let direct = text.replace(
        "guest = \"cloud\"",
        "guest = \"cloud\"\nkernel = \"vmlinuz\"\nkernel_args = [\"root=/dev/vda\"]",
    );
    let s = parse(&dir.path().join("s.toml"), &direct).unwrap();
    assert_eq!(
        s.guests[0].source.disk().map(|d| d.detected.as_str()),
        Some("raw, a bare ext2/3/4 file system")
    );
    // A qcow2 whose backing file is gone is refused before anything runs.
    let (dir, _) = parse_disk(DISK);
    std::fs::remove_file(dir.path().join("images/base.img")).unwrap();
    let e = parse(&dir.path().join("s.toml"), DISK).unwrap_err();
    assert!(e.message.contains("backing file") && e.message.contains("base.img"), "{e}");
    // `initrd` belongs to a direct boot of a disk of your own only.
    let e =
        parse_str("name = \"d\"\n[[target]]\nname = \"t\"\nkind = \"vm\"\ninitrd = \"x\"\n[[workload]]\nkind = \"boot\"\n").unwrap_err();
    assert!(
        e.key == "target[0].initrd" && e.message.contains("boot = \"direct\" of a disk"),
        "{e}"
    );
}

/// "Defaults that work together": a scenario that names only kinds, no
/// sizes, validates for every workload in every kind of target, each at its
/// defaults (the VM and container at their default 256 MiB).
#[test]
fn every_workload_at_its_defaults_fits_every_target_kind_at_its_defaults() {
    for kind in crate::protocol::WorkloadKind::ALL {
        for target in ["kind = \"vm\"", "kind = \"container\"", "kind = \"native\""] {
            let text = format!("name = \"d\"\n[[target]]\nname = \"t\"\n{target}\n[[workload]]\nkind = \"{kind}\"\n");
            let s = parse_str(&text).unwrap_or_else(|e| panic!("{kind} in a {target} target: {e}"));
            assert_eq!(s.workloads[0].kind, kind);
        }
    }
    // The memory workload's defaults leave room in a default VM, and the
    // check that says so is live: the smallest VM refuses them.
    let tiny = "name = \"d\"\n[[target]]\nname = \"t\"\nkind = \"vm\"\nmemory_mib = 128\n[[workload]]\nkind = \"memory\"\n";
    let e = parse_str(tiny).unwrap_err();
    assert!(e.message.contains("the memory workload needs about 144 MiB"), "{e}");
}

#[test]
fn run_as_names_a_user_of_this_host_and_needs_cgroup_accounting() {
    let vm = |s: &Scenario| match &s.targets[0].spec {
        TargetSpec::Vm(vm) => vm.run_as.clone(),
        _ => panic!("vm"),
    };
    assert_eq!(vm(&parse_str(GOOD).unwrap()), None);
    let nobody = parse_str(&GOOD.replacen("vcpus = 2", "vcpus = 2\nrun_as = \"nobody\"", 1)).unwrap();
    assert_eq!(vm(&nobody).as_deref(), Some("nobody"));
    let e = bad("vcpus = 2", "vcpus = 2\nrun_as = \"no-such-user-here\"");
    assert_eq!((e.line, e.key.as_str()), (13, "target[0].run_as"));
    assert!(e.message.contains("no user `no-such-user-here`"), "{e}");
    let e = parse_str(&GOOD.replacen("vcpus = 2", "vcpus = 2\nrun_as = \"nobody\"", 1).replacen(
        "timeout_s = 30",
        "timeout_s = 30\naccounting = \"process\"",
        1,
    ))
    .unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (14, "target[0].run_as"));
    assert!(e.message.contains("needs accounting = \"cgroup\""), "{e}");
    let e = bad("cpus = 1", "cpus = 1\nrun_as = \"nobody\"");
    assert_eq!(e.key, "target[1].run_as");
}

#[cfg(feature = "libvirt")]
#[test]
fn libvirt_runs_its_qemu_as_its_own_user() {
    let e = bad("machine = \"q35\"", "backend = \"libvirt\"\nrun_as = \"nobody\"");
    assert_eq!((e.line, e.key.as_str()), (11, "target[0].run_as"));
    assert!(e.message.contains("/etc/libvirt/qemu.conf"), "{e}");
}

#[test]
fn every_table_with_an_error_is_reported_at_once_each_with_its_line_and_a_caret() {
    let text = "name = \"bad\"\nwarmup = -1\n\n[[target]]\nname = \"vm\"\nkind = \"vm\"\nvcpus = 0\n\n\
                [[target]]\nname = \"c\"\nkind = \"contaner\"\n\n[[workload]]\nkind = \"bott\"\n";
    let e = parse_str(text).unwrap_err();
    let all: Vec<(usize, &str)> = std::iter::once(&e).chain(e.more.iter()).map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        all,
        [
            (2, "warmup"),
            (7, "target[0].vcpus"),
            (11, "target[1].kind"),
            (14, "workload[0].kind")
        ]
    );
    let shown = e.to_string();
    assert!(shown.starts_with("s.toml:2:10: key `warmup`"), "{shown}");
    assert!(shown.contains("\n7 | vcpus = 0\n  |         ^"), "{shown}");
    assert!(shown.contains("\nerror: s.toml:14:8: key `workload[0].kind`"), "{shown}");
    assert!(shown.ends_with("(4 errors in s.toml)"), "{shown}");
    // One error alone has no count line.
    let one = bad("vcpus = 2", "vcpus = 0");
    assert_eq!(one.count(), 1);
    assert!(!one.to_string().contains("errors in"), "{one}");
}

#[test]
fn a_vm_kernel_is_distro_minimal_or_a_file() {
    for (value, expected) in [
        ("auto", KernelChoice::Auto),
        ("distro", KernelChoice::Auto),
        ("minimal", KernelChoice::Minimal),
    ] {
        let s = parse_str(&GOOD.replacen("vcpus = 2", &format!("vcpus = 2\nkernel = \"{value}\""), 1)).unwrap();
        let TargetSpec::Vm(vm) = &s.targets[0].spec else { panic!() };
        assert_eq!(vm.kernel, expected, "{value}");
    }
    let e = bad("vcpus = 2", "vcpus = 2\nkernel = \"tiny\"");
    assert_eq!(e.key, "target[0].kernel");
    assert!(e.message.contains("kernel `tiny` does not exist"), "{e}");
}
