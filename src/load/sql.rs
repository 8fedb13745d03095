//! The `sql` workload's client: sysbench-like OLTP transactions over the
//! MySQL protocol against the MariaDB that the agent starts in a target.
//!
//! [`prepare`] creates and fills sysbench's table `sbtest1`; [`run`] drives
//! one [`Mix`] with `clients` connections, each on an OS thread of its own
//! doing one transaction at a time, all released together once every one is
//! connected with its statements prepared. The first `warmup` is not
//! recorded; a transaction counts if it completes inside the `duration`
//! after it, and its latency (from its first statement sent to its last
//! answer read) goes into the histogram.
//!
//! # The mixes, as sysbench 1.0's scripts define them
//!
//! - [`Mix::PointSelect`] is `oltp_point_select`: one
//!   `SELECT c FROM sbtest1 WHERE id=?` per transaction, in autocommit (the
//!   script issues no BEGIN/COMMIT).
//! - [`Mix::ReadWrite`] is `oltp_read_write` with its defaults: BEGIN, 10
//!   point selects, one each of the simple, SUM, ORDER BY and DISTINCT
//!   ranges of 100 ids, an update of the indexed `k`, an update of `c`, a
//!   DELETE and an INSERT of the same id, COMMIT: 20 queries.
//!
//! Every statement is prepared once per connection and executed with the
//! binary protocol (sysbench's default `--db-ps-mode=auto`), BEGIN and
//! COMMIT included; every row a query returns is read. The table is
//! sysbench's: `id` INTEGER AUTO_INCREMENT primary key, `k` INTEGER,
//! `c` CHAR(120), `pad` CHAR(60), InnoDB, the index on `k` created after the
//! rows are in; `c` and `pad` are 11-digit groups joined by dashes (119
//! and 59 characters). `queries` counts every statement, BEGIN and COMMIT
//! included, as sysbench's total does, so `qps / tps` is 1 and 20.
//!
//! # Where this differs from sysbench
//!
//! - Random ids (and the `k` values loaded) are uniform over
//!   1..=`table_rows`. sysbench's default, `--rand-type=special`, draws
//!   three quarters of them from 1 % of the range, a hot set; uniform
//!   spreads the load over the whole table (sysbench's `--rand-type=uniform`).
//! - The content is deterministic: fixed seeds for the table and for each
//!   client, where sysbench seeds from the clock unless `--rand-seed` is
//!   given. Rows are loaded with explicit ids 1..=n (what AUTO_INCREMENT
//!   gives an empty table) in INSERTs of 1000 rows, where sysbench buffers
//!   its bulk insert by size.
//! - A failed transaction is rolled back and counted in `errors`, not as a
//!   transaction; the client then goes on with the next, with new random
//!   ids. Deadlocks (1213), lock wait timeouts (1205) and 1020 are also
//!   counted in `lock_conflicts`. sysbench, for those three codes
//!   (`--mysql-ignore-errors` default), rolls back and restarts the event,
//!   reporting them as "ignored errors", which is the same but for the
//!   name; for any other server error it stops, where this goes on and
//!   counts it. An error on the connection itself (not an answer from the
//!   server) ends that client. `errors` covers the warm-up too: any error
//!   makes a run suspect.
//! - `queries` counts the statements of counted transactions only, so that
//!   `qps / tps` is exact; sysbench counts every statement it sends.
//! - Latency percentiles are nearest rank, vmbench's one definition
//!   ([`crate::stats::percentile`]), over values kept in an HDR histogram
//!   of nanoseconds with 3 significant digits: a percentile is the top of
//!   the histogram bucket holding the sample of that rank, at most 0.1 %
//!   above that sample, and never above the exact maximum; the maximum and
//!   mean are exact. sysbench reports its 95th percentile from a
//!   logarithmic histogram of its own.
//! - The client is the Rust `mysql` crate, not libmysqlclient: the same
//!   protocol and statements, but the client's CPU time per row differs
//!   (rows are decoded into values). No TLS or compression, like
//!   sysbench's defaults; TCP_NODELAY; never the Unix socket, even on the
//!   host.

