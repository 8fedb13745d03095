//! MariaDB for the `sql` workload: the target's own `mariadbd`, on a data
//! directory initialised afresh under [`Setup::dir`] by the target's own
//! `mariadb-install-db`, so a VM, a container and the host each run the
//! server of their system.
//!
//! Everything is on the command line (`--no-defaults` first): no option
//! file of the target (Debian's `/etc/mysql/`) is read, so what differs
//! between targets is only the MariaDB build and what is measured. The
//! options that change results are listed by [`settings`] for the run's
//! record; they come from one table, so the record and the command line
//! cannot disagree.
//!
//! Choices, each the same in every target:
//! - One server thread per client connection (`thread_handling`, the
//!   default, named so a build that defaults to a pool still runs the
//!   same): the server's concurrency follows the workload's `clients`.
//!   [`Setup::workers`] (the agent's CPUs) is not passed on: the only
//!   thread option it could size, `thread_pool_size`, matters only to
//!   `pool-of-threads`, and InnoDB's I/O threads keep their defaults
//!   (4 + 4), which do not depend on the CPUs.
//! - `max_connections` is the largest `clients` plus a margin for the
//!   host's readiness check and table setup, the same whatever `clients`.
//! - The redo log size (96 MiB, 10.11's default) and the character set
//!   (latin1, whose default changed in 11.6) are named rather than left
//!   to the build's defaults.
//! - TCP on every IPv4 address (the host reaches a VM or container from
//!   outside), `skip_name_resolve` (no DNS lookup per connection: a VM has
//!   no resolver), the socket, pid file and temporary files under `dir`.
//! - The server stays root (`--user=root`) when the agent is root.
//!
//! The client logs in as `vmbench`@`%` (password `vmbench`), which the
//! init file creates at each start with database `vmbench`.

use super::{Server, Setup};
use crate::agent::workloads::params::{read, ParamSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct MariaDb;

/// The port inside a VM or container (MariaDB's own).
pub const PORT: u16 = 3306;

/// What the tools run with: the agent may be a VM's PID 1, with an empty
/// environment, and `mariadb-install-db` is a shell script that runs
/// `mariadbd`, `my_print_defaults` and coreutils by name.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where [`find`] looks, in order: [`PATH`].
const DIRS: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The database, user and password the client uses.
pub const DATABASE: &str = "vmbench";
pub const USER: &str = "vmbench";
pub const PASSWORD: &str = "vmbench";

/// The largest `clients`.
const MAX_CLIENTS: u64 = 256;

/// `max_connections`: every client plus the host's readiness check, its
/// table setup and a few to spare.
pub const MAX_CONNECTIONS: u64 = MAX_CLIENTS + 16;

/// The parameters of the whole `sql` workload, the server's and the
/// client's: the host validates scenarios against this table.
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "duration_s",
        default: 10,
        min: 1,
        max: 3600,
        doc: "seconds of each measured mix, after the warm-up",
    },
    ParamSpec {
        name: "warmup_s",
        default: 2,
        min: 0,
        max: 600,
        doc: "seconds each mix runs before it is measured",
    },
    ParamSpec {
        name: "clients",
        default: 4,
        min: 1,
        max: MAX_CLIENTS,
        doc: "client connections, each on its own host thread, one transaction at a time",
    },
    ParamSpec {
        name: "table_rows",
        default: 10_000,
        min: 1,
        max: 10_000_000,
        doc: "rows of the sysbench-like table sbtest1",
    },
    ParamSpec {
        name: "read_write",
        default: 1,
        min: 0,
        max: 1,
        doc: "1: after the point selects, also run sysbench's read/write transaction mix",
    },
    ParamSpec {
        name: "flush_log_at_trx_commit",
        default: 1,
        min: 0,
        max: 2,
        doc: "innodb_flush_log_at_trx_commit: 1 flushes the redo log at each commit, 2 writes it, 0 neither",
    },
    ParamSpec {
        name: "buffer_pool_mib",
        default: 128,
        min: 8,
        max: 65_536,
        doc: "innodb_buffer_pool_size in MiB",
    },
    ParamSpec {
        name: "reference",
        default: 0,
        min: 0,
        max: 1,
        doc: "1: also run sysbench against the same table, before and after each mix",
    },
];

/// The first of `names` that exists in the usual directories ([`PATH`]).
pub fn find(names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .flat_map(|name| DIRS.iter().map(move |dir| Path::new(dir).join(name)))
        .find(|path| path.is_file())
}

fn mariadbd() -> Result<PathBuf, String> {
    find(&["mariadbd", "mysqld"]).ok_or_else(|| format!("no mariadbd (or mysqld) in {PATH}"))
}

