//! One mode A exchange: a request, the timed answer, its decoding and its judgement — defined
//! once, for every path that reads a meter (`rig run`'s cases, `rig read`, `rig serve`'s module
//! loop).
//!
//! What this module fixes, so that no path can disagree with another:
//! - **Response time** is the start bit of the identification's `/` minus the end of the request's
//!   last stop bit (004_d1f80f13afa7763c.txt, Note 1). An echo of the request or noise before the
//!   `/` is a finding of the decoder, never the start of the answer.
//! - **Completion** comes from the decoder: the answer is over when its BCC has arrived.
//! - **Listening** goes on while the meter keeps sending within the inter-character limit of
//!   IEC 62056-21 (1500 ms). A [`Listening::total`] limit of the rig's own bounds a receive; when
//!   that limit ends it, the outcome is [`Conformance::Undecided`] and names the option that
//!   raises it — never a violation of the meter.
//! - **Judgement** ([`Exchange::assess`]) applies the same rules everywhere: the response window
//!   of the profile, parity and stop bit of every character of the answer, the inter-character
//!   limit, and the strict decoder's violations.
//!
//! Sans-I/O: [`Receiver`] is fed timed characters and says when to stop; [`Exchange`] is the
//! finished observation. The loop that reads a port or a simulated wire lives with the backends'
//! users (`crate::suite::exchange`); nothing here reads a clock or a device.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::decoder::{
    self, DecodeOptions, Decoded, Decoder, Event, FindingKind, Mode, ParityMode, Severity,
};
use super::{parity, AnnouncedMode, BccRule, Identification, ReactionClass};
use crate::meter::profile::Profile;
use crate::time::{TimeSource, Timestamp};
use crate::uart::RxChar;

/// The inter-character limit ta of IEC 62056-21 (referenced by 004 as IEC 61107): at most
/// 1500 ms between two characters of a message.
pub const INTER_CHAR_LIMIT: Duration = Duration::from_millis(1500);

/// The longest reaction time tr IEC 62056-21 allows a meter (1500 ms). The rig waits this long
/// for the identification even where the profile promises less, so a late meter is measured
/// (and fails the profile's window), not cut off.
pub const REACTION_LIMIT: Duration = Duration::from_millis(1500);

/// Latest start of the data message after the end of the mode C acknowledgement: the
/// standard's reaction time tr ≤ 1500 ms (IEC 62056-21 §6.3.3 timing, §6.4.4 protocol mode C).
pub const SWITCH_MAX: Duration = REACTION_LIMIT;

/// Earliest start of the data message after the end of the mode C acknowledgement: the reaction
/// time tr ≥ 200 ms, or ≥ 20 ms when the manufacturer's third letter is lower case (IEC 62056-21
/// §6.3.14 item 22, reaction time). The rig waits as long before it sends the acknowledgement.
pub fn switch_min(ident: &Identification) -> Duration {
    match ident.reaction_class() {
        ReactionClass::Fast20ms => Duration::from_millis(20),
        ReactionClass::Standard200ms => Duration::from_millis(200),
    }
}

/// Which protocol mode the rig reads in (`rig read --mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Mode A only: never acknowledge (the 351's module interface, 004).
    #[default]
    A,
    /// Mode C: acknowledge a mode C identification and switch (any other identification is
    /// read as it comes, as `Auto` does; [`Exchange::mode_finding`] names its mode).
    C,
    /// The identification decides: mode C when its fifth character announces it, else mode A.
    Auto,
}

impl ReadMode {
    /// Whether the rig acknowledges an identification that announces `mode`.
    pub fn acknowledges(self, mode: AnnouncedMode) -> bool {
        matches!(mode, AnnouncedMode::C { .. }) && self != ReadMode::A
    }
}

impl std::str::FromStr for ReadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "a" | "A" => Ok(ReadMode::A),
            "c" | "C" => Ok(ReadMode::C),
            "auto" => Ok(ReadMode::Auto),
            o => Err(format!("unknown mode {o:?} (expected auto, a or c)")),
        }
    }
}

/// The mode C part of an exchange: the acknowledgement the rig sent and the switch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaudSwitch {
    /// The identification's baud character.
    pub baud_char: char,
    /// The rate both sides switched to.
    pub baud: u32,
    /// The rate before the switch.
    pub from_baud: u32,
    /// End of the identification's last character.
    pub identification_end: Timestamp,
    /// End of the acknowledgement's last stop bit (the rig switched here).
    pub ack_end: Timestamp,
    /// Start bit of the first character after the acknowledgement, if one came.
    pub data_start: Option<Timestamp>,
    /// Earliest allowed start of the data message after `ack_end` ([`switch_min`]).
    pub min: Duration,
    /// Latest allowed start ([`SWITCH_MAX`]).
    pub max: Duration,
}

