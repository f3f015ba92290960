//! The software meter: a 351 Combi (or OMNIPOWER) as seen from the module connector, in virtual
//! time.
//!
//! State changes only at events (load steps, logging-period ends, logging dates, pulse-output
//! crossings, input changes, characters), and between events energy is integrated exactly in
//! integer milliwatt-nanoseconds, so the same inputs give the same outputs to the nanosecond. The
//! meter never reads a clock: callers advance it to a [`Timestamp`] and feed it what happened.
//!
//! Units: power in mW (secondary, at the meter terminals), energy in mW·ns, time in ns. True
//! (primary) energy is secondary × the transformer ratio.

use std::collections::VecDeque;

use super::capture::{PulseCapture, PulseRun};
use crate::iec62056::{
    self, parity, AckOptionSelect, BccRule, Identification, Request, Telegram, ACK, ETX, STX,
};
use crate::line::{CharPeer, ScheduledChar};
use crate::meter::calendar;
use crate::meter::config::{BccFault, HourCounterFault, LineEnd, MeterSpec, PulseBasis};
use crate::meter::io::PortRole;
use crate::meter::profile::IoTable;
use crate::meter::readout::{Format, Quantity};
use crate::target::Port;
use crate::time::Timestamp;
use crate::uart::{bit_start, Edge, Level, RxChar, TxFrame, UartRx};

/// mW·ns in one kWh.
pub const MWNS_PER_KWH: i128 = 3_600_000_000_000_000_000;
const PPM: i128 = 1_000_000;
/// Output edges kept per port when nobody takes them (older ones are dropped and counted).
const EDGE_CAP: u64 = 4_000_000;

fn ms_ns(ms: f64) -> u64 {
    (ms * 1e6).round() as u64
}

#[derive(Debug, Clone)]
struct PulseOut {
    port: Port,
    reactive: bool,
    /// Accumulated basis energy × rate, against `threshold`.
    accum: i128,
    rate_num: i128,
    free_at: Timestamp,
    width_ns: u64,
    pause_ns: u64,
    edges: PulseCapture,
    emitted: u64,
}

/// A snapshot of the registers, in display units (kWh, kW, counts).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Registers {
    /// 1.8.0 true active energy, milli-kWh.
    pub active_mkwh: i128,
    /// 1.8.1–1.8.4, milli-kWh.
    pub tariff_mkwh: [i128; 4],
    /// 3.8.0 true reactive energy, milli-kvarh.
    pub reactive_mkvarh: i128,
    /// 96.8.0 hours.
    pub hours: u64,
    /// 96.50.1 pulse input count.
    pub pulse_input: u64,
    /// 1.6.0 / 3.6.0 peaks of the current month, W / var (primary).
    pub peak: (i64, i64),
    /// 1.6.0.1 / 3.6.0.1 last month's peaks, W / var.
    pub last_month_peak: (i64, i64),
    /// 1.2.0 / 3.2.0 accumulated peaks, W / var.
    pub accumulated_peak: (i64, i64),
    /// 0.1 reset counter.
    pub reset_counter: u64,
    /// Info code (alarm input: 100,000).
    pub info: u64,
    /// The tariff that is registering now (1–4).
    pub active_tariff: u8,
}

/// The pulse constant the meter runs on, imp/kWh: its profile's on verified energy, the
/// configured one on true energy (the suites judge by `MeterSpec::pulse_constant`, from the sheet).
fn own_pulse_constant(spec: &MeterSpec) -> u32 {
    match spec.pulse_basis {
        PulseBasis::Secondary => spec.profile.secondary_pulse_constant,
        PulseBasis::Primary => spec.pulse_constant,
    }
}

/// The pulse length the meter runs on, ms, from its own MM/Z8 table.
fn own_pulse_length_ms(spec: &MeterSpec) -> f64 {
    let code = match spec.profile.io_table {
        IoTable::Kk351 => spec.codes.mm.unwrap_or(1),
        IoTable::Z3 => spec.codes.z8.unwrap_or(1),
    };
    crate::meter::io::pulse_length_ms(spec.profile.io_table, code).unwrap_or(spec.pulse_width_ms)
}

/// The length of the peak period, minutes: J's, or the `peak_period_min` defect's.
fn peak_period_min(spec: &MeterSpec) -> u32 {
    spec.faults
        .peak_period_min
        .unwrap_or(spec.logging_period_min)
}

/// The day of the month the meter logs on at midnight: NN, none for NN 00 (module controlled),
/// with the `no_monthly_logging` and `logging_on_first_when_nn00` defects applied.
fn logging_day(spec: &MeterSpec) -> Option<u8> {
    let f = &spec.faults;
    match spec.logging_day {
        _ if f.no_monthly_logging => None,
        0 if f.logging_on_first_when_nn00 => Some(1),
        0 => None,
        d => Some(d),
    }
}

/// The meter's transmit rate when its clock is off by `error_pct` (`None`: on the nominal rate).
fn tx_baud(nominal: u32, error_pct: Option<f64>) -> Option<u32> {
    error_pct.map(|e| (nominal as f64 * (1.0 + e / 100.0)).round().max(1.0) as u32)
}

/// One scheduled frame of `bits` bits at `baud` from `start`.
fn frame(
    byte: u8,
    start: Timestamp,
    bits: u32,
    baud: u32,
    opts: TxFrame,
) -> (ScheduledChar, TxFrame) {
    (
        ScheduledChar {
            byte,
            start,
            end: bit_start(start, bits, baud),
        },
        opts,
    )
}