/// The server options that change results, as (variable, value) with the
/// variable named as `SHOW VARIABLES` names it.
fn options(setup: &Setup) -> Result<Vec<(&'static str, String)>, String> {
    let values = read(&setup.params, "sql", PARAMS)?;
    let param = |name: &str| {
        let i = PARAMS.iter().position(|s| s.name == name).expect("a parameter of PARAMS");
        values[i]
    };
    Ok(vec![
        ("innodb_flush_log_at_trx_commit", param("flush_log_at_trx_commit").to_string()),
        ("innodb_buffer_pool_size", format!("{}M", param("buffer_pool_mib"))),
        ("innodb_log_file_size", "96M".into()),
        ("max_connections", MAX_CONNECTIONS.to_string()),
        ("thread_handling", "one-thread-per-connection".into()),
        ("character_set_server", "latin1".into()),
        ("collation_server", "latin1_swedish_ci".into()),
    ])
}

/// The server settings that change results, for the run's record: what
/// [`Server::command`] passes. Parameters are checked before a server is
/// set up; should they not be valid, the one entry says why.
pub fn settings(setup: &Setup) -> Vec<(String, String)> {
    match options(setup) {
        Ok(options) => options.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        Err(e) => vec![("invalid_parameters".into(), e)],
    }
}

fn utf8(path: &Path) -> Result<&str, String> {
    path.to_str().ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// The data directory, init file, socket and temporary directory.
fn data(setup: &Setup) -> PathBuf {
    setup.dir.join("data")
}
fn init_file(setup: &Setup) -> PathBuf {
    setup.dir.join("init.sql")
}
fn error_log(setup: &Setup) -> PathBuf {
    setup.dir.join("error.log")
}
fn tmp(setup: &Setup) -> PathBuf {
    setup.dir.join("tmp")
}
fn socket(setup: &Setup) -> PathBuf {
    setup.dir.join("mariadb.sock")
}

/// Run at every start: the client's database and user. One statement a
/// line, as the server reads an init file.
fn init_sql() -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS {DATABASE};\n\
         CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';\n\
         GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{USER}'@'%';\n"
    )
}

/// The arguments of `mariadb-install-db`.
fn install_args(setup: &Setup) -> Result<Vec<String>, String> {
    let mut args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", utf8(&data(setup))?),
        "--auth-root-authentication-method=normal".into(),
        "--skip-test-db".into(),
        // Grants by address, and no lookup of the host's name, which in a
        // VM without a resolver would wait for a DNS timeout.
        "--skip-name-resolve".into(),
        "--force".into(),
        // Passed on to the bootstrap server: its temporary tables in the
        // private directory too, not in a /tmp that others share.
        format!("--tmpdir={}", utf8(&tmp(setup))?),
    ];
    if setup.root {
        args.push("--user=root".into());
    }
    Ok(args)
}

/// The command line for `program` (the server binary).
fn command_line(setup: &Setup, program: &Path) -> Result<Vec<String>, String> {
    let socket = socket(setup);
    // sockaddr_un's sun_path: 108 bytes with the terminating NUL.
    if utf8(&socket)?.len() > 107 {
        return Err(format!(
            "{} is too long for a Unix socket path (107 bytes at most): use a shorter directory",
            socket.display()
        ));
    }
    let mut args = vec![
        utf8(program)?.to_string(),
        "--no-defaults".into(),
        format!("--datadir={}", utf8(&data(setup))?),
        format!("--socket={}", utf8(&socket)?),
        format!("--pid-file={}", utf8(&setup.dir.join("mariadb.pid"))?),
        format!("--tmpdir={}", utf8(&tmp(setup))?),
        format!("--log-error={}", utf8(&error_log(setup))?),
        format!("--init-file={}", utf8(&init_file(setup))?),
        format!("--port={}", setup.port),
        "--bind-address=0.0.0.0".into(),
        "--skip-name-resolve".into(),
    ];
    if setup.root {
        args.push("--user=root".into());
    }
    for (name, value) in options(setup)? {
        args.push(format!("--{}={value}", name.replace('_', "-")));
    }
    Ok(args)
}

/// The first `lines` non-empty lines of `text`.
fn head(text: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let first: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).take(lines).collect();
    first.join("\n")
}

