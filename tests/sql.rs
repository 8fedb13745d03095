//! The `sql` workload's two halves against a real MariaDB: the server set up
//! and started as the agent does it ([`MariaDb`]'s prepare and command), the
//! host's client ([`vmbench::load::sql`]) preparing the table and running
//! both mixes. Each server is the test's own, in a temporary directory on a
//! free port, killed and removed whatever the test's outcome.
//!
//! Needs `mariadbd` and `mariadb-install-db` (Debian: mariadb-server); no
//! MariaDB service is used or started.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vmbench::agent::servers::mariadb::{self, MariaDb};
use vmbench::agent::servers::{Server, Setup};
use vmbench::load::sql::{self, Mix, SqlLoad};

/// How long a server may take to accept a login: an initialised data
/// directory starts in about a second, on a loaded machine in a few.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A mariadbd of the test's own. Dropping it kills the server, then removes
/// its directory, even when an assertion failed first.
struct Running {
    child: Option<Child>,
    setup: Setup,
    // Dropped after `drop` below has killed the server.
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Running {
    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.setup.port).into()
    }

    /// The last lines of the server's logs.
    fn log_tail(&self) -> String {
        let mut said = String::new();
        for log in MariaDb.logs(&self.setup) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            said.push_str(&lines[lines.len().saturating_sub(15)..].join("\n"));
        }
        said
    }

    /// Waits for a login as the client, as the host does; fails early if
    /// the server exits, with its log's last lines either way.
    fn wait_ready(&mut self, load: &SqlLoad) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Err(format!("mariadbd exited ({status}); its log ends:\n{}", self.log_tail()));
            }
            let left = START_TIMEOUT.saturating_sub(start.elapsed());
            match sql::wait_ready(self.addr(), load, left.min(Duration::from_millis(500))) {
                Ok(()) => return Ok(()),
                Err(e) if left.is_zero() => return Err(format!("{e}; the server's log ends:\n{}", self.log_tail())),
                Err(_) => {}
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

fn setup(params: &[(&str, &str)], port: u16, dir: &tempfile::TempDir) -> Setup {
    Setup {
        dir: dir.path().to_path_buf(),
        port,
        workers: 2,
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        // SAFETY: geteuid has no preconditions.
        root: unsafe { libc::geteuid() } == 0,
    }
}

fn tempdir() -> tempfile::TempDir {
    // Short: the server's Unix socket lives there too.
    tempfile::Builder::new().prefix("vmbench-sql").tempdir_in("/tmp").unwrap()
}

/// Initialises and starts a server as the agent does; the server is not
/// yet ready.
fn start(params: &[(&str, &str)], port: u16) -> Result<Running, String> {
    let dir = tempdir();
    let setup = setup(params, port, &dir);
    MariaDb.prepare(&setup)?;
    let argv = MariaDb.command(&setup)?;
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", mariadb::PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
    Ok(Running {
        child: Some(child),
        setup,
        _dir: dir,
    })
}

fn load(table_rows: u64) -> SqlLoad {
    SqlLoad {
        clients: 2,
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(1),
        table_rows,
        user: mariadb::USER.into(),
        password: mariadb::PASSWORD.into(),
        database: mariadb::DATABASE.into(),
    }
}

/// One row of one column, as text.
fn scalar(conn: &mut mysql::Conn, sql: &str) -> String {
    use mysql::prelude::Queryable;
    let value: Option<mysql::Value> = conn.query_first(sql).unwrap();
    match value.unwrap() {
        mysql::Value::Bytes(b) => String::from_utf8(b).unwrap(),
        mysql::Value::Int(i) => i.to_string(),
        mysql::Value::UInt(u) => u.to_string(),
        other => panic!("{sql}: {other:?}"),
    }
}

fn check(outcome: &sql::SqlOutcome, mix: Mix, load: &SqlLoad) {
    let what = format!("{}: {outcome:?}", mix.name());
    assert!(outcome.transactions > 0, "{what}");
    assert_eq!(outcome.errors, 0, "{what}");
    assert!(outcome.first_error.is_none(), "{what}");
    let window = (outcome.window_end - outcome.window_start).as_secs_f64();
    assert!((window - load.duration.as_secs_f64()).abs() < 1e-6, "{what}");
    assert!(
        (outcome.tps - outcome.transactions as f64 / window).abs() < 1e-6 * outcome.tps,
        "{what}"
    );
    assert_eq!(outcome.queries, outcome.transactions * mix.queries_per_transaction(), "{what}");
    assert!(
        (outcome.qps / outcome.tps - mix.queries_per_transaction() as f64).abs() < 1e-9,
        "{what}"
    );
    let l = outcome.latency;
    assert_eq!(l.count, outcome.transactions, "{what}");
    assert!(
        0.0 < l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max,
        "{what}"
    );
    assert!(l.mean > 0.0 && l.mean <= l.max, "{what}");
    // Two clients, one transaction at a time each: no more than two
    // windows' worth of time in transactions, and the two that began
    // before the window.
    let busy = l.mean * 1e-6 * outcome.transactions as f64;
    assert!(busy <= load.clients as f64 * (window + l.max * 1e-6), "{what}");
    // The run ends with its window: no client went on long after it.
    assert!(outcome.window_end.elapsed() < Duration::from_secs(5), "{what}");
}

#[test]
fn both_mixes_run_against_a_real_mariadb() {
    let mut server = start(&[("flush_log_at_trx_commit", "2"), ("buffer_pool_mib", "64")], free_port()).unwrap();
    let load = load(1000);
    server.wait_ready(&load).unwrap();
    let version = MariaDb.version().expect("mariadbd --version");
    assert!(version.contains("MariaDB"), "{version}");

    // What settings() reports is what the server runs with.
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(server.setup.port)
        .user(Some(&load.user))
        .pass(Some(&load.password))
        .db_name(Some(&load.database))
        .prefer_socket(false);
    let mut conn = mysql::Conn::new(opts).unwrap();
    for (name, value) in mariadb::settings(&server.setup) {
        let running = scalar(&mut conn, &format!("SELECT @@{name}"));
        let want = match value.strip_suffix('M') {
            Some(mib) => (mib.parse::<u64>().unwrap() << 20).to_string(),
            None => value.clone(),
        };
        assert_eq!(running.to_lowercase(), want.to_lowercase(), "{name}");
    }

    sql::prepare(server.addr(), &load).unwrap();
    assert_eq!(scalar(&mut conn, "SELECT COUNT(*) FROM sbtest1"), "1000");
    assert_eq!(scalar(&mut conn, "SELECT MAX(id) FROM sbtest1"), "1000");
    assert_eq!(
        scalar(&mut conn, "SELECT MIN(LENGTH(c)) + MAX(LENGTH(pad)) FROM sbtest1"),
        "178",
        "119 + 59"
    );

    for mix in [Mix::PointSelect, Mix::ReadWrite] {
        let before = Instant::now();
        let outcome = sql::run(server.addr(), &load, mix).unwrap();
        eprintln!(
            "{}: {:.0} tps, {:.0} qps, latency {:?}",
            mix.name(),
            outcome.tps,
            outcome.qps,
            outcome.latency
        );
        assert!(outcome.window_start >= before + load.warmup, "{outcome:?}");
        check(&outcome, mix, &load);
    }
    // Each DELETE is followed by an INSERT of the same id.
    assert_eq!(scalar(&mut conn, "SELECT COUNT(*) FROM sbtest1"), "1000");

    // Many clients on a few rows deadlock: counted, rolled back, and the
    // clients go on.
    let crowded = SqlLoad {
        clients: 8,
        table_rows: 10,
        ..load
    };
    sql::prepare(server.addr(), &crowded).unwrap();
    let outcome = sql::run(server.addr(), &crowded, Mix::ReadWrite).unwrap();
    eprintln!("crowded: {outcome:?}");
    assert!(outcome.transactions > 0, "{outcome:?}");
    assert!(outcome.lock_conflicts > 0, "{outcome:?}");
    assert_eq!(outcome.errors, outcome.lock_conflicts, "{outcome:?}");
    let first = outcome.first_error.unwrap();
    assert!(first.contains("Deadlock") || first.contains("Lock wait"), "{first}");
    assert_eq!(scalar(&mut conn, "SELECT COUNT(*) FROM sbtest1"), "10");
}

#[test]
fn a_server_that_cannot_start_says_why_from_its_error_log() {
    // Something else holds the port: mariadbd initialises, fails to bind
    // and exits, as in a target where the port is taken.
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut server = start(&[], port).unwrap();
    let e = server.wait_ready(&load(10)).unwrap_err();
    assert!(e.contains("mariadbd exited"), "{e}");
    assert!(e.contains("Address already in use") || e.contains("Can't start server"), "{e}");

    // The host, which cannot see the log, hears that no login succeeded:
    // the holder of the port accepts but never greets.
    let e = sql::wait_ready(server.addr(), &load(10), Duration::from_millis(500)).unwrap_err();
    assert!(e.contains("accepted no login"), "{e}");
}

#[test]
fn a_failed_initialisation_carries_the_tools_output() {
    // A data directory whose system tablespace is junk: the bootstrap
    // server refuses it.
    let dir = tempdir();
    let setup = setup(&[], free_port(), &dir);
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/ibdata1"), vec![0x5a; 1 << 20]).unwrap();
    let e = MariaDb.prepare(&setup).unwrap_err();
    assert!(e.contains("failed") && e.contains("InnoDB"), "{e}");

    // A parameter out of range fails before anything runs.
    let bad = self::setup(&[("flush_log_at_trx_commit", "5")], free_port(), &dir);
    let e = MariaDb.prepare(&bad).unwrap_err();
    assert!(e.contains("flush_log_at_trx_commit"), "{e}");
}
