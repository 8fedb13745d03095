//! Reads a target's console: splits bytes into lines, picks out the agent's
//! protocol lines for this launch, and keeps the last lines of everything
//! else for error messages. The parser is pure; [`Console::feed`] is given
//! each chunk with the instant it arrived, so the time a line was read is the
//! time its last byte came in, not the time someone looked.

use crate::protocol::{decode_line, AgentFacts, AgentMessage, LineError};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// Longest line kept whole; the rest of a longer line is dropped. Protocol
/// lines are far shorter, so a longer one is noise.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Console lines kept for error messages.
pub const TAIL_LINES: usize = 30;
/// Longest console line kept for an error message: a guest that prints
/// long lines cannot fill every failed sample (and its reports) with them.
pub const TAIL_LINE_BYTES: usize = 1024;

/// What the agent said on this launch, and when the host read it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AgentReport {
    pub first_byte_at: Option<Instant>,
    pub ready_at: Option<Instant>,
    pub ready: Option<AgentMessage>,
    /// What the agent saw of the target (not sent by the boot workload).
    pub facts: Option<AgentFacts>,
    /// The guest init's own boot phases ([`AgentMessage::Phases`]).
    pub phases: Option<BTreeMap<String, f64>>,
    pub metrics: Option<BTreeMap<String, f64>>,
    /// The port a host-driven workload listens on, once the agent says so.
    pub listening: Option<u16>,
    /// The server an application workload started, as the agent described it.
    pub server: Option<crate::protocol::ServerFacts>,
    pub error: Option<String>,
    /// The agent cannot run this workload on this target at all.
    pub unsupported: Option<String>,
    pub done_at: Option<Instant>,
    /// When a console line first matched the readiness pattern, if one is
    /// watched ([`Console::watching`]).
    pub matched_at: Option<Instant>,
    /// Begins and ends of the agent's regions ([`AgentMessage::Region`]), at
    /// most [`MAX_REGION_EDGES`], in the order read.
    pub regions: Vec<RegionEdge>,
}

/// How many region lines a launch may send; more are ignored, so a guest
/// cannot make vmbench keep an unbounded list.
pub const MAX_REGION_EDGES: usize = 64;

/// One region line: its unit, when the host read it, and for an end the
/// units of work done.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionEdge {
    pub unit: String,
    pub at: Instant,
    pub units: Option<f64>,
}

impl AgentReport {
    /// Each region that began and then ended (the first end of its unit after
    /// its begin), as `(unit, from, to, units)`.
    pub fn closed_regions(&self) -> Vec<(String, Instant, Instant, f64)> {
        let mut open: BTreeMap<&str, Instant> = BTreeMap::new();
        let mut closed = Vec::new();
        for edge in &self.regions {
            match edge.units {
                None => {
                    open.insert(&edge.unit, edge.at);
                }
                Some(units) => {
                    if let Some(from) = open.remove(edge.unit.as_str()) {
                        closed.push((edge.unit.clone(), from, edge.at, units));
                    }
                }
            }
        }
        closed
    }
}

