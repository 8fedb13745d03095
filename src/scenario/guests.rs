//! `[[guest]]` tables: guest systems vmbench builds (a distribution's root
//! file system) for VM and container targets that name them.

use super::error::Locator;
use super::raw::{RawGuest, RawRootfs};
use super::validate::{check_name, one_of, Result};
use super::*;
use std::collections::HashSet;
use toml::Spanned;

/// The archive `mmdebstrap` fetches Debian from unless `mirror` says otherwise.
pub const DEFAULT_DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// Every `[[guest]]`, each name once.
pub(super) fn guests_from_raw(loc: &Locator, raw: &[Spanned<RawGuest>]) -> Result<Vec<Guest>> {
    let mut seen = HashSet::new();
    let mut guests = Vec::new();
    for (i, guest) in raw.iter().enumerate() {
        let g = guest_from_raw(loc, i, guest)?;
        if !seen.insert(g.name.clone()) {
            let span = guest.get_ref().name.as_ref().map(Spanned::span);
            return Err(loc.error(span, &format!("guest[{i}].name"), format!("duplicate guest name `{}`", g.name)));
        }
        guests.push(g);
    }
    Ok(guests)
}

fn guest_from_raw(loc: &Locator, i: usize, guest: &Spanned<RawGuest>) -> Result<Guest> {
    let key = |k: &str| format!("guest[{i}].{k}");
    let g = guest.get_ref();
    let table = Some(guest.span());
    let name = g
        .name
        .as_ref()
        .ok_or_else(|| loc.error(table.clone(), &key("name"), "missing: every guest needs a `name`"))?;
    check_name(loc, name, &key("name"))?;
    let rootfs = g.rootfs.as_ref().ok_or_else(|| {
        loc.error(
            table,
            &key("rootfs"),
            "missing: set `rootfs = { distro = \"debian\", suite = \"bookworm\" }`",
        )
    })?;
    let rootfs = rootfs_from_raw(loc, i, rootfs)?;
    let init = one_of(
        loc,
        g.init.as_ref(),
        &key("init"),
        &[("agent", GuestInit::Agent), ("systemd", GuestInit::Systemd)],
        GuestInit::Systemd,
    )?;
    Ok(Guest {
        name: name.get_ref().clone(),
        rootfs,
        init,
    })
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