/// A mode C identification sent; the data message waits for the acknowledgement.
#[derive(Debug, Clone)]
struct AwaitAck {
    /// The data message's characters (from STX), with the faults applied.
    data: Vec<u8>,
    /// Index of `data[0]` in the whole answer (for `parity_error_at`, `stop_error_at`).
    first_index: usize,
    /// Latest end of the acknowledgement's first character (the reaction limit after the
    /// identification); later, the meter is back in its initial state.
    until: Timestamp,
    /// The acknowledgement's characters so far.
    rx: Vec<u8>,
}

/// Longest wait for the acknowledgement after a mode C identification, ns: the reaction limit
/// tr ≤ 1500 ms of IEC 62056-21 plus one character at 300 baud.
const ACK_WAIT_NS: u64 = 1_500_000_000 + 33_333_334;

/// A healthy meter's time from the end of the acknowledgement to the data message's start bit,
/// ms: inside the standard's 200–1500 ms reaction time.
const HEALTHY_SWITCH_MS: f64 = 250.0;

/// The software meter.
#[derive(Debug, Clone)]
pub struct SoftMeter {
    spec: MeterSpec,
    now: Timestamp,
    start_unix: i64,
    // load
    load_idx: usize,
    load_cycle: u64,
    p_mw: i64,
    q_mvar: i64,
    // energy since t = 0, secondary mW·ns
    e_act: i128,
    e_react: i128,
    e_tariff: [i128; 4],
    // initial registers
    init_act_mkwh: i128,
    init_tariff_mkwh: [i128; 4],
    init_react_mkvarh: i128,
    init_hours: u64,
    pulse_input: u64,
    pulse_input_seen: u64,
    peak: (i64, i64),
    last_month_peak: (i64, i64),
    acc_peak: (i64, i64),
    reset_counter: u64,
    // logging period
    period_start: Timestamp,
    period_e: (i128, i128),
    next_period_end: Timestamp,
    next_logging: Option<Timestamp>,
    // inputs (logical, true = the sheet's "1")
    inputs: [bool; 2],
    alarm: bool,
    // pulse outputs
    outs: Vec<PulseOut>,
    keep_edges: bool,
    // link
    rx_uart: UartRx,
    rx_line: Vec<u8>,
    rx_noise: bool,
    deaf_until: Timestamp,
    tx: VecDeque<(ScheduledChar, TxFrame)>,
    /// End of the last character of the answer being sent (requests before it are ignored).
    busy_until: Timestamp,
    /// Whether `echo_request` is played here, character by character (a character link such as
    /// `rig sim --link`); the in-process wire echoes bit by bit itself.
    echo_chars: bool,
    readouts: u32,
    await_ack: Option<AwaitAck>,
}

impl SoftMeter {
    /// A meter in its initial state at virtual time zero.
    pub fn new(spec: MeterSpec) -> Self {
        let reg = |a: &str| spec.registers.get(a).copied().unwrap_or(0.0);
        let mk = |a: &str| (reg(a) * 1000.0).round() as i128;
        let kw = |a: &str| (reg(a) * 1000.0).round() as i64;
        let start_unix =
            calendar::days_from_civil(spec.start.year, spec.start.month, spec.start.day) * 86_400
                + spec.start.secs as i64;
        let mut outs = Vec::new();
        for port in Port::ALL {
            let reactive = match spec.io.role(port) {
                PortRole::ActiveOut => false,
                PortRole::ReactiveOut => true,
                _ => continue,
            };
            let err_ppm =
                (spec.faults.pulse_constant_error_pct.unwrap_or(0.0) * 1e4).round() as i128;
            outs.push(PulseOut {
                port,
                reactive,
                accum: 0,
                rate_num: own_pulse_constant(&spec) as i128 * (PPM + err_ppm),
                free_at: Timestamp::ZERO,
                width_ns: ms_ns(
                    spec.faults
                        .pulse_width_ms
                        .unwrap_or_else(|| own_pulse_length_ms(&spec)),
                ),
                pause_ns: ms_ns(
                    spec.faults
                        .pulse_pause_ms
                        .unwrap_or(spec.profile.min_pause_ms),
                ),
                edges: PulseCapture::new(EDGE_CAP),
                emitted: 0,
            });
        }
        let period_ns = peak_period_min(&spec) as u64 * 60 * 1_000_000_000;
        let period_s = peak_period_min(&spec) as i64 * 60;
        let next_boundary_unix = (start_unix.div_euclid(period_s) + 1) * period_s;
        let next_period_end = Timestamp(((next_boundary_unix - start_unix) as u64) * 1_000_000_000);
        debug_assert!(next_period_end.0 <= period_ns);
        let next_logging = logging_day(&spec).map(|day| {
            Timestamp(
                ((calendar::next_logging(start_unix, day) - start_unix) as u64) * 1_000_000_000,
            )
        });
        let first = spec.load.steps[0];
        SoftMeter {
            init_act_mkwh: mk("1.8.0"),
            init_tariff_mkwh: [mk("1.8.1"), mk("1.8.2"), mk("1.8.3"), mk("1.8.4")],
            init_react_mkvarh: mk("3.8.0"),
            init_hours: reg("96.8.0") as u64,
            pulse_input: reg("96.50.1") as u64,
            pulse_input_seen: 0,
            peak: (kw("1.6.0"), kw("3.6.0")),
            last_month_peak: (kw("1.6.0.1"), kw("3.6.0.1")),
            acc_peak: (kw("1.2.0"), kw("3.2.0")),
            reset_counter: reg("0.1") as u64,
            now: Timestamp::ZERO,
            start_unix,
            load_idx: 0,
            load_cycle: 0,
            p_mw: first.active_mw,
            q_mvar: first.reactive_mvar,
            e_act: 0,
            e_react: 0,
            e_tariff: [0; 4],
            period_start: Timestamp::ZERO,
            period_e: (0, 0),
            next_period_end,
            next_logging,
            inputs: [false; 2],
            alarm: false,
            outs,
            rx_uart: UartRx::new(spec.baud),
            rx_line: Vec::new(),
            rx_noise: false,
            deaf_until: Timestamp::ZERO,
            tx: VecDeque::new(),
            busy_until: Timestamp::ZERO,
            echo_chars: true,
            readouts: 0,
            await_ack: None,
            keep_edges: true,
            spec,
        }
    }