/// A region's unit becomes part of a metric name: short lower-case words.
fn valid_unit(unit: &str) -> bool {
    (1..=32).contains(&unit.len()) && unit.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[derive(Debug)]
pub struct Console {
    nonce: String,
    /// A readiness pattern lines are matched against (`ready = { console = ... }`).
    pattern: Option<regex_lite::Regex>,
    partial: Vec<u8>,
    /// True while discarding the rest of an over-long line.
    overflowing: bool,
    tail: VecDeque<String>,
    pub report: AgentReport,
}

impl Console {
    pub fn new(nonce: &str) -> Self {
        Console {
            nonce: nonce.to_string(),
            partial: Vec::new(),
            overflowing: false,
            tail: VecDeque::with_capacity(TAIL_LINES),
            report: AgentReport::default(),
            pattern: None,
        }
    }

    /// Also notes when a line first matches `pattern` (`report.matched_at`).
    pub fn watching(mut self, pattern: Option<regex_lite::Regex>) -> Self {
        self.pattern = pattern;
        self
    }

    /// Takes the next chunk of console output, read at `at`.
    pub fn feed(&mut self, at: Instant, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.report.first_byte_at.get_or_insert(at);
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.push_bytes(&rest[..pos]);
            self.end_line(at);
            rest = &rest[pos + 1..];
        }
        self.push_bytes(rest);
        self.match_partial(at);
    }

    /// A watched pattern also matches text that has no line end yet, a
    /// prompt like `login: `: tested as if a newline followed, so a pattern
    /// that needs the line's end (`$`) still waits for it.
    fn match_partial(&mut self, at: Instant) {
        let Some(pattern) = self.pattern.as_ref().filter(|_| self.report.matched_at.is_none()) else {
            return;
        };
        if self.partial.is_empty() || self.overflowing {
            return;
        }
        let mut text = String::from_utf8_lossy(&self.partial).into_owned();
        text.push('\n');
        if pattern.is_match(&text) {
            self.report.matched_at = Some(at);
        }
    }

    /// The console closed: a last line without a newline still counts.
    pub fn finish(&mut self, at: Instant) {
        if !self.partial.is_empty() || self.overflowing {
            self.end_line(at);
        }
    }

    /// True once the agent said it has nothing more to say.
    pub fn is_done(&self) -> bool {
        self.report.done_at.is_some()
    }

    /// The last console lines, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        if self.overflowing {
            return;
        }
        let room = MAX_LINE_BYTES - self.partial.len();
        if bytes.len() > room {
            self.partial.extend_from_slice(&bytes[..room]);
            self.overflowing = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, at: Instant) {
        let mut line = String::from_utf8_lossy(&self.partial).into_owned();
        if self.overflowing {
            line.push_str(" [line truncated]");
        }
        self.partial.clear();
        let truncated = std::mem::take(&mut self.overflowing);
        match decode_line(&line, &self.nonce) {
            Ok(msg) if !truncated => self.accept(at, msg),
            Ok(_) => self.keep(line),
            Err(LineError::Malformed(why)) => {
                self.report.error.get_or_insert_with(|| format!("malformed agent line ({why})"));
                self.keep(line);
            }
            Err(LineError::NotProtocol | LineError::WrongNonce) => {
                let line = line.trim_end_matches('\r');
                if self.report.matched_at.is_none() && self.pattern.as_ref().is_some_and(|p| p.is_match(line)) {
                    self.report.matched_at = Some(at);
                }
                self.keep(line.to_string())
            }
        }
    }

    fn accept(&mut self, at: Instant, msg: AgentMessage) {
        match &msg {
            AgentMessage::Ready { .. } => {
                if self.report.ready.is_none() {
                    self.report.ready_at = Some(at);
                    self.report.ready = Some(msg);
                }
            }
            AgentMessage::Facts(facts) => self.report.facts = Some(facts.clone()),
            AgentMessage::Phases(phases) => self.report.phases = Some(phases.clone()),
            AgentMessage::Result { metrics, .. } => self.report.metrics = Some(metrics.clone()),
            AgentMessage::Region { unit, units } => {
                let units_ok = units.is_none_or(crate::metric::possible);
                if valid_unit(unit) && units_ok && self.report.regions.len() < MAX_REGION_EDGES {
                    self.report.regions.push(RegionEdge {
                        unit: unit.clone(),
                        at,
                        units: *units,
                    });
                }
            }
            AgentMessage::Listening { port, server } => {
                self.report.listening = Some(*port);
                self.report.server = server.clone();
            }
            AgentMessage::Error { message } => self.report.error = Some(message.clone()),
            AgentMessage::Unsupported { reason } => self.report.unsupported = Some(reason.clone()),
            AgentMessage::Done => {
                self.report.done_at.get_or_insert(at);
            }
        }
    }

    fn keep(&mut self, line: String) {
        let line = printable(line.trim_end_matches('\r'));
        if line.trim().is_empty() {
            return;
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

/// A console line as it may be shown to people: control characters (a
/// guest's terminal escapes, NULs) written as `\x..` so they cannot act on
/// the terminal or the report that shows them, and cut at [`TAIL_LINE_BYTES`].
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len().min(TAIL_LINE_BYTES));
    for c in line.chars() {
        if out.len() >= TAIL_LINE_BYTES {
            out.push_str(" [line truncated]");
            break;
        }
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A per-launch nonce: 16 hex digits. Only lines carrying it count.
pub fn new_nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode_line;

    fn ready_line(nonce: &str) -> String {
        encode_line(
            nonce,
            &AgentMessage::Ready {
                boottime_ns: 5,
                init_ns: 1,
                pid: 1,
                rss_bytes: 0,
                kernel: "k".into(),
                clocksource: None,
                clock_getres_ns: None,
            },
        )
    }

    #[test]
    fn ready_split_across_chunks_is_timed_by_its_last_byte() {
        let mut c = Console::new("n1");
        let line = ready_line("n1");
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(5);
        let (a, b) = line.as_bytes().split_at(10);
        c.feed(t0, a);
        assert!(c.report.ready.is_none());
        c.feed(t1, b);
        assert_eq!(c.report.ready_at, Some(t1));
        assert_eq!(c.report.first_byte_at, Some(t0));
    }

    fn region(unit: &str, units: Option<f64>) -> Vec<u8> {
        encode_line("n1", &AgentMessage::Region { unit: unit.into(), units }).into_bytes()
    }

    #[test]
    fn regions_pair_each_begin_with_its_end_and_a_guest_cannot_grow_the_list() {
        let mut c = Console::new("n1");
        let t = |ms| Instant::now() + std::time::Duration::from_millis(ms);
        let (t1, t2, t3, t4) = (t(1), t(2), t(3), t(4));
        c.feed(t1, &region("seq_write_mb", None));
        c.feed(t2, &region("seq_write_mb", Some(16.0)));
        // An end with no begin, a name that cannot be part of a metric, an
        // impossible count: none of them makes a window.
        c.feed(t2, &region("rand_read_io", Some(50.0)));
        c.feed(t2, &region("Bad-Name", None));
        c.feed(t3, &region("getppid", None));
        c.feed(t4, &region("getppid", Some(-1.0)));
        assert_eq!(c.report.closed_regions(), vec![("seq_write_mb".to_string(), t1, t2, 16.0)]);
        for _ in 0..1000 {
            c.feed(t4, &region("getppid", None));
        }
        assert_eq!(c.report.regions.len(), MAX_REGION_EDGES);
    }

    #[test]
    fn garbage_and_invalid_utf8_are_kept_not_fatal() {
        let mut c = Console::new("n1");
        let now = Instant::now();
        c.feed(now, b"[ 0.1] booting\n\xff\xfe bad bytes\n");
        c.feed(now, ready_line("n1").as_bytes());
        assert!(c.report.ready.is_some());
        assert_eq!(c.tail().len(), 2);
        assert!(c.tail()[1].contains("bad bytes"));
    }

    #[test]
    fn wrong_nonce_is_ignored() {
        let mut c = Console::new("n1");
        c.feed(Instant::now(), ready_line("old").as_bytes());
        assert!(c.report.ready.is_none());
        assert_eq!(c.tail().len(), 1);
    }

    #[test]
    fn an_endless_line_is_truncated_and_parsing_recovers() {
        let mut c = Console::new("n1");
        let now = Instant::now();
        let junk = vec![b'x'; MAX_LINE_BYTES * 3];
        c.feed(now, &junk);
        c.feed(now, b"\n");
        c.feed(now, ready_line("n1").as_bytes());
        assert!(c.report.ready.is_some());
        let tail = c.tail();
        assert!(tail[0].ends_with("[line truncated]"));
        assert!(tail[0].len() < MAX_LINE_BYTES + 32);
    }

    #[test]
    fn result_error_and_done_are_collected() {
        let mut c = Console::new("n");
        let now = Instant::now();
        let mut metrics = BTreeMap::new();
        metrics.insert("x_ms".to_string(), 1.5);
        c.feed(
            now,
            encode_line(
                "n",
                &AgentMessage::Result {
                    workload: "boot".into(),
                    metrics: metrics.clone(),
                },
            )
            .as_bytes(),
        );
        c.feed(
            now,
            encode_line(
                "n",
                &AgentMessage::Error {
                    message: "disk full".into(),
                },
            )
            .as_bytes(),
        );
        assert!(!c.is_done());
        // The last line may arrive without a newline before the console closes.
        c.feed(now, encode_line("n", &AgentMessage::Done).trim_end().as_bytes());
        c.finish(now);
        assert!(c.is_done());
        assert_eq!(c.report.metrics, Some(metrics));
        assert_eq!(c.report.error.as_deref(), Some("disk full"));
    }

    #[test]
    fn malformed_protocol_line_is_reported() {
        let mut c = Console::new("n");
        c.feed(Instant::now(), b"VMBENCH1 n {\"type\":\n");
        assert!(c.report.error.as_deref().unwrap().starts_with("malformed"));
    }

    #[test]
    fn kept_lines_are_short_and_cannot_drive_a_terminal() {
        let mut c = Console::new("n");
        let long = "z".repeat(10 * TAIL_LINE_BYTES);
        c.feed(Instant::now(), format!("\x1b]0;pwned\x07\x1b[2Jclear\0screen\n{long}\n").as_bytes());
        let tail = c.tail();
        assert_eq!(tail[0], "\\x1b]0;pwned\\x07\\x1b[2Jclear\\x00screen");
        assert!(tail[1].len() < TAIL_LINE_BYTES + 32 && tail[1].ends_with("[line truncated]"));
    }

    #[test]
    fn a_watched_pattern_marks_the_first_matching_line() {
        let t0 = Instant::now();
        let later = t0 + std::time::Duration::from_millis(5);
        let mut c = Console::new("n").watching(Some(regex_lite::Regex::new("^listening on [0-9]+$").unwrap()));
        c.feed(t0, b"starting\r\nlisten");
        assert_eq!(c.report.matched_at, None, "half a line does not count");
        c.feed(later, b"ing on 80\r\nlistening on 81\n");
        assert_eq!(c.report.matched_at, Some(later));
        assert_eq!(c.tail(), ["starting", "listening on 80", "listening on 81"]);
    }

    #[test]
    fn a_prompt_without_a_line_end_matches_unless_the_pattern_needs_the_end() {
        let t0 = Instant::now();
        let later = t0 + std::time::Duration::from_millis(5);
        let mut c = Console::new("n").watching(Some(regex_lite::Regex::new("login:").unwrap()));
        c.feed(t0, b"Debian GNU/Linux 12 vm ttyS0\r\n\r\nvm log");
        assert_eq!(c.report.matched_at, None);
        c.feed(later, b"in: ");
        assert_eq!(c.report.matched_at, Some(later), "the prompt counts when its bytes arrive");
        let mut c = Console::new("n").watching(Some(regex_lite::Regex::new("^listening on [0-9]+$").unwrap()));
        c.feed(t0, b"listening on 8");
        assert_eq!(c.report.matched_at, None, "a `$` waits for the line's end");
        c.feed(later, b"0\n");
        assert_eq!(c.report.matched_at, Some(later));
    }

    #[test]
    fn tail_keeps_only_the_last_lines() {
        let mut c = Console::new("n");
        for i in 0..(TAIL_LINES + 5) {
            c.feed(Instant::now(), format!("line {i}\n").as_bytes());
        }
        let tail = c.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], "line 5");
    }
}