impl BaudSwitch {
    /// Data message start minus the acknowledgement's end, ns.
    pub fn data_after_ack_ns(&self) -> Option<i64> {
        self.data_start.map(|t| t.diff_ns(self.ack_end))
    }
    /// The switch's problems: no data message after the acknowledgement, or one outside
    /// [`BaudSwitch::min`]–[`BaudSwitch::max`].
    pub fn problems(&self) -> Vec<String> {
        let lim = format!(
            "limit {}–{} ms, IEC 62056-21 reaction time after the acknowledgement",
            self.min.as_millis(),
            self.max.as_millis()
        );
        match self.data_after_ack_ns() {
            None => vec![format!(
                "no data message after the acknowledgement (mode C at {} baud; {lim}): the meter ignored it",
                self.baud
            )],
            Some(ns) => {
                let ms = ns as f64 / 1e6;
                if ms < self.min.as_secs_f64() * 1e3 || ms > self.max.as_secs_f64() * 1e3 {
                    vec![format!(
                        "the data message started {} ms after the acknowledgement ({lim})",
                        fmt_ms(ms)
                    )]
                } else {
                    vec![]
                }
            }
        }
    }
}

/// Characters of the 351 Combi's answer to `/?!`, from `/` to the BCC (004's worked example).
pub const EXPECTED_ANSWER_CHARS: usize = 359;

/// What the meter promises for one answer: the profile's response window, its BCC rule and the
/// standard's inter-character limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AnswerRules {
    /// Earliest start of `/` after the request, ms (004 Note 1: 20 ms).
    pub response_min_ms: f64,
    /// Latest start of `/` after the request, ms (004 Note 1: 500 ms).
    pub response_max_ms: f64,
    /// The BCC rule of the profile.
    pub bcc_rule: BccRule,
    /// Longest silence between two characters of the answer.
    pub inter_char_limit: Duration,
}

impl AnswerRules {
    /// The rules a profile promises.
    pub fn from_profile(p: &Profile) -> Self {
        AnswerRules {
            response_min_ms: p.response_min_ms,
            response_max_ms: p.response_max_ms,
            bcc_rule: p.bcc_rule,
            inter_char_limit: INTER_CHAR_LIMIT,
        }
    }
}

/// How long the rig listens. These are the rig's limits, not the meter's promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Listening {
    /// Longest wait for the first character after the request.
    pub first_wait: Duration,
    /// Silence after the last character after which the answer is taken as over (the
    /// inter-character limit, plus one character time for the next character to arrive whole,
    /// plus the timing uncertainty of both characters, so a conforming gap is never cut).
    pub silence: Duration,
    /// The rig-side limit for the whole answer, from the end of the request.
    pub total: Duration,
    /// Most characters taken before giving up on a completion (a rig-side limit too).
    pub max_chars: usize,
}

impl Listening {
    /// Limits that let every conforming answer finish: the standard's reaction limit for the first
    /// character, its inter-character limit between characters, and a total that allows twice
    /// the 351's answer with the longest allowed silence after every character. `char_ns` is the
    /// line time of one character; `uncertainty_ns` the backend's one-sided timing uncertainty.
    pub fn conforming(rules: &AnswerRules, char_ns: u64, uncertainty_ns: u64) -> Self {
        // a character that starts just inside a limit is complete one frame later
        let u = Duration::from_nanos(2 * uncertainty_ns + char_ns);
        let first_wait =
            REACTION_LIMIT.max(Duration::from_secs_f64(rules.response_max_ms / 1e3)) + u;
        let silence = rules.inter_char_limit + u;
        let max_chars = 2 * EXPECTED_ANSWER_CHARS;
        let per_char = Duration::from_nanos(char_ns) + rules.inter_char_limit;
        Listening {
            first_wait,
            silence,
            total: first_wait + per_char * max_chars as u32,
            max_chars,
        }
    }

    /// The same, with the total limit set by the user (`--answer-limit`).
    pub fn with_total(mut self, total: Duration) -> Self {
        self.total = total;
        self
    }
}

/// Why listening ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum AnswerEnd {
    /// The BCC arrived.
    Complete,
    /// Nothing that starts an identification arrived: no character within
    /// [`Listening::first_wait`], or only echo and noise followed by silence.
    NoAnswer {
        /// How long the rig listened after the request, ms.
        waited_ms: f64,
    },
    /// The meter fell silent for longer than the inter-character limit before its BCC.
    Silence {
        /// Silence the rig waited for, ms.
        after_ms: f64,
    },
    /// The rig's own limit ended listening while the meter was still sending within its limits.
    RigLimit {
        /// What the limit was.
        limit: RigLimit,
    },
}