/// The last `lines` non-empty lines of `text`.
fn tail(text: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Server for MariaDb {
    fn name(&self) -> &'static str {
        "mariadb"
    }

    fn port(&self) -> u16 {
        PORT
    }

    fn prepare(&self, setup: &Setup) -> Result<(), String> {
        // Parameters first: a bad one fails before a minute of setup.
        options(setup)?;
        for dir in [data(setup), tmp(setup)] {
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let init = init_file(setup);
        std::fs::write(&init, init_sql()).map_err(|e| format!("cannot write {}: {e}", init.display()))?;
        let tool = find(&["mariadb-install-db", "mysql_install_db"])
            .ok_or_else(|| format!("no mariadb-install-db (or mysql_install_db) in {PATH}"))?;
        let out = Command::new(&tool)
            .args(install_args(setup)?)
            .env_clear()
            .env("PATH", PATH)
            .current_dir(&setup.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
        if !out.status.success() {
            // The script says what failed at the start of its standard
            // output (then advice), the bootstrap server why on standard
            // error.
            let said: Vec<String> = [head(&out.stdout, 3), tail(&out.stderr, 20)]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect();
            return Err(format!("{} failed ({}):\n{}", tool.display(), out.status, said.join("\n")));
        }
        Ok(())
    }

    fn command(&self, setup: &Setup) -> Result<Vec<String>, String> {
        command_line(setup, &mariadbd()?)
    }

    fn logs(&self, setup: &Setup) -> Vec<PathBuf> {
        vec![error_log(setup)]
    }

    fn version(&self) -> Option<String> {
        let out = Command::new(mariadbd().ok()?)
            .arg("--version")
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next()?.trim();
        (out.status.success() && !line.is_empty()).then(|| line.to_string())
    }

    fn settings(&self, setup: &Setup) -> Vec<(String, String)> {
        settings(setup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::workloads::Params;

    fn setup(params: &[(&str, &str)], root: bool) -> Setup {
        Setup {
            dir: PathBuf::from("/run/vmbench/sql"),
            port: 3307,
            workers: 2,
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Params>(),
            root,
        }
    }

    fn line(setup: &Setup) -> Vec<String> {
        command_line(setup, Path::new("/usr/sbin/mariadbd")).unwrap()
    }

    #[test]
    fn the_command_line_carries_the_parameters() {
        let args = line(&setup(
            &[("flush_log_at_trx_commit", "2"), ("buffer_pool_mib", "256"), ("clients", "8")],
            true,
        ));
        assert_eq!(args[..2], ["/usr/sbin/mariadbd", "--no-defaults"], "--no-defaults must come first");
        for want in [
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-buffer-pool-size=256M",
            "--port=3307",
            "--bind-address=0.0.0.0",
            "--user=root",
            "--skip-name-resolve",
            "--datadir=/run/vmbench/sql/data",
            "--init-file=/run/vmbench/sql/init.sql",
            "--log-error=/run/vmbench/sql/error.log",
            "--socket=/run/vmbench/sql/mariadb.sock",
            "--max-connections=272",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing from {args:?}");
        }
    }

    #[test]
    fn defaults_apply_and_a_non_root_agent_does_not_ask_for_root() {
        let args = line(&setup(&[], false));
        assert!(args.iter().any(|a| a == "--innodb-flush-log-at-trx-commit=1"), "{args:?}");
        assert!(args.iter().any(|a| a == "--innodb-buffer-pool-size=128M"), "{args:?}");
        assert!(!args.iter().any(|a| a.starts_with("--user")), "{args:?}");
        assert!(!install_args(&setup(&[], false)).unwrap().iter().any(|a| a.starts_with("--user")));
        assert!(install_args(&setup(&[], true)).unwrap().iter().any(|a| a == "--user=root"));
    }

    #[test]
    fn settings_list_what_the_command_line_sets() {
        let s = setup(&[("flush_log_at_trx_commit", "0"), ("buffer_pool_mib", "64")], true);
        let settings = settings(&s);
        let get = |name: &str| settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("innodb_flush_log_at_trx_commit"), Some("0"));
        assert_eq!(get("innodb_buffer_pool_size"), Some("64M"));
        assert_eq!(get("max_connections"), Some("272"));
        assert_eq!(get("thread_handling"), Some("one-thread-per-connection"));
        let args = line(&s);
        for (name, value) in &settings {
            let want = format!("--{}={value}", name.replace('_', "-"));
            assert!(args.contains(&want), "{want} is reported but not passed: {args:?}");
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let e = command_line(&setup(&[("flush_log_at_trx_commit", "3")], true), Path::new("/m")).unwrap_err();
        assert!(e.contains("flush_log_at_trx_commit"), "{e}");
        let e = command_line(&setup(&[("buffer_pool", "3")], true), Path::new("/m")).unwrap_err();
        assert!(e.contains("buffer_pool"), "{e}");
        assert_eq!(settings(&setup(&[("buffer_pool_mib", "1")], true))[0].0, "invalid_parameters");
    }

    #[test]
    fn a_socket_path_too_long_for_sun_path_is_refused() {
        let mut s = setup(&[], true);
        s.dir = PathBuf::from(format!("/{}", "d".repeat(100)));
        assert!(command_line(&s, Path::new("/m")).unwrap_err().contains("too long"));
    }

    #[test]
    fn the_parameter_table_is_consistent() {
        for (i, spec) in PARAMS.iter().enumerate() {
            assert!((spec.min..=spec.max).contains(&spec.default), "{spec:?}");
            assert!(!PARAMS[..i].iter().any(|s| s.name == spec.name), "{} twice", spec.name);
        }
        let clients = PARAMS.iter().find(|s| s.name == "clients").unwrap();
        assert!(MAX_CONNECTIONS > clients.max);
    }

    #[test]
    fn the_init_file_creates_the_clients_login_one_statement_a_line() {
        let sql = init_sql();
        assert_eq!(sql.lines().count(), 3);
        assert!(sql.lines().all(|l| l.ends_with(';')));
        assert!(sql.contains("'vmbench'@'%' IDENTIFIED BY 'vmbench'"));
    }

    #[test]
    fn heads_and_tails_keep_non_empty_lines() {
        assert_eq!(tail(b"a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(head(b"\na\n\nb\nc\n", 2), "a\nb");
        assert_eq!(tail(b"", 3), "");
    }
}