    /// The meter's configuration.
    pub fn spec(&self) -> &MeterSpec {
        &self.spec
    }

    /// The meter's virtual time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Number of answers started so far.
    pub fn readouts(&self) -> u32 {
        self.readouts
    }

    /// Whether the meter plays `echo_request` itself, one character after each received one
    /// (true by default, for character links); a wire that echoes bit by bit turns it off.
    pub fn set_echo_chars(&mut self, on: bool) {
        self.echo_chars = on;
    }

    /// Whether pulse-output edges are kept for [`SoftMeter::take_port_edges`] (the default). A
    /// meter served where nothing can read its pins — `rig sim --link`, whose pty carries
    /// characters only — turns this off, so it does not pile up edges nobody takes (1.44 million a
    /// day, 22 MiB, at the default load, up to 4 million per port). Pulses are still timed and
    /// counted ([`SoftMeter::pulses_emitted`]).
    pub fn set_keep_port_edges(&mut self, keep: bool) {
        self.keep_edges = keep;
        if !keep {
            for o in &mut self.outs {
                o.edges.clear();
            }
        }
    }

    /// Pulses emitted on `port` so far.
    pub fn pulses_emitted(&self, port: Port) -> u64 {
        self.outs
            .iter()
            .find(|o| o.port == port)
            .map_or(0, |o| o.emitted)
    }

    fn threshold() -> i128 {
        MWNS_PER_KWH * PPM
    }

    fn basis_power(&self, o: &PulseOut) -> i128 {
        let p = if o.reactive { self.q_mvar } else { self.p_mw } as i128;
        match self.spec.pulse_basis {
            PulseBasis::Secondary => p,
            PulseBasis::Primary => p * self.spec.ratio as i128,
        }
    }

    fn next_load_change(&self) -> Option<Timestamp> {
        let steps = &self.spec.load.steps;
        if self.load_idx + 1 < steps.len() {
            Some(Timestamp(
                self.load_cycle + steps[self.load_idx + 1].offset_ns,
            ))
        } else {
            self.spec
                .load
                .repeat_ns
                .map(|r| Timestamp(self.load_cycle + r))
        }
    }

    fn next_pulse_due(&self, o: &PulseOut) -> Option<Timestamp> {
        let rate = self.basis_power(o) * o.rate_num;
        if rate <= 0 {
            return None;
        }
        let need = (Self::threshold() - o.accum).max(0);
        let dt = (need + rate - 1) / rate;
        Some(Timestamp(self.now.0 + dt as u64))
    }

    /// The tariff register (1–4) that registers now.
    pub fn active_tariff(&self) -> u8 {
        let crate::meter::io::TariffControl::Module { input1, input2, .. } = self.spec.io.tariff
        else {
            return 1;
        };
        let in1 = self.inputs[input1 as usize];
        let in2 = input2.is_some_and(|p| self.inputs[p as usize]);
        match &self.spec.faults.tariff_map {
            Some(map) => map[(in1 as usize) + 2 * (in2 as usize)],
            None => self.spec.io.tariff.tariff(in1, in2),
        }
    }

    fn integrate_to(&mut self, t: Timestamp) {
        if t <= self.now {
            return;
        }
        let dt = (t.0 - self.now.0) as i128;
        let ea = self.p_mw as i128 * dt;
        self.e_act += ea;
        let k = self.active_tariff() as usize - 1;
        self.e_tariff[k] += ea;
        self.e_react += self.q_mvar as i128 * dt;
        for i in 0..self.outs.len() {
            let add = self.basis_power(&self.outs[i]) * dt * self.outs[i].rate_num;
            self.outs[i].accum += add;
        }
        self.now = t;
    }

    /// The next event that is not a pulse-output crossing: a logging-period end, a logging date,
    /// a load step, the end of a character being received.
    fn next_other_event(&self) -> Timestamp {
        let mut te = self.next_period_end;
        if let Some(l) = self.next_logging {
            te = te.min(l);
        }
        if let Some(l) = self.next_load_change() {
            te = te.min(l);
        }
        if let Some(e) = self.rx_uart.pending_end() {
            te = te.min(e);
        }
        te
    }

    fn next_internal_event(&self) -> Timestamp {
        let mut te = self.next_other_event();
        for o in &self.outs {
            if let Some(d) = self.next_pulse_due(o) {
                te = te.min(d);
            }
        }
        te
    }

