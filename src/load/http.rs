//! vmbench's own HTTP/1.1 load generator, for nginx inside a VM, a container
//! or natively: keep-alive `GET`s on a fixed number of connections, closed
//! loop (each connection sends as soon as its previous answer is in) or open
//! loop (a constant total rate, corrected for coordinated omission as wrk2
//! does).
//!
//! # Threads, not a runtime
//!
//! [`run`] starts `threads` OS threads (never more than there are
//! connections) and deals the connections out round-robin (connection `g`
//! goes to thread `g mod threads`). Each thread runs its own edge-free
//! (level-triggered) `epoll` loop over non-blocking sockets, as wrk does, with
//! a `timerfd` for its deadlines. Not tokio, although it is a dependency:
//!
//! - tokio's timers have a resolution of one millisecond. In the open loop a
//!   latency counts from the *intended* send time, so every millisecond a send
//!   is late would be counted as server latency, against loopback nginx
//!   latencies of tens of microseconds. A `timerfd` (an hrtimer without slack)
//!   fires within microseconds.
//! - The generator shares two cores with the server it measures; its cost per
//!   request is taken from the server. The loop here does one `send` and one
//!   `recv` per request plus a share of one `epoll_wait`, allocates nothing per
//!   request (the request bytes are built once, each connection reuses one
//!   buffer, response bodies are counted, not kept) and has no task wakeups.
//!
//! Blocking sockets would need a thread per connection, which the
//! `connections` / `threads` split rules out. Connecting is blocking (with a
//! timeout): on loopback or to a VM's forwarded port it takes microseconds,
//! and a reconnect happens once per `keepalive_requests` responses.
//!
//! # The timed window
//!
//! All threads connect first; then a common `t0` is handed out. Warmup runs
//! from `t0`, the timed window is `[t0 + warmup, t0 + warmup + duration)`.
//! Everything is classified by the instant it happened: a response counts
//! (in `requests`, `errors` and the latency histogram) when its last byte
//! arrives inside the window, and a reconnect or a connection failure when it
//! happens inside it. So a request sent during warmup and answered inside the
//! window counts, with its whole latency; one sent inside the window but not
//! answered by its end does not count at all: at most one per connection in
//! the closed loop. The threads stop at the end of the window, without
//! draining (the requests still in flight are abandoned: they could no longer
//! count). [`HttpOutcome::unfinished`] says how many requests were due in the
//! window and never completed in it (in flight at the end, plus, in the open
//! loop, those whose intended send time had passed but that could not yet be
//! sent), so a server stall at the very end of the window, which the
//! percentiles cannot show, is at least visible as a number.
//!
//! # Closed and open loop
//!
//! Closed loop: a latency runs from just before the request is written to
//! the last byte of its response. Open loop: connection `g` of `C` sends its
//! `k`-th request at `t0 + (k·C + g)/rate`; with its previous request still
//! unanswered it cannot (no pipelining), so it sends as soon as that answer is
//! in, and the latency still runs from the intended time: a server stall
//! shows in the percentiles instead of merely lowering the request count.
//!
//! `kept_up` (open loop only; the closed loop is always `true`) is `false`
//! when the asked rate was not actually applied: when fewer than
//! [`KEPT_UP_SHARE`] of the intended requests were answered successfully in
//! the window (`achieved_rps < 0.95 × rate`: the server or the generator
//! could not keep up), or when the generator's own lateness
//! ([`HttpOutcome::send_lag`]) has a median above [`MAX_MEDIAN_SEND_LAG`]. The
//! send lag is measured only for sends the schedule made a connection wait
//! for, as the time between the intended instant and the actual send: that
//! is the generator's timer and loop being late, with the server's part
//! (a response arriving after the next intended time) left out, since that is
//! what the latencies are there to measure.
//!
//! # Responses
//!
//! A response is read to its end: status line, headers up to the empty line,
//! then a `Content-Length` body, a `Transfer-Encoding: chunked` body (chunk
//! extensions and trailers are skipped; the body length is the sum of the
//! chunk sizes), no body (1xx interim responses are skipped, 204 and 304 have
//! none) or, with neither header, a body that ends when the server closes.
//! Any other transfer coding is an error. A 2xx response whose body length is
//! right (when [`HttpLoad::expect_body_bytes`] is given) is a success;
//! another status or body length is counted in `errors`, and the connection
//! stays open unless the response said otherwise.
//!
//! Closed connections: after a response with `Connection: close` (or an
//! HTTP/1.0 response without `keep-alive`), the connection is re-opened and
//! counted in `reconnects`, not as an error; that is how nginx ends a
//! connection after `keepalive_requests`. A connection that had completed at
//! least one response and is then closed or reset by the server before any
//! byte of the next response arrives (the server's idle close racing the next
//! request) is re-opened too, and the request sent again; that is no error
//! either, and its latency still runs from its first send (closed loop) or its
//! intended time (open loop). A close or reset in the middle of a response, on
//! a fresh connection before its first response, or a malformed response is an
//! error; the connection is then re-opened (also counted in `reconnects`,
//! which counts every re-open) and the next request goes out. A failed
//! connect is an error and is retried after [`RECONNECT_BACKOFF`].
//!
//! # Percentiles
//!
//! Latencies are recorded in nanoseconds in an HDR histogram per thread (3
//! significant digits: a value's bucket is at most 1/1024 of it wide),
//! merged at the end and reported in microseconds. `value_at_quantile(q)` is
//! vmbench's nearest rank ([`crate::stats::percentile::nearest_rank`]) taken
//! over the quantised values: it finds the bucket holding the value of rank
//! ⌈q·n⌉ and returns that bucket's upper edge. So a reported percentile is
//! never below the nearest-rank value of the raw latencies and at most 0.1 %
//! above it (the test `histogram_quantiles_are_nearest_rank` checks this on a
//! known data set). `max` is the largest value's bucket edge likewise; `mean`
//! is over the bucket midpoints.

