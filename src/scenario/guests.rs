//! `[[guest]]` tables: guest systems for VM and container targets that name
//! them, from one source each: a distribution's root file system vmbench
//! builds, or the user's own container image (in the engine, a Dockerfile,
//! an image archive).

use super::error::Locator;
use super::raw::{RawGuest, RawRootfs};
use super::validate::{check_name, one_of, Result};
use super::*;
use std::collections::HashSet;
use toml::Spanned;

/// The archive `mmdebstrap` fetches Debian from unless `mirror` says otherwise.
pub const DEFAULT_DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// Every `[[guest]]`, each name once.
pub(super) fn guests_from_raw(loc: &Locator, raw: &[Spanned<RawGuest>], base_dir: &Path) -> Result<Vec<Guest>> {
    let mut seen = HashSet::new();
    let mut guests = Vec::new();
    for (i, guest) in raw.iter().enumerate() {
        let g = guest_from_raw(loc, i, guest, base_dir)?;
        if !seen.insert(g.name.clone()) {
            let span = guest.get_ref().name.as_ref().map(Spanned::span);
            return Err(loc.error(span, &format!("guest[{i}].name"), format!("duplicate guest name `{}`", g.name)));
        }
        guests.push(g);
    }
    Ok(guests)
}

fn guest_from_raw(loc: &Locator, i: usize, guest: &Spanned<RawGuest>, base_dir: &Path) -> Result<Guest> {
    let key = |k: &str| format!("guest[{i}].{k}");
    let g = guest.get_ref();
    let table = Some(guest.span());
    let name = g
        .name
        .as_ref()
        .ok_or_else(|| loc.error(table.clone(), &key("name"), "missing: every guest needs a `name`"))?;
    check_name(loc, name, &key("name"))?;
    let source = source_from_raw(loc, i, guest, base_dir)?;
    let init = init_from_raw(loc, i, g, &source)?;
    let ready = ready_from_raw(loc, i, guest, init)?;
    Ok(Guest {
        name: name.get_ref().clone(),
        source,
        init,
        ready,
    })
}

/// The guest's one source: `rootfs`, `image`, `dockerfile` or `image_archive`.
fn source_from_raw(loc: &Locator, i: usize, guest: &Spanned<RawGuest>, base_dir: &Path) -> Result<GuestSource> {
    let g = guest.get_ref();
    let mut given: Vec<(&str, std::ops::Range<usize>)> = [
        ("rootfs", g.rootfs.as_ref().map(Spanned::span)),
        ("image", g.image.as_ref().map(Spanned::span)),
        ("dockerfile", g.dockerfile.as_ref().map(Spanned::span)),
        ("image_archive", g.image_archive.as_ref().map(Spanned::span)),
        ("disk", g.disk.as_ref().map(Spanned::span)),
    ]
    .into_iter()
    .filter_map(|(k, span)| Some((k, span?)))
    .collect();
    // Name the one that comes second in the file.
    given.sort_by_key(|(_, span)| span.start);
    match given.as_slice() {
        [] => {
            return Err(loc.error(
                Some(guest.span()),
                &format!("guest[{i}]"),
                "missing: a guest needs one source: `rootfs = { distro = \"debian\", suite = \"bookworm\" }`, \
             `image = \"name:tag\"` (an image in the engine), `dockerfile = \"path\"`, `image_archive = \"path\"` \
             or `disk = \"path.qcow2\"` (a VM disk image)",
            ))
        }
        [_] => {}
        [(first, _), (second, span), ..] => {
            return Err(loc.error(
                Some(span.clone()),
                &format!("guest[{i}].{second}"),
                format!("a guest has exactly one source, and this one already has `{first}`; keep one of them"),
            ))
        }
    }
    if let Some(rootfs) = &g.rootfs {
        return Ok(GuestSource::Rootfs(rootfs_from_raw(loc, i, rootfs)?));
    }
    if let Some(image) = &g.image {
        if !is_image_reference(image.get_ref()) {
            return Err(loc.error(
                Some(image.span()),
                &format!("guest[{i}].image"),
                format!(
                    "`{}` is not an image reference; write it as `docker images` shows it, e.g. \"myapp:1.0\" or \"registry.example/team/app:tag\"",
                    image.get_ref()
                ),
            ));
        }
        return Ok(GuestSource::Image(image.get_ref().clone()));
    }
    if let Some(dockerfile) = &g.dockerfile {
        return Ok(GuestSource::Dockerfile(existing_file(loc, i, "dockerfile", dockerfile, base_dir)?));
    }
    if let Some(disk) = &g.disk {
        return Ok(GuestSource::Disk(disk_image(loc, i, disk, base_dir)?));
    }
    let archive = g.image_archive.as_ref().expect("one source is given");
    Ok(GuestSource::ImageArchive(existing_file(
        loc,
        i,
        "image_archive",
        archive,
        base_dir,
    )?))
}