    /// Advances the meter to `t`, processing every internal event on the way.
    pub fn advance(&mut self, t: Timestamp) {
        loop {
            let horizon = self.next_other_event().min(t);
            for i in 0..self.outs.len() {
                self.emit_steady_pulses(i, horizon);
            }
            let te = self.next_internal_event();
            if te > t {
                self.integrate_to(t);
                self.poll_uart(t);
                return;
            }
            self.integrate_to(te);
            self.handle_events_at(te);
        }
    }

    /// Emits at once every pulse of output `i` due before `horizon`, when nothing but pulses
    /// happens before it (power is constant, so pulse `k` is due at
    /// `now + ⌈(k·T − accum)/rate⌉`, the time the event loop gives it). Pulses held back by the
    /// previous pulse's width and pause go one by one; once a pulse starts when it is due and the
    /// output cannot fall behind (T/rate ≥ width + pause), the rest form one [`PulseRun`].
    fn emit_steady_pulses(&mut self, i: usize, horizon: Timestamp) {
        let rate = self.basis_power(&self.outs[i]) * self.outs[i].rate_num;
        let span = horizon.0.saturating_sub(self.now.0) as i128;
        if rate <= 0 || span <= 1 {
            return;
        }
        let threshold = Self::threshold();
        let (origin, a0) = (self.now.0, self.outs[i].accum);
        // pulses due strictly before the horizon
        let due_count = (a0 + rate * (span - 1)).div_euclid(threshold);
        if due_count < 2 {
            return;
        }
        let o = &self.outs[i];
        let mut run = PulseRun {
            origin,
            a0,
            rate,
            threshold,
            next: 1,
            last: due_count as u64,
            started: false,
            width_ns: o.width_ns,
        };
        let keeps_up = threshold >= rate * (o.width_ns + o.pause_ns) as i128;
        while run.next <= run.last {
            let due = run.start(run.next);
            if keeps_up && due >= self.outs[i].free_at.0 {
                break;
            }
            self.outs[i].accum -= threshold;
            self.emit_pulse(i, Timestamp(due));
            run.next += 1;
        }
        let o = &mut self.outs[i];
        if run.next <= run.last {
            let n = run.last + 1 - run.next;
            o.accum -= threshold * n as i128;
            o.emitted += n;
            o.free_at = Timestamp(run.start(run.last) + o.width_ns + o.pause_ns);
            if self.keep_edges {
                o.edges.push_run(run);
            }
        }
    }

    fn handle_events_at(&mut self, t: Timestamp) {
        if self.next_load_change() == Some(t) {
            let steps = &self.spec.load.steps;
            if self.load_idx + 1 < steps.len() {
                self.load_idx += 1;
            } else if let Some(r) = self.spec.load.repeat_ns {
                self.load_cycle += r;
                self.load_idx = 0;
            }
            let s = self.spec.load.steps[self.load_idx];
            self.p_mw = s.active_mw;
            self.q_mvar = s.reactive_mvar;
        }
        for i in 0..self.outs.len() {
            if self.outs[i].accum >= Self::threshold() {
                self.outs[i].accum -= Self::threshold();
                self.emit_pulse(i, t);
            }
        }
        if t == self.next_period_end {
            let len = (t.0 - self.period_start.0) as i128;
            if len > 0 {
                self.period_peak(len);
            }
            self.period_start = t;
            self.period_e = (self.e_act, self.e_react);
            self.next_period_end =
                Timestamp(t.0 + peak_period_min(&self.spec) as u64 * 60 * 1_000_000_000);
        }
        if self.next_logging == Some(t) {
            self.billing_reset();
            let unix = self.start_unix + (t.0 / 1_000_000_000) as i64;
            self.next_logging = logging_day(&self.spec).map(|day| {
                Timestamp(
                    ((calendar::next_logging(unix, day) - self.start_unix) as u64) * 1_000_000_000,
                )
            });
        }
        self.poll_uart(t);
    }

    fn emit_pulse(&mut self, i: usize, due: Timestamp) {
        let o = &mut self.outs[i];
        let start = due.max(o.free_at);
        let end = Timestamp(start.0 + o.width_ns);
        o.free_at = Timestamp(end.0 + o.pause_ns);
        o.emitted += 1;
        if !self.keep_edges {
            return;
        }
        o.edges.push(Edge {
            t: start,
            level: Level::Low,
        });
        o.edges.push(Edge {
            t: end,
            level: Level::High,
        });
    }

    /// A logging period of `len` ns ended: its average power (primary, W) updates the peaks.
    fn period_peak(&mut self, len: i128) {
        let f = &self.spec.faults;
        let ratio = if f.peak_secondary {
            1
        } else {
            self.spec.ratio as i128
        };
        let e_act = if f.peak_from_reactive {
            self.e_react - self.period_e.1
        } else {
            self.e_act - self.period_e.0
        };
        // mW → W
        let pa = (e_act * ratio / len) as i64 / 1000;
        let pr = ((self.e_react - self.period_e.1) * self.spec.ratio as i128 / len) as i64 / 1000;
        let keep = f.peak_keep_max.unwrap_or(true);
        self.peak.0 = if keep { self.peak.0.max(pa) } else { pa };
        if !f.reactive_peak_frozen {
            self.peak.1 = if keep { self.peak.1.max(pr) } else { pr };
        }
    }

    fn billing_reset(&mut self) {
        let keep_reactive = self.last_month_peak.1;
        self.last_month_peak = self.peak;
        if self.spec.faults.last_month_reactive_not_moved {
            self.last_month_peak.1 = keep_reactive;
        }
        self.acc_peak.0 += self.peak.0;
        self.acc_peak.1 += self.peak.1;
        self.peak = (0, 0);
        self.reset_counter += 1;
    }

