//! The in-process simulated wire and the [`SimTarget`] backend: the software meter in virtual
//! time behind the same [`Target`] trait as real hardware.
//!
//! Every character the meter sends becomes timed level changes on the data-out line, decoded on
//! the rig side by the same software UART that decodes captured GPIO edges; every pulse is two
//! edges on its port; the rig's request becomes edges on data-in that the meter's own UART decodes.
//! One clock serves the meter, the wire and the rig, and it jumps from event to event, so a 12 s
//! readout costs microseconds and timing is exact to the nanosecond. No I/O, no wall clock.

mod capture;
pub mod healthy;
pub mod meter;

use std::collections::VecDeque;
use std::time::Duration;

use crate::meter::config::MeterSpec;
use crate::target::{
    Clock, DataLink, Drive, ModulePorts, Port, RecvEnd, SentAt, Target, TargetError, Timing,
};
use crate::time::{TimeSource, Timestamp};
use crate::uart::{bit_start, frame_edges, Edge, RxChar, TxFrame, UartRx};

pub use meter::SoftMeter;

/// The software meter on the simulated wire.
#[derive(Debug, Clone)]
pub struct SimTarget {
    meter: SoftMeter,
    now: Timestamp,
    baud: u32,
    data_in: VecDeque<Edge>,
    tx_free_at: Timestamp,
    data_out: VecDeque<Edge>,
    rx: UartRx,
    rx_chars: VecDeque<RxChar>,
    port_level: [bool; 2],
}

impl SimTarget {
    /// A software meter built from `spec`, at virtual time zero.
    pub fn new(spec: MeterSpec) -> Self {
        let baud = spec.baud;
        let mut meter = SoftMeter::new(spec);
        // the simulated wire echoes the request itself, bit for bit (see `send`)
        meter.set_echo_chars(false);
        SimTarget {
            meter,
            now: Timestamp::ZERO,
            baud,
            data_in: VecDeque::new(),
            tx_free_at: Timestamp::ZERO,
            data_out: VecDeque::new(),
            rx: UartRx::new(baud),
            rx_chars: VecDeque::new(),
            port_level: [true, true],
        }
    }

    /// The meter behind the wire (for tests and for records; suites never look here).
    pub fn meter(&self) -> &SoftMeter {
        &self.meter
    }

    /// Runs the meter and the wire until `t`.
    pub fn run_until(&mut self, t: Timestamp) {
        if t < self.now {
            return;
        }
        while let Some(e) = self.data_in.front().copied() {
            if e.t > t {
                break;
            }
            self.data_in.pop_front();
            self.meter.data_in_edge(e);
        }
        self.meter.advance(t);
        let mut frames = Vec::new();
        self.meter.take_frames(t, &mut frames);
        for (c, opts) in frames {
            let baud = opts.baud.unwrap_or(self.baud);
            let (edges, _) = frame_edges(c.byte, c.start, baud, 1, opts);
            self.data_out.extend(edges);
        }
        let mut chars = Vec::new();
        while let Some(e) = self.data_out.front().copied() {
            if e.t > t {
                break;
            }
            self.data_out.pop_front();
            self.rx.push(e, &mut chars);
        }
        self.rx.advance(Timestamp(t.0 + 1), &mut chars);
        self.rx_chars.extend(chars);
        self.now = t;
    }

    /// When the next character on data out will have been received completely, if one is coming.
    fn next_char_done(&self) -> Option<Timestamp> {
        let frame = bit_start(Timestamp::ZERO, 10, self.baud).0;
        let pending = self.rx.pending_end();
        let queued = self.data_out.front().map(|e| Timestamp(e.t.0 + frame));
        let scheduled = self
            .meter
            .next_frame_start()
            .map(|s| Timestamp(s.0 + frame));
        [pending, queued, scheduled].into_iter().flatten().min()
    }

    fn next_meter_input(&self) -> Option<Timestamp> {
        let edge = self.data_in.front().map(|e| e.t);
        [edge, self.meter.rx_pending_end()]
            .into_iter()
            .flatten()
            .min()
    }
}

impl Target for SimTarget {
    fn describe(&self) -> String {
        format!("sim:{}", self.meter.spec().profile.name)
    }

    fn timing(&self) -> Timing {
        Timing {
            data_timing: TimeSource::Edge,
            data_uncertainty_ns: 0,
            pin_uncertainty_ns: 0,
            parity_checked: true,
            virtual_time: true,
        }
    }