/// `disk = "path"`: a file whose first bytes say it is a disk image QEMU
/// boots (qcow2, or raw with a partition table or an ext file system).
fn disk_image(loc: &Locator, i: usize, disk: &Spanned<String>, base_dir: &Path) -> Result<DiskImage> {
    let path = existing_file(loc, i, "disk", disk, base_dir)?;
    // As recorded and as QEMU is given it, wherever vmbench is run from.
    let path = path.canonicalize().unwrap_or(path);
    let fail = |why: String| {
        loc.error(
            Some(disk.span()),
            &format!("guest[{i}].disk"),
            format!("`{}` {why}", disk.get_ref()),
        )
    };
    let detected = crate::disk_image::detect_file(&path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    let format = detected.format().map_err(fail)?;
    crate::disk_image::chain(&path).map_err(|e| fail(format!("cannot be booted: {e}")))?;
    Ok(DiskImage {
        path,
        format,
        bare_file_system: detected == crate::disk_image::Detected::RawExt,
        detected: detected.describe(),
    })
}

/// A file the scenario names, relative to its directory; it must exist.
fn existing_file(loc: &Locator, i: usize, key: &str, value: &Spanned<String>, base_dir: &Path) -> Result<PathBuf> {
    let path = base_dir.join(value.get_ref());
    if path.is_file() {
        return Ok(path);
    }
    let what = if path.exists() { "is not a file" } else { "does not exist" };
    Err(loc.error(
        Some(value.span()),
        &format!("guest[{i}].{key}"),
        format!(
            "`{}` {what} (looked at {}; a relative path is relative to the scenario file)",
            value.get_ref(),
            path.display()
        ),
    ))
}

/// The guest's `init`: systemd by default for a tree vmbench builds, the
/// agent for an image of the user's own (most run no init system), and the
/// disk's own system for a disk image (vmbench does not change it, so no
/// agent is in it).
fn init_from_raw(loc: &Locator, i: usize, g: &RawGuest, source: &GuestSource) -> Result<GuestInit> {
    let key = format!("guest[{i}].init");
    if let GuestSource::Disk(_) = source {
        return match g.init.as_ref().filter(|init| init.get_ref() != "image") {
            None => Ok(GuestInit::Image),
            Some(init) => Err(loc.error(
                Some(init.span()),
                &key,
                format!(
                    "a disk image of your own boots its own system: vmbench does not change the disk, so no agent \
                     runs in it and init = \"{}\" cannot be; drop `init` (it is \"image\") and say when the guest \
                     is up with `ready`",
                    init.get_ref()
                ),
            )),
        };
    }
    if let Some(init) = g.init.as_ref().filter(|init| init.get_ref() == "image") {
        if !source.is_own_image() {
            return Err(loc.error(
                Some(init.span()),
                &key,
                "init = \"image\" runs an image's own entrypoint, so it applies to an image of your own \
                 (`image`, `dockerfile`, `image_archive`, `disk`); use init = \"agent\" or \"systemd\"",
            ));
        }
        return Ok(GuestInit::Image);
    }
    let default = if source.is_own_image() {
        GuestInit::Agent
    } else {
        GuestInit::Systemd
    };
    one_of(
        loc,
        g.init.as_ref(),
        &key,
        &[("agent", GuestInit::Agent), ("systemd", GuestInit::Systemd)],
        default,
    )
}

/// A container image reference as the engine takes it: `name[:tag][@digest]`,
/// the name's path components in lower case (the first may be a registry
/// host with a port), or an image id (`sha256:` and 64 hex digits).
pub fn is_image_reference(s: &str) -> bool {
    let is_hex = |h: &str| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    if let Some(id) = s.strip_prefix("sha256:") {
        return id.len() == 64 && is_hex(id);
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && is_hex(h))) {
        return false;
    }
    let last_slash = rest.rfind('/').map_or(0, |p| p + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(p) => (&rest[..last_slash + p], Some(&rest[last_slash + p + 1..])),
        None => (rest, None),
    };
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty() && t.len() <= 128 && !t.starts_with(['.', '-']) && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    });
    let components: Vec<&str> = name.split('/').collect();
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
    };
    let host_ok = |c: &str| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ".-:".contains(ch));
    let names_ok = match components.as_slice() {
        [only] => component_ok(only),
        [first, rest @ ..] => (component_ok(first) || host_ok(first)) && rest.iter().all(|c| component_ok(c)),
        [] => false,
    };
    tag_ok && names_ok
}