    /// The level at a port's pin changed to `level` (`true` = high) at `t` (the rig drives it).
    /// The module asserts the sheet's logical "1" by pulling the pin low.
    pub fn set_port_level(&mut self, port: Port, level: bool, t: Timestamp) {
        self.advance(t);
        let active = !level;
        let was = self.inputs[port as usize];
        self.inputs[port as usize] = active;
        let rising_to_active = active && !was;
        match self.spec.io.role(port) {
            PortRole::PulseIn if rising_to_active => {
                self.pulse_input_seen += 1;
                let missed = self
                    .spec
                    .faults
                    .pulse_input_miss_every
                    .is_some_and(|n| self.pulse_input_seen % n == 0);
                if !missed {
                    self.pulse_input += 1;
                }
            }
            PortRole::MaxReset | PortRole::DebitingStop if !self.spec.faults.max_reset_ignored => {
                let edge = if self.spec.faults.max_reset_on_release {
                    was && !active
                } else {
                    rising_to_active
                };
                if edge {
                    self.billing_reset();
                }
            }
            PortRole::AlarmIn { inverted } => self.alarm = active != inverted,
            _ => {}
        }
    }

    /// Output edges on `port` up to and including `t`, removed from the meter.
    pub fn take_port_edges(&mut self, port: Port, t: Timestamp, out: &mut Vec<Edge>) {
        if let Some(o) = self.outs.iter_mut().find(|o| o.port == port) {
            o.edges.take_until(t, out);
        }
    }

    /// Drops the output edges on `port` up to and including `t` without producing them; returns
    /// how many there were.
    pub fn discard_port_edges(&mut self, port: Port, t: Timestamp) -> u64 {
        self.outs
            .iter_mut()
            .find(|o| o.port == port)
            .map_or(0, |o| o.edges.discard_until(t))
    }

    /// Output edges dropped because nobody took them (like a kernel event-buffer overflow).
    pub fn dropped_edges(&self, port: Port) -> u64 {
        self.outs
            .iter()
            .find(|o| o.port == port)
            .map_or(0, |o| o.edges.dropped())
    }

    /// A level change on the data-in line (the rig's transmitter), decoded by the meter's UART.
    pub fn data_in_edge(&mut self, e: Edge) {
        self.advance(e.t);
        let mut chars = Vec::new();
        self.rx_uart.push(e, &mut chars);
        for c in chars {
            self.receive_char(c);
        }
    }

    fn poll_uart(&mut self, t: Timestamp) {
        if self.rx_uart.busy() {
            let mut chars = Vec::new();
            self.rx_uart.advance(t, &mut chars);
            for c in chars {
                self.receive_char(c);
            }
        }
    }

    fn receive_char(&mut self, c: RxChar) {
        if self.spec.faults.echo_request && self.echo_chars {
            self.echo(c);
        }
        if !c.stop_ok || !parity::is_even(c.byte) {
            self.rx_line.clear();
            self.noise(c.end);
            return;
        }
        self.line_char(c.byte & 0x7F, c.end);
    }

    fn noise(&mut self, t: Timestamp) {
        self.rx_noise = true;
        if let Some(ms) = self.spec.faults.deaf_after_noise_ms {
            self.deaf_until = self.deaf_until.max(Timestamp(t.0 + ms_ns(ms)));
        }
    }

    fn line_char(&mut self, c: u8, end: Timestamp) {
        if self.ack_char(c, end) {
            return;
        }
        if c == b'/' {
            if !self.rx_line.is_empty() {
                self.noise(end);
            }
            self.rx_line.clear();
            self.rx_line.push(c);
            return;
        }
        if self.rx_line.is_empty() {
            self.noise(end);
            return;
        }
        self.rx_line.push(c);
        if self.rx_line.len() > 40 {
            self.rx_line.clear();
            self.noise(end);
            return;
        }
        if c != b'\n' {
            return;
        }
        let line = std::mem::take(&mut self.rx_line);
        match Request::parse(&line) {
            Ok(req) => {
                let for_me = req
                    .address
                    .as_deref()
                    .is_none_or(|a| a == self.spec.address);
                if !for_me {
                    self.noise(end);
                } else if end >= self.deaf_until && end >= self.busy_until {
                    self.answer(end);
                }
            }
            Err(_) => self.noise(end),
        }
    }

    /// The registers as the meter would display them now.
    pub fn registers(&self) -> Registers {
        let ratio = self.spec.ratio as i128;
        let mk = |e: i128| e * ratio * 1000 / MWNS_PER_KWH;
        Registers {
            active_mkwh: self.init_act_mkwh + mk(self.e_act),
            tariff_mkwh: std::array::from_fn(|i| self.init_tariff_mkwh[i] + mk(self.e_tariff[i])),
            reactive_mkvarh: self.init_react_mkvarh + mk(self.e_react),
            hours: self.init_hours
                + match self.spec.faults.hour_counter {
                    Some(HourCounterFault::Stuck) => 0,
                    Some(HourCounterFault::Half) => self.now.0 / 7_200_000_000_000,
                    Some(HourCounterFault::Minutes) => self.now.0 / 60_000_000_000,
                    None => self.now.0 / 3_600_000_000_000,
                },
            pulse_input: self.pulse_input,
            peak: self.peak,
            last_month_peak: self.last_month_peak,
            accumulated_peak: self.acc_peak,
            reset_counter: self.reset_counter,
            info: if self.alarm { 100_000 } else { 0 },
            active_tariff: self.active_tariff(),
        }
    }