use crate::agent::workloads::params::XorShift;
use hdrhistogram::Histogram;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Statement};
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// What one `sql` measurement runs.
#[derive(Debug, Clone)]
pub struct SqlLoad {
    /// Connections, each on its own thread.
    pub clients: usize,
    /// Run, not recorded, before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Rows of `sbtest1`: [`prepare`] loads them, [`run`] draws ids from them.
    pub table_rows: u64,
    pub user: String,
    pub password: String,
    pub database: String,
}

/// The transaction every client repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// sysbench's `oltp_point_select`.
    PointSelect,
    /// sysbench's `oltp_read_write`.
    ReadWrite,
}

impl Mix {
    /// Its name in metrics (as the sysbench script's, less `oltp_`).
    pub fn name(self) -> &'static str {
        match self {
            Mix::PointSelect => "point_select",
            Mix::ReadWrite => "read_write",
        }
    }

    /// Statements in one transaction, BEGIN and COMMIT included.
    pub fn queries_per_transaction(self) -> u64 {
        match self {
            Mix::PointSelect => 1,
            // BEGIN, the point selects, 4 ranges, 2 updates, DELETE,
            // INSERT, COMMIT.
            Mix::ReadWrite => 2 + POINT_SELECTS + 4 + 2 + 2,
        }
    }
}

pub use super::Latency;

/// What [`run`] measured.
#[derive(Debug, Clone)]
pub struct SqlOutcome {
    /// Transactions completed inside the window.
    pub transactions: u64,
    /// Their statements.
    pub queries: u64,
    /// Transactions that failed, warm-up included.
    pub errors: u64,
    /// Of `errors`, those that lost a lock conflict (deadlock, lock wait
    /// timeout): a property of the mix under concurrency more than a fault.
    pub lock_conflicts: u64,
    /// The earliest error, with the client that met it.
    pub first_error: Option<String>,
    pub window_start: Instant,
    pub window_end: Instant,
    /// `transactions` and `queries` per second of the window.
    pub tps: f64,
    pub qps: f64,
    pub latency: Latency,
}

/// sysbench's table (its `--tables=1`).
const TABLE: &str = "sbtest1";
/// sysbench's `--point_selects`.
const POINT_SELECTS: u64 = 10;
/// sysbench's `--range_size`.
const RANGE_SIZE: u64 = 100;
/// Digit groups of `c` and `pad`.
const C_GROUPS: usize = 10;
const PAD_GROUPS: usize = 5;
/// Rows per INSERT while loading.
const BATCH_ROWS: u64 = 1000;
/// Seeds: the table's, and the first client's (the others follow).
const TABLE_SEED: u64 = 0x5db3_5b1e_7a8c_0001;
const CLIENT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// How long one read or write on a client's connection may block: longer
/// than InnoDB's lock wait timeout (50 s), which answers with an error.
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// The same while loading: building the index of a large table is one
/// statement.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Server errors that mean a lost lock conflict: deadlock, lock wait
/// timeout, record changed (sysbench's default `--mysql-ignore-errors`).
const LOCK_CONFLICTS: [u16; 3] = [1213, 1205, 1020];

const SQL_POINT: &str = "SELECT c FROM sbtest1 WHERE id=?";
const SQL_RANGES: [&str; 4] = [
    "SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ?",
    "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?",
    "SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c",
    "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c",
];
const SQL_INDEX_UPDATE: &str = "UPDATE sbtest1 SET k=k+1 WHERE id=?";
const SQL_NON_INDEX_UPDATE: &str = "UPDATE sbtest1 SET c=? WHERE id=?";
const SQL_DELETE: &str = "DELETE FROM sbtest1 WHERE id=?";
const SQL_INSERT: &str = "INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)";