fn rootfs_from_raw(loc: &Locator, i: usize, rootfs: &Spanned<RawRootfs>) -> Result<Rootfs> {
    let key = |k: &str| format!("guest[{i}].rootfs.{k}");
    let r = rootfs.get_ref();
    let distro = one_of(
        loc,
        r.distro.as_ref(),
        &key("distro"),
        &[("debian", Distro::Debian)],
        Distro::Debian,
    )?;
    let suite = r.suite.as_ref().ok_or_else(|| {
        loc.error(
            Some(rootfs.span()),
            &key("suite"),
            "missing: name the release, e.g. suite = \"bookworm\"",
        )
    })?;
    if !is_suite(suite.get_ref()) {
        return Err(loc.error(
            Some(suite.span()),
            &key("suite"),
            format!("`{}` is not a suite name (lower-case letters, digits and -)", suite.get_ref()),
        ));
    }
    let mut packages = Vec::new();
    if let Some(list) = &r.packages {
        for package in list.get_ref() {
            if !is_package(package) {
                return Err(loc.error(
                    Some(list.span()),
                    &key("packages"),
                    format!("`{package}` is not a Debian package name (lower-case letters, digits, + - .)"),
                ));
            }
            packages.push(package.clone());
        }
    }
    packages.sort();
    packages.dedup();
    let mirror = match &r.mirror {
        Some(m) if m.get_ref().starts_with("http://") || m.get_ref().starts_with("https://") => m.get_ref().clone(),
        Some(m) => {
            return Err(loc.error(
                Some(m.span()),
                &key("mirror"),
                format!("`{}` is not an http:// or https:// archive address", m.get_ref()),
            ))
        }
        None => DEFAULT_DEBIAN_MIRROR.to_string(),
    };
    Ok(Rootfs {
        distro,
        suite: suite.get_ref().clone(),
        packages,
        mirror,
    })
}

fn is_suite(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase()) && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Debian policy 5.6.1: lower-case letters, digits, `+`, `-` and `.`, at
/// least two characters, starting with a letter or digit.
fn is_package(s: &str) -> bool {
    s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// The guest's `ready` probe: required with `init = "image"` (nothing else
/// can say the guest is up), optional with `init = "systemd"` (the system
/// boots as usual, its agent unit told nothing, and the probe says when a
/// service of it is up), refused with `init = "agent"` (the agent as PID 1
/// needs its instructions, and its ready line is the readiness there).
fn ready_from_raw(loc: &Locator, i: usize, guest: &Spanned<RawGuest>, init: GuestInit) -> Result<Option<ReadyProbe>> {
    let key = format!("guest[{i}].ready");
    let Some(ready) = &guest.get_ref().ready else {
        if init == GuestInit::Image {
            return Err(loc.error(
                Some(guest.get_ref().init.as_ref().map_or(guest.span(), Spanned::span)),
                &key,
                "missing: init = \"image\" (and a disk image of your own) runs no agent, so say when the guest \
                 is up with ready = { tcp = PORT }, { http = \"/PATH\" } or { console = \"REGEX\" }",
            ));
        }
        return Ok(None);
    };
    if init == GuestInit::Agent {
        return Err(loc.error(
            Some(ready.span()),
            &key,
            "`ready` applies to init = \"image\" or \"systemd\"; with init = \"agent\" the agent is PID 1 and \
             says when the guest is up",
        ));
    }
    let r = ready.get_ref();
    let http_only = [
        ("port", r.port.as_ref().map(Spanned::span)),
        ("status", r.status.as_ref().map(Spanned::span)),
    ];
    if r.http.is_none() {
        if let Some((name, span)) = http_only.iter().find_map(|(n, s)| Some((*n, s.clone()?))) {
            return Err(loc.error(Some(span), &format!("{key}.{name}"), format!("`{name}` belongs to an `http` probe")));
        }
    }
    match (&r.tcp, &r.console, &r.http) {
        (Some(port), None, None) => Ok(Some(ReadyProbe::Tcp(port_of(loc, &key, "tcp", port)?))),
        (None, Some(pattern), None) => match regex_lite::Regex::new(pattern.get_ref()) {
            Ok(_) => Ok(Some(ReadyProbe::Console(pattern.get_ref().clone()))),
            Err(e) => Err(loc.error(
                Some(pattern.span()),
                &format!("{key}.console"),
                format!("not a regular expression: {e}"),
            )),
        },
        (None, None, Some(path)) => http_probe(loc, &key, r, path),
        _ => Err(loc.error(
            Some(ready.span()),
            &key,
            "give exactly one probe: ready = { tcp = PORT }, { console = \"REGEX\" } or { http = \"/PATH\" }",
        )),
    }
}

fn port_of(loc: &Locator, key: &str, name: &str, port: &Spanned<i64>) -> Result<u16> {
    match u16::try_from(*port.get_ref()) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(loc.error(Some(port.span()), &format!("{key}.{name}"), "a TCP port is 1–65535")),
    }
}

/// `{ http = "/path", port = 80, status = 200 }`: port 80 and status 200 by default.
fn http_probe(loc: &Locator, key: &str, r: &super::raw::RawReady, path: &Spanned<String>) -> Result<Option<ReadyProbe>> {
    let p = path.get_ref();
    if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(loc.error(
            Some(path.span()),
            &format!("{key}.http"),
            format!("`{p}` is not a request path (it starts with / and has no spaces)"),
        ));
    }
    let port = match &r.port {
        Some(port) => port_of(loc, key, "port", port)?,
        None => 80,
    };
    let status = match &r.status {
        Some(s) => match u16::try_from(*s.get_ref()) {
            Ok(code) if (100..=599).contains(&code) => code,
            _ => return Err(loc.error(Some(s.span()), &format!("{key}.status"), "an HTTP status is 100–599")),
        },
        None => 200,
    };
    Ok(Some(ReadyProbe::Http {
        port,
        path: p.clone(),
        status,
    }))
}