/// In words for people (`rig read`'s table): `complete (the BCC arrived)`, `no answer within
/// 1500 ms`, …; JSON keeps the tagged form.
impl std::fmt::Display for AnswerEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerEnd::Complete => f.write_str("complete (the BCC arrived)"),
            AnswerEnd::NoAnswer { waited_ms } => {
                write!(
                    f,
                    "no answer: nothing that starts an identification within {waited_ms:.0} ms"
                )
            }
            AnswerEnd::Silence { after_ms } => {
                write!(
                    f,
                    "the meter fell silent for {after_ms:.0} ms before its BCC"
                )
            }
            AnswerEnd::RigLimit { limit } => write!(f, "cut: {limit}"),
        }
    }
}

/// Which rig-side limit ended a receive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RigLimit {
    /// The total time, seconds after the request.
    Time {
        /// Seconds.
        seconds: f64,
    },
    /// The number of characters.
    Characters {
        /// Characters.
        count: usize,
    },
}

impl std::fmt::Display for RigLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RigLimit::Time { seconds } => write!(
                f,
                "the rig stopped listening {seconds:.1} s after the request (raise it with --answer-limit for rig run, --timeout-ms for rig read)"
            ),
            RigLimit::Characters { count } => write!(
                f,
                "the rig stopped listening after {count} characters without a BCC (raise it with --answer-limit for rig run, --timeout-ms for rig read)"
            ),
        }
    }
}

/// How well the backend timed the characters and the request's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimingQuality {
    /// Where the character times come from.
    pub source: TimeSource,
    /// One-sided uncertainty of one character time, ns.
    pub uncertainty_ns: u64,
    /// Whether parity bits are seen (false with a UART's own 7E1 that does not report them).
    pub parity_checked: bool,
    /// Where the request's end came from: the backend's usual source, or `serial` when an edge
    /// backend fell back to the serial contract for this request.
    pub request_source: TimeSource,
    /// One-sided uncertainty of the request's end, ns.
    pub request_uncertainty_ns: u64,
}

impl TimingQuality {
    /// Where an interval from the request's end to a character comes from: the coarser of the
    /// two ends (`serial` if either end is serial).
    pub fn interval_source(&self) -> TimeSource {
        if self.request_source == TimeSource::Serial {
            TimeSource::Serial
        } else {
            self.source
        }
    }
}

/// Fed timed characters as they arrive; says when the answer is complete. Pure.
#[derive(Debug, Clone)]
pub struct Receiver {
    request_end: Timestamp,
    timing: TimingQuality,
    rule: BccRule,
    decoder: Decoder,
    events: Vec<Event>,
    chars: Vec<RxChar>,
    identification: Option<usize>,
    ident_line: Option<(Identification, Timestamp)>,
}

impl Receiver {
    /// A receiver for the answer to a request whose last stop bit ended at `request_end`.
    pub fn new(request_end: Timestamp, rule: BccRule, timing: TimingQuality) -> Self {
        Receiver {
            request_end,
            timing,
            rule,
            decoder: Decoder::new(decode_options(Mode::Tolerant, rule, timing.parity_checked)),
            events: Vec::new(),
            chars: Vec::new(),
            identification: None,
            ident_line: None,
        }
    }

    /// One received character (all eight bits, with its start and stop times).
    pub fn push(&mut self, c: RxChar) {
        let b = if self.timing.parity_checked {
            c.byte
        } else {
            c.byte & 0x7F
        };
        self.decoder.push(b, c.start, &mut self.events);
        for e in self.events.drain(..) {
            match e {
                Event::IdentificationStart { offset, .. } => {
                    self.identification.get_or_insert(offset);
                }
                Event::Identification { ident, .. } if self.ident_line.is_none() => {
                    self.ident_line = Some((ident, c.end));
                }
                _ => {}
            }
        }
        self.chars.push(c);
    }

    /// The characters received so far.
    pub fn chars(&self) -> &[RxChar] {
        &self.chars
    }

    /// Characters received so far.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether nothing has been received.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// Whether the identification's `/` has arrived.
    pub fn identification_seen(&self) -> bool {
        self.identification.is_some()
    }

    /// Whether the BCC has arrived.
    pub fn is_complete(&self) -> bool {
        self.decoder.is_complete()
    }

    /// The identification line, once complete with its line end, and the end of its last
    /// character's stop bit.
    pub fn identification_line(&self) -> Option<(&Identification, Timestamp)> {
        self.ident_line.as_ref().map(|(i, t)| (i, *t))
    }