use hdrhistogram::Histogram;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// One HTTP load: what to ask for, on how many connections, for how long.
#[derive(Debug, Clone)]
pub struct HttpLoad {
    /// Request target (origin form), e.g. `/`.
    pub path: String,
    /// `Host` header value.
    pub host: String,
    /// Keep-alive connections in total.
    pub connections: usize,
    /// OS threads the connections are spread over (≥ 1; more than
    /// `connections` are not started).
    pub threads: usize,
    /// Load applied but not recorded, before the timed window.
    pub warmup: Duration,
    /// The timed window.
    pub duration: Duration,
    /// If `Some`, a response whose body length differs is an error.
    pub expect_body_bytes: Option<usize>,
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loop {
    /// Each connection sends its next request as soon as the previous
    /// response is complete.
    Closed,
    /// A constant schedule of `rate` requests/s across all connections;
    /// latencies count from the intended send times.
    Open { rate: f64 },
}

pub use super::Latency;

/// What one [`run`] measured.
#[derive(Debug, Clone)]
pub struct HttpOutcome {
    /// Responses completed with a 2xx (and the expected body length) within
    /// the timed window.
    pub requests: u64,
    /// Non-2xx responses, wrong body lengths, malformed responses and
    /// connection failures within the window.
    pub errors: u64,
    /// Text of the first error within the window.
    pub first_error: Option<String>,
    /// Connections re-opened within the window, whatever the reason (see
    /// the module doc; a `Connection: close` is not an error, the rest are
    /// counted in `errors` too).
    pub reconnects: u64,
    /// The timed window, for host CPU per request.
    pub window_start: Instant,
    pub window_end: Instant,
    /// `requests` / window seconds.
    pub achieved_rps: f64,
    /// Open loop: the rate asked for.
    pub intended_rps: Option<f64>,
    /// Open loop: the asked rate was applied (see the module doc); closed
    /// loop: `true`.
    pub kept_up: bool,
    /// Latencies of the requests counted in `requests`.
    pub latency: Latency,
    /// Requests due in the window that had not completed at its end (in
    /// flight, or in the open loop not yet sent).
    pub unfinished: u64,
    /// Open loop: the generator's own lateness for sends the schedule made
    /// a connection wait for (intended instant to actual send), in µs. Its
    /// count is 0 when no connection ever waited for the schedule: every send
    /// was held up by a late response (the server could not keep up).
    pub send_lag: Option<Latency>,
}

/// Open loop: below this share of the intended rate, `kept_up` is false.
pub const KEPT_UP_SHARE: f64 = 0.95;
/// Open loop: with a median send lag above this, `kept_up` is false. One
/// millisecond is the resolution of wrk2's own timers; a generator later
/// than that at the median adds to every latency it reports.
pub const MAX_MEDIAN_SEND_LAG: Duration = Duration::from_millis(1);
/// How long a failed connect waits before the next try.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// Timeout of one connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Each connection's receive buffer; also the largest response head.
const BUF_BYTES: usize = 16 * 1024;
/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;
/// The histograms' range: 1 ns to an hour.
const HIST_MAX_NS: u64 = 3_600_000_000_000;
/// The epoll token of a thread's timer (connections are 0..n).
const TIMER: u64 = u64::MAX;

/// Runs `load` against `addr` and returns what it measured. Blocks for
/// connecting, `warmup` and `duration`. `Err` only when nothing could be
/// measured: invalid parameters, no connection at all, no successful
/// response in the window.
pub fn run(addr: SocketAddr, load: &HttpLoad, mode: Loop) -> Result<HttpOutcome, String> {
    if load.connections == 0 {
        return Err("an HTTP load needs at least one connection".into());
    }
    if load.threads == 0 {
        return Err("an HTTP load needs at least one thread".into());
    }
    if load.duration.is_zero() {
        return Err("an HTTP load needs a timed window longer than zero".into());
    }
    let rate = match mode {
        Loop::Closed => None,
        Loop::Open { rate } if rate.is_finite() && rate > 0.0 => Some(rate),
        Loop::Open { rate } => return Err(format!("open-loop rate {rate} is not a positive number of requests per second")),
    };
    let plan = Arc::new(Plan {
        addr,
        request: request_bytes(&load.path, &load.host)?.into(),
        expect_body: load.expect_body_bytes.map(|n| n as u64),
        connections: load.connections,
        rate,
        warmup: load.warmup,
        duration: load.duration,
    });
    let threads = load.threads.min(load.connections);
    let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
    let mut workers = Vec::with_capacity(threads);
    for t in 0..threads {
        let globals: Vec<usize> = (t..load.connections).step_by(threads).collect();
        let (go_tx, go_rx) = mpsc::channel::<Option<Instant>>();
        let (plan, ready) = (plan.clone(), ready_tx.clone());
        let spawned = thread::Builder::new()
            .name(format!("vmbench-http-{t}"))
            .spawn(move || worker(plan, globals, ready, go_rx));
        match spawned {
            Ok(handle) => workers.push((go_tx, handle)),
            Err(e) => {
                abort(workers);
                return Err(format!("cannot start an HTTP load thread: {e}"));
            }
        }
    }
    drop(ready_tx);
    let (mut connected, mut connect_error, mut fatal) = (0, None, None);
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok((n, e))) => {
                connected += n;
                connect_error = connect_error.or(e);
            }
            Ok(Err(e)) => fatal = fatal.or(Some(e)),
            Err(_) => fatal = fatal.or(Some("an HTTP load thread ended before connecting".into())),
        }
    }
    if let Some(e) = fatal {
        abort(workers);
        return Err(e);
    }
    if connected == 0 {
        abort(workers);
        let why = connect_error.unwrap_or_else(|| "no connection".into());
        return Err(format!("cannot connect to {addr}: {why}"));
    }
    let t0 = Instant::now();
    for (go, _) in &workers {
        // A worker that has gone away shows up at join.
        let _ = go.send(Some(t0));
    }
    let mut tallies = Vec::with_capacity(threads);
    for (_, handle) in workers {
        match handle.join() {
            Ok(Ok(t)) => tallies.push(t),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("an HTTP load thread panicked".into()),
        }
    }
    outcome(&plan, t0, tallies)
}

/// A started thread: where to send its `t0` (`None`: give up), and its handle.
type Started = (mpsc::Sender<Option<Instant>>, thread::JoinHandle<Result<Tally, String>>);

/// Tells workers waiting for `t0` to give up, and waits for them.
fn abort(workers: Vec<Started>) {
    for (go, handle) in workers {
        let _ = go.send(None);
        let _ = handle.join();
    }
}