    /// The telegram the meter would send now (registers at this moment, faults applied to content).
    pub fn telegram(&self) -> Telegram {
        let r = self.registers();
        let f = &self.spec.faults;
        let back = if self.readouts >= 1 {
            (f.energy_step_back_kwh.unwrap_or(0.0) * 1000.0).round() as i128
        } else {
            0
        };
        let half = if f.round_energy { 500 } else { 0 };
        let kwh = |m: i128| (((m - back).max(0) + half) / 1000) as f64;
        let kw = |w: i64| w as f64 / 1000.0;
        let mut data_sets = Vec::with_capacity(17);
        for spec in self.spec.profile.readout_layout {
            if f.drop_data_sets.iter().any(|a| a == spec.address) {
                continue;
            }
            let value = match spec.quantity {
                Quantity::CustomerNumber if f.customer_number_zero => 0.0,
                Quantity::CustomerNumber => {
                    self.spec.registers.get("0.0.0").copied().unwrap_or(0.0)
                }
                Quantity::SoftwareRevision => f64::NAN,
                Quantity::ActiveEnergy => {
                    kwh(r.active_mkwh) + f.tariff_sum_offset_kwh.unwrap_or(0.0)
                }
                Quantity::ActiveEnergyTariff(n) => kwh(r.tariff_mkwh[n as usize - 1]),
                Quantity::ReactiveEnergy => kwh(r.reactive_mkvarh),
                Quantity::HourCounter => r.hours as f64,
                Quantity::PulseInput => r.pulse_input as f64,
                Quantity::ActivePeak => kw(r.peak.0),
                Quantity::ReactivePeak => kw(r.peak.1),
                Quantity::LastMonthActivePeak => kw(r.last_month_peak.0),
                Quantity::LastMonthReactivePeak => kw(r.last_month_peak.1),
                Quantity::AccumulatedActivePeak => kw(r.accumulated_peak.0),
                Quantity::AccumulatedReactivePeak => kw(r.accumulated_peak.1),
                Quantity::ResetCounter => r.reset_counter as f64,
            };
            let raw = match spec.format {
                Format::Text { .. } => self
                    .spec
                    .text_registers
                    .get(spec.address)
                    .cloned()
                    .unwrap_or_else(|| "5000D1".into()),
                Format::Number { int, dec } => {
                    let fmt = match f.digits.get(spec.address) {
                        Some(&d) => Format::Number { int: d, dec },
                        None => Format::Number { int, dec },
                    };
                    fmt.format_number(value)
                }
            };
            data_sets.push(spec.data_set(raw));
        }
        Telegram {
            identification: Identification {
                manufacturer: self.spec.profile.manufacturer.into(),
                mode_char: self.mode_char(),
                text: self.spec.type_number.clone(),
            },
            data_sets,
        }
    }

    /// The answer's 7-bit characters, with the content and structure faults applied.
    pub fn answer_chars(&self) -> Vec<u8> {
        let f = &self.spec.faults;
        let tel = self.telegram();
        let rule = match f.bcc {
            Some(BccFault::Sum) => BccRule::Sum,
            Some(BccFault::Xor) => BccRule::Xor,
            Some(BccFault::Corrupt) | None => self.spec.profile.bcc_rule,
        };
        let mut ident = match &f.identification {
            Some(line) => {
                let mut v = line.as_bytes().to_vec();
                v.extend_from_slice(b"\r\n");
                v
            }
            None => tel.identification.encode(),
        };
        let (full, layout) = tel.encode(rule);
        let mut body: Vec<u8> = full[layout.stx + 1..layout.etx].to_vec();
        if f.line_end == Some(LineEnd::Lf) {
            let mut b = Vec::with_capacity(body.len());
            for (i, &c) in body.iter().enumerate() {
                if !(c == b'\r' && body.get(i + 1) == Some(&b'\n')) {
                    b.push(c);
                }
            }
            body = b;
        }
        let mut block = body;
        block.push(ETX);
        let mut bcc = iec62056::bcc(rule, &block);
        if f.bcc == Some(BccFault::Corrupt) {
            let (x, s) = (
                iec62056::bcc(BccRule::Xor, &block),
                iec62056::bcc(BccRule::Sum, &block),
            );
            bcc = (0x30u8..0x7F).find(|&c| c != x && c != s).unwrap_or(0x7F);
        }
        let mut out = Vec::with_capacity(ident.len() + block.len() + 2);
        out.append(&mut ident);
        if !f.omit_stx {
            out.push(STX);
        }
        out.extend_from_slice(&block);
        out.push(bcc);
        if let Some(n) = f.truncate_after {
            out.truncate(n);
        }
        out
    }

    /// The identification's fifth character: a space on the module interface (004), the mode C
    /// baud character on an optical port with mode C (or the `mode_c_baud_char` knob's).
    fn mode_char(&self) -> char {
        match self.spec.mode_c_baud() {
            None => ' ',
            Some(b) => self
                .spec
                .faults
                .mode_c_baud_char
                .as_deref()
                .and_then(|s| s.chars().next())
                .or_else(|| iec62056::mode_c_char(b))
                .unwrap_or(' '),
        }
    }