    /// The finished observation: decodes the characters strictly and tolerantly.
    pub fn finish(self, request: &[u8], end: AnswerEnd) -> Exchange {
        Exchange::new(
            String::from_utf8_lossy(request).trim_end().to_string(),
            self.request_end,
            self.chars,
            end,
            self.rule,
            self.timing,
        )
    }
}

fn decode_options(mode: Mode, rule: BccRule, parity_checked: bool) -> DecodeOptions {
    DecodeOptions {
        mode,
        bcc_rule: rule,
        parity: if parity_checked {
            ParityMode::Even
        } else {
            ParityMode::None
        },
    }
}

/// One finished exchange: what was sent, what came back with its times, and both decodings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exchange {
    /// The request, printable (`/?!`).
    pub request: String,
    /// End of the request's last stop bit.
    pub request_end: Timestamp,
    /// Every character received, as on the wire, echo and noise included.
    pub chars: Vec<RxChar>,
    /// Why listening ended.
    pub end: AnswerEnd,
    /// Strict decode (conformance findings).
    pub strict: Decoded,
    /// Tolerant decode (content).
    pub tolerant: Decoded,
    /// How the characters were timed.
    pub timing: TimingQuality,
    /// The mode C acknowledgement and switch, when the rig read in mode C.
    pub switch: Option<BaudSwitch>,
}

/// Whether an exchange kept the meter's promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Conformance {
    /// Every rule kept.
    Conforms,
    /// A rule broken (the problems say which).
    Violates,
    /// The observation cannot decide (a rig-side limit ended it).
    Undecided,
}

/// The judgement of one exchange under [`AnswerRules`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The outcome.
    pub conformance: Conformance,
    /// Each broken rule (or, when undecided, why), one sentence each, most important first.
    pub problems: Vec<String>,
    /// The response time, ms, when an identification arrived.
    pub response_ms: Option<f64>,
}

impl Assessment {
    /// The first problem, or an empty string.
    pub fn reason(&self) -> &str {
        self.problems.first().map_or("", |s| s.as_str())
    }
}

impl Exchange {
    /// Builds the observation from received characters (decodes them both ways).
    pub fn new(
        request: String,
        request_end: Timestamp,
        chars: Vec<RxChar>,
        end: AnswerEnd,
        rule: BccRule,
        timing: TimingQuality,
    ) -> Self {
        let decode = |mode| {
            let mut d = Decoder::new(decode_options(mode, rule, timing.parity_checked));
            for c in &chars {
                let b = if timing.parity_checked {
                    c.byte
                } else {
                    c.byte & 0x7F
                };
                d.feed(b, c.start);
            }
            d.finish()
        };
        let strict = decode(Mode::Strict);
        let tolerant = decode(Mode::Tolerant);
        Exchange {
            request,
            request_end,
            chars,
            end,
            strict,
            tolerant,
            timing,
            switch: None,
        }
    }

    /// The same exchange with its mode C switch.
    pub fn with_switch(mut self, switch: Option<BaudSwitch>) -> Self {
        self.switch = switch;
        self
    }

    /// The protocol mode the identification announces, when one arrived.
    pub fn announced_mode(&self) -> Option<AnnouncedMode> {
        self.tolerant
            .identification
            .as_ref()
            .map(Identification::announced_mode)
    }

    /// A finding that names the mode the identification announces and what the rig did: `None`
    /// for a mode A identification read in mode A.
    pub fn mode_finding(&self) -> Option<String> {
        let mode = self.announced_mode()?;
        match (&self.switch, mode) {
            (Some(s), _) => Some(format!(
                "mode C: baud character {:?} announces {} baud; the rig acknowledged with ACK 0 {} 0 and both sides switched {} → {} baud",
                s.baud_char, s.baud, s.baud_char, s.from_baud, s.baud
            )),
            (None, AnnouncedMode::A) => None,
            (None, AnnouncedMode::C { .. }) => Some(format!(
                "the identification announces {mode}; the rig read in mode A and sent no acknowledgement (read with --mode auto or c)"
            )),
            (None, m) => Some(format!("the identification announces {m}; the rig reads modes A and C only")),
        }
    }

    /// Index in [`Exchange::chars`] of the identification's `/`, if one arrived.
    pub fn identification_index(&self) -> Option<usize> {
        let t = self.tolerant.timing.identification_start?;
        self.chars.iter().position(|c| c.start == t)
    }

    /// The answer proper: the characters from the identification's `/` on (empty without one).
    pub fn answer(&self) -> &[RxChar] {
        match self.identification_index() {
            Some(i) => &self.chars[i..],
            None => &[],
        }
    }