fn opts(addr: SocketAddr, load: &SqlLoad, timeout: Duration) -> Opts {
    OptsBuilder::new()
        .ip_or_hostname(Some(addr.ip().to_string()))
        .tcp_port(addr.port())
        .user(Some(&load.user))
        .pass(Some(&load.password))
        .db_name(Some(&load.database))
        // The crate would otherwise switch a loopback connection to the
        // server's Unix socket, and natively the path would not be TCP.
        .prefer_socket(false)
        .tcp_nodelay(true)
        .tcp_connect_timeout(Some(timeout))
        .read_timeout(Some(timeout))
        .write_timeout(Some(timeout))
        .into()
}

fn connect(addr: SocketAddr, load: &SqlLoad, timeout: Duration) -> Result<Conn, String> {
    Conn::new(opts(addr, load, timeout)).map_err(|e| format!("cannot log in to MariaDB at {addr} as {}: {e}", load.user))
}

/// Waits until a login as `load.user` to `load.database` succeeds, trying
/// every 100 ms; the last failure says why it did not within `timeout`.
pub fn wait_ready(addr: SocketAddr, load: &SqlLoad, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        // A port that accepts but never greets (a VM's forwarder before the
        // server listens) must not hold one attempt for long.
        let attempt = left.clamp(Duration::from_millis(100), Duration::from_secs(2));
        let error = match connect(addr, load, attempt) {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if start.elapsed() >= timeout {
            return Err(format!("MariaDB at {addr} accepted no login within {timeout:?}: {error}"));
        }
        std::thread::sleep(Duration::from_millis(100).min(timeout.saturating_sub(start.elapsed())));
    }
}

/// Creates `sbtest1` afresh and loads `table_rows` rows of deterministic
/// content, then the index on `k`.
pub fn prepare(addr: SocketAddr, load: &SqlLoad) -> Result<(), String> {
    if load.table_rows == 0 {
        return Err("the table needs at least one row".into());
    }
    let mut conn = connect(addr, load, PREPARE_TIMEOUT)?;
    let mut exec = |what: &str, sql: &str| conn.query_drop(sql).map_err(|e| format!("cannot {what}: {e}"));
    exec("drop the old table", &format!("DROP TABLE IF EXISTS {TABLE}"))?;
    exec(
        "create the table",
        &format!(
            "CREATE TABLE {TABLE} (id INTEGER NOT NULL AUTO_INCREMENT, k INTEGER DEFAULT '0' NOT NULL, \
             c CHAR(120) DEFAULT '' NOT NULL, pad CHAR(60) DEFAULT '' NOT NULL, PRIMARY KEY (id)) ENGINE = InnoDB"
        ),
    )?;
    let mut rng = Rng::new(TABLE_SEED);
    let mut first = 1;
    while first <= load.table_rows {
        let last = (first + BATCH_ROWS - 1).min(load.table_rows);
        exec(
            &format!("insert rows {first}..={last}"),
            &insert_batch(first, last, load.table_rows, &mut rng),
        )?;
        first = last + 1;
    }
    exec("index k", &format!("CREATE INDEX k_1 ON {TABLE}(k)"))
}

/// One INSERT of rows `first..=last` (ids) with `k` drawn from
/// 1..=`table_rows`. The content is digits and dashes: nothing to escape.
fn insert_batch(first: u64, last: u64, table_rows: u64, rng: &mut Rng) -> String {
    let mut sql = format!("INSERT INTO {TABLE} (id, k, c, pad) VALUES ");
    let (mut c, mut pad) = (String::new(), String::new());
    for id in first..=last {
        let k = rng.id(table_rows);
        rng.digits(C_GROUPS, &mut c);
        rng.digits(PAD_GROUPS, &mut pad);
        if id > first {
            sql.push(',');
        }
        sql.push_str(&format!("({id},{k},'{c}','{pad}')"));
    }
    sql
}

/// Uniform ids and sysbench-like strings from a fast generator.
struct Rng(XorShift);

impl Rng {
    fn new(seed: u64) -> Rng {
        // xorshift never leaves zero.
        Rng(XorShift(seed.max(1)))
    }