/// Merges the threads' tallies into the outcome.
fn outcome(plan: &Plan, t0: Instant, tallies: Vec<Tally>) -> Result<HttpOutcome, String> {
    let window_start = t0 + plan.warmup;
    let window_end = window_start + plan.duration;
    let mut latency = new_histogram();
    let mut lag = new_histogram();
    let (mut requests, mut errors, mut reconnects, mut unfinished) = (0, 0, 0, 0);
    let (mut first_error, mut first_any): (Stamped, Stamped) = (None, None);
    for t in tallies {
        requests += t.requests;
        errors += t.errors;
        reconnects += t.reconnects;
        unfinished += t.unfinished;
        latency.add(&t.latency).map_err(|e| format!("merging latency histograms: {e:?}"))?;
        lag.add(&t.lag).map_err(|e| format!("merging send-lag histograms: {e:?}"))?;
        first_error = earliest(first_error, t.first_error);
        first_any = earliest(first_any, t.first_any);
    }
    if requests == 0 {
        let why = first_error
            .or(first_any)
            .map_or(String::new(), |(_, e)| format!("; first error: {e}"));
        return Err(format!(
            "no successful HTTP response from {} in the {:.3} s window{why}",
            plan.addr,
            plan.duration.as_secs_f64()
        ));
    }
    let achieved_rps = requests as f64 / plan.duration.as_secs_f64();
    let send_lag = plan.rate.map(|_| latency_of(&lag));
    let kept_up = match plan.rate {
        None => true,
        Some(rate) => {
            let lag_ok = lag.is_empty() || lag.value_at_quantile(0.5) <= MAX_MEDIAN_SEND_LAG.as_nanos() as u64;
            achieved_rps >= KEPT_UP_SHARE * rate && lag_ok
        }
    };
    Ok(HttpOutcome {
        requests,
        errors,
        first_error: first_error.map(|(_, e)| e),
        reconnects,
        window_start,
        window_end,
        achieved_rps,
        intended_rps: plan.rate,
        kept_up,
        latency: latency_of(&latency),
        unfinished,
        send_lag,
    })
}

/// An error's text and when it happened, if there was one.
type Stamped = Option<(Instant, String)>;

fn earliest(a: Stamped, b: Stamped) -> Stamped {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A histogram of nanoseconds, 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds")
}

/// The percentiles of a histogram of nanoseconds, in microseconds.
fn latency_of(h: &Histogram<u64>) -> Latency {
    Latency::of(h, h.max(), h.mean())
}