    fn answer(&mut self, request_end: Timestamp) {
        let f = self.spec.faults.clone();
        if f.silent {
            return;
        }
        let mut chars = self.answer_chars();
        self.readouts += 1;
        self.await_ack = None;
        let nominal = self.spec.baud;
        let tx = tx_baud(nominal, f.tx_clock_error_pct);
        let baud = tx.unwrap_or(nominal);
        let bits = 9 + f.stop_bits.unwrap_or(1).max(1);
        let late = f
            .late_every
            .is_some_and(|n| n > 0 && self.readouts % n == 0);
        let delay = match (late, f.late_response_ms) {
            (true, Some(ms)) => ms,
            _ => self.spec.response_delay_ms(),
        };
        // on a character link the echo goes first: the answer never overlaps it
        let echo_end = self.tx.back().map_or(request_end, |(c, _)| c.end);
        let slash = Timestamp(request_end.0 + ms_ns(delay)).max(echo_end);
        // noise ends where the '/' starts
        let noise_len = f.noise_before_answer.len() as u32;
        let mut start = Timestamp(
            slash
                .0
                .saturating_sub(bit_start(Timestamp::ZERO, bits * noise_len, baud).0)
                .max(request_end.0),
        );
        for &b in &f.noise_before_answer {
            let c = frame(
                b,
                start,
                bits,
                baud,
                TxFrame {
                    bad_stop: false,
                    baud: tx,
                },
            );
            start = c.0.end;
            self.tx.push_back(c);
        }
        start = start.max(slash);
        // mode C: the identification now, the data message after the acknowledgement
        let data = match self.spec.mode_c_baud() {
            Some(_) => {
                let split = chars
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(chars.len(), |i| i + 1);
                Some((chars.split_off(split), split))
            }
            None => None,
        };
        let end = self.schedule(&chars, 0, start, nominal, false);
        self.busy_until = end;
        if let Some((data, first_index)) = data {
            self.await_ack = Some(AwaitAck {
                data,
                first_index,
                until: Timestamp(end.0 + ACK_WAIT_NS),
                rx: Vec::new(),
            });
        }
    }

    /// Schedules `chars` (7-bit; index `first` in the whole answer) from `start` at `nominal`
    /// baud with the framing faults applied; `explicit` fixes the frames' rate (mode C data,
    /// whatever rate the rig's side of the wire is at). Returns the end of the last character.
    fn schedule(
        &mut self,
        chars: &[u8],
        first: usize,
        mut start: Timestamp,
        nominal: u32,
        explicit: bool,
    ) -> Timestamp {
        let f = &self.spec.faults;
        let tx = tx_baud(nominal, f.tx_clock_error_pct);
        let baud = tx.unwrap_or(nominal);
        let opt_baud = if explicit { Some(baud) } else { tx };
        let bits = 9 + f.stop_bits.unwrap_or(1).max(1);
        let gap = ms_ns(f.char_gap_ms.unwrap_or(0.0));
        let line_pause = ms_ns(f.line_pause_ms.unwrap_or(0.0));
        let mut end = start;
        for (k, &c) in chars.iter().enumerate() {
            let i = first + k;
            let mut byte = parity::add_even(c);
            if f.parity_error_at == Some(i) {
                byte ^= 0x80;
            }
            let txf = TxFrame {
                bad_stop: f.stop_error_at == Some(i),
                baud: opt_baud,
            };
            let ch = frame(byte, start, bits, baud, txf);
            end = ch.0.end;
            start = Timestamp(ch.0.end.0 + gap + if c == b'\n' { line_pause } else { 0 });
            self.tx.push_back(ch);
        }
        end
    }

    /// A character while a mode C identification waits for its acknowledgement: collects
    /// `ACK V Z Y` CR LF and answers it. Returns whether the character was taken.
    fn ack_char(&mut self, c: u8, end: Timestamp) -> bool {
        let Some(w) = &mut self.await_ack else {
            return false;
        };
        if w.rx.is_empty() && (c != ACK || end > w.until) {
            // anything else (or too late): back to the initial state
            self.await_ack = None;
            return false;
        }
        w.rx.push(c);
        if c != b'\n' && w.rx.len() < 6 {
            return true;
        }
        let Some(w) = self.await_ack.take() else {
            return true;
        };
        let f = &self.spec.faults;
        let Ok(ack) = AckOptionSelect::parse(&w.rx) else {
            return true;
        };
        if ack.mode != '0' || f.mode_c_ignore_ack {
            return true;
        }
        let own = self.spec.mode_c_baud().unwrap_or(self.spec.baud);
        // a healthy meter takes the rate the acknowledgement names; one whose identification
        // announced another rate switches to its own
        let rate = if f.mode_c_baud_char.is_some() {
            own
        } else {
            ack.baud()
        };
        let switch = f.mode_c_switch_ms.unwrap_or(HEALTHY_SWITCH_MS);
        let start = Timestamp(end.0 + ms_ns(switch));
        let last = self.schedule(&w.data, w.first_index, start, rate, true);
        self.busy_until = self.busy_until.max(last);
        true
    }

    /// The echo of a request character, as an optical head returns it: on the receive line from
    /// the end of the character, ahead of any answer scheduled later.
    fn echo(&mut self, c: RxChar) {
        let frame = bit_start(Timestamp::ZERO, 10, self.spec.baud).0;
        let ch = ScheduledChar {
            byte: c.byte,
            start: c.end,
            end: Timestamp(c.end.0 + frame),
        };
        let at = self.tx.partition_point(|(x, _)| x.start <= ch.start);
        self.tx.insert(at, (ch, TxFrame::default()));
    }