    /// Uniform in 1..=n (n ≥ 1), by the multiply-shift reduction.
    fn id(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64 + 1
    }

    /// `groups` groups of 11 random digits joined by dashes, into `out`.
    fn digits(&mut self, groups: usize, out: &mut String) {
        out.clear();
        for g in 0..groups {
            if g > 0 {
                out.push('-');
            }
            for _ in 0..11 {
                out.push(char::from(b'0' + (self.0.next_u64() % 10) as u8));
            }
        }
    }
}

/// Releases every client at once, when the last is connected; or none, if
/// one could not connect.
struct Gate {
    state: Mutex<GateState>,
    opened: Condvar,
    clients: usize,
}

struct GateState {
    arrived: usize,
    open: Option<Instant>,
    aborted: bool,
}

impl Gate {
    fn new(clients: usize) -> Gate {
        Gate {
            state: Mutex::new(GateState {
                arrived: 0,
                open: None,
                aborted: false,
            }),
            opened: Condvar::new(),
            clients,
        }
    }

    /// Waits for every client; the instant the last arrived, or `None` if
    /// the run was called off.
    fn arrive(&self) -> Option<Instant> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.arrived += 1;
        if state.arrived == self.clients {
            state.open = Some(Instant::now());
            self.opened.notify_all();
        }
        while state.open.is_none() && !state.aborted {
            state = self.opened.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.aborted {
            None
        } else {
            state.open
        }
    }

    fn abort(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).aborted = true;
        self.opened.notify_all();
    }
}

/// One client's statements, prepared on its connection.
enum Prepared {
    PointSelect(Statement),
    ReadWrite(Box<ReadWrite>),
}

struct ReadWrite {
    begin: Statement,
    commit: Statement,
    point: Statement,
    ranges: Vec<Statement>,
    index_update: Statement,
    non_index_update: Statement,
    delete: Statement,
    insert: Statement,
}

impl Prepared {
    fn new(conn: &mut Conn, mix: Mix) -> Result<Prepared, String> {
        let mut prep = |sql: &str| conn.prep(sql).map_err(|e| format!("cannot prepare `{sql}`: {e}"));
        Ok(match mix {
            Mix::PointSelect => Prepared::PointSelect(prep(SQL_POINT)?),
            Mix::ReadWrite => Prepared::ReadWrite(Box::new(ReadWrite {
                begin: prep("BEGIN")?,
                commit: prep("COMMIT")?,
                point: prep(SQL_POINT)?,
                ranges: SQL_RANGES.iter().map(|sql| prep(sql)).collect::<Result<_, _>>()?,
                index_update: prep(SQL_INDEX_UPDATE)?,
                non_index_update: prep(SQL_NON_INDEX_UPDATE)?,
                delete: prep(SQL_DELETE)?,
                insert: prep(SQL_INSERT)?,
            })),
        })
    }
}

/// Scratch strings for the random `c` and `pad` values.
#[derive(Default)]
struct Scratch {
    c: String,
    pad: String,
}

/// One transaction of the mix, as sysbench's `event()` runs it.
fn transaction(conn: &mut Conn, prepared: &Prepared, rng: &mut Rng, rows: u64, s: &mut Scratch) -> mysql::Result<()> {
    match prepared {
        Prepared::PointSelect(point) => conn.exec_drop(point, (rng.id(rows),)),
        Prepared::ReadWrite(p) => {
            conn.exec_drop(&p.begin, ())?;
            for _ in 0..POINT_SELECTS {
                conn.exec_drop(&p.point, (rng.id(rows),))?;
            }
            for range in &p.ranges {
                let id = rng.id(rows);
                conn.exec_drop(range, (id, id + RANGE_SIZE - 1))?;
            }
            conn.exec_drop(&p.index_update, (rng.id(rows),))?;
            rng.digits(C_GROUPS, &mut s.c);
            conn.exec_drop(&p.non_index_update, (s.c.as_str(), rng.id(rows)))?;
            let (id, k) = (rng.id(rows), rng.id(rows));
            rng.digits(C_GROUPS, &mut s.c);
            rng.digits(PAD_GROUPS, &mut s.pad);
            conn.exec_drop(&p.delete, (id,))?;
            conn.exec_drop(&p.insert, (id, k, s.c.as_str(), s.pad.as_str()))?;
            conn.exec_drop(&p.commit, ())
        }
    }
}