/// The request, built once.
fn request_bytes(path: &str, host: &str) -> Result<Vec<u8>, String> {
    if !(path.starts_with('/') || path == "*") || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "HTTP request target {path:?} is not a path starting with / (without spaces or control characters)"
        ));
    }
    if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("HTTP Host {host:?} is empty or has spaces or control characters"));
    }
    Ok(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: vmbench\r\nAccept: */*\r\n\r\n").into_bytes())
}

/// What every thread of one run shares, read-only.
struct Plan {
    addr: SocketAddr,
    request: Arc<[u8]>,
    expect_body: Option<u64>,
    connections: usize,
    rate: Option<f64>,
    warmup: Duration,
    duration: Duration,
}

/// A thread's report after connecting: how many of its connections are up
/// and the first connect error; `Err` when the thread cannot run at all.
type Ready = Result<(usize, Option<String>), String>;

/// One thread's counts.
struct Tally {
    requests: u64,
    errors: u64,
    reconnects: u64,
    unfinished: u64,
    /// The first error within the window, and the first at all (for the
    /// message when nothing succeeded).
    first_error: Stamped,
    first_any: Stamped,
    latency: Histogram<u64>,
    lag: Histogram<u64>,
}

fn worker(plan: Arc<Plan>, globals: Vec<usize>, ready: mpsc::Sender<Ready>, go: mpsc::Receiver<Option<Instant>>) -> Result<Tally, String> {
    let mut w = match Worker::new(plan, &globals) {
        Ok(w) => w,
        Err(e) => {
            let e = format!("cannot set up an HTTP load thread: {e}");
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    let (up, first) = w.connect_all();
    let _ = ready.send(Ok((up, first)));
    match go.recv() {
        Ok(Some(t0)) => {
            let tally = w.run(t0);
            super::account_thread_cpu();
            tally
        }
        // Aborted: nobody reads this.
        _ => Err("aborted".into()),
    }
}

/// Where a connection is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Open loop: waiting for the intended time of its next request.
    Wait(Instant),
    /// Not connected; the next connect is due then.
    Down(Instant),
    /// Writing the request (the socket buffer was full).
    Write,
    /// Request sent, reading the response.
    Read,
}

struct Conn {
    /// Its index among all the run's connections (the open-loop schedule).
    g: usize,
    stream: Option<TcpStream>,
    state: State,
    /// Index of its current request (the open-loop schedule).
    k: u64,
    /// Where the current request's latency counts from.
    timed_from: Instant,
    /// Responses completed on the current TCP connection.
    served: u64,
    /// TCP connections opened so far.
    opened: u64,
    /// Whether any byte of the current response has arrived.
    got_bytes: bool,
    /// The current request is to be sent again on a new connection.
    resend: bool,
    /// Registered for EPOLLOUT (only while a write is stuck).
    want_out: bool,
    written: usize,
    resp: Response,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
}

struct Worker {
    plan: Arc<Plan>,
    epoll: Epoll,
    timer: Timer,
    conns: Vec<Conn>,
    /// Due instants of `Wait` and `Down` connections. An entry whose
    /// connection has since moved on is stale and skipped.
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    t0: Instant,
    start: Instant,
    end: Instant,
    tally: Tally,
}

impl Worker {
    fn new(plan: Arc<Plan>, globals: &[usize]) -> io::Result<Worker> {
        let epoll = Epoll::new()?;
        let timer = Timer::new()?;
        epoll.add(timer.fd(), libc::EPOLLIN as u32, TIMER)?;
        let now = Instant::now();
        let conns = globals
            .iter()
            .map(|&g| Conn {
                g,
                stream: None,
                state: State::Down(now),
                k: 0,
                timed_from: now,
                served: 0,
                opened: 0,
                got_bytes: false,
                resend: false,
                want_out: false,
                written: 0,
                resp: Response::new(),
                buf: vec![0u8; BUF_BYTES].into_boxed_slice(),
                pos: 0,
                filled: 0,
            })
            .collect::<Vec<_>>();
        let heap = BinaryHeap::with_capacity(2 * conns.len() + 16);
        Ok(Worker {
            plan,
            epoll,
            timer,
            conns,
            heap,
            t0: now,
            start: now,
            end: now,
            tally: Tally {
                requests: 0,
                errors: 0,
                reconnects: 0,
                unfinished: 0,
                first_error: None,
                first_any: None,
                latency: new_histogram(),
                lag: new_histogram(),
            },
        })
    }

    /// Opens every connection before the clock starts; those that fail are
    /// retried once the run begins.
    fn connect_all(&mut self) -> (usize, Option<String>) {
        let (mut up, mut first) = (0, None);
        for i in 0..self.conns.len() {
            match self.open(i) {
                Ok(()) => up += 1,
                Err(e) => first = first.or(Some(e.to_string())),
            }
        }
        (up, first)
    }

    /// A new TCP connection for connection `i`, registered with epoll.
    fn open(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.conns[i];
        c.stream = None;
        let s = TcpStream::connect_timeout(&self.plan.addr, CONNECT_TIMEOUT)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        self.epoll.add(s.as_raw_fd(), libc::EPOLLIN as u32, i as u64)?;
        c.stream = Some(s);
        c.served = 0;
        c.want_out = false;
        c.opened += 1;
        Ok(())
    }

    fn run(mut self, t0: Instant) -> Result<Tally, String> {
        self.t0 = t0;
        self.start = t0 + self.plan.warmup;
        self.end = self.start + self.plan.duration;
        let now = Instant::now();
        for i in 0..self.conns.len() {
            if self.conns[i].stream.is_some() {
                self.proceed(i, now);
            } else {
                self.retry_at(i, now);
            }
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        loop {
            let now = Instant::now();
            if now >= self.end {
                break;
            }
            // Entries pushed while these run are due at or after `now`'s
            // successors: they wait for the next turn, so a connection that
            // fails at once cannot spin here.
            while let Some(&Reverse((at, i))) = self.heap.peek() {
                if at > now {
                    break;
                }
                self.heap.pop();
                self.due(i, at);
            }
            let deadline = self.heap.peek().map_or(self.end, |r| r.0 .0.min(self.end));
            self.timer.arm(deadline).map_err(|e| format!("HTTP load timer: {e}"))?;
            let n = self
                .epoll
                .wait(&mut events, 100)
                .map_err(|e| format!("HTTP load epoll_wait: {e}"))?;
            for ev in &events[..n] {
                let (token, flags) = (ev.u64, ev.events);
                if token == TIMER {
                    self.timer.clear();
                } else {
                    self.event(token as usize, flags);
                }
            }
        }
        self.tally.unfinished = self.unfinished();
        Ok(self.tally)
    }

    fn in_window(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }

    /// Counts an error at `now` (if in the window) and keeps its text if it
    /// is the first; `msg` is only built then.
    fn error(&mut self, now: Instant, msg: impl FnOnce() -> String) {
        let counted = self.in_window(now);
        if counted {
            self.tally.errors += 1;
        }
        let keep_window = counted && self.tally.first_error.is_none();
        if keep_window || self.tally.first_any.is_none() {
            let m = msg();
            if keep_window {
                self.tally.first_error = Some((now, m.clone()));
            }
            if self.tally.first_any.is_none() {
                self.tally.first_any = Some((now, m));
            }
        }
    }

    /// The intended send time of connection `g`'s `k`-th request.
    fn intended(&self, rate: f64, g: usize, k: u64) -> Instant {
        let secs = (k as f64 * self.plan.connections as f64 + g as f64) / rate;
        Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| self.t0.checked_add(d))
            .unwrap_or(self.end + Duration::from_secs(3600))
    }

    /// A heap entry came due.
    fn due(&mut self, i: usize, at: Instant) {
        match self.conns[i].state {
            State::Wait(w) if w == at => {
                let now = Instant::now();
                if self.in_window(now) {
                    self.tally.lag.saturating_record(nanos(now.saturating_duration_since(at)));
                }
                self.send(i, at);
            }
            State::Down(d) if d == at => self.reopen(i),
            _ => {}
        }
    }

    /// Connection `i` is connected and idle: sends its next request now or
    /// schedules it.
    fn proceed(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        let resend = std::mem::take(&mut c.resend);
        match self.plan.rate {
            None => {
                let from = if resend { c.timed_from } else { now };
                self.send(i, from);
            }
            Some(rate) => {
                let (g, k) = (c.g, c.k);
                let due = self.intended(rate, g, k);
                if due <= now {
                    self.send(i, due);
                } else {
                    self.conns[i].state = State::Wait(due);
                    self.heap.push(Reverse((due, i)));
                }
            }
        }
    }

    /// Starts writing the current request, its latency counting from `from`.
    fn send(&mut self, i: usize, from: Instant) {
        let c = &mut self.conns[i];
        c.timed_from = from;
        c.written = 0;
        c.got_bytes = false;
        c.resp.reset();
        c.pos = 0;
        c.filled = 0;
        c.state = State::Write;
        self.write(i);
    }

    fn write(&mut self, i: usize) {
        let len = self.plan.request.len();
        loop {
            let c = &mut self.conns[i];
            let Some(s) = c.stream.as_mut() else { return };
            match s.write(&self.plan.request[c.written..]) {
                Ok(0) => return self.fail(i, "the connection accepted no more bytes of the request".into()),
                Ok(n) => {
                    c.written += n;
                    if c.written == len {
                        c.state = State::Read;
                        if c.want_out {
                            c.want_out = false;
                            if let Err(e) = self.epoll.modify(s.as_raw_fd(), libc::EPOLLIN as u32, i as u64) {
                                self.fail(i, format!("epoll: {e}"));
                            }
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !c.want_out {
                        c.want_out = true;
                        if let Err(e) = self.epoll.modify(s.as_raw_fd(), (libc::EPOLLIN | libc::EPOLLOUT) as u32, i as u64) {
                            self.fail(i, format!("epoll: {e}"));
                        }
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lost(i, e),
            }
        }
    }

    fn event(&mut self, i: usize, flags: u32) {
        if self.conns[i].stream.is_none() {
            return;
        }
        match self.conns[i].state {
            State::Write => {
                if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                    self.write(i);
                }
                // Level-triggered: input while still writing (an early answer,
                // a close) must be read or it is reported again and again.
                if flags & libc::EPOLLIN as u32 != 0 && self.conns[i].stream.is_some() {
                    self.read(i);
                }
            }
            State::Read => self.read(i),
            State::Wait(_) => self.read_idle(i),
            State::Down(_) => {}
        }
    }

    /// Input on a connection with no request outstanding: the server closing
    /// it (idle timeout) or sending something unasked.
    fn read_idle(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(s) = c.stream.as_mut() else { return };
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Ok(0) if c.served > 0 => self.reopen_clean(i),
            Ok(0) => self.fail(i, "the server closed a new connection before any request".into()),
            Ok(_) => self.fail(i, "the server sent bytes without a request".into()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => self.lost(i, e),
        }
    }

    fn read(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            if c.pos == c.filled {
                c.pos = 0;
                c.filled = 0;
            } else if c.filled == c.buf.len() {
                if c.pos == 0 {
                    return self.fail(i, format!("a response head or chunk line longer than {BUF_BYTES} bytes"));
                }
                c.buf.copy_within(c.pos..c.filled, 0);
                c.filled -= c.pos;
                c.pos = 0;
            }
            let Some(s) = c.stream.as_mut() else { return };
            match s.read(&mut c.buf[c.filled..]) {
                Ok(0) => {
                    if c.resp.phase == Phase::UntilClose {
                        c.resp.phase = Phase::Done;
                        c.resp.close = true;
                        return self.complete(i);
                    }
                    if !c.got_bytes && c.served > 0 {
                        return self.reopen_clean(i);
                    }
                    let msg = if c.got_bytes {
                        "the server closed the connection in the middle of a response"
                    } else {
                        "the server closed a new connection before its first response"
                    };
                    return self.fail(i, msg.into());
                }
                Ok(n) => {
                    c.filled += n;
                    c.got_bytes = true;
                    if c.state == State::Write {
                        return self.fail(i, "the server answered before the whole request was sent".into());
                    }
                    match c.resp.advance(&c.buf[..c.filled], &mut c.pos) {
                        Ok(true) if c.pos == c.filled => return self.complete(i),
                        Ok(true) => return self.fail(i, "bytes after the end of a response (none was asked for)".into()),
                        Ok(false) => {}
                        Err(e) => return self.fail(i, format!("malformed HTTP response: {e}")),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lost(i, e),
            }
        }
    }

    /// The current response is complete.
    fn complete(&mut self, i: usize) {
        let now = Instant::now();
        let in_window = self.in_window(now);
        let c = &mut self.conns[i];
        c.served += 1;
        c.k += 1;
        let (status, body, close) = (c.resp.status, c.resp.body, c.resp.close);
        let status_ok = (200..300).contains(&status);
        match self.plan.expect_body {
            _ if !status_ok => {
                let reason = String::from_utf8_lossy(c.resp.reason()).into_owned();
                self.error(now, || format!("HTTP status {status} {reason}").trim_end().to_string());
            }
            Some(want) if want != body => self.error(now, || format!("a response body of {body} bytes where {want} were expected")),
            _ => {
                if in_window {
                    self.tally.requests += 1;
                    self.tally
                        .latency
                        .saturating_record(nanos(now.saturating_duration_since(c.timed_from)));
                }
            }
        }
        if close {
            self.reopen(i);
        } else {
            self.proceed(i, now);
        }
    }

    /// A socket error: a reset before any byte of the next response on a
    /// connection that served before is the server's close racing the
    /// request; anything else is an error.
    fn lost(&mut self, i: usize, e: io::Error) {
        let c = &self.conns[i];
        let reset = matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
        );
        if reset && !c.got_bytes && c.served > 0 {
            self.reopen_clean(i);
        } else {
            let during = if c.got_bytes { "reading a response" } else { "sending a request" };
            self.fail(i, format!("connection error while {during}: {e}"));
        }
    }

    /// The server closed a connection that had served, with no response
    /// under way: re-open it and send the outstanding request again, if any.
    fn reopen_clean(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.resend = matches!(c.state, State::Read | State::Write);
        self.reopen(i);
    }

    /// An error on connection `i`: counted; the current request, if any, is
    /// given up; the connection is re-opened on the next turn of the loop
    /// (not here, so a server failing every connection at once cannot
    /// recurse).
    fn fail(&mut self, i: usize, msg: String) {
        let now = Instant::now();
        self.error(now, || msg);
        let c = &mut self.conns[i];
        if matches!(c.state, State::Read | State::Write) {
            c.k += 1;
        }
        c.resend = false;
        self.retry_at(i, now);
    }

    /// Closes connection `i` and schedules a connect at `at`.
    fn retry_at(&mut self, i: usize, at: Instant) {
        let c = &mut self.conns[i];
        c.stream = None;
        c.state = State::Down(at);
        self.heap.push(Reverse((at, i)));
    }

    /// Re-opens connection `i` now and carries on; a failed connect is an
    /// error, retried after [`RECONNECT_BACKOFF`].
    fn reopen(&mut self, i: usize) {
        match self.open(i) {
            Ok(()) => {
                let now = Instant::now();
                if self.conns[i].opened > 1 && self.in_window(now) {
                    self.tally.reconnects += 1;
                }
                self.proceed(i, now);
            }
            Err(e) => {
                let now = Instant::now();
                let addr = self.plan.addr;
                self.error(now, || format!("cannot connect to {addr}: {e}"));
                self.retry_at(i, now + RECONNECT_BACKOFF);
            }
        }
    }

    /// Requests due in the window that had not completed when it ended.
    fn unfinished(&self) -> u64 {
        let mut n = 0;
        for c in &self.conns {
            let outstanding = matches!(c.state, State::Read | State::Write) || c.resend;
            n += match self.plan.rate {
                None => u64::from(outstanding),
                Some(rate) => {
                    // Requests j with t0 + (j·C + g)/rate < end: j < x.
                    let x = (self.end.duration_since(self.t0).as_secs_f64() * rate - c.g as f64) / self.plan.connections as f64;
                    let due = if x > 0.0 { x.ceil() as u64 } else { 0 };
                    due.saturating_sub(c.k)
                }
            };
        }
        n
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Where a response's parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the status line and headers.
    Head,
    /// A `Content-Length` body, this many bytes to go.
    Fixed(u64),
    /// Chunked: expecting a chunk-size line.
    ChunkSize,
    /// Chunked: inside a chunk, this many bytes to go.
    ChunkData(u64),
    /// Chunked: expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked: after the last chunk, trailer lines up to an empty one.
    Trailer,
    /// No length given: the body ends when the server closes.
    UntilClose,
    Done,
}

/// An incremental HTTP/1.x response parser that keeps nothing of the body
/// but its length.
#[derive(Debug, Clone)]
struct Response {
    phase: Phase,
    status: u16,
    /// The server will close the connection after this response.
    close: bool,
    /// Body bytes so far (chunked: payload only).
    body: u64,
    /// The reason phrase, for error messages (truncated).
    reason: [u8; 48],
    reason_len: usize,
}

impl Response {
    fn new() -> Response {
        Response {
            phase: Phase::Head,
            status: 0,
            close: false,
            body: 0,
            reason: [0; 48],
            reason_len: 0,
        }
    }

    fn reset(&mut self) {
        self.phase = Phase::Head;
        self.status = 0;
        self.close = false;
        self.body = 0;
        self.reason_len = 0;
    }

    fn reason(&self) -> &[u8] {
        &self.reason[..self.reason_len]
    }

    /// Parses what it can of `buf[*pos..]`, moving `*pos` past it; `true`
    /// once the response is complete.
    fn advance(&mut self, buf: &[u8], pos: &mut usize) -> Result<bool, String> {
        loop {
            let rest = &buf[*pos..];
            match self.phase {
                Phase::Done => return Ok(true),
                Phase::Head => {
                    let Some(end) = find_head_end(rest) else { return Ok(false) };
                    // The status line and each header line with its CRLF.
                    self.head(&rest[..end + 2])?;
                    *pos += end + 4;
                }
                Phase::Fixed(left) | Phase::ChunkData(left) => {
                    let n = left.min(rest.len() as u64);
                    self.body += n;
                    *pos += n as usize;
                    let chunked = matches!(self.phase, Phase::ChunkData(_));
                    self.phase = match (left - n, chunked) {
                        (0, false) => Phase::Done,
                        (0, true) => Phase::ChunkEnd,
                        (more, false) => Phase::Fixed(more),
                        (more, true) => Phase::ChunkData(more),
                    };
                    if n == 0 {
                        return Ok(false);
                    }
                }
                Phase::UntilClose => {
                    self.body += rest.len() as u64;
                    *pos = buf.len();
                    return Ok(false);
                }
                Phase::ChunkSize | Phase::Trailer => {
                    let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() > MAX_LINE {
                            return Err(format!("a chunk-size or trailer line longer than {MAX_LINE} bytes"));
                        }
                        return Ok(false);
                    };
                    let line = &rest[..eol];
                    *pos += eol + 2;
                    self.phase = match self.phase {
                        Phase::ChunkSize => match chunk_size(line)? {
                            0 => Phase::Trailer,
                            n => Phase::ChunkData(n),
                        },
                        _ if line.is_empty() => Phase::Done,
                        _ => Phase::Trailer,
                    };
                }
                Phase::ChunkEnd => {
                    if rest.len() < 2 {
                        return Ok(false);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    *pos += 2;
                    self.phase = Phase::ChunkSize;
                }
            }
        }
    }

    /// Parses a response head (every line CRLF-terminated, without the final
    /// empty line) and sets the body phase.
    fn head(&mut self, head: &[u8]) -> Result<(), String> {
        let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let status_line = lines.next().unwrap_or_default();
        let (http10, status) = match status_line {
            [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor @ (b'0' | b'1'), b' ', d0, d1, d2, rest @ ..]
                if [d0, d1, d2].iter().all(|d| d.is_ascii_digit()) && (rest.is_empty() || rest[0] == b' ') =>
            {
                let status = u16::from(d0 - b'0') * 100 + u16::from(d1 - b'0') * 10 + u16::from(d2 - b'0');
                let reason = rest.get(1..).unwrap_or_default();
                self.reason_len = reason.len().min(self.reason.len());
                self.reason[..self.reason_len].copy_from_slice(&reason[..self.reason_len]);
                (*minor == b'0', status)
            }
            _ => {
                return Err(format!(
                    "status line {:?}",
                    String::from_utf8_lossy(&status_line[..status_line.len().min(64)])
                ))
            }
        };
        let (mut length, mut chunked, mut keep_alive) = (None, false, false);
        self.close = false;
        for line in lines.filter(|l| !l.is_empty()) {
            let colon = line.iter().position(|&b| b == b':').ok_or("a header line without a colon")?;
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = decimal(value).ok_or("an invalid Content-Length")?;
                if length.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Length headers".into());
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                let last = value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
                if !last.eq_ignore_ascii_case(b"chunked") {
                    return Err(format!("unsupported Transfer-Encoding {:?}", String::from_utf8_lossy(value)));
                }
                chunked = true;
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    self.close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        self.close |= http10 && !keep_alive;
        self.status = status;
        self.phase = match status {
            101 => return Err("a 101 Switching Protocols (no upgrade was asked for)".into()),
            // Interim: the real response follows.
            100..=199 => Phase::Head,
            204 | 304 => Phase::Done,
            _ if chunked => Phase::ChunkSize,
            _ => match length {
                Some(0) => Phase::Done,
                Some(n) => Phase::Fixed(n),
                None => {
                    self.close = true;
                    Phase::UntilClose
                }
            },
        };
        Ok(())
    }
}

/// The offset of the CRLFCRLF ending a response head.
fn find_head_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 3 < b.len() {
        match b[i + 3] {
            b'\n' if &b[i..i + 3] == b"\r\n\r" => return Some(i),
            // A match can start no earlier than here: skip the rest.
            b'\r' | b'\n' => i += 1,
            _ => i += 4,
        }
    }
    None
}

fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A chunk-size line: hex digits, then optionally extensions after `;`.
fn chunk_size(line: &[u8]) -> Result<u64, String> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let hex = line[..end].trim_ascii();
    if hex.is_empty() || hex.len() > 15 {
        return Err(format!("chunk size {:?}", String::from_utf8_lossy(hex)));
    }
    hex.iter().try_fold(0u64, |n, &d| {
        let v = (d as char)
            .to_digit(16)
            .ok_or_else(|| format!("chunk size {:?}", String::from_utf8_lossy(hex)))?;
        Ok(n * 16 + u64::from(v))
    })
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An epoll instance.
struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a
        // new descriptor that nothing else owns.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Waits up to `timeout_ms`; 0 events on a signal.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as i32;
        // SAFETY: the kernel writes at most `max` entries into `events`.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        match cvt(n) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// A one-shot monotonic timerfd: nanosecond deadlines for epoll.
struct Timer {
    fd: OwnedFd,
    armed: Option<Instant>,
}

impl Timer {
    fn new() -> io::Result<Timer> {
        // SAFETY: no pointers; a non-negative result is a new descriptor.
        let fd = cvt(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) })?;
        Ok(Timer {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            armed: None,
        })
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the timer fire at `at` (at once if that has passed), unless it
    /// is already set for then.
    fn arm(&mut self, at: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        // A zero it_value would disarm it.
        let d = at.saturating_duration_since(Instant::now()).max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is valid for the call; the old value is not asked for.
        cvt(unsafe { libc::timerfd_settime(self.fd(), 0, &spec, std::ptr::null_mut()) })?;
        self.armed = Some(at);
        Ok(())
    }

    /// Consumes an expiry (the fd stays readable until read).
    fn clear(&mut self) {
        let mut ticks = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `ticks`. A failure (EAGAIN) only
        // means there was nothing to clear.
        let _ = unsafe { libc::read(self.fd(), ticks.as_mut_ptr().cast(), ticks.len()) };
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::percentile::nearest_rank;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const HOST: &str = "test.invalid";
    const BODY: &[u8] = b"hello, vmbench\n";

    /// What the test server does.
    #[derive(Clone, Default)]
    struct Script {
        /// Every n-th response (over all connections) is a 500.
        status_500_every: u64,
        /// Every n-th response's body is one byte short (and says so).
        short_every: u64,
        /// The connection is closed after every n-th response on it ...
        close_every: u64,
        /// ... saying `Connection: close` first, or just closing.
        close_header: bool,
        /// Every response waits this long.
        delay: Duration,
        /// Once, the first request after `.0` since the server started waits `.1`.
        stall: Option<(Duration, Duration)>,
        /// Bodies in chunked encoding (two chunks, an extension and a trailer).
        chunked: bool,
    }

    /// A thread-per-connection HTTP/1.1 server on loopback.
    struct Server {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr);
        }
    }

    fn serve(script: Script) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (served, stalled) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let started = Instant::now();
        let stop2 = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (script, served, stalled) = (script.clone(), served.clone(), stalled.clone());
                thread::spawn(move || serve_conn(conn, &script, &served, &stalled, started));
            }
        });
        Server { addr, stop }
    }

    fn serve_conn(mut conn: TcpStream, s: &Script, served: &AtomicU64, stalled: &AtomicBool, started: Instant) {
        conn.set_nodelay(true).unwrap();
        let (mut buf, mut filled, mut on_conn) = (vec![0u8; 4096], 0, 0u64);
        loop {
            let end = loop {
                if let Some(e) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                    break e + 4;
                }
                match conn.read(&mut buf[filled..]) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => filled += n,
                }
            };
            let request = &buf[..end];
            let good = request.starts_with(b"GET / HTTP/1.1\r\n") && request.windows(20).any(|w| w == b"\r\nHost: test.invalid");
            buf.copy_within(end..filled, 0);
            filled -= end;
            let n = served.fetch_add(1, Ordering::SeqCst) + 1;
            on_conn += 1;
            if let Some((after, stall)) = s.stall {
                if started.elapsed() >= after && !stalled.swap(true, Ordering::SeqCst) {
                    thread::sleep(stall);
                }
            }
            if !s.delay.is_zero() {
                thread::sleep(s.delay);
            }
            let every = |e: u64, n: u64| e > 0 && n % e == 0;
            let status = if !good {
                "400 Bad Request"
            } else if every(s.status_500_every, n) {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let body = if every(s.short_every, n) { &BODY[1..] } else { BODY };
            let close = every(s.close_every, on_conn);
            let mut r = format!("HTTP/1.1 {status}\r\nServer: test\r\n");
            if close && s.close_header {
                r.push_str("Connection: close\r\n");
            }
            let mut r = r.into_bytes();
            if s.chunked {
                let (a, b) = body.split_at(5);
                r.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                r.extend_from_slice(format!("{:x};ext=1\r\n", a.len()).as_bytes());
                r.extend_from_slice(a);
                r.extend_from_slice(format!("\r\n{:X}\r\n", b.len()).as_bytes());
                r.extend_from_slice(b);
                r.extend_from_slice(b"\r\n0\r\nX-Trailer: yes\r\n\r\n");
            } else {
                r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                r.extend_from_slice(body);
            }
            if conn.write_all(&r).is_err() || close {
                return;
            }
        }
    }

    fn load(connections: usize, threads: usize, duration_ms: u64) -> HttpLoad {
        HttpLoad {
            path: "/".into(),
            host: HOST.into(),
            connections,
            threads,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(duration_ms),
            expect_body_bytes: Some(BODY.len()),
        }
    }

    fn ordered(l: &Latency) -> bool {
        0.0 < l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max && l.mean <= l.max
    }

    #[test]
    fn closed_loop_counts_requests_without_errors() {
        let server = serve(Script::default());
        let out = run(server.addr, &load(4, 2, 300), Loop::Closed).unwrap();
        assert!(out.requests > 100, "only {} requests in 300 ms", out.requests);
        assert_eq!((out.errors, out.first_error.as_deref(), out.reconnects), (0, None, 0));
        assert_eq!(out.latency.count, out.requests, "one latency per counted request");
        assert!(ordered(&out.latency), "{:?}", out.latency);
        assert_eq!(out.window_end - out.window_start, Duration::from_millis(300));
        assert!((out.achieved_rps - out.requests as f64 / 0.3).abs() < 1e-6);
        assert!(out.kept_up && out.intended_rps.is_none() && out.send_lag.is_none());
        assert!(out.unfinished <= 4, "at most one in flight per connection: {}", out.unfinished);
    }

    #[test]
    fn more_threads_than_connections_and_chunked_bodies() {
        let server = serve(Script {
            chunked: true,
            ..Script::default()
        });
        let out = run(server.addr, &load(2, 8, 200), Loop::Closed).unwrap();
        assert!(out.requests > 50, "{out:?}");
        assert_eq!(out.errors, 0, "{:?}", out.first_error);
    }

    #[test]
    fn open_loop_shows_a_stall_in_its_percentiles() {
        // 2000/s on one connection; the server stalls 200 ms once, about 100
        // ms into the 450 ms window. The ~400 requests due during the stall
        // go out late, their latencies counted from their intended times
        // (200 ms down to 0): about a third of the window's requests, so p90
        // is well above 50 ms.
        let server = serve(Script {
            stall: Some((Duration::from_millis(150), Duration::from_millis(200))),
            ..Script::default()
        });
        let out = run(server.addr, &load(1, 1, 450), Loop::Open { rate: 2000.0 }).unwrap();
        assert_eq!(out.errors, 0, "{:?}", out.first_error);
        assert!(
            out.latency.p90 >= 50_000.0,
            "open-loop p90 {} µs hides a 200 ms stall",
            out.latency.p90
        );
        assert!(out.latency.max >= 150_000.0, "{:?}", out.latency);
        assert_eq!(out.intended_rps, Some(2000.0));
    }

    #[test]
    fn closed_loop_median_hides_the_same_stall() {
        // The same stall in a closed loop: one slow request among thousands,
        // visible in the maximum only. This is coordinated omission, which
        // the open loop above corrects.
        let server = serve(Script {
            stall: Some((Duration::from_millis(150), Duration::from_millis(200))),
            ..Script::default()
        });
        let out = run(server.addr, &load(1, 1, 450), Loop::Closed).unwrap();
        assert!(out.latency.max >= 190_000.0, "the stall is missing: {:?}", out.latency);
        assert!(out.latency.p50 < 5_000.0, "closed-loop p50 {} µs", out.latency.p50);
        assert!(out.requests > 200, "{out:?}");
    }

    #[test]
    fn bad_status_and_wrong_body_length_are_errors() {
        let server = serve(Script {
            status_500_every: 4,
            ..Script::default()
        });
        let out = run(server.addr, &load(2, 1, 200), Loop::Closed).unwrap();
        assert!(out.errors > 0 && out.requests > 0, "{out:?}");
        // Every 4th of all responses: errors ≈ requests / 3.
        assert!(
            out.errors * 3 <= out.requests + 10 && out.errors * 3 + 10 >= out.requests,
            "{out:?}"
        );
        assert_eq!(out.first_error.as_deref(), Some("HTTP status 500 Internal Server Error"));

        let server = serve(Script {
            short_every: 3,
            ..Script::default()
        });
        let out = run(server.addr, &load(2, 1, 200), Loop::Closed).unwrap();
        assert!(out.errors > 0 && out.requests > 0, "{out:?}");
        let e = out.first_error.unwrap();
        assert!(e.contains("body of 14 bytes where 15 were expected"), "{e}");
        assert_eq!(out.reconnects, 0, "a wrong length is the server's answer, not a broken connection");

        // All wrong: nothing measured, and the message says why.
        let server = serve(Script {
            short_every: 1,
            ..Script::default()
        });
        let e = run(server.addr, &load(1, 1, 100), Loop::Closed).unwrap_err();
        assert!(
            e.contains("no successful HTTP response") && e.contains("where 15 were expected"),
            "{e}"
        );
    }

    #[test]
    fn server_closes_are_reconnects_not_errors() {
        // nginx's keepalive_requests: `Connection: close` on every 5th response.
        let server = serve(Script {
            close_every: 5,
            close_header: true,
            ..Script::default()
        });
        let out = run(server.addr, &load(2, 1, 200), Loop::Closed).unwrap();
        assert_eq!(out.errors, 0, "{:?}", out.first_error);
        let expected = out.requests as i64 / 5;
        assert!(out.reconnects > 0 && (out.reconnects as i64 - expected).abs() <= 4, "{out:?}");

        // Closing without saying so, between responses: the closed loop's
        // next request races the close and is sent again; the open loop's
        // idle connections see the close first. Neither is an error.
        let server = serve(Script {
            close_every: 3,
            close_header: false,
            ..Script::default()
        });
        let out = run(server.addr, &load(2, 1, 200), Loop::Closed).unwrap();
        assert_eq!(out.errors, 0, "{:?}", out.first_error);
        assert!(out.reconnects > 0, "{out:?}");
        let out = run(server.addr, &load(2, 1, 200), Loop::Open { rate: 500.0 }).unwrap();
        assert_eq!(out.errors, 0, "{:?}", out.first_error);
        assert!(out.reconnects > 10, "{out:?}");
    }

    #[test]
    fn a_server_too_slow_for_the_rate_is_not_kept_up() {
        // One connection, 5 ms per response: at most 200/s of the 1000/s asked.
        let server = serve(Script {
            delay: Duration::from_millis(5),
            ..Script::default()
        });
        let out = run(server.addr, &load(1, 1, 300), Loop::Open { rate: 1000.0 }).unwrap();
        assert!(!out.kept_up, "{out:?}");
        assert!(out.achieved_rps < 0.5 * 1000.0, "{out:?}");
        assert!(out.unfinished > 100, "the backlog at the end: {out:?}");
        // The latencies include the growing backlog, far beyond 5 ms.
        assert!(out.latency.p90 > 50_000.0, "{:?}", out.latency);

        // The same rate well within the server's reach is kept up.
        let server = serve(Script::default());
        let out = run(server.addr, &load(2, 1, 300), Loop::Open { rate: 1000.0 }).unwrap();
        assert!(out.kept_up, "{out:?}");
        assert!(out.send_lag.unwrap().count > 0);
    }

    #[test]
    fn nothing_listening_is_an_error_naming_the_address() {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = run(addr, &load(2, 1, 100), Loop::Closed).unwrap_err();
        assert!(e.contains(&addr.to_string()), "{e}");
    }

    #[test]
    fn invalid_parameters_are_errors() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let bad = |f: fn(&mut HttpLoad)| {
            let mut l = load(1, 1, 100);
            f(&mut l);
            run(addr, &l, Loop::Closed).unwrap_err()
        };
        assert!(bad(|l| l.connections = 0).contains("connection"));
        assert!(bad(|l| l.threads = 0).contains("thread"));
        assert!(bad(|l| l.path = "/a b".into()).contains("target"));
        assert!(bad(|l| l.host = "a\r\nX: y".into()).contains("Host"));
        assert!(run(addr, &load(1, 1, 100), Loop::Open { rate: 0.0 }).unwrap_err().contains("rate"));
    }

    #[test]
    fn histogram_quantiles_are_nearest_rank() {
        // Latency-like values in ns, spread over five decades, deterministic.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for n in [1usize, 7, 10, 100, 999, 1000, 4321, 20_000] {
            let mut h = new_histogram();
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = 1_000 + (x % 100_000) * (1 + x % 997);
                h.record(v).unwrap();
                values.push(v as f64);
            }
            values.sort_by(f64::total_cmp);
            for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
                let exact = nearest_rank(&values, q);
                let hist = h.value_at_quantile(q);
                assert_eq!(
                    hist,
                    h.highest_equivalent(exact as u64),
                    "n {n} q {q}: the bucket of the nearest-rank value"
                );
                assert!(
                    hist as f64 >= exact && (hist as f64 - exact) <= exact / 1000.0,
                    "n {n} q {q}: {hist} vs {exact}"
                );
            }
            assert_eq!(h.max(), h.highest_equivalent(*values.last().unwrap() as u64));
            let l = latency_of(&h);
            assert_eq!(l.count, n as u64);
            assert!((l.p99 * 1000.0 - nearest_rank(&values, 0.99)).abs() <= nearest_rank(&values, 0.99) / 1000.0);
        }
    }

    fn parse_in_pieces(bytes: &[u8], piece: usize) -> Result<Response, String> {
        let mut r = Response::new();
        let (mut buf, mut pos) = (Vec::new(), 0);
        for part in bytes.chunks(piece) {
            assert!(r.phase != Phase::Done, "complete before the end");
            buf.extend_from_slice(part);
            if r.advance(&buf, &mut pos)? {
                assert_eq!(pos, buf.len(), "consumed exactly the response");
                return Ok(r);
            }
        }
        Err(format!("incomplete in {:?}", r.phase))
    }

    #[test]
    fn responses_parse_whatever_the_pieces() {
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nabcd\r\na\r\n0123456789\r\n0\r\nT: 1\r\n\r\n";
        let fixed: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nConnection: keep-alive, Close\r\n\r\nabc";
        let interim: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No Content\r\n\r\n";
        for piece in [1, 2, 3, 7, 1000] {
            let r = parse_in_pieces(chunked, piece).unwrap();
            assert_eq!((r.status, r.body, r.close), (200, 14, false));
            let r = parse_in_pieces(fixed, piece).unwrap();
            assert_eq!((r.status, r.body, r.close, r.reason()), (404, 3, true, &b"Not Found"[..]));
            let r = parse_in_pieces(interim, piece).unwrap();
            assert_eq!((r.status, r.body, r.close), (204, 0, true), "HTTP/1.0 without keep-alive closes");
        }
        for bad in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        ] {
            assert!(parse_in_pieces(bad, 1000).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(find_head_end(b"a\r\n\r\n"), Some(1));
        assert_eq!(find_head_end(b"\r\n\r\r\n\r\n"), Some(3));
        assert_eq!(find_head_end(b"abc\r\n\rx\n\r\n"), None);
    }
}
