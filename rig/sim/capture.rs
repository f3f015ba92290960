//! The software meter's pulse-output capture buffer: the edges a pulse output produced and nobody
//! has taken yet, held compactly.
//!
//! A month at full load is some 3 million pulses per output. The meter emits steady stretches of
//! them as one [`PulseRun`] (pulse `k` starts at `origin + ⌈(k·T − a₀)/r⌉` ns, exactly the time the
//! event loop would give it), so waiting a month costs what a handful of events cost, and edges are
//! only materialised when a caller takes them ([`PulseCapture::take_until`]); a caller that only
//! wants the buffer emptied ([`PulseCapture::discard_until`]) never materialises them.
//!
//! The buffer holds at most a fixed number of edges, like a kernel event buffer: older edges are
//! dropped and counted. It must not decide anything about the meter: it stores and replays.

use std::collections::VecDeque;

use crate::time::Timestamp;
use crate::uart::{Edge, Level};

/// ⌈a / b⌉ for b > 0.
fn ceil_div(a: i128, b: i128) -> i128 {
    -((-a).div_euclid(b))
}

/// Pulses `next..=last` of a steady stretch: pulse `k` starts at
/// `origin + max(0, ⌈(k·threshold − a0) / rate⌉)` ns and lasts `width_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PulseRun {
    /// Virtual time (ns) the stretch is counted from.
    pub origin: u64,
    /// The output's accumulator at `origin`.
    pub a0: i128,
    /// Accumulator increase per ns (> 0).
    pub rate: i128,
    /// Accumulator value one pulse costs.
    pub threshold: i128,
    /// First pulse of the run not yet taken whole.
    pub next: u64,
    /// Last pulse of the run.
    pub last: u64,
    /// Whether pulse `next`'s start (falling) edge was already taken or dropped.
    pub started: bool,
    /// Pulse width, ns.
    pub width_ns: u64,
}

impl PulseRun {
    /// Start of pulse `k`, ns.
    pub fn start(&self, k: u64) -> u64 {
        let dt = ceil_div(k as i128 * self.threshold - self.a0, self.rate).max(0);
        self.origin + dt as u64
    }

    /// Edges not yet taken.
    fn edges_left(&self) -> u64 {
        2 * (self.last + 1 - self.next) - self.started as u64
    }

    /// The `i`-th edge not yet taken (0-based).
    fn edge(&self, i: u64) -> Edge {
        let j = i + self.started as u64;
        let s = self.start(self.next + j / 2);
        if j % 2 == 0 {
            Edge {
                t: Timestamp(s),
                level: Level::Low,
            }
        } else {
            Edge {
                t: Timestamp(s + self.width_ns),
                level: Level::High,
            }
        }
    }

    /// Drops the first `n` edges (`n` < [`PulseRun::edges_left`]).
    fn skip(&mut self, n: u64) {
        let j = n + self.started as u64;
        self.next += j / 2;
        self.started = j % 2 == 1;
    }

    /// How many of the edges left are at or before `t`.
    fn edges_until(&self, t: u64) -> u64 {
        // pulses of the run starting at or before x: the largest k with start(k) <= x
        let pulses_by = |x: u64| -> u64 {
            if x < self.origin {
                return 0;
            }
            let reach = self.a0 + self.rate * (x - self.origin) as i128;
            (reach.div_euclid(self.threshold).max(0) as u64).min(self.last)
        };
        let starts = pulses_by(t).saturating_sub(self.next - 1);
        let ends = t
            .checked_sub(self.width_ns)
            .map_or(0, |x| pulses_by(x).saturating_sub(self.next - 1));
        (starts + ends).saturating_sub(self.started as u64)
    }
}

#[derive(Debug, Clone)]
enum Item {
    Edge(Edge),
    Run(PulseRun),
}

/// Edges of one pulse output not yet taken, at most `cap` of them; older ones are dropped.
#[derive(Debug, Clone)]
pub struct PulseCapture {
    items: VecDeque<Item>,
    len: u64,
    cap: u64,
    dropped: u64,
}

impl PulseCapture {
    /// An empty buffer holding at most `cap` edges.
    pub fn new(cap: u64) -> Self {
        PulseCapture {
            items: VecDeque::new(),
            len: 0,
            cap,
            dropped: 0,
        }
    }

    /// Edges held.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no edge is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Edges dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Drops everything held, without counting it as dropped (nobody wants edges).
    pub fn clear(&mut self) {
        self.items.clear();
        self.len = 0;
    }

    /// Appends one edge (edges arrive in time order).
    pub fn push(&mut self, e: Edge) {
        self.items.push_back(Item::Edge(e));
        self.len += 1;
        self.trim();
    }

    /// Appends a steady stretch of pulses (`run.started` false, `run.next <= run.last`).
    pub fn push_run(&mut self, run: PulseRun) {
        self.len += run.edges_left();
        self.items.push_back(Item::Run(run));
        self.trim();
    }

    fn trim(&mut self) {
        if self.len > self.cap {
            let over = self.len - self.cap;
            self.drop_front(over);
            self.dropped += over;
        }
    }