    /// Scheduled characters (with their frame options) whose start bit begins at or before `until`.
    pub fn take_frames(&mut self, until: Timestamp, out: &mut Vec<(ScheduledChar, TxFrame)>) {
        while self.tx.front().is_some_and(|(c, _)| c.start <= until) {
            out.extend(self.tx.pop_front());
        }
    }

    /// When the character the meter's UART is receiving will be complete.
    pub fn rx_pending_end(&self) -> Option<Timestamp> {
        self.rx_uart.pending_end()
    }

    /// The start of the next scheduled character.
    pub fn next_frame_start(&self) -> Option<Timestamp> {
        self.tx.front().map(|(c, _)| c.start)
    }
}

impl CharPeer for SoftMeter {
    fn baud(&self) -> u32 {
        self.spec.baud
    }

    fn receive(&mut self, byte: u8, end: Timestamp) {
        self.advance(end);
        let start = Timestamp(
            end.0
                .saturating_sub(bit_start(Timestamp::ZERO, 10, self.spec.baud).0),
        );
        self.receive_char(RxChar {
            byte,
            start,
            end,
            stop_ok: true,
            bit_ns: None,
        });
    }

    fn advance(&mut self, now: Timestamp) {
        SoftMeter::advance(self, now);
    }

    fn take_transmit(&mut self, until: Timestamp) -> Vec<ScheduledChar> {
        let mut v = Vec::new();
        self.take_frames(until, &mut v);
        v.into_iter().map(|(c, _)| c).collect()
    }

    fn next_transmit(&self) -> Option<Timestamp> {
        self.next_frame_start()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::config::{LoadStep, DEFAULT_METER};

    /// The default 351 Combi with a repeating load schedule: full load, a pause, reactive only.
    fn meter(width_ms: Option<f64>, pause_ms: Option<f64>) -> SoftMeter {
        // KK 06: R+ out on port 1, A+ out on port 2
        let text = DEFAULT_METER.replace("kk = 5 ", "kk = 6 ");
        let mut spec = MeterSpec::from_toml(&text, "kk06", None).unwrap();
        let step = |s: u64, p: i64, q: i64| LoadStep {
            offset_ns: s * 1_000_000_000,
            active_mw: p,
            reactive_mvar: q,
        };
        // half and full load in turns (a pulse after each rise can come before the last pulse's
        // width and pause are over), then no load, then reactive only
        let mut steps: Vec<_> = (0..25)
            .map(|i| step(37 * i, [2_000_000, 4_554_000][i as usize % 2], 1_200_000))
            .collect();
        steps.push(step(1_000, 0, 0));
        steps.push(step(1_300, 1_000, 2_500_000));
        spec.load.steps = steps;
        spec.load.repeat_ns = Some(2_000 * 1_000_000_000);
        spec.faults.pulse_width_ms = width_ms;
        spec.faults.pulse_pause_ms = pause_ms;
        SoftMeter::new(spec)
    }

    /// Per port: the edges taken, the pulses emitted, the edges dropped.
    type PortState = (Port, Vec<Edge>, u64, u64);

    fn state(m: &mut SoftMeter) -> (Registers, Vec<PortState>) {
        let now = m.now();
        let mut ports = Vec::new();
        for p in Port::ALL {
            let mut e = Vec::new();
            m.take_port_edges(p, now, &mut e);
            ports.push((p, e, m.pulses_emitted(p), m.dropped_edges(p)));
        }
        (m.registers(), ports)
    }

    /// Steady pulses emitted at once give what the event loop gives pulse by pulse: the same
    /// edges to the nanosecond, the same counts and registers; also when the width and pause
    /// hold pulses back (an output that cannot keep up).
    #[test]
    fn a_long_jump_gives_what_small_steps_give() {
        for (w, p) in [
            (None, None),
            (Some(70.0), Some(5.0)),
            (Some(150.0), Some(700.0)),
            (Some(60.0), Some(30.0)),
        ] {
            let end = Timestamp(5_000 * 1_000_000_000);
            let mut jump = meter(w, p);
            jump.advance(Timestamp(777_777_777_777));
            jump.advance(end);
            // steps of 40 ms, under the 79 ms between pulses at full load: at most one pulse due
            // per step, so the event loop emits every pulse
            let mut steps = meter(w, p);
            let mut t = 0;
            while t < end.0 {
                t = (t + 40_000_000).min(end.0);
                steps.advance(Timestamp(t));
            }
            let (a, b) = (state(&mut jump), state(&mut steps));
            assert!(a.1.iter().all(|(_, e, n, _)| !e.is_empty() && *n > 1_000));
            assert_eq!(a, b, "width {w:?} pause {p:?}");
        }
    }

    /// A month at full load costs a handful of events, and edges nobody takes are counted as
    /// dropped beyond the buffer without being produced.
    #[test]
    fn a_month_of_pulses_is_cheap_and_bounded() {
        let mut m = meter(None, None);
        m.advance(Timestamp(31 * 86_400 * 1_000_000_000));
        let p = Port::Port2;
        let n = m.pulses_emitted(p);
        assert!(n > 1_000_000, "{n}");
        assert_eq!(m.dropped_edges(p), 2 * n - EDGE_CAP);
        let mut e = Vec::new();
        m.take_port_edges(p, Timestamp(86_400 * 1_000_000_000), &mut e);
        assert!(e.is_empty());
        assert_eq!(
            m.discard_port_edges(p, m.now()),
            EDGE_CAP,
            "the newest edges are kept"
        );
    }
}