/// The histogram's range in nanoseconds; longer transactions are recorded
/// as this (the exact maximum is kept apart).
const HISTOGRAM_MAX_NS: u64 = IO_TIMEOUT.as_nanos() as u64;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).expect("valid histogram bounds")
}

/// What one client counted.
struct Tally {
    transactions: u64,
    errors: u64,
    lock_conflicts: u64,
    first_error: Option<(Instant, String)>,
    latency_ns: Histogram<u64>,
    sum_ns: u128,
    max_ns: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            transactions: 0,
            errors: 0,
            lock_conflicts: 0,
            first_error: None,
            latency_ns: histogram(),
            sum_ns: 0,
            max_ns: 0,
        }
    }

    fn record(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.transactions += 1;
        self.latency_ns.saturating_record(ns);
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    fn merge(&mut self, other: Tally) {
        self.transactions += other.transactions;
        self.errors += other.errors;
        self.lock_conflicts += other.lock_conflicts;
        if let Some((at, e)) = other.first_error {
            if self.first_error.as_ref().is_none_or(|(mine, _)| at < *mine) {
                self.first_error = Some((at, e));
            }
        }
        self.latency_ns.add(&other.latency_ns).expect("histograms of the same bounds");
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    fn latency(&self) -> Latency {
        let count = self.latency_ns.len();
        let mean = if count == 0 { 0.0 } else { self.sum_ns as f64 / count as f64 };
        Latency::of(&self.latency_ns, self.max_ns, mean)
    }
}

/// Why a client did not run.
enum NotRun {
    /// It could not connect or prepare.
    Failed(String),
    /// Another client could not.
    CalledOff,
}

/// One client: connects, prepares, waits at the gate, then repeats the
/// transaction until the window ends.
fn client(index: usize, addr: SocketAddr, load: &SqlLoad, mix: Mix, gate: &Gate) -> Result<(Tally, Instant), NotRun> {
    let ready = connect(addr, load, IO_TIMEOUT).and_then(|mut conn| Prepared::new(&mut conn, mix).map(|p| (conn, p)));
    let (mut conn, prepared) = match ready {
        Ok(ready) => ready,
        Err(e) => {
            gate.abort();
            return Err(NotRun::Failed(format!("client {index}: {e}")));
        }
    };
    let Some(released) = gate.arrive() else {
        return Err(NotRun::CalledOff);
    };
    let window_start = released + load.warmup;
    let window_end = window_start + load.duration;
    let mut rng = Rng::new(CLIENT_SEED.wrapping_add(index as u64).wrapping_mul(0xff51_afd7_ed55_8ccd));
    let mut scratch = Scratch::default();
    let mut tally = Tally::new();
    loop {
        let began = Instant::now();
        if began >= window_end {
            break;
        }
        let result = transaction(&mut conn, &prepared, &mut rng, load.table_rows, &mut scratch);
        let ended = Instant::now();
        match result {
            Ok(()) => {
                if ended >= window_start && ended < window_end {
                    tally.record(ended - began);
                }
            }
            Err(e) => {
                tally.errors += 1;
                let from_server = match &e {
                    mysql::Error::MySqlError(m) => {
                        if LOCK_CONFLICTS.contains(&m.code) {
                            tally.lock_conflicts += 1;
                        }
                        true
                    }
                    _ => false,
                };
                if tally.first_error.is_none() {
                    tally.first_error = Some((ended, format!("client {index} ({}): {e}", mix.name())));
                }
                // The server answered: undo and go on. The connection
                // failed: this client is done.
                if !from_server || conn.query_drop("ROLLBACK").is_err() {
                    break;
                }
            }
        }
    }
    super::account_thread_cpu();
    Ok((tally, window_start))
}

/// Runs `mix` with `load.clients` clients and returns what they measured;
/// blocks for the warm-up and the window. Fails without measuring if a
/// client cannot log in or prepare its statements; errors during the run
/// are counted in the outcome instead.
pub fn run(addr: SocketAddr, load: &SqlLoad, mix: Mix) -> Result<SqlOutcome, String> {
    if load.clients == 0 || load.duration.is_zero() || load.table_rows == 0 {
        return Err(format!(
            "an sql run needs clients, a duration and rows (clients {}, duration {:?}, rows {})",
            load.clients, load.duration, load.table_rows
        ));
    }
    let gate = Gate::new(load.clients);
    let mut spawn_error = None;
    let results: Vec<Result<(Tally, Instant), NotRun>> = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(load.clients);
        for index in 0..load.clients {
            let gate = &gate;
            let spawned = std::thread::Builder::new()
                .name(format!("sql-client-{index}"))
                .spawn_scoped(scope, move || client(index, addr, load, mix, gate));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    gate.abort();
                    spawn_error = Some(format!("cannot start client thread {index}: {e}"));
                    break;
                }
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(NotRun::Failed("a client thread panicked".into()))))
            .collect()
    });
    if let Some(e) = spawn_error {
        return Err(e);
    }
    let mut total = Tally::new();
    let mut window_start = None;
    let mut called_off = false;
    for result in results {
        match result {
            Ok((tally, start)) => {
                total.merge(tally);
                window_start = Some(start);
            }
            Err(NotRun::Failed(e)) => return Err(e),
            Err(NotRun::CalledOff) => called_off = true,
        }
    }
    let window_start = match window_start {
        Some(start) if !called_off => start,
        _ => return Err("the clients were called off without a reason".into()),
    };
    let window_end = window_start + load.duration;
    let seconds = load.duration.as_secs_f64();
    let queries = total.transactions * mix.queries_per_transaction();
    Ok(SqlOutcome {
        transactions: total.transactions,
        queries,
        errors: total.errors,
        lock_conflicts: total.lock_conflicts,
        first_error: total.first_error.as_ref().map(|(_, e)| e.clone()),
        window_start,
        window_end,
        tps: total.transactions as f64 / seconds,
        qps: queries as f64 / seconds,
        latency: total.latency(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::percentile;

    #[test]
    fn ids_are_uniform_within_the_table() {
        let mut rng = Rng::new(1);
        let mut seen = [0u32; 10];
        for _ in 0..100_000 {
            let id = rng.id(10);
            assert!((1..=10).contains(&id));
            seen[id as usize - 1] += 1;
        }
        assert!(seen.iter().all(|&n| (9_000..11_000).contains(&n)), "{seen:?}");
        assert_eq!(Rng::new(0).id(1), 1, "a zero seed still draws");
    }

    #[test]
    fn strings_are_sysbench_shaped() {
        let mut rng = Rng::new(7);
        let (mut c, mut pad) = (String::new(), String::new());
        rng.digits(C_GROUPS, &mut c);
        rng.digits(PAD_GROUPS, &mut pad);
        assert_eq!((c.len(), pad.len()), (119, 59));
        for (i, ch) in c.chars().enumerate() {
            assert_eq!(ch == '-', i % 12 == 11, "{c}");
            assert!(ch == '-' || ch.is_ascii_digit());
        }
    }

    #[test]
    fn the_table_content_is_deterministic() {
        let a = insert_batch(1, 3, 100, &mut Rng::new(TABLE_SEED));
        assert_eq!(a, insert_batch(1, 3, 100, &mut Rng::new(TABLE_SEED)));
        assert!(a.starts_with("INSERT INTO sbtest1 (id, k, c, pad) VALUES (1,"), "{a}");
        assert_eq!(a.matches("),(").count(), 2, "three rows: {a}");
    }

    #[test]
    fn read_write_is_twenty_queries() {
        assert_eq!(Mix::ReadWrite.queries_per_transaction(), 20);
        assert_eq!(Mix::PointSelect.queries_per_transaction(), 1);
    }

    #[test]
    fn percentiles_are_nearest_rank_over_quantised_values() {
        let mut tally = Tally::new();
        // 1..=1000 µs, and one long one.
        let mut samples: Vec<u64> = (1..=1000).map(|us| us * 1000 + 7).collect();
        samples.push(250_000_000);
        for &ns in &samples {
            tally.record(Duration::from_nanos(ns));
        }
        let latency = tally.latency();
        assert_eq!(latency.count, 1001);
        let quantised: Vec<f64> = samples
            .iter()
            .map(|&ns| tally.latency_ns.highest_equivalent(ns).min(tally.max_ns) as f64 / 1e3)
            .collect();
        for (q, got) in [(0.5, latency.p50), (0.9, latency.p90), (0.99, latency.p99), (0.999, latency.p999)] {
            let exact = percentile::nearest_rank(&quantised, q);
            assert_eq!(got, exact, "q = {q}");
            let sample = percentile::nearest_rank(&samples.iter().map(|&ns| ns as f64 / 1e3).collect::<Vec<_>>(), q);
            assert!(got >= sample && got <= sample * 1.001, "q = {q}: {got} against {sample}");
        }
        assert_eq!(latency.max, 250_000.0);
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.p999 && latency.p999 <= latency.max);
        let mean = samples.iter().sum::<u64>() as f64 / 1001.0 / 1e3;
        assert!((latency.mean - mean).abs() < 1e-9, "{} against {mean}", latency.mean);
    }

    #[test]
    fn a_percentile_never_exceeds_the_maximum() {
        let mut tally = Tally::new();
        tally.record(Duration::from_nanos(123_456));
        let l = tally.latency();
        assert_eq!((l.p50, l.p999, l.max), (123.456, 123.456, 123.456));
        assert_eq!(Tally::new().latency(), Latency::default());
    }

    #[test]
    fn merging_keeps_the_earliest_error_and_all_counts() {
        let t0 = Instant::now();
        let mut a = Tally::new();
        a.record(Duration::from_micros(10));
        a.errors = 1;
        a.first_error = Some((t0 + Duration::from_millis(5), "later".into()));
        let mut b = Tally::new();
        b.record(Duration::from_micros(30));
        b.errors = 2;
        b.lock_conflicts = 2;
        b.first_error = Some((t0, "earlier".into()));
        a.merge(b);
        assert_eq!((a.transactions, a.errors, a.lock_conflicts), (2, 3, 2));
        assert_eq!(a.first_error.as_ref().unwrap().1, "earlier");
        assert_eq!(a.latency().max, 30.0);
    }

    #[test]
    fn the_gate_opens_for_all_at_once_or_for_none() {
        let gate = Gate::new(3);
        let opened: Vec<Option<Instant>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3).map(|_| s.spawn(|| gate.arrive())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(opened[0].is_some() && opened.iter().all(|o| *o == opened[0]), "{opened:?}");

        let gate = Gate::new(3);
        let called_off: Vec<Option<Instant>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2).map(|_| s.spawn(|| gate.arrive())).collect();
            std::thread::sleep(Duration::from_millis(20));
            gate.abort();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(called_off, [None, None]);
    }

    #[test]
    fn a_run_without_a_server_fails_before_measuring() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let load = SqlLoad {
            clients: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(60),
            table_rows: 10,
            user: "vmbench".into(),
            password: "vmbench".into(),
            database: "vmbench".into(),
        };
        let started = Instant::now();
        let e = run(addr, &load, Mix::PointSelect).unwrap_err();
        assert!(e.contains("cannot log in"), "{e}");
        let e = wait_ready(addr, &load, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("accepted no login"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(run(addr, &SqlLoad { clients: 0, ..load }, Mix::ReadWrite).is_err());
    }
}