    /// Removes the first `n` edges held (n ≤ len).
    fn drop_front(&mut self, mut n: u64) {
        while n > 0 {
            let Some(front) = self.items.front_mut() else {
                return;
            };
            match front {
                Item::Edge(_) => {
                    self.items.pop_front();
                    self.len -= 1;
                    n -= 1;
                }
                Item::Run(r) => {
                    let left = r.edges_left();
                    if n >= left {
                        self.items.pop_front();
                        self.len -= left;
                        n -= left;
                    } else {
                        r.skip(n);
                        self.len -= n;
                        n = 0;
                    }
                }
            }
        }
    }

    /// How many edges held are at or before `t`.
    fn count_until(&self, t: Timestamp) -> u64 {
        let mut n = 0;
        for item in &self.items {
            match item {
                Item::Edge(e) if e.t <= t => n += 1,
                Item::Edge(_) => break,
                Item::Run(r) => {
                    let k = r.edges_until(t.0);
                    n += k;
                    if k < r.edges_left() {
                        break;
                    }
                }
            }
        }
        n
    }

    /// Moves the edges at or before `t` to `out`, in time order.
    pub fn take_until(&mut self, t: Timestamp, out: &mut Vec<Edge>) {
        let n = self.count_until(t);
        let mut left = n;
        while left > 0 {
            match self.items.front_mut() {
                Some(Item::Edge(e)) => {
                    out.push(*e);
                    self.items.pop_front();
                    left -= 1;
                }
                Some(Item::Run(r)) => {
                    let k = left.min(r.edges_left());
                    out.extend((0..k).map(|i| r.edge(i)));
                    if k == r.edges_left() {
                        self.items.pop_front();
                    } else {
                        r.skip(k);
                    }
                    left -= k;
                }
                None => break,
            }
        }
        self.len -= n;
    }

    /// Removes the edges at or before `t` without materialising them; returns how many.
    pub fn discard_until(&mut self, t: Timestamp) -> u64 {
        let n = self.count_until(t);
        self.drop_front(n);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(next: u64, last: u64) -> PulseRun {
        PulseRun {
            origin: 1_000,
            a0: 30,
            rate: 7,
            threshold: 100,
            next,
            last,
            started: false,
            width_ns: 5,
        }
    }

    /// The edges of pulses `next..=last` one by one, as the event loop emits them.
    fn expanded(r: &PulseRun) -> Vec<Edge> {
        let mut v = Vec::new();
        for k in r.next..=r.last {
            // pulse k is due when a0 + rate·dt first reaches k·threshold
            let mut dt = 0u64;
            while r.a0 + r.rate * (dt as i128) < k as i128 * r.threshold {
                dt += 1;
            }
            v.push(Edge {
                t: Timestamp(r.origin + dt),
                level: Level::Low,
            });
            v.push(Edge {
                t: Timestamp(r.origin + dt + r.width_ns),
                level: Level::High,
            });
        }
        v
    }

    #[test]
    fn a_run_replays_the_times_the_event_loop_gives() {
        let r = run(1, 40);
        let mut c = PulseCapture::new(1_000);
        c.push_run(r);
        assert_eq!(c.len(), 80);
        let mut out = Vec::new();
        c.take_until(Timestamp(u64::MAX), &mut out);
        assert_eq!(out, expanded(&r));
        assert!(c.is_empty());
    }

    #[test]
    fn taking_in_slices_splits_pulses_and_loses_nothing() {
        let r = run(1, 40);
        let want = expanded(&r);
        for step in [1u64, 3, 5, 13, 97] {
            let mut c = PulseCapture::new(1_000);
            c.push(Edge {
                t: Timestamp(999),
                level: Level::High,
            });
            c.push_run(r);
            let mut out = Vec::new();
            let mut t = 990;
            while !c.is_empty() {
                let before = out.len();
                c.take_until(Timestamp(t), &mut out);
                assert!(out[before..].iter().all(|e| e.t.0 <= t));
                t += step;
            }
            assert_eq!(out.len(), want.len() + 1, "step {step}");
            assert_eq!(&out[1..], &want[..], "step {step}");
        }
    }

    #[test]
    fn discarding_counts_what_taking_would_give() {
        let r = run(1, 40);
        for t in [999u64, 1_000, 1_010, 1_015, 1_300] {
            let mut a = PulseCapture::new(1_000);
            a.push_run(r);
            let mut b = a.clone();
            let mut out = Vec::new();
            a.take_until(Timestamp(t), &mut out);
            assert_eq!(b.discard_until(Timestamp(t)), out.len() as u64, "t {t}");
            let (mut ra, mut rb) = (Vec::new(), Vec::new());
            a.take_until(Timestamp(u64::MAX), &mut ra);
            b.take_until(Timestamp(u64::MAX), &mut rb);
            assert_eq!(ra, rb, "t {t}");
        }
    }

    #[test]
    fn a_full_buffer_keeps_the_newest_edges_and_counts_the_rest() {
        let r = run(1, 40);
        let mut c = PulseCapture::new(25);
        c.push_run(r);
        assert_eq!((c.len(), c.dropped()), (25, 55));
        let mut out = Vec::new();
        c.take_until(Timestamp(u64::MAX), &mut out);
        assert_eq!(out, expanded(&r)[55..]);
    }
}