    /// Response time in ns: start bit of the identification's `/` minus the request's end.
    pub fn response_ns(&self) -> Option<i64> {
        self.tolerant
            .timing
            .identification_start
            .map(|t| t.diff_ns(self.request_end))
    }

    /// One-sided uncertainty of the response time, ms: the request end's plus the character's.
    pub fn response_uncertainty_ms(&self) -> f64 {
        (self.timing.request_uncertainty_ns + self.timing.uncertainty_ns) as f64 / 1e6
    }

    /// One-sided uncertainty of a time between two received characters, ms (both carry the
    /// characters' uncertainty; the request's end plays no part).
    pub fn gap_uncertainty_ms(&self) -> f64 {
        2.0 * self.timing.uncertainty_ns as f64 / 1e6
    }

    /// Where the response time comes from: `serial` when either end was timed by the serial
    /// contract (an edge backend's fallback included), else the characters' source.
    pub fn response_source(&self) -> TimeSource {
        self.timing.interval_source()
    }

    /// Longest silence between two characters of the answer, ns (0 for fewer than two).
    pub fn max_gap_ns(&self) -> i64 {
        let ack_end = self.switch.as_ref().map(|s| s.ack_end);
        self.answer()
            .windows(2)
            // the pause around a mode C acknowledgement is the switch, judged on its own
            .filter(|w| !ack_end.is_some_and(|a| w[0].end <= a && a <= w[1].start))
            .map(|w| w[1].start.diff_ns(w[0].end))
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// Indices (in [`Exchange::chars`]) of answer characters with a wrong parity bit (only when
    /// parity is seen) and with a low stop bit.
    pub fn framing_errors(&self) -> (Vec<usize>, Vec<usize>) {
        let base = self.identification_index().unwrap_or(self.chars.len());
        let mut parity_errors = Vec::new();
        let mut stop_errors = Vec::new();
        for (i, c) in self.answer().iter().enumerate() {
            if self.timing.parity_checked && !parity::is_even(c.byte) {
                parity_errors.push(base + i);
            }
            if !c.stop_ok {
                stop_errors.push(base + i);
            }
        }
        (parity_errors, stop_errors)
    }

    /// Register values by address (tolerant decode), as numbers.
    pub fn numbers(&self) -> BTreeMap<String, f64> {
        self.tolerant
            .data_sets
            .iter()
            .filter_map(|d| {
                d.values
                    .first()
                    .and_then(|v| v.number())
                    .map(|n| (d.address.clone(), n))
            })
            .collect()
    }

    /// When the meter took its register snapshot: the end of the request (the 351 builds the
    /// answer from the registers at the moment of the request).
    pub fn snapshot_time(&self) -> Timestamp {
        self.request_end
    }

    /// The strict decoder's violations that count against the meter: not the echo or noise
    /// before `/` (a line or the rig's head may make them), not parity (judged per character
    /// here), and, when a rig-side limit cut the answer, not the ones that only say it ended.
    pub fn decoder_violations(&self) -> impl Iterator<Item = &decoder::Finding> {
        let cut = matches!(self.end, AnswerEnd::RigLimit { .. });
        let n = self.chars.len();
        self.strict.findings.iter().filter(move |f| {
            f.severity == Severity::Violation
                && f.kind.category() != "noise"
                && !matches!(f.kind, FindingKind::Parity | FindingKind::HighBit)
                && !(cut
                    && (f.offset >= n
                        || matches!(
                            f.kind,
                            FindingKind::Truncated
                                | FindingKind::MissingEnd
                                | FindingKind::MissingEtx
                                | FindingKind::MissingBcc
                        )))
        })
    }

    /// Judges the exchange under `rules`: the one definition every path uses.
    pub fn assess(&self, rules: &AnswerRules) -> Assessment {
        let response_ms = self.response_ns().map(|ns| ns as f64 / 1e6);
        let mut problems = Vec::new();
        if let AnswerEnd::NoAnswer { waited_ms } = self.end {
            let seen = if self.chars.is_empty() {
                String::new()
            } else {
                format!(" ({} characters of echo or noise only)", self.chars.len())
            };
            problems.push(format!(
                "no identification within {} ms of the request{seen} (limit {}–{} ms)",
                fmt_ms(waited_ms),
                fmt_ms(rules.response_min_ms),
                fmt_ms(rules.response_max_ms)
            ));
            return Assessment {
                conformance: Conformance::Violates,
                problems,
                response_ms,
            };
        }
        if let Some(ms) = response_ms {
            if !(rules.response_min_ms..=rules.response_max_ms).contains(&ms) {
                problems.push(format!(
                    "answer started {} ms after the request (limit {}–{} ms)",
                    fmt_ms(ms),
                    fmt_ms(rules.response_min_ms),
                    fmt_ms(rules.response_max_ms)
                ));
            }
        }
        if let Some(sw) = &self.switch {
            problems.extend(sw.problems());
        }
        self.framing_problems(rules, &mut problems);
        for f in self.decoder_violations().take(3) {
            problems.push(format!("offset {}: {}", f.offset, f.message));
        }
        match self.end {
            AnswerEnd::Silence { .. }
                if self.switch.is_none()
                    && matches!(self.announced_mode(), Some(AnnouncedMode::C { .. })) =>
            {
                problems.insert(0, format!(
                    "the answer stopped after the identification: it announces {}; the meter waits for the acknowledgement the rig does not send in mode A (read with --mode auto or c)",
                    self.announced_mode().unwrap_or(AnnouncedMode::A)
                ));
            }
            AnswerEnd::Silence { after_ms } => problems.push(format!(
                "the answer stopped after {} characters: silent for {} ms before its BCC (limit {} ms between characters)",
                self.answer().len(),
                fmt_ms(after_ms),
                rules.inter_char_limit.as_millis()
            )),
            AnswerEnd::RigLimit { limit } if problems.is_empty() => {
                return Assessment {
                    conformance: Conformance::Undecided,
                    problems: vec![format!(
                        "undecided: {limit}; the meter was still sending within its limits"
                    )],
                    response_ms,
                };
            }
            _ => {}
        }
        if let Some(m @ (AnnouncedMode::B { .. } | AnnouncedMode::Reserved { .. })) =
            self.announced_mode().filter(|_| !problems.is_empty())
        {
            problems.insert(
                0,
                format!("the identification announces {m}; the rig reads modes A and C only, so what follows it is not read at the rate it is sent"),
            );
        }
        Assessment {
            conformance: if problems.is_empty() {
                Conformance::Conforms
            } else {
                Conformance::Violates
            },
            problems,
            response_ms,
        }
    }

    fn framing_problems(&self, rules: &AnswerRules, problems: &mut Vec<String>) {
        let (par, stop) = self.framing_errors();
        let describe = |what: &str, v: &[usize]| {
            format!(
                "{} answer character{} with {what} (first at offset {})",
                v.len(),
                if v.len() == 1 { "" } else { "s" },
                v[0]
            )
        };
        if !par.is_empty() {
            problems.push(describe("a wrong parity bit (7E1: even parity)", &par));
        }
        if !stop.is_empty() {
            problems.push(describe("a low stop bit (framing error)", &stop));
        }
        let gap_ms = self.max_gap_ns() as f64 / 1e6;
        if gap_ms > rules.inter_char_limit.as_secs_f64() * 1e3 {
            problems.push(format!(
                "{} ms of silence inside the answer (limit {} ms between characters)",
                fmt_ms(gap_ms),
                rules.inter_char_limit.as_millis()
            ));
        }
    }
}

fn fmt_ms(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iec62056::{Identification, Telegram};
    use crate::meter::profile::COMBI_351;
    use crate::time::bit_ns;

    fn timing() -> TimingQuality {
        TimingQuality {
            source: TimeSource::Edge,
            uncertainty_ns: 0,
            parity_checked: true,
            request_source: TimeSource::Edge,
            request_uncertainty_ns: 0,
        }
    }

    /// Characters at 300 baud back to back from `start`, with `gap` after each line end.
    fn chars(bytes: &[u8], start: Timestamp, line_pause: Duration) -> Vec<RxChar> {
        let frame = 10 * bit_ns(300);
        let mut t = start;
        bytes
            .iter()
            .map(|&b| {
                let c = RxChar {
                    byte: parity::add_even(b),
                    start: t,
                    end: Timestamp(t.0 + frame),
                    stop_ok: true,
                    bit_ns: None,
                };
                t = c.end
                    + if b == b'\n' {
                        line_pause
                    } else {
                        Duration::ZERO
                    };
                c
            })
            .collect()
    }

    fn answer() -> Vec<u8> {
        let t = Telegram {
            identification: Identification::kamstrup("351"),
            data_sets: vec![crate::iec62056::DataSet::single(
                "1.8.0",
                crate::iec62056::Value::with_unit("0001234", "kWh"),
            )],
        };
        t.encode(BccRule::Xor).0
    }

    fn exchange(bytes: &[u8], start_ms: u64, pause: Duration, end: AnswerEnd) -> Exchange {
        let req_end = Timestamp::from_ms(1000);
        let cs = chars(bytes, req_end + Duration::from_millis(start_ms), pause);
        let mut rx = Receiver::new(req_end, BccRule::Xor, timing());
        for c in cs {
            rx.push(c);
        }
        rx.finish(b"/?!\r\n", end)
    }

    #[test]
    fn echo_before_the_answer_is_not_its_start() {
        let rules = AnswerRules::from_profile(&COMBI_351);
        // the echo arrives while the request is sent; the '/' of the answer 250 ms after it
        let req_end = Timestamp::from_ms(1000);
        let echo = chars(
            b"/?!\r\n",
            req_end - Duration::from_nanos(5 * 10 * bit_ns(300)),
            Duration::ZERO,
        );
        let mut rx = Receiver::new(req_end, BccRule::Xor, timing());
        for c in echo.into_iter().chain(chars(
            &answer(),
            req_end + Duration::from_millis(250),
            Duration::ZERO,
        )) {
            rx.push(c);
        }
        assert!(rx.is_complete());
        let ex = rx.finish(b"/?!\r\n", AnswerEnd::Complete);
        assert_eq!(ex.response_ns(), Some(250_000_000));
        assert_eq!(ex.identification_index(), Some(5));
        let a = ex.assess(&rules);
        assert_eq!(a.conformance, Conformance::Conforms, "{:?}", a.problems);
        assert_eq!(a.response_ms, Some(250.0));
    }

    #[test]
    fn pauses_after_lines_within_the_limit_conform() {
        let rules = AnswerRules::from_profile(&COMBI_351);
        let ex = exchange(
            &answer(),
            150,
            Duration::from_millis(1499),
            AnswerEnd::Complete,
        );
        assert_eq!(ex.assess(&rules).conformance, Conformance::Conforms);
        let ex = exchange(
            &answer(),
            150,
            Duration::from_millis(1501),
            AnswerEnd::Complete,
        );
        let a = ex.assess(&rules);
        assert_eq!(a.conformance, Conformance::Violates);
        assert!(a.reason().contains("1501 ms of silence"), "{a:?}");
    }

    #[test]
    fn response_window_bounds() {
        let rules = AnswerRules::from_profile(&COMBI_351);
        for (ms, ok) in [
            (19, false),
            (20, true),
            (500, true),
            (501, false),
            (600, false),
        ] {
            let a = exchange(&answer(), ms, Duration::ZERO, AnswerEnd::Complete).assess(&rules);
            assert_eq!(a.conformance == Conformance::Conforms, ok, "{ms}: {a:?}");
            assert_eq!(a.response_ms, Some(ms as f64));
        }
    }

    #[test]
    fn a_rig_side_limit_is_undecided_and_silence_is_a_violation() {
        let rules = AnswerRules::from_profile(&COMBI_351);
        let b = answer();
        let cut = &b[..30];
        let limit = RigLimit::Time { seconds: 2.0 };
        let a = exchange(cut, 150, Duration::ZERO, AnswerEnd::RigLimit { limit }).assess(&rules);
        assert_eq!(a.conformance, Conformance::Undecided, "{a:?}");
        assert!(a.reason().contains("--answer-limit"));
        let a = exchange(
            cut,
            150,
            Duration::ZERO,
            AnswerEnd::Silence { after_ms: 1500.0 },
        )
        .assess(&rules);
        assert_eq!(a.conformance, Conformance::Violates);
        assert!(
            a.problems.iter().any(|p| p.contains("stopped after 30")),
            "{a:?}"
        );
    }

    #[test]
    fn no_answer_names_the_wait_and_a_framing_error_is_found() {
        let rules = AnswerRules::from_profile(&COMBI_351);
        let a = exchange(
            b"",
            0,
            Duration::ZERO,
            AnswerEnd::NoAnswer { waited_ms: 1500.0 },
        )
        .assess(&rules);
        assert_eq!(a.conformance, Conformance::Violates);
        assert!(a.reason().starts_with("no identification within 1500 ms"));
        let mut ex = exchange(&answer(), 150, Duration::ZERO, AnswerEnd::Complete);
        ex.chars[7].stop_ok = false;
        let a = ex.assess(&rules);
        assert!(
            a.reason()
                .contains("low stop bit (framing error) (first at offset 7)"),
            "{a:?}"
        );
    }

    fn switched(data_after_ack_ms: Option<u64>) -> Exchange {
        // identification at 300 baud, the rig's ACK 200 ms after it (6 characters), the data
        // message at 9600 baud the given time after the ACK's last stop bit
        let t = Telegram {
            identification: Identification {
                manufacturer: "KAM".into(),
                mode_char: '5',
                text: "684311".into(),
            },
            data_sets: vec![crate::iec62056::DataSet::single(
                "1.8.0",
                crate::iec62056::Value::with_unit("0001234", "kWh"),
            )],
        };
        let all = t.encode(BccRule::Xor).0;
        let split = all.iter().position(|&c| c == b'\n').unwrap() + 1;
        let req_end = Timestamp::from_ms(1000);
        let mut cs = chars(
            &all[..split],
            req_end + Duration::from_millis(150),
            Duration::ZERO,
        );
        let ident_end = cs.last().unwrap().end;
        let ack_end =
            ident_end + Duration::from_millis(200) + Duration::from_nanos(6 * 10 * bit_ns(300));
        let data_start = data_after_ack_ms.map(|ms| ack_end + Duration::from_millis(ms));
        if let Some(start) = data_start {
            let frame = 10 * bit_ns(9600);
            cs.extend(all[split..].iter().enumerate().map(|(i, &b)| RxChar {
                byte: parity::add_even(b),
                start: Timestamp(start.0 + i as u64 * frame),
                end: Timestamp(start.0 + (i as u64 + 1) * frame),
                stop_ok: true,
                bit_ns: None,
            }));
        }
        let mut rx = Receiver::new(req_end, BccRule::Xor, timing());
        for c in cs {
            rx.push(c);
        }
        assert!(rx.identification_line().is_some());
        let end = if data_start.is_some() {
            AnswerEnd::Complete
        } else {
            AnswerEnd::Silence { after_ms: 1500.0 }
        };
        rx.finish(b"/?!\r\n", end).with_switch(Some(BaudSwitch {
            baud_char: '5',
            baud: 9600,
            from_baud: 300,
            identification_end: ident_end,
            ack_end,
            data_start,
            min: Duration::from_millis(200),
            max: SWITCH_MAX,
        }))
    }

    #[test]
    fn the_mode_c_switch_is_judged_on_its_own_and_not_as_an_inter_character_gap() {
        let rules = AnswerRules::from_profile(&COMBI_351);
        // 1500 ms after the ACK: ident → STX is ~1900 ms of silence, yet no gap violation
        let a = switched(Some(1500)).assess(&rules);
        assert_eq!(a.conformance, Conformance::Conforms, "{a:?}");
        let ex = switched(Some(1501));
        let a = ex.assess(&rules);
        assert_eq!(a.conformance, Conformance::Violates);
        assert!(
            a.reason().contains("1501 ms after the acknowledgement"),
            "{a:?}"
        );
        assert!(
            !a.problems.iter().any(|p| p.contains("of silence inside")),
            "{a:?}"
        );
        assert!(switched(Some(199))
            .assess(&rules)
            .reason()
            .contains("199 ms"));
        let a = switched(None).assess(&rules);
        assert!(a.reason().contains("the meter ignored it"), "{a:?}");
        assert!(ex
            .mode_finding()
            .unwrap()
            .contains("switched 300 → 9600 baud"));
    }

    #[test]
    fn a_mode_b_identification_is_explained() {
        // the Landis+Gyr identification: the meter switches to 2400 baud by itself
        let rules = AnswerRules::from_profile(&COMBI_351);
        let ex = exchange(
            b"/LUGCUH50\r\n",
            150,
            Duration::ZERO,
            AnswerEnd::Silence { after_ms: 1500.0 },
        );
        let a = ex.assess(&rules);
        assert_eq!(a.conformance, Conformance::Violates);
        assert!(a.reason().contains("protocol mode B at 2400 baud"), "{a:?}");
        assert!(ex.mode_finding().unwrap().contains("modes A and C only"));
    }

    #[test]
    fn read_modes() {
        use crate::iec62056::AnnouncedMode as M;
        assert_eq!("auto".parse::<ReadMode>(), Ok(ReadMode::Auto));
        assert_eq!("c".parse::<ReadMode>(), Ok(ReadMode::C));
        assert!("b".parse::<ReadMode>().is_err());
        assert!(ReadMode::Auto.acknowledges(M::C { baud: 9600 }));
        assert!(!ReadMode::A.acknowledges(M::C { baud: 9600 }));
        assert!(!ReadMode::C.acknowledges(M::A));
        assert!(!ReadMode::Auto.acknowledges(M::B { baud: 2400 }));
    }

    #[test]
    fn conforming_listening_lets_every_conforming_answer_finish() {
        let rules = AnswerRules::from_profile(&COMBI_351);
        let l = Listening::conforming(&rules, 10 * bit_ns(300), 1_000_000);
        let frame = Duration::from_nanos(10 * bit_ns(300));
        assert_eq!(l.first_wait, Duration::from_millis(1502) + frame);
        assert_eq!(l.silence, Duration::from_millis(1502) + frame);
        // 718 characters with the longest allowed silence after each
        let worst = Duration::from_nanos(10 * bit_ns(300)) + INTER_CHAR_LIMIT;
        assert!(l.total >= worst * 718);
    }
}