    fn try_as_module_ports(&mut self) -> Option<&mut dyn ModulePorts> {
        Some(self)
    }
}

impl Clock for SimTarget {
    fn now(&mut self) -> Result<Timestamp, TargetError> {
        Ok(self.now)
    }

    fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
        self.run_until(t);
        Ok(())
    }
}

impl DataLink for SimTarget {
    fn send(&mut self, bytes: &[u8]) -> Result<SentAt, TargetError> {
        let mut start = self.now.max(self.tx_free_at);
        let echo = self.meter.spec().faults.echo_request;
        for &b in bytes {
            let (edges, end) = frame_edges(b, start, self.baud, 1, TxFrame::default());
            if echo {
                // an optical head returns every bit as it is sent: the same edges on data out
                self.data_out.extend(edges.iter().copied());
                self.data_out.make_contiguous().sort_by_key(|e| e.t);
            }
            self.data_in.extend(edges);
            start = end;
        }
        self.tx_free_at = start;
        Ok(SentAt {
            t: start,
            source: TimeSource::Edge,
            uncertainty_ns: 0,
        })
    }

    fn recv(
        &mut self,
        deadline: Timestamp,
        max_gap: Duration,
        complete: &mut dyn FnMut(&[RxChar]) -> bool,
    ) -> Result<(Vec<RxChar>, RecvEnd), TargetError> {
        let gap = max_gap.as_nanos() as u64;
        let mut got: Vec<RxChar> = Vec::new();
        loop {
            // the rig's characters already sent reach the meter first, so that its reaction is
            // scheduled before the clock moves on (else the step below would jump to the limit
            // and the clock would pass the moment the answer completed)
            if self.next_meter_input().is_some_and(|i| i <= self.now) {
                self.run_until(self.now);
            }
            while let Some(c) = self.rx_chars.pop_front() {
                got.push(c);
                if complete(&got) {
                    return Ok((got, RecvEnd::Complete));
                }
            }
            let gap_at = got.last().map(|c| Timestamp(c.end.0 + gap));
            let limit = gap_at.map_or(deadline, |g| g.min(deadline));
            if self.now >= limit {
                let end = if gap_at.is_some_and(|g| g <= deadline) {
                    RecvEnd::Gap
                } else {
                    RecvEnd::Deadline
                };
                return Ok((got, end));
            }
            // step to the next character, to the meter's reaction to our request, or to the limit
            let mut next = limit;
            if let Some(d) = self.next_char_done() {
                next = next.min(d.max(Timestamp(self.now.0 + 1)));
            }
            if let Some(i) = self.next_meter_input() {
                if i > self.now {
                    next = next.min(i);
                }
            }
            self.run_until(next);
        }
    }

    fn discard_input(&mut self) -> Result<(), TargetError> {
        self.rx_chars.clear();
        Ok(())
    }

    fn set_baud(&mut self, baud: u32) -> Result<(), TargetError> {
        // both directions switch when the rig's last byte has left (the serial backend drains
        // its write first too); a character on the wire at the old rate after that is decoded
        // at the new one, as on a real line
        self.run_until(self.now.max(self.tx_free_at));
        self.baud = baud.max(1);
        self.rx = UartRx::new(self.baud);
        Ok(())
    }
}

impl ModulePorts for SimTarget {
    fn set_input(&mut self, port: Port, drive: Drive) -> Result<(), TargetError> {
        // deliver pending data-in edges up to now first, then the level change (active is low)
        self.run_until(self.now);
        let level = !drive.is_active();
        if self.port_level[port as usize] != level {
            self.port_level[port as usize] = level;
            self.meter.set_port_level(port, level, self.now);
        }
        Ok(())
    }

    fn take_edges(&mut self, port: Port) -> Result<Vec<Edge>, TargetError> {
        let mut edges = Vec::new();
        self.meter.take_port_edges(port, self.now, &mut edges);
        Ok(edges)
    }

    fn discard_edges(&mut self, port: Port) -> Result<u64, TargetError> {
        Ok(self.meter.discard_port_edges(port, self.now))
    }

    fn dropped_edges(&mut self, port: Port) -> Result<u64, TargetError> {
        Ok(self.meter.dropped_edges(port))
    }
}
