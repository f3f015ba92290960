//! Incremental decoder for the mode A answer: identification line, data message, BCC.
//!
//! What it is for: turning the bytes a meter sent (each with the [`Timestamp`] at which it was
//! seen) into [`Event`]s as elements complete, and at the end of input into a [`Decoded`] summary
//! with every [`Finding`] (byte offset, what was found, what was expected).
//!
//! What it must not do: no I/O and no clock. It never reads a port or asks for the time; every
//! time it reports is one that was pushed in with a byte. It never panics on any input and never
//! allocates without bound: fields, data sets, values and findings are capped (see the `MAX_*`
//! constants) and going past a cap is itself a finding.
//!
//! Two modes, kept apart (NOTES §1):
//! - [`Mode::Strict`] judges conformance to the 351 Combi sheet (004_d1f80f13afa7763c.txt) and
//!   IEC 62056-21. Every deviation is a [`Severity::Violation`]. After the first *structural*
//!   violation (a broken identification, line end, data set, missing STX/`!`) nothing further is
//!   interpreted: the decoder only checks parity and looks for ETX and the BCC.
//! - [`Mode::Tolerant`] reads what real meters and optical heads send: it skips an echoed request
//!   and noise before `/`, accepts LF-only or LF LF line ends, comma decimals, `!` after the last
//!   data set or on its own line, a missing STX, a missing ETX/BCC, empty or space-padded values,
//!   several values and `&` sub-values, a unit inside the value after a space (`(12 kWh)`),
//!   characters between `!` and its CR LF, and several telegrams in one input: a new `/` where
//!   a telegram cannot go on (after its identification line, at the start of a data line, after
//!   `!`, after the BCC) ends that telegram with a [`FindingKind::NewIdentification`] and starts
//!   the next, which [`Decoder::finish`] returns in [`Decoded::following`] (strict mode judges
//!   the input as one telegram). Each deviation is still a finding with the same severity
//!   as in strict mode (so [`Decoded::valid`] means the same in both modes; the one exception is a
//!   byte with bit 7 set in 7-bit input, which tolerant mode masks with one informational
//!   finding), but it does not stop the parse; [`Decoded::readable`] says whether a reading was
//!   recovered.
//!
//! Layout accepted by strict mode: `/XXXZ` + identification + CR LF, STX, data sets
//! `ADDRESS(VALUE[*UNIT])…` each ended CR LF, the last followed by `!` (straight after it as the
//! 351 sends it, or on its own line as the standard shows it: an informational finding) then
//! CR LF, ETX, BCC. The BCC covers the characters after STX up to and including ETX; both the XOR
//! and the sum rule are always computed.
//!
//! `&` inside parentheses separates sub-values; each sub-value becomes its own [`Value`] of the
//! data set (with an informational finding), so `A(1*kW&2*kW)` reads as two values.
//!
//! Feeding: [`Decoder::push`] appends [`Event`]s as elements complete; [`Decoder::feed`] decodes
//! the same way without events, for callers that only want the [`Decoded`] summary or
//! [`Decoder::is_complete`] (`rig read`, the suites), so nothing is cloned for them.
//! An ordinary character inside an address, value or unit takes a short path (BCC, append);
//! every other byte goes through the full state machine, and a unit test holds the two equal.
//!
//! [`decode`] (a whole input at once) first tries a slice fast path that only accepts a
//! conforming telegram it can read without a single finding, and otherwise feeds the bytes
//! through the state machine from the start; unit tests, a proptest and the fuzz target hold its
//! result equal to the state machine's.

use serde::Serialize;

use super::{parity, BccRule, DataSet, Identification, Value, CR, ETX, LF, STX};
use crate::time::Timestamp;

/// Longest field (identification text, address, value, unit) kept; longer is a finding.
pub const MAX_FIELD: usize = 128;
/// Most data sets kept; more are counted in a finding and dropped.
pub const MAX_DATA_SETS: usize = 4096;
/// Most values (sub-values included) kept per data set.
pub const MAX_VALUES: usize = 64;
/// Most findings kept; after that one finding says further ones are suppressed.
pub const MAX_FINDINGS: usize = 256;
/// Longest echoed request skipped before `/`.
const MAX_ECHO: usize = 48;
/// Most telegrams one decoder splits an input into (tolerant mode); after that a new `/` is
/// read as before (trailing bytes, a missing ETX), so memory stays bounded.
pub const MAX_TELEGRAMS: usize = 64;

/// IEC 62056-21 limits used by strict mode.
const STD_IDENT_TEXT: usize = 16;
const STD_ADDRESS: usize = 16;
const STD_VALUE: usize = 32;
const STD_UNIT: usize = 16;

/// Strict (conformance) or tolerant (reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every deviation is a violation; interpretation stops at the first structural one.
    Strict,
    /// Deviations are findings; the parse recovers and goes on.
    Tolerant,
}

/// How the input bytes carry parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParityMode {
    /// Soft 7E1: each byte carries the even-parity bit in bit 7. It is checked (a finding per
    /// error, at its offset) and stripped.
    Even,
    /// 7-bit input. A byte with bit 7 set is a violation in strict mode; tolerant mode masks it
    /// (one informational finding for the first such byte).
    None,
}

/// Decoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DecodeOptions {
    /// Strict or tolerant.
    pub mode: Mode,
    /// The BCC rule the meter profile expects.
    pub bcc_rule: BccRule,
    /// Parity carried in the bytes or not.
    pub parity: ParityMode,
}

impl Default for DecodeOptions {
    /// Tolerant, XOR, 7-bit input.
    fn default() -> Self {
        DecodeOptions {
            mode: Mode::Tolerant,
            bcc_rule: BccRule::Xor,
            parity: ParityMode::None,
        }
    }
}

impl DecodeOptions {
    /// Strict with the given rule and parity.
    pub fn strict(bcc_rule: BccRule, parity: ParityMode) -> Self {
        DecodeOptions {
            mode: Mode::Strict,
            bcc_rule,
            parity,
        }
    }
    /// Tolerant with the given rule and parity.
    pub fn tolerant(bcc_rule: BccRule, parity: ParityMode) -> Self {
        DecodeOptions {
            mode: Mode::Tolerant,
            bcc_rule,
            parity,
        }
    }
}

/// How much a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A deviation from 004 / IEC 62056-21: the telegram is not valid.
    Violation,
    /// A fact worth reporting that fails nothing.
    Info,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A byte with odd parity (soft 7E1 input).
    Parity,
    /// A byte with bit 7 set in 7-bit input.
    HighBit,
    /// Bytes before `/` that are not an echoed request.
    Noise,
    /// An echo of the request (`/?…!` CR LF) before the identification.
    Echo,
    /// The identification line breaks `/XXXZ` + text.
    Identification,
    /// The manufacturer's third letter is lower case: the standard allows a 20 ms reaction time.
    LowerCaseThird,
    /// No STX after the identification line.
    MissingStx,
    /// A line end other than CR LF, or a missing one.
    LineEnd,
    /// A data set that is not `ADDRESS(VALUE[*UNIT])…`, or a character not allowed there.
    DataSetSyntax,
    /// A number with a comma as decimal mark.
    CommaDecimal,
    /// An empty value `()`.
    EmptyValue,
    /// A value with leading or trailing spaces.
    PaddedValue,
    /// A data set with more than one value `A(v1)(v2)` (allowed by the standard).
    MultipleValues,
    /// `&` sub-values inside one pair of parentheses.
    SubValues,
    /// `!` on its own line (the standard's layout; the 351 sends it after the last data set).
    EndOnOwnLine,
    /// No `!` before ETX.
    MissingEnd,
    /// No ETX after `!` CR LF.
    MissingEtx,
    /// No BCC after ETX.
    MissingBcc,
    /// The BCC does not match the selected rule.
    BccMismatch {
        /// Whether the other rule gives the received BCC.
        other_rule_matches: bool,
    },
    /// Input ended early, or a field or list exceeded the decoder's caps.
    Truncated,
    /// Bytes after the BCC.
    TrailingBytes,
    /// The finding cap was reached; further findings are not kept.
    FindingsSuppressed,
    /// Tolerant mode: a new identification `/` where this telegram could not go on (after its
    /// identification line, at the start of a data line, after `!`, or after the BCC). This
    /// telegram ends before it; the next one is in [`Decoded::following`].
    NewIdentification,
    /// Characters between `!` and its CR LF (one finding for the whole run).
    CharsAfterEnd,
    /// A value that carries its unit after a space inside the brackets, `(0004321 kWh)`: read
    /// as value `0004321` with unit `kWh`; the standard separates the unit with `*`.
    UnitInsideValue,
}

impl FindingKind {
    /// The group a finding belongs to: `framing`, `structure`, `bcc`, `content` or `noise`.
    pub fn category(&self) -> &'static str {
        use FindingKind::*;
        match self {
            Parity | HighBit => "framing",
            Noise | Echo | TrailingBytes | FindingsSuppressed => "noise",
            Identification | MissingStx | LineEnd | DataSetSyntax | EndOnOwnLine | MissingEnd
            | MissingEtx | Truncated | NewIdentification | CharsAfterEnd => "structure",
            MissingBcc | BccMismatch { .. } => "bcc",
            LowerCaseThird | CommaDecimal | EmptyValue | PaddedValue | MultipleValues
            | SubValues | UnitInsideValue => "content",
        }
    }

    /// Snake-case name, as in JSON records.
    pub fn name(&self) -> &'static str {
        use FindingKind::*;
        match self {
            Parity => "parity",
            HighBit => "high_bit",
            Noise => "noise",
            Echo => "echo",
            Identification => "identification",
            LowerCaseThird => "lower_case_third",
            MissingStx => "missing_stx",
            LineEnd => "line_end",
            DataSetSyntax => "data_set_syntax",
            CommaDecimal => "comma_decimal",
            EmptyValue => "empty_value",
            PaddedValue => "padded_value",
            MultipleValues => "multiple_values",
            SubValues => "sub_values",
            EndOnOwnLine => "end_on_own_line",
            MissingEnd => "missing_end",
            MissingEtx => "missing_etx",
            MissingBcc => "missing_bcc",
            BccMismatch { .. } => "bcc_mismatch",
            Truncated => "truncated",
            TrailingBytes => "trailing_bytes",
            FindingsSuppressed => "findings_suppressed",
            NewIdentification => "new_identification",
            CharsAfterEnd => "chars_after_end",
            UnitInsideValue => "unit_inside_value",
        }
    }

    /// The clause the finding is judged against: the 351 Combi sheet (004_d1f80f13afa7763c.txt)
    /// where it says so, IEC 62056-21 (mode A) where only the standard does, or `"none"` for
    /// facts that judge nothing.
    pub fn clause(&self) -> &'static str {
        use FindingKind::*;
        match self {
            Parity | HighBit => "004_d1f80f13afa7763c.txt: 7 data bits, even parity (7E1)",
            Noise | Echo | Identification | NewIdentification => {
                "004_d1f80f13afa7763c.txt: the answer starts with the identification '/KAM' \
                 [SP] type number [CR][LF]; IEC 62056-21 identification message"
            }
            LowerCaseThird => "IEC 62056-21: manufacturer identification, reaction time",
            MissingStx | MissingEnd | MissingEtx | CharsAfterEnd | EndOnOwnLine | LineEnd => {
                "004_d1f80f13afa7763c.txt: [STX] data sets each [CR][LF], '!' [CR][LF] [ETX] \
                 [BCC]; IEC 62056-21 data message"
            }
            DataSetSyntax | CommaDecimal | EmptyValue | PaddedValue | MultipleValues
            | SubValues | UnitInsideValue => {
                "004_d1f80f13afa7763c.txt: data sets ADDRESS(VALUE*UNIT); IEC 62056-21 data set \
                 structure"
            }
            MissingBcc | BccMismatch { .. } => {
                "004_d1f80f13afa7763c.txt: BCC after [STX] up to and including [ETX], 7 bit \
                 modulo 2 addition"
            }
            Truncated | TrailingBytes => {
                "004_d1f80f13afa7763c.txt: the answer ends with [ETX][BCC]"
            }
            FindingsSuppressed => "none",
        }
    }

    /// Whether, in strict mode, nothing after this finding is interpreted.
    fn is_structural(&self) -> bool {
        use FindingKind::*;
        matches!(
            self,
            Identification
                | MissingStx
                | LineEnd
                | DataSetSyntax
                | MissingEnd
                | MissingEtx
                | Truncated
        )
    }
}

/// One finding: where, what, how much it weighs, and a message saying what was found and what
/// was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Byte offset in the input (0-based; input length for "ended early").
    pub offset: usize,
    /// What it is about.
    pub kind: FindingKind,
    /// Violation or information.
    pub severity: Severity,
    /// What was found and what was expected.
    pub message: String,
}

/// Something that completed while bytes were pushed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The `/` that starts the identification.
    IdentificationStart {
        /// Byte offset.
        offset: usize,
        /// When the byte was seen.
        t: Timestamp,
    },
    /// The identification line, complete with its line end.
    Identification {
        /// The identification.
        ident: Identification,
        /// Time of the `/`.
        t_start: Timestamp,
        /// Time of the byte that ended the line.
        t_end: Timestamp,
    },
    /// STX.
    Stx {
        /// Byte offset.
        offset: usize,
        /// When it was seen.
        t: Timestamp,
    },
    /// A complete data set.
    DataSet {
        /// Index in [`Decoded::data_sets`].
        index: usize,
        /// The data set.
        data_set: DataSet,
        /// Time of its first character.
        t_start: Timestamp,
        /// Time of its last `)`.
        t_end: Timestamp,
    },
    /// The `!` that ends the data block.
    End {
        /// Byte offset.
        offset: usize,
        /// When it was seen.
        t: Timestamp,
    },
    /// ETX.
    Etx {
        /// Byte offset.
        offset: usize,
        /// When it was seen.
        t: Timestamp,
    },
    /// The BCC byte (7-bit value).
    Bcc {
        /// The received BCC.
        received: u8,
        /// When it was seen.
        t: Timestamp,
    },
    /// A finding.
    Finding(Finding),
}

/// The block check: what arrived and what both rules give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BccReport {
    /// The received BCC (7-bit), if any.
    pub received: Option<u8>,
    /// XOR of the block (after STX up to and including ETX).
    pub xor: u8,
    /// 7-bit sum of the block.
    pub sum: u8,
    /// The rule checked.
    pub rule: BccRule,
    /// Whether the received BCC matches the rule.
    pub ok: bool,
}

impl BccReport {
    /// The BCC the selected rule expects.
    pub fn expected(&self) -> u8 {
        match self.rule {
            BccRule::Xor => self.xor,
            BccRule::Sum => self.sum,
        }
    }
}

/// Start and end time of one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Time of the first byte.
    pub start: Timestamp,
    /// Time of the last byte.
    pub end: Timestamp,
}

/// When the elements of the answer were seen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Timing {
    /// The `/` of the identification.
    pub identification_start: Option<Timestamp>,
    /// The byte that ended the identification line.
    pub identification_end: Option<Timestamp>,
    /// STX.
    pub stx: Option<Timestamp>,
    /// Each data set kept, in order.
    pub data_sets: Vec<Span>,
    /// The `!`.
    pub end: Option<Timestamp>,
    /// ETX.
    pub etx: Option<Timestamp>,
    /// The BCC.
    pub bcc: Option<Timestamp>,
}

/// The result of decoding a whole input: one telegram, and in tolerant mode the telegrams that
/// followed it in the same input ([`Decoded::following`]).
///
/// A tolerant decoder ends a telegram where a new identification `/` starts and it could not go
/// on (after its identification line, at the start of a data line, after `!`, after the BCC):
/// the telegram gets a [`FindingKind::NewIdentification`] violation at the offset of that `/`,
/// and the next telegram is decoded afresh from it, with offsets still counted from the start
/// of the input. The [`Decoded::range`]s of a telegram and of its following ones cover the
/// input without gaps, so no byte is dropped unaccounted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decoded {
    /// Offset of the `/` that starts the identification (after any echo or noise); `None` when
    /// no identification started. An exchange times the response from this byte.
    pub identification_offset: Option<usize>,
    /// The input bytes this telegram covers: from the byte after the previous telegram (noise
    /// and echo included; 0 for the first) up to the next telegram's `/` (or the end of input).
    pub range: std::ops::Range<usize>,
    /// The identification, if one was read.
    pub identification: Option<Identification>,
    /// The data sets read (in strict mode: those before the first structural violation).
    pub data_sets: Vec<DataSet>,
    /// The block check.
    pub bcc: BccReport,
    /// Every finding, in input order.
    pub findings: Vec<Finding>,
    /// The telegram conforms: an identification, a received BCC that matches the rule, and no
    /// finding of severity [`Severity::Violation`].
    pub valid: bool,
    /// An identification and at least one data set were recovered.
    pub readable: bool,
    /// Whether the BCC byte arrived.
    pub complete: bool,
    /// Number of bytes pushed in all (the whole input, the same for every telegram of it).
    pub bytes: usize,
    /// When the elements were seen.
    pub timing: Timing,
    /// Tolerant mode: the telegrams that followed this one in the same input, in order (each
    /// with an empty `following`); empty for a single telegram. Non-empty implies this telegram
    /// has a [`FindingKind::NewIdentification`] violation and is not `valid`. At most
    /// [`MAX_TELEGRAMS`] − 1.
    pub following: Vec<Decoded>,
}

impl Decoded {
    /// This telegram and the ones that followed it, in input order.
    pub fn telegrams(&self) -> impl Iterator<Item = &Decoded> {
        std::iter::once(self).chain(self.following.iter())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Ident,
    Data,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before `/`.
    Start,
    /// Just after `/`.
    Slash,
    /// Inside an echoed request.
    Echo,
    /// Inside the identification line.
    Ident,
    /// A run of CR/LF characters.
    LineEnd,
    /// After the identification line, expecting STX.
    AfterIdent,
    /// At the start of a data line.
    LineStart,
    Address,
    Value,
    Unit,
    /// After `)`.
    AfterValue,
    /// Skipping the rest of a broken line (tolerant).
    SkipLine,
    /// After `!`, expecting CR LF.
    AfterBang,
    /// Characters between `!` and its line end.
    EndJunk,
    /// After `!` CR LF, expecting ETX.
    AfterEnd,
    /// After ETX, expecting the BCC.
    Bcc,
    /// After the BCC.
    Done,
    /// Strict mode after a structural violation: waiting for ETX.
    Rejected,
}

/// The incremental decoder. Feed bytes with [`Decoder::push`], then call [`Decoder::finish`].
#[derive(Debug, Clone)]
pub struct Decoder {
    opts: DecodeOptions,
    offset: usize,
    state: State,
    // where this telegram's bytes start (after the previous telegram), and its '/'
    tel_start: usize,
    ident_offset: Option<usize>,
    // telegrams a new '/' ended (tolerant), oldest first
    closed: Vec<Decoded>,
    // characters between '!' and its line end
    junk_start: usize,
    junk_len: usize,
    junk_sample: [u8; 4],
    // noise before '/'
    noise_start: usize,
    noise_len: usize,
    noise_sample: Vec<u8>,
    echo_len: usize,
    // identification
    ident_start: usize,
    ident_t: Timestamp,
    ident_buf: String,
    ident_bad: bool,
    ident_done: bool,
    identification: Option<Identification>,
    // line-end run
    le_first: usize,
    le_pat: [u8; 4],
    le_len: usize,
    le_ctx: Ctx,
    le_emitted: bool,
    le_quiet: bool,
    // data set under construction
    addr: String,
    values: Vec<Value>,
    raw: String,
    unit: String,
    ds_start: usize,
    ds_t_start: Timestamp,
    ds_t_end: Timestamp,
    multi_reported: bool,
    sub_reported: bool,
    paren_start: usize,
    // data message
    stx_seen: bool,
    bcc_active: bool,
    xor: u8,
    sum: u8,
    bcc_received: Option<u8>,
    end_seen: bool,
    missing_etx_reported: bool,
    data_sets: Vec<DataSet>,
    dropped_data_sets: usize,
    // findings
    findings: Vec<Finding>,
    suppressed: usize,
    high_bit_reported: bool,
    trailing_start: Option<usize>,
    timing: Timing,
}

/// Where the decoder's events go: the caller's `Vec` ([`Decoder::push`]) or nowhere
/// ([`Decoder::feed`], [`decode`], [`Decoder::finish`]). With [`Discard`] no event is built, so the
/// data sets, identification and findings are not cloned for events nobody reads.
trait Sink {
    /// Whether events are kept; when false, events that would need a clone are not built.
    const KEEP: bool;
    fn emit(&mut self, e: Event);
}

impl Sink for Vec<Event> {
    const KEEP: bool = true;
    #[inline]
    fn emit(&mut self, e: Event) {
        self.push(e);
    }
}

/// The sink that drops every event.
struct Discard;

impl Sink for Discard {
    const KEEP: bool = false;
    #[inline]
    fn emit(&mut self, _: Event) {}
}

/// Even parity of every 8-bit byte (soft 7E1), as a table: the baseline x86-64 target has no
/// `popcnt`, and this is looked up for every byte.
const EVEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).count_ones() % 2 == 0;
        b += 1;
    }
    t
};

/// Shows a 7-bit character with its code once: `'7' (0x37)`, `ETX (0x03)`, `0x9F`.
fn show_coded(c: u8) -> String {
    let s = show(c);
    if s.contains("0x") {
        s
    } else {
        format!("{s} (0x{c:02X})")
    }
}

/// Shows a 7-bit character for a message.
fn show(c: u8) -> String {
    match c {
        STX => "STX (0x02)".into(),
        ETX => "ETX (0x03)".into(),
        CR => "CR".into(),
        LF => "LF".into(),
        0x00 => "NUL (0x00)".into(),
        0x7F => "DEL (0x7F)".into(),
        0x20 => "' ' (space)".into(),
        0x21..=0x7E => format!("'{}'", c as char),
        _ => format!("0x{c:02X}"),
    }
}

fn show_run(pat: &[u8], len: usize) -> String {
    let mut s: Vec<String> = pat.iter().map(|&c| show(c)).collect();
    if len > pat.len() {
        s.push(format!("… ({len} characters)"));
    }
    s.join(" ")
}

fn is_printable(c: u8) -> bool {
    (0x20..=0x7E).contains(&c)
}

/// A value that carries its unit after a space, `0004321 kWh`: optional leading spaces, a
/// number (optional sign, digits with `.` or `,`), one or more spaces, then a unit (a letter or
/// `%`, then letters, digits or `%`) and nothing but spaces after it. Returns the end of the
/// number and the start of the unit within `raw`.
fn unit_inside_value(raw: &str) -> Option<(usize, usize)> {
    let b = raw.as_bytes();
    let mut i = b.iter().take_while(|&&c| c == b' ').count();
    if i < b.len() && matches!(b[i], b'+' | b'-') {
        i += 1;
    }
    let digits = i;
    while i < b.len() && (b[i].is_ascii_digit() || matches!(b[i], b'.' | b',')) {
        i += 1;
    }
    if !b[digits..i].iter().any(u8::is_ascii_digit) {
        return None;
    }
    let num_end = i;
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    let unit_start = i;
    let unit = &b[unit_start..];
    let unit_len = unit.iter().take_while(|&&c| c != b' ').count();
    let ok = unit_start > num_end
        && unit_len > 0
        && unit[unit_len..].iter().all(|&c| c == b' ')
        && (unit[0].is_ascii_alphabetic() || unit[0] == b'%')
        && unit[..unit_len]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'%');
    ok.then_some((num_end, unit_start))
}

fn is_comma_decimal(raw: &str) -> bool {
    let s = raw.trim();
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    match s.split_once(',') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

impl Decoder {
    /// A decoder with the given options.
    pub fn new(opts: DecodeOptions) -> Self {
        Decoder {
            opts,
            offset: 0,
            state: State::Start,
            tel_start: 0,
            ident_offset: None,
            closed: Vec::new(),
            junk_start: 0,
            junk_len: 0,
            junk_sample: [0; 4],
            noise_start: 0,
            noise_len: 0,
            noise_sample: Vec::new(),
            echo_len: 0,
            ident_start: 0,
            ident_t: Timestamp::ZERO,
            ident_buf: String::new(),
            ident_bad: false,
            ident_done: false,
            identification: None,
            le_first: 0,
            le_pat: [0; 4],
            le_len: 0,
            le_ctx: Ctx::Data,
            le_emitted: false,
            le_quiet: false,
            addr: String::new(),
            values: Vec::new(),
            raw: String::new(),
            unit: String::new(),
            ds_start: 0,
            ds_t_start: Timestamp::ZERO,
            ds_t_end: Timestamp::ZERO,
            multi_reported: false,
            sub_reported: false,
            paren_start: 0,
            stx_seen: false,
            bcc_active: false,
            xor: 0,
            sum: 0,
            bcc_received: None,
            end_seen: false,
            missing_etx_reported: false,
            data_sets: Vec::new(),
            dropped_data_sets: 0,
            findings: Vec::new(),
            suppressed: 0,
            high_bit_reported: false,
            trailing_start: None,
            timing: Timing::default(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> DecodeOptions {
        self.opts
    }

    /// Number of bytes pushed so far.
    pub fn bytes_seen(&self) -> usize {
        self.offset
    }

    /// True once the BCC byte (after ETX) of the telegram being decoded has arrived: a caller
    /// reading a line stops here.
    pub fn is_complete(&self) -> bool {
        self.bcc_received.is_some()
    }

    /// Offset of the `/` that started the identification of the telegram being decoded now
    /// (echo and noise before it skipped); `None` before one has started. After a new
    /// identification (tolerant mode, see [`Decoder::telegrams_closed`]) this is the new `/`.
    pub fn identification_offset(&self) -> Option<usize> {
        self.ident_offset
    }

    /// How many telegrams a new identification `/` has ended so far (tolerant mode; at most
    /// [`MAX_TELEGRAMS`] − 1). When it grows, "a new `/` started at
    /// [`Decoder::identification_offset`]"; [`Decoder::finish`] returns the first telegram with
    /// the others in [`Decoded::following`].
    pub fn telegrams_closed(&self) -> usize {
        self.closed.len()
    }

    /// Feeds one byte seen at `t`; events that complete are appended to `out`.
    #[inline]
    pub fn push(&mut self, byte: u8, t: Timestamp, out: &mut Vec<Event>) {
        self.push_with(byte, t, out);
    }

    /// Feeds one byte seen at `t` without reporting events: the same decoding as
    /// [`Decoder::push`] (same summary, same [`Decoder::is_complete`]), for callers that only
    /// want the summary. Nothing is cloned for events.
    #[inline]
    pub fn feed(&mut self, byte: u8, t: Timestamp) {
        self.push_with(byte, t, &mut Discard);
    }

    #[inline]
    fn push_with<S: Sink>(&mut self, byte: u8, t: Timestamp, out: &mut S) {
        // Fast path: an ordinary character inside an address, value or unit, short of the
        // standard's length limit, with good parity (or bit 7 clear in 7-bit input). The state
        // machine would only add it to the BCC and append it to the field; anything else takes
        // the full path below.
        let framed = match self.opts.parity {
            ParityMode::Even => EVEN[byte as usize],
            ParityMode::None => byte & 0x80 == 0,
        };
        if framed {
            let c = byte & 0x7F;
            let class = FAST_CLASS[c as usize];
            let field = match self.state {
                State::Address if class & F_ADDR != 0 && self.addr.len() < STD_ADDRESS => {
                    Some(&mut self.addr)
                }
                State::Value if class & F_VALUE != 0 && self.raw.len() < STD_VALUE => {
                    Some(&mut self.raw)
                }
                State::Unit if class & F_VALUE != 0 && self.unit.len() < STD_UNIT => {
                    Some(&mut self.unit)
                }
                _ => None,
            };
            if let Some(field) = field {
                field.push(c as char);
                self.offset = self.offset.saturating_add(1);
                if self.bcc_active {
                    self.acc(c);
                }
                return;
            }
        }
        self.push_slow(byte, t, out);
    }

    #[inline(never)]
    fn push_slow<S: Sink>(&mut self, byte: u8, t: Timestamp, out: &mut S) {
        let o = self.offset;
        if self.splits_at(byte) {
            self.split(o, t, out);
        }
        self.offset = self.offset.saturating_add(1);
        let strict = self.opts.mode == Mode::Strict;
        match self.opts.parity {
            ParityMode::Even => {
                if !parity::is_even(byte) {
                    self.finding(
                        out,
                        o,
                        FindingKind::Parity,
                        format!(
                            "parity error: byte 0x{byte:02X} ({} with bit 7 {}) has odd parity; \
                             expected even parity (7E1)",
                            show(byte & 0x7F),
                            if byte & 0x80 != 0 { "set" } else { "clear" }
                        ),
                    );
                }
            }
            ParityMode::None => {
                if byte & 0x80 != 0 {
                    if strict {
                        self.finding(
                            out,
                            o,
                            FindingKind::HighBit,
                            format!(
                                "byte 0x{byte:02X} has bit 7 set; expected 7-bit characters \
                                 (is this a 7E1 capture? try parity even)"
                            ),
                        );
                    } else if !self.high_bit_reported {
                        self.high_bit_reported = true;
                        self.info(
                            out,
                            o,
                            FindingKind::HighBit,
                            format!(
                                "byte 0x{byte:02X} has bit 7 set; masked to 7 bits (and every \
                                 later one); expected 7-bit characters"
                            ),
                        );
                    }
                }
            }
        }
        let c = byte & 0x7F;
        if self.bcc_active {
            self.acc(c);
        }
        self.step(c, o, t, out);
    }

    /// Whether `byte` is a `/` that starts a new telegram: tolerant mode, under the telegram
    /// cap, and at a point where the current telegram cannot go on with a `/` (after its
    /// identification line, at the start of a data line or straight after a data set, after
    /// `!` or its line end, after the BCC). Inside a field a `/` is read as before.
    fn splits_at(&self, byte: u8) -> bool {
        // a '/' with a parity error still starts the new telegram (the parity finding is then
        // the new telegram's, at the '/')
        byte & 0x7F == b'/'
            && self.opts.mode == Mode::Tolerant
            && self.closed.len() + 1 < MAX_TELEGRAMS
            && match self.state {
                State::AfterIdent
                | State::LineStart
                | State::AfterValue
                | State::AfterBang
                | State::EndJunk
                | State::AfterEnd
                | State::Done => true,
                // a run of CR/LF ends a line: the state after it is one of the above
                State::LineEnd => true,
                _ => false,
            }
    }

    /// Ends the current telegram before the new identification `/` at `o`, queues its summary
    /// and starts a fresh telegram there (offsets stay counted from the start of the input).
    fn split<S: Sink>(&mut self, o: usize, t: Timestamp, out: &mut S) {
        match self.state {
            State::LineEnd => self.close_line_end(t, out),
            State::AfterValue => self.emit_data_set(out),
            State::EndJunk => self.flush_junk(out),
            _ => {}
        }
        let (where_, expected) = match self.state {
            State::AfterIdent => (
                "after its identification line",
                "STX, the data message, ETX and the BCC",
            ),
            State::LineStart | State::AfterValue => {
                ("inside its data block", "'!' CR LF, ETX and the BCC")
            }
            State::AfterBang | State::EndJunk => ("after '!'", "CR LF, ETX and the BCC"),
            State::AfterEnd => ("after '!' and its line end", "ETX (0x03) and the BCC"),
            _ => ("after its BCC", "nothing after the BCC"),
        };
        let msg = if self.state == State::Done {
            format!(
                "new identification '/' at offset {o}: a second telegram follows this one; \
                 expected {expected}"
            )
        } else {
            format!(
                "new identification '/' at offset {o}: the telegram before it breaks off \
                 {where_}; expected {expected} first"
            )
        };
        self.finding(out, o, FindingKind::NewIdentification, msg);
        let done = self.conclude(o);
        let mut closed = std::mem::take(&mut self.closed);
        closed.push(done);
        *self = Decoder::new(self.opts);
        self.closed = closed;
        self.offset = o;
        self.tel_start = o;
    }

    fn acc(&mut self, c: u8) {
        self.xor ^= c;
        self.sum = self.sum.wrapping_add(c) & 0x7F;
    }

    fn push_finding<S: Sink>(&mut self, out: &mut S, f: Finding) {
        if self.opts.mode == Mode::Strict
            && f.severity == Severity::Violation
            && f.kind.is_structural()
            && !matches!(self.state, State::Bcc | State::Done)
        {
            self.state = State::Rejected;
        }
        if self.findings.len() >= MAX_FINDINGS {
            if self.suppressed == 0 {
                let s = Finding {
                    offset: f.offset,
                    kind: FindingKind::FindingsSuppressed,
                    severity: Severity::Info,
                    message: format!(
                        "more than {MAX_FINDINGS} findings; further findings are not kept"
                    ),
                };
                if S::KEEP {
                    out.emit(Event::Finding(s.clone()));
                }
                self.findings.push(s);
            }
            self.suppressed = self.suppressed.saturating_add(1);
            return;
        }
        if S::KEEP {
            out.emit(Event::Finding(f.clone()));
        }
        self.findings.push(f);
    }

    fn finding<S: Sink>(&mut self, out: &mut S, offset: usize, kind: FindingKind, message: String) {
        self.push_finding(
            out,
            Finding {
                offset,
                kind,
                severity: Severity::Violation,
                message,
            },
        );
    }

    fn info<S: Sink>(&mut self, out: &mut S, offset: usize, kind: FindingKind, message: String) {
        self.push_finding(
            out,
            Finding {
                offset,
                kind,
                severity: Severity::Info,
                message,
            },
        );
    }

    fn step<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        match self.state {
            State::Start | State::Slash | State::Echo => self.before_ident(c, o, t, out),
            State::Ident => self.ident_char(c, o, t, out),
            State::LineEnd => {
                if c == CR || c == LF {
                    if self.le_len < self.le_pat.len() {
                        self.le_pat[self.le_len] = c;
                    }
                    self.le_len = self.le_len.saturating_add(1);
                    if c == LF {
                        self.line_end_lf(t, out);
                    }
                } else {
                    self.close_line_end(t, out);
                    self.step(c, o, t, out);
                }
            }
            State::AfterIdent => self.after_ident(c, o, t, out),
            State::LineStart => self.line_start(c, o, t, out),
            State::Address => self.address_char(c, o, t, out),
            State::Value | State::Unit => self.value_char(c, o, t, out),
            State::AfterValue => self.after_value(c, o, t, out),
            State::SkipLine => match c {
                LF => self.state = State::LineStart,
                b'!' => self.end_mark(o, t, out),
                ETX => self.etx_without_end(o, t, out),
                _ => {}
            },
            State::AfterBang => self.after_bang(c, o, t, out),
            State::EndJunk => self.end_junk(c, o, t, out),
            State::AfterEnd => self.after_end(c, o, t, out),
            State::Rejected => {
                // nothing is interpreted any more; only STX, ETX and the BCC are picked up
                if c == STX && !self.stx_seen {
                    self.stx_seen = true;
                    self.bcc_active = true;
                    self.timing.stx = Some(t);
                    out.emit(Event::Stx { offset: o, t });
                } else if c == ETX {
                    self.etx(o, t, out);
                }
            }
            State::Bcc => self.bcc_char(c, o, t, out),
            State::Done => {
                if self.trailing_start.is_none() {
                    self.trailing_start = Some(o);
                    self.finding(
                        out,
                        o,
                        FindingKind::TrailingBytes,
                        format!("found {} after the BCC; expected nothing", show(c)),
                    );
                }
            }
        }
    }

    /// After the identification line: STX, or (tolerant) the data block without it.
    fn after_ident<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        if c == STX {
            self.stx_seen = true;
            self.bcc_active = true;
            self.timing.stx = Some(t);
            out.emit(Event::Stx { offset: o, t });
            self.state = State::LineStart;
        } else {
            self.finding(
                out,
                o,
                FindingKind::MissingStx,
                format!(
                    "found {} after the identification line; expected STX (0x02)",
                    show(c)
                ),
            );
            // tolerant: the data block starts here; the BCC covers it as if STX had come
            self.bcc_active = true;
            self.acc(c);
            if self.state == State::AfterIdent {
                self.state = State::LineStart;
            }
            self.step(c, o, t, out);
        }
    }

    /// Straight after `!`: CR LF, or characters before it, or ETX.
    fn after_bang<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        match c {
            CR | LF => self.begin_line_end(c, o, t, Ctx::End, out),
            ETX => {
                self.finding(
                    out,
                    o,
                    FindingKind::LineEnd,
                    "found ETX straight after '!'; expected CR LF first".into(),
                );
                self.etx(o, t, out);
            }
            _ => {
                self.junk_start = o;
                self.junk_len = 0;
                self.state = State::EndJunk;
                self.end_junk(c, o, t, out);
            }
        }
    }

    /// After `!` and its line end: ETX.
    fn after_end<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        if c == ETX {
            self.etx(o, t, out);
        } else if !self.missing_etx_reported {
            self.missing_etx_reported = true;
            self.finding(
                out,
                o,
                FindingKind::MissingEtx,
                format!(
                    "found {} after '!' and its line end; expected ETX (0x03)",
                    show(c)
                ),
            );
        }
    }

    /// Before the identification: noise, an echoed request, the `/`.
    fn before_ident<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        match self.state {
            State::Start => {
                if c == b'/' {
                    self.flush_noise(out);
                    self.begin_ident(o, t);
                } else {
                    if self.noise_len == 0 {
                        self.noise_start = o;
                    }
                    self.noise_len = self.noise_len.saturating_add(1);
                    if self.noise_sample.len() < 8 {
                        self.noise_sample.push(c);
                    }
                }
            }
            State::Slash => {
                if c == b'?' {
                    self.state = State::Echo;
                    self.echo_len = 2;
                } else {
                    self.ident_offset = Some(self.ident_start);
                    self.timing.identification_start = Some(self.ident_t);
                    out.emit(Event::IdentificationStart {
                        offset: self.ident_start,
                        t: self.ident_t,
                    });
                    self.state = State::Ident;
                    self.step(c, o, t, out);
                }
            }
            State::Echo => {
                self.echo_len += 1;
                if c == LF {
                    self.finding(
                        out,
                        self.ident_start,
                        FindingKind::Echo,
                        format!(
                            "echo of the request ({} characters, '/?…!' CR LF) before the \
                             identification; expected the identification '/XXX' first",
                            self.echo_len
                        ),
                    );
                    self.state = State::Start;
                } else if c == b'/' {
                    // the echo lost its line end: the identification starts here
                    self.finding(
                        out,
                        self.ident_start,
                        FindingKind::Echo,
                        format!(
                            "echo of the request ({} characters, '/?…' without CR LF) before \
                             the identification; expected the identification '/XXX' first",
                            self.echo_len - 1
                        ),
                    );
                    self.begin_ident(o, t);
                } else if self.echo_len > MAX_ECHO || c == STX || c == ETX {
                    // not a request after all: count it as noise and look for the next '/'
                    self.state = State::Start;
                    self.noise_start = self.ident_start;
                    self.noise_len = self.echo_len;
                }
            }
            _ => {}
        }
    }

    /// After the `)` of a value: another value, the line end, `!`, ETX or another data set.
    fn after_value<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        match c {
            b'(' => {
                if !self.multi_reported {
                    self.multi_reported = true;
                    self.info(
                        out,
                        o,
                        FindingKind::MultipleValues,
                        format!(
                            "data set {:?} has more than one value; the 351 sheet shows one",
                            self.addr
                        ),
                    );
                }
                self.open_value(o);
            }
            CR | LF => {
                self.emit_data_set(out);
                self.begin_line_end(c, o, t, Ctx::Data, out);
            }
            b'!' => {
                self.emit_data_set(out);
                self.end_mark(o, t, out);
            }
            ETX => {
                self.emit_data_set(out);
                self.etx_without_end(o, t, out);
            }
            _ if is_printable(c) && !matches!(c, b')' | b'*' | b'/' | b'&') => {
                // another data set on the same line (the standard allows it; the 351 sends
                // one per line)
                self.emit_data_set(out);
                self.state = State::LineStart;
                self.line_start(c, o, t, out);
            }
            _ => {
                self.emit_data_set(out);
                self.finding(
                    out,
                    o,
                    FindingKind::DataSetSyntax,
                    format!(
                        "found {} after ')'; expected '(', another data set, CR LF or '!'",
                        show(c)
                    ),
                );
                self.skip_line();
            }
        }
    }

    /// The BCC byte after ETX: checked against the rule, and against the other rule on a
    /// mismatch.
    fn bcc_char<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        self.bcc_received = Some(c);
        self.timing.bcc = Some(t);
        out.emit(Event::Bcc { received: c, t });
        let expected = self.expected_bcc();
        if c != expected {
            let other = match self.opts.bcc_rule.other() {
                BccRule::Xor => self.xor,
                BccRule::Sum => self.sum,
            };
            let other_rule_matches = c == other;
            let msg = format!(
                "BCC received {}; the {} rule expects {}{}",
                show_coded(c),
                self.opts.bcc_rule,
                show_coded(expected),
                if other_rule_matches {
                    format!(
                        "; the {} rule matches: the meter uses the other BCC rule",
                        self.opts.bcc_rule.other()
                    )
                } else {
                    format!(
                        "; the {} rule gives {}, no match either",
                        self.opts.bcc_rule.other(),
                        show_coded(other)
                    )
                }
            );
            self.finding(out, o, FindingKind::BccMismatch { other_rule_matches }, msg);
        }
        self.state = State::Done;
    }

    /// A character between `!` and its line end: collected until CR, LF or ETX, then reported
    /// once for the whole run.
    fn end_junk<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        match c {
            CR | LF => {
                self.flush_junk(out);
                self.begin_line_end(c, o, t, Ctx::End, out);
            }
            ETX => {
                self.flush_junk(out);
                self.finding(
                    out,
                    o,
                    FindingKind::LineEnd,
                    "found ETX after '!' and the characters after it; expected CR LF first".into(),
                );
                self.etx(o, t, out);
            }
            _ => {
                if self.junk_len < self.junk_sample.len() {
                    self.junk_sample[self.junk_len] = c;
                }
                self.junk_len = self.junk_len.saturating_add(1);
            }
        }
    }

    /// Reports the characters collected between `!` and its line end, if any.
    fn flush_junk<S: Sink>(&mut self, out: &mut S) {
        if self.junk_len == 0 {
            return;
        }
        let n = self.junk_len;
        let shown = show_run(&self.junk_sample[..n.min(self.junk_sample.len())], n);
        self.junk_len = 0;
        self.finding(
            out,
            self.junk_start,
            FindingKind::CharsAfterEnd,
            format!(
                "{n} character(s) between '!' and its line end: {shown}; expected CR LF straight \
                 after '!'"
            ),
        );
    }

    fn expected_bcc(&self) -> u8 {
        match self.opts.bcc_rule {
            BccRule::Xor => self.xor,
            BccRule::Sum => self.sum,
        }
    }

    fn flush_noise<S: Sink>(&mut self, out: &mut S) {
        if self.noise_len > 0 {
            let sample = show_run(&self.noise_sample, self.noise_len);
            self.finding(
                out,
                self.noise_start,
                FindingKind::Noise,
                format!(
                    "{} byte(s) before '/': {sample}; expected the identification '/' first",
                    self.noise_len
                ),
            );
            self.noise_len = 0;
            self.noise_sample.clear();
        }
    }

    fn begin_ident(&mut self, o: usize, t: Timestamp) {
        self.ident_start = o;
        self.ident_t = t;
        self.ident_buf.clear();
        self.ident_bad = false;
        self.ident_done = false;
        self.state = State::Slash;
    }

    fn ident_char<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        if c == CR || c == LF {
            self.begin_line_end(c, o, t, Ctx::Ident, out);
            return;
        }
        if c == b'/' && self.opts.mode == Mode::Tolerant {
            self.finding(
                out,
                o,
                FindingKind::Identification,
                format!(
                    "'/' inside the identification line; the {} characters before it are \
                     dropped and the identification starts again here",
                    o.saturating_sub(self.ident_start)
                ),
            );
            self.begin_ident(o, t);
            return;
        }
        if c == STX || c == ETX {
            // a line end is missing: end the identification here
            self.finding(
                out,
                o,
                FindingKind::LineEnd,
                format!(
                    "found {} inside the identification line; expected CR LF first",
                    show(c)
                ),
            );
            self.finish_ident(t, out);
            if self.state == State::Ident {
                self.state = State::AfterIdent;
            }
            self.step(c, o, t, out);
            return;
        }
        let pos = self.ident_buf.len(); // characters after '/'
        if pos >= MAX_FIELD {
            if !self.ident_bad {
                self.ident_bad = true;
                self.finding(
                    out,
                    o,
                    FindingKind::Truncated,
                    format!("identification longer than {MAX_FIELD} characters; rest dropped"),
                );
            }
            return;
        }
        let problem = match pos {
            0..=2 if !c.is_ascii_alphabetic() => Some(format!(
                "manufacturer character {} of the identification is {}; expected a letter A-Z \
                 or a-z ('/XXX')",
                pos + 1,
                show(c)
            )),
            3 if !is_printable(c) || c == b'!' || c == b'/' => Some(format!(
                "fifth character of the identification is {}; expected the baud-rate \
                 character, printable but not '/' or '!' (Kamstrup: space)",
                show(c)
            )),
            _ if pos >= 4 && (!is_printable(c) || c == b'!' || c == b'/') => Some(format!(
                "identification text contains {}; expected printable characters except '/' and \
                 '!'",
                show(c)
            )),
            _ if pos == 4 + STD_IDENT_TEXT => Some(format!(
                "identification text longer than {STD_IDENT_TEXT} characters; expected at most \
                 {STD_IDENT_TEXT}"
            )),
            _ => None,
        };
        self.ident_buf.push(c as char);
        if let Some(m) = problem {
            self.finding(out, o, FindingKind::Identification, m);
        }
    }

    /// Builds the identification from the collected characters and emits it.
    fn finish_ident<S: Sink>(&mut self, t_end: Timestamp, out: &mut S) {
        if self.ident_done {
            return;
        }
        self.ident_done = true;
        self.timing.identification_end = Some(t_end);
        let mut chars = self.ident_buf.chars();
        let manufacturer: String = chars.by_ref().take(3).collect();
        let mode_char = chars.next();
        let text: String = chars.collect();
        match mode_char {
            Some(mode_char) if manufacturer.len() == 3 => {
                let ident = Identification {
                    manufacturer,
                    mode_char,
                    text,
                };
                if let Some(third) = ident.manufacturer.chars().nth(2) {
                    if third.is_ascii_lowercase() {
                        self.info(
                            out,
                            self.ident_start + 3,
                            FindingKind::LowerCaseThird,
                            format!(
                                "third manufacturer letter {third:?} is lower case: by \
                                 IEC 62056-21 the meter may answer after 20 ms (upper case: \
                                 200 ms); the meter profile sets the limits"
                            ),
                        );
                    }
                }
                if S::KEEP {
                    out.emit(Event::Identification {
                        ident: ident.clone(),
                        t_start: self.ident_t,
                        t_end,
                    });
                }
                self.identification = Some(ident);
            }
            _ => {
                let got = self.ident_buf.clone();
                self.finding(
                    out,
                    self.ident_start,
                    FindingKind::Identification,
                    format!(
                        "identification line '/{got}' is too short; expected '/XXX', the baud \
                         character and the identification text"
                    ),
                );
            }
        }
    }

    fn begin_line_end<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, ctx: Ctx, out: &mut S) {
        self.le_first = o;
        self.le_pat = [0; 4];
        self.le_pat[0] = c;
        self.le_len = 1;
        self.le_ctx = ctx;
        self.le_emitted = false;
        self.le_quiet = false;
        if self.state != State::Rejected {
            self.state = State::LineEnd;
        }
        if c == LF {
            self.line_end_lf(t, out);
        }
    }

    /// An LF inside a line-end run: the line is complete.
    fn line_end_lf<S: Sink>(&mut self, t: Timestamp, out: &mut S) {
        if !self.le_emitted {
            self.le_emitted = true;
            if self.le_ctx == Ctx::Ident {
                self.finish_ident(t, out);
            }
        }
    }

    /// The run of CR/LF ended (a non-CR/LF character came, or the input ended).
    fn close_line_end<S: Sink>(&mut self, t: Timestamp, out: &mut S) {
        let n = self.le_len;
        let pat = self.le_pat;
        let crlf = n == 2 && pat[0] == CR && pat[1] == LF;
        if !self.le_quiet && !crlf {
            let what = match self.le_ctx {
                Ctx::Ident => "the identification line",
                Ctx::Data => "a data line",
                Ctx::End => "'!'",
            };
            let shown = show_run(&pat[..n.min(pat.len())], n);
            self.finding(
                out,
                self.le_first,
                FindingKind::LineEnd,
                format!("line end after {what} is {shown}; expected CR LF"),
            );
        }
        if self.le_ctx == Ctx::Ident {
            self.finish_ident(t, out);
        }
        if self.state == State::LineEnd {
            self.state = match self.le_ctx {
                Ctx::Ident => State::AfterIdent,
                Ctx::Data => State::LineStart,
                Ctx::End => State::AfterEnd,
            };
        }
    }

    fn line_start<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        match c {
            b'!' => {
                if !self.data_sets.is_empty() || self.dropped_data_sets > 0 {
                    self.info(
                        out,
                        o,
                        FindingKind::EndOnOwnLine,
                        "'!' on its own line (the standard's layout); the 351 sheet sends it \
                         straight after the last data set"
                            .into(),
                    );
                }
                self.end_mark(o, t, out);
            }
            CR | LF => {
                self.finding(
                    out,
                    o,
                    FindingKind::LineEnd,
                    format!(
                        "empty line ({} at the start of a line); expected a data set",
                        show(c)
                    ),
                );
                self.begin_line_end(c, o, t, Ctx::Data, out);
                // the empty line already has its finding; do not report the run again
                self.le_quiet = true;
            }
            ETX => self.etx_without_end(o, t, out),
            _ => {
                self.addr.clear();
                self.values.clear();
                self.multi_reported = false;
                self.sub_reported = false;
                self.ds_start = o;
                self.ds_t_start = t;
                self.state = State::Address;
                self.address_char(c, o, t, out);
            }
        }
    }

    fn address_char<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        match c {
            b'(' => {
                if self.addr.is_empty() {
                    self.finding(
                        out,
                        o,
                        FindingKind::DataSetSyntax,
                        "data set starts with '('; expected an address first".into(),
                    );
                    if self.state == State::Rejected {
                        return;
                    }
                }
                self.open_value(o);
            }
            CR | LF => {
                let a = self.addr.clone();
                self.finding(
                    out,
                    o,
                    FindingKind::DataSetSyntax,
                    format!("line ended after address {a:?}; expected '(' and a value"),
                );
                self.begin_line_end(c, o, t, Ctx::Data, out);
            }
            ETX => {
                self.finding(
                    out,
                    o,
                    FindingKind::DataSetSyntax,
                    "ETX inside a data set address; expected '(' and a value".into(),
                );
                self.etx_without_end(o, t, out);
            }
            _ if !is_printable(c) || c == b')' || c == b'/' || c == b'!' => {
                let a = self.addr.clone();
                self.finding(
                    out,
                    o,
                    FindingKind::DataSetSyntax,
                    format!(
                        "{} in data set address {a:?}; expected printable characters except \
                         '(', ')', '/' and '!', then '('",
                        show(c)
                    ),
                );
                self.skip_line();
            }
            _ => {
                if self.addr.len() >= MAX_FIELD {
                    self.finding(
                        out,
                        o,
                        FindingKind::Truncated,
                        format!(
                            "data set address longer than {MAX_FIELD} characters; line dropped"
                        ),
                    );
                    self.skip_line();
                    return;
                }
                if self.addr.len() == STD_ADDRESS {
                    self.finding(
                        out,
                        o,
                        FindingKind::DataSetSyntax,
                        format!("data set address longer than {STD_ADDRESS} characters"),
                    );
                }
                self.addr.push(c as char);
            }
        }
    }

    fn open_value(&mut self, o: usize) {
        self.raw.clear();
        self.unit.clear();
        self.paren_start = o;
        if self.state != State::Rejected {
            self.state = State::Value;
        }
    }

    fn value_char<S: Sink>(&mut self, c: u8, o: usize, t: Timestamp, out: &mut S) {
        let in_unit = self.state == State::Unit;
        match c {
            b')' => {
                if self.close_sub_value(o, out) {
                    self.ds_t_end = t;
                    if self.state == State::Value || self.state == State::Unit {
                        self.state = State::AfterValue;
                    }
                }
            }
            b'&' => {
                if !self.sub_reported {
                    self.sub_reported = true;
                    self.info(
                        out,
                        o,
                        FindingKind::SubValues,
                        format!(
                            "'&' separates sub-values in data set {:?}; each is read as a value",
                            self.addr
                        ),
                    );
                }
                if self.close_sub_value(o, out) && self.state == State::Unit {
                    self.state = State::Value;
                }
                self.raw.clear();
                self.unit.clear();
            }
            b'*' if !in_unit => self.state = State::Unit,
            CR | LF => {
                let a = self.addr.clone();
                self.finding(
                    out,
                    o,
                    FindingKind::DataSetSyntax,
                    format!("line ended inside a value of data set {a:?}; expected ')'"),
                );
                self.begin_line_end(c, o, t, Ctx::Data, out);
            }
            ETX => {
                self.finding(
                    out,
                    o,
                    FindingKind::DataSetSyntax,
                    "ETX inside a value; expected ')'".into(),
                );
                self.etx_without_end(o, t, out);
            }
            _ if !is_printable(c) || c == b'(' || c == b'!' || c == b'*' => {
                let a = self.addr.clone();
                self.finding(
                    out,
                    o,
                    FindingKind::DataSetSyntax,
                    format!(
                        "{} inside a {} of data set {a:?}; expected printable characters except \
                         '(', ')', '*', '/' and '!', then ')'",
                        show(c),
                        if in_unit { "unit" } else { "value" }
                    ),
                );
                self.skip_line();
            }
            _ => self.value_field_char(c, o, in_unit, out),
        }
    }

    /// An ordinary character of a value or unit, appended up to the caps.
    fn value_field_char<S: Sink>(&mut self, c: u8, o: usize, in_unit: bool, out: &mut S) {
        if c == b'/' {
            let a = self.addr.clone();
            self.finding(
                out,
                o,
                FindingKind::DataSetSyntax,
                format!(
                    "'/' inside a value of data set {a:?}; the standard does not allow \
                             '/' there"
                ),
            );
            if self.state == State::Rejected {
                return;
            }
        }
        let (field, std_max, name) = if in_unit {
            (&mut self.unit, STD_UNIT, "unit")
        } else {
            (&mut self.raw, STD_VALUE, "value")
        };
        if field.len() >= MAX_FIELD {
            self.finding(
                out,
                o,
                FindingKind::Truncated,
                format!("{name} longer than {MAX_FIELD} characters; line dropped"),
            );
            self.skip_line();
            return;
        }
        field.push(c as char);
        if field.len() == std_max + 1 {
            self.finding(
                out,
                o,
                FindingKind::DataSetSyntax,
                format!("{name} longer than {std_max} characters; expected at most {std_max}"),
            );
        }
    }

    /// Ends the current (sub-)value at `o` (a `)` or `&`); false if the data set was dropped.
    /// The value is copied out of the reused `raw` and `unit` buffers (one exact allocation
    /// each), which are left empty.
    fn close_sub_value<S: Sink>(&mut self, o: usize, out: &mut S) -> bool {
        let has_unit = self.state == State::Unit;
        if !has_unit {
            if let Some((num_end, unit_start)) = unit_inside_value(&self.raw) {
                let m = format!(
                    "value {:?} of data set {:?} carries its unit after a space inside the \
                     brackets; read as value {:?} with unit {:?}; expected VALUE*UNIT (the unit \
                     separated by '*')",
                    self.raw,
                    self.addr,
                    &self.raw[..num_end],
                    self.raw[unit_start..].trim_end()
                );
                let at = self.paren_start + 1 + num_end;
                self.finding(out, at, FindingKind::UnitInsideValue, m);
                self.unit.push_str(self.raw[unit_start..].trim_end());
                self.raw.truncate(num_end);
            }
        }
        if has_unit && self.unit.is_empty() {
            let m = format!(
                "empty unit after '*' in data set {:?}; expected a unit",
                self.addr
            );
            self.finding(out, o, FindingKind::DataSetSyntax, m);
        }
        if self.raw.is_empty() {
            let m = format!("empty value in data set {:?}; expected a value", self.addr);
            self.finding(out, o, FindingKind::EmptyValue, m);
        } else if self.raw.starts_with(' ') || self.raw.ends_with(' ') {
            let m = format!(
                "value {:?} of data set {:?} is padded with spaces; expected no spaces",
                self.raw, self.addr
            );
            self.finding(out, self.paren_start + 1, FindingKind::PaddedValue, m);
        }
        if self.raw.contains(',') && is_comma_decimal(&self.raw) {
            let m = format!(
                "value {:?} of data set {:?} uses ',' as decimal mark; expected '.'",
                self.raw, self.addr
            );
            self.finding(out, self.paren_start + 1, FindingKind::CommaDecimal, m);
        }
        if self.values.len() >= MAX_VALUES {
            let m = format!(
                "data set {:?} has more than {MAX_VALUES} values; line dropped",
                self.addr
            );
            self.finding(out, o, FindingKind::Truncated, m);
            self.raw.clear();
            self.unit.clear();
            self.skip_line();
            return false;
        }
        let value = Value {
            raw: self.raw.as_str().into(),
            unit: if self.unit.is_empty() {
                None
            } else {
                Some(self.unit.as_str().into())
            },
        };
        self.raw.clear();
        self.unit.clear();
        self.values.push(value);
        true
    }

    fn skip_line(&mut self) {
        self.values.clear();
        self.addr.clear();
        if self.state != State::Rejected {
            self.state = State::SkipLine;
        }
    }

    /// Completes the data set under construction: its address is copied out of the reused
    /// `addr` buffer and its values moved out of `values` into a vector of their exact number,
    /// both buffers left empty. The event gets a clone only when events are kept.
    fn emit_data_set<S: Sink>(&mut self, out: &mut S) {
        if self.data_sets.len() >= MAX_DATA_SETS {
            self.addr.clear();
            self.values.clear();
            if self.dropped_data_sets == 0 {
                self.finding(
                    out,
                    self.ds_start,
                    FindingKind::Truncated,
                    format!("more than {MAX_DATA_SETS} data sets; further ones are not kept"),
                );
            }
            self.dropped_data_sets = self.dropped_data_sets.saturating_add(1);
            return;
        }
        let values = match (self.values.pop(), self.values.is_empty()) {
            // the usual case, one value: no iterator machinery
            (Some(v), true) => vec![v],
            (Some(v), false) => {
                self.values.push(v);
                self.values.drain(..).collect()
            }
            (None, _) => Vec::new(),
        };
        let ds = DataSet {
            address: self.addr.as_str().into(),
            values,
        };
        self.addr.clear();
        if self.data_sets.capacity() == 0 {
            // Room for 20 data sets (the 351 sends 17) in 960 bytes. Staying under 1 KiB
            // matters with glibc: growing to 32 (1536 bytes) made it consolidate its fast bins
            // once per telegram, about a tenth of the decode time in `cargo bench --bench decode`.
            self.data_sets.reserve(20);
            self.timing.data_sets.reserve(20);
        }
        let index = self.data_sets.len();
        self.timing.data_sets.push(Span {
            start: self.ds_t_start,
            end: self.ds_t_end,
        });
        if S::KEEP {
            out.emit(Event::DataSet {
                index,
                data_set: ds.clone(),
                t_start: self.ds_t_start,
                t_end: self.ds_t_end,
            });
        }
        self.data_sets.push(ds);
    }

    fn end_mark<S: Sink>(&mut self, o: usize, t: Timestamp, out: &mut S) {
        self.end_seen = true;
        self.timing.end = Some(t);
        out.emit(Event::End { offset: o, t });
        if self.state != State::Rejected {
            self.state = State::AfterBang;
        }
    }

    fn etx_without_end<S: Sink>(&mut self, o: usize, t: Timestamp, out: &mut S) {
        if !self.end_seen {
            self.finding(
                out,
                o,
                FindingKind::MissingEnd,
                "found ETX without '!' CR LF before it; expected '!' after the last data set"
                    .into(),
            );
        }
        self.etx(o, t, out);
    }

    fn etx<S: Sink>(&mut self, o: usize, t: Timestamp, out: &mut S) {
        self.bcc_active = false;
        self.timing.etx = Some(t);
        out.emit(Event::Etx { offset: o, t });
        self.state = State::Bcc;
    }

    /// End of input: reports what is missing and returns the summary of the first telegram,
    /// with the telegrams a new identification `/` started after it (tolerant mode) in
    /// [`Decoded::following`]. Never fails; what is missing is a finding at the input's length.
    pub fn finish(mut self) -> Decoded {
        self.end_of_input();
        let total = self.offset;
        let last = self.conclude(total);
        let mut closed = std::mem::take(&mut self.closed);
        if closed.is_empty() {
            return last;
        }
        closed.push(last);
        for d in &mut closed {
            d.bytes = total;
        }
        let mut first = closed.remove(0);
        first.following = closed;
        first
    }

    /// The findings for input that ends in the current state.
    fn end_of_input(&mut self) {
        let mut out = Discard;
        let o = self.offset;
        let end_t = self.timing.bcc.unwrap_or_default();
        if self.state == State::LineEnd {
            self.close_line_end(end_t, &mut out);
        }
        if self.state == State::EndJunk {
            self.flush_junk(&mut out);
        }
        if self.state == State::AfterValue {
            self.emit_data_set(&mut out);
        }
        if self.state == State::Start {
            self.flush_noise(&mut out);
        }
        let (kind, msg) = match self.state {
            State::Start => (
                FindingKind::Truncated,
                format!(
                    "input ended after {o} byte(s) without an identification; expected '/XXX' …"
                ),
            ),
            State::Slash | State::Echo | State::Ident => (
                FindingKind::Truncated,
                "input ended inside the identification line; expected CR LF, STX, data, '!', \
                 ETX and BCC"
                    .into(),
            ),
            State::AfterIdent => (
                FindingKind::Truncated,
                "input ended after the identification line; expected STX and the data message"
                    .into(),
            ),
            State::LineStart
            | State::Address
            | State::Value
            | State::Unit
            | State::AfterValue
            | State::SkipLine
            | State::LineEnd => (
                FindingKind::Truncated,
                "input ended inside the data block; expected '!' CR LF, ETX and BCC".into(),
            ),
            State::AfterBang | State::EndJunk => {
                self.finding(
                    &mut out,
                    o,
                    FindingKind::LineEnd,
                    "input ended after '!'; expected CR LF".into(),
                );
                (
                    FindingKind::MissingEtx,
                    "input ended after '!'; expected ETX (0x03) and the BCC".into(),
                )
            }
            State::AfterEnd => (
                FindingKind::MissingEtx,
                "input ended after '!' and its line end; expected ETX (0x03) and the BCC".into(),
            ),
            State::Rejected => (
                FindingKind::MissingEtx,
                "input ended before ETX; expected ETX (0x03) and the BCC".into(),
            ),
            State::Bcc => (
                FindingKind::MissingBcc,
                "input ended after ETX; expected the BCC".into(),
            ),
            State::Done => return,
        };
        self.finding(&mut out, o, kind, msg);
    }

    /// The summary of the current telegram, which ends before offset `end`; its per-telegram
    /// buffers are taken out (the decoder is not used for this telegram afterwards).
    fn conclude(&mut self, end: usize) -> Decoded {
        if self.suppressed > 0 {
            let n = self.suppressed;
            self.findings.push(Finding {
                offset: end,
                kind: FindingKind::FindingsSuppressed,
                severity: Severity::Info,
                message: format!("{n} further finding(s) were not kept"),
            });
        }
        let bcc = BccReport {
            received: self.bcc_received,
            xor: self.xor,
            sum: self.sum,
            rule: self.opts.bcc_rule,
            ok: self.bcc_received == Some(self.expected_bcc()),
        };
        let findings = std::mem::take(&mut self.findings);
        let valid = bcc.ok
            && self.identification.is_some()
            && !findings.iter().any(|f| f.severity == Severity::Violation);
        let readable = self.identification.is_some() && !self.data_sets.is_empty();
        Decoded {
            identification_offset: self.ident_offset,
            range: self.tel_start..end,
            identification: self.identification.take(),
            data_sets: std::mem::take(&mut self.data_sets),
            bcc,
            findings,
            valid,
            readable,
            complete: self.bcc_received.is_some(),
            bytes: end,
            timing: std::mem::take(&mut self.timing),
            following: Vec::new(),
        }
    }
}

/// Decodes a whole input in one go; the timestamps are the byte indexes (in nanoseconds).
///
/// A conforming telegram (`/XXXZ` + text CR LF, STX, one-value data sets each ended by CR LF or
/// followed straight by the next one, `!` CR LF ETX and a matching BCC, nothing before or after,
/// good parity) is read by a slice fast path; anything else, or anything the fast path would
/// have to report, is decoded by the byte-by-byte state machine from the start
/// ([`decode_state_machine`]). Both give the same [`Decoded`]; a unit test, a proptest and the
/// fuzz target hold them equal.
pub fn decode(bytes: &[u8], opts: DecodeOptions) -> Decoded {
    match decode_fast(bytes, opts) {
        Some(d) => d,
        None => decode_state_machine(bytes, opts),
    }
}

/// Decodes a whole input byte by byte through [`Decoder::feed`], without the slice fast path of
/// [`decode`]: the reference the fast path is compared with (tests, fuzz target).
#[doc(hidden)]
pub fn decode_state_machine(bytes: &[u8], opts: DecodeOptions) -> Decoded {
    let mut d = Decoder::new(opts);
    for (i, &b) in bytes.iter().enumerate() {
        d.feed(b, Timestamp(i as u64));
    }
    d.finish()
}

/// Byte classes of both fast paths (the per-byte one in [`Decoder::push_with`] and the slice
/// one, [`decode_fast`]): an address character the state
/// machine accepts without a finding (printable except `(`, `)`, `/`, `!`), a value or unit
/// character (printable except `(`, `)`, `*`, `&`, `/`, `!`; also what may start a data set
/// straight after `)`), and an identification character from the fifth on (printable except
/// `/`, `!`).
const F_ADDR: u8 = 1;
const F_VALUE: u8 = 2;
const F_IDENT: u8 = 4;
const FAST_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0x20;
    while c <= 0x7E {
        t[c] = match c as u8 {
            b'(' | b')' | b'/' | b'!' => 0,
            b'*' | b'&' => F_ADDR | F_IDENT,
            _ => F_ADDR | F_VALUE | F_IDENT,
        };
        c += 1;
    }
    t
};

fn all_class(field: &[u8], class: u8) -> bool {
    field.iter().all(|&c| FAST_CLASS[c as usize] & class != 0)
}

/// The ASCII bytes (already checked against [`FAST_CLASS`]) as an owned string.
fn owned(field: &[u8]) -> Option<String> {
    std::str::from_utf8(field).ok().map(String::from)
}

/// The slice fast path of [`decode`]: `Some` only for an input the state machine decodes without
/// any finding, and then exactly what the state machine gives (mode does not matter then: strict
/// and tolerant differ only in how they react to findings). `None` means "not sure": the caller
/// runs the state machine.
fn decode_fast(bytes: &[u8], opts: DecodeOptions) -> Option<Decoded> {
    let n = bytes.len();
    // the shortest: "/XXXZ" CR LF STX "a(1)" "!" CR LF ETX BCC
    if n < 17 {
        return None;
    }
    let masked;
    let s: &[u8] = match opts.parity {
        ParityMode::None => {
            if bytes.iter().fold(0u8, |a, &b| a | b) & 0x80 != 0 {
                return None;
            }
            bytes
        }
        ParityMode::Even => {
            if !bytes.iter().all(|&b| EVEN[b as usize]) {
                return None;
            }
            masked = bytes.iter().map(|&b| b & 0x7F).collect::<Vec<u8>>();
            &masked
        }
    };
    // the end: '!' CR LF ETX BCC, nothing after
    let bang = n - 5;
    let etx = n - 2;
    if s[bang..n - 1] != [b'!', CR, LF, ETX] {
        return None;
    }
    // identification: '/', three letters (the third upper case), baud character, at most
    // STD_IDENT_TEXT characters of text, CR LF, STX
    if s[0] != b'/' {
        return None;
    }
    let cr = 1 + s[1..(STD_IDENT_TEXT + 6).min(bang)]
        .iter()
        .position(|&c| c == CR || c == LF)?;
    let ident = &s[1..cr];
    if ident.len() < 4
        || !ident[..3].iter().all(u8::is_ascii_alphabetic)
        || !ident[2].is_ascii_uppercase()
        || !all_class(&ident[3..], F_IDENT)
        || s[cr] != CR
        || s[cr + 1] != LF
        || s[cr + 2] != STX
    {
        return None;
    }
    let stx = cr + 2;
    let identification = Identification {
        manufacturer: owned(&ident[..3])?,
        mode_char: ident[3] as char,
        text: owned(&ident[4..])?,
    };
    // data sets: ADDRESS(VALUE[*UNIT]), then CR LF, the next data set, or the final '!'
    let mut data_sets: Vec<DataSet> = Vec::with_capacity(20);
    let mut spans: Vec<Span> = Vec::with_capacity(20);
    let mut i = stx + 1;
    let mut straight_after_value = false;
    loop {
        if data_sets.len() >= MAX_DATA_SETS {
            return None;
        }
        let ds_start = i;
        let p = i + s[i..(i + STD_ADDRESS + 1).min(bang)]
            .iter()
            .position(|&c| c == b'(')?;
        let addr = &s[i..p];
        if addr.is_empty()
            || !all_class(addr, F_ADDR)
            || (straight_after_value && FAST_CLASS[addr[0] as usize] & F_VALUE == 0)
        {
            return None;
        }
        let v = p + 1;
        let q = v + s[v..(v + STD_VALUE + STD_UNIT + 2).min(bang)]
            .iter()
            .position(|&c| c == b')')?;
        let inner = &s[v..q];
        let (raw, unit) = match inner.iter().position(|&c| c == b'*') {
            Some(k) => (&inner[..k], Some(&inner[k + 1..])),
            None => (inner, None),
        };
        if raw.is_empty()
            || raw.len() > STD_VALUE
            || !all_class(raw, F_VALUE)
            || raw[0] == b' '
            || raw[raw.len() - 1] == b' '
        {
            return None;
        }
        let raw = owned(raw)?;
        if raw.contains(',') && is_comma_decimal(&raw) {
            return None;
        }
        if unit.is_none() && unit_inside_value(&raw).is_some() {
            return None;
        }
        let unit = match unit {
            Some(u) if !u.is_empty() && u.len() <= STD_UNIT && all_class(u, F_VALUE) => {
                Some(owned(u)?)
            }
            Some(_) => return None,
            None => None,
        };
        data_sets.push(DataSet {
            address: owned(addr)?,
            values: vec![Value { raw, unit }],
        });
        spans.push(Span {
            start: Timestamp(ds_start as u64),
            end: Timestamp(q as u64),
        });
        i = q + 1;
        if i == bang {
            break;
        }
        if s[i] == CR {
            if s[i + 1] != LF {
                return None;
            }
            i += 2;
            straight_after_value = false;
        } else {
            straight_after_value = true;
        }
    }
    // the BCC: after STX up to and including ETX
    let block = &s[stx + 1..=etx];
    let xor = block.iter().fold(0u8, |a, &c| a ^ c);
    let sum = block.iter().fold(0u8, |a, &c| a.wrapping_add(c)) & 0x7F;
    let received = s[n - 1];
    let expected = match opts.bcc_rule {
        BccRule::Xor => xor,
        BccRule::Sum => sum,
    };
    if received != expected {
        return None;
    }
    let t = |o: usize| Some(Timestamp(o as u64));
    Some(Decoded {
        identification_offset: Some(0),
        range: 0..n,
        identification: Some(identification),
        readable: !data_sets.is_empty(),
        data_sets,
        bcc: BccReport {
            received: Some(received),
            xor,
            sum,
            rule: opts.bcc_rule,
            ok: true,
        },
        findings: Vec::new(),
        valid: true,
        complete: true,
        bytes: n,
        timing: Timing {
            identification_start: t(0),
            identification_end: t(cr + 1),
            stx: t(stx),
            data_sets: spans,
            end: t(bang),
            etx: t(etx),
            bcc: t(n - 1),
        },
        following: Vec::new(),
    })
}

/// Picks the parity mode for an input of unknown origin (`--parity auto`): [`ParityMode::Even`]
/// when the bytes look like a soft-7E1 capture, that is, at least one byte has bit 7 set and more
/// than half of the bytes whose 7-bit value has an odd number of ones carry bit 7 (which is where
/// even parity puts it); otherwise [`ParityMode::None`].
pub fn detect_parity(bytes: &[u8]) -> ParityMode {
    let mut odd = 0usize;
    let mut odd_with_bit7 = 0usize;
    for &b in bytes {
        if (b & 0x7F).count_ones() % 2 == 1 {
            odd += 1;
            if b & 0x80 != 0 {
                odd_with_bit7 += 1;
            }
        }
    }
    if odd_with_bit7 > 0 && odd_with_bit7 * 2 > odd {
        ParityMode::Even
    } else {
        ParityMode::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKED: &[u8] =
        include_bytes!("../../fixtures/telegrams/kamstrup-351-worked-example.txt");

    fn strict() -> DecodeOptions {
        DecodeOptions::strict(BccRule::Xor, ParityMode::None)
    }
    fn tolerant() -> DecodeOptions {
        DecodeOptions::tolerant(BccRule::Xor, ParityMode::None)
    }
    fn kinds(d: &Decoded) -> Vec<&'static str> {
        d.findings.iter().map(|f| f.kind.name()).collect()
    }

    #[test]
    fn worked_example_is_valid_in_both_modes() {
        for opts in [strict(), tolerant()] {
            let d = decode(WORKED, opts);
            assert!(d.valid, "{:#?}", d.findings);
            assert_eq!(d.data_sets.len(), 17);
            assert_eq!(d.bcc.received, Some(b'7'));
            assert_eq!((d.bcc.xor, d.bcc.sum), (b'7', b'7'));
        }
    }

    #[test]
    fn addressed_echo_is_skipped() {
        let mut v = b"/?12345678!\r\n".to_vec();
        v.extend_from_slice(WORKED);
        let d = decode(&v, tolerant());
        assert_eq!(kinds(&d), ["echo"]);
        assert_eq!(d.findings[0].offset, 0);
        assert_eq!(d.data_sets.len(), 17);
        assert_eq!(d.timing.identification_start, Some(Timestamp(13)));
    }

    #[test]
    fn strict_names_the_offending_identification_character() {
        let mut v = WORKED.to_vec();
        v[2] = b'4'; // "/K4M"
        let d = decode(&v, strict());
        assert!(!d.valid);
        let f = &d.findings[0];
        assert_eq!((f.kind, f.offset), (FindingKind::Identification, 2));
        assert!(f.message.contains("expected a letter"), "{}", f.message);
        // strict stops interpreting; tolerant reads on
        assert!(d.data_sets.is_empty());
        assert!(decode(&v, tolerant()).data_sets.len() == 17);
    }

    #[test]
    fn lower_case_third_letter_is_information() {
        let v = String::from_utf8_lossy(WORKED).replacen("/KAM", "/KAm", 1);
        let d = decode(v.as_bytes(), strict());
        assert_eq!(kinds(&d), ["lower_case_third"]);
        assert_eq!(d.findings[0].severity, Severity::Info);
        assert!(d.valid);
    }

    #[test]
    fn slash_inside_identification_restarts_it_when_tolerant() {
        let mut v = b"/KA".to_vec();
        v.extend_from_slice(WORKED);
        let d = decode(&v, tolerant());
        assert_eq!(
            d.identification.map(|i| i.text),
            Some("685351A300100".into())
        );
        assert_eq!(d.data_sets.len(), 17);
        assert_eq!(kinds(&decode(&v, tolerant())), ["identification"]);
    }

    #[test]
    fn several_data_sets_on_one_line() {
        let d = decode(
            b"/KAM MC\r\n\x02a(1)b(2*kW)\r\nc(3)!\r\n\x03\x00",
            tolerant(),
        );
        let addrs: Vec<&str> = d.data_sets.iter().map(|d| d.address.as_str()).collect();
        assert_eq!(addrs, ["a", "b", "c"]);
        assert_eq!(d.data_sets[1].values[0].unit.as_deref(), Some("kW"));
    }

    #[test]
    fn high_bit_in_seven_bit_input() {
        let mut v = WORKED.to_vec();
        v[30] |= 0x80;
        let s = decode(&v, strict());
        assert_eq!(kinds(&s), ["high_bit"]);
        assert_eq!(s.findings[0].offset, 30);
        assert!(!s.valid);
        let t = decode(&v, tolerant());
        assert_eq!(t.findings[0].severity, Severity::Info);
        assert!(t.valid);
    }

    #[test]
    fn long_fields_and_floods_are_capped() {
        // a value far longer than any cap
        let mut v = b"/KAM 1\r\n\x02A(".to_vec();
        v.extend(std::iter::repeat_n(b'9', 100_000));
        v.extend_from_slice(b")\r\n!\r\n\x03\x00");
        let d = decode(&v, tolerant());
        assert!(kinds(&d).contains(&"truncated"));
        assert!(d.data_sets.is_empty());
        // parity errors on every byte: findings stop at the cap
        let junk = vec![0x01u8; 10_000];
        let d = decode(
            &junk,
            DecodeOptions::tolerant(BccRule::Xor, ParityMode::Even),
        );
        assert!(d.findings.len() <= MAX_FINDINGS + 2);
        assert_eq!(
            d.findings.last().map(|f| f.kind),
            Some(FindingKind::FindingsSuppressed)
        );
        // endless data sets: kept up to the cap
        let mut v = b"/KAM 1\r\n\x02".to_vec();
        for _ in 0..(MAX_DATA_SETS + 10) {
            v.extend_from_slice(b"1(2)\r\n");
        }
        let d = decode(&v, tolerant());
        assert_eq!(d.data_sets.len(), MAX_DATA_SETS);
    }

    #[test]
    fn missing_end_before_etx() {
        let d = decode(b"/KAM 1\r\n\x021(2)\r\n\x03\x00", tolerant());
        assert_eq!(d.data_sets.len(), 1);
        assert!(kinds(&d).contains(&"missing_end"));
        assert!(d.complete);
    }

    /// Found by cargo fuzz: '/' as the fifth character was accepted by strict mode, which then
    /// read more data sets than tolerant mode (which restarts the identification at a '/').
    #[test]
    fn fuzz_regression_slash_as_fifth_character() {
        let input: &[u8] = &[
            47, 107, 65, 77, 47, 63, 232, 65, 51, 48, 48, 49, 48, 48, 13, 10, 2, 48, 46, 48, 46,
            48, 40, 48, 48, 48, 48, 48, 48, 48, 48, 41, 13, 10, 48, 46, 50, 46, 48, 40, 53, 48, 48,
            48, 68, 49, 41, 13, 10, 49, 46, 56, 46, 48, 40, 48, 48, 49, 50, 54, 53, 56, 42, 107,
            87, 104, 41, 13, 10, 49, 46, 56, 46, 49, 40, 48, 48, 48, 48, 56, 56, 54, 42, 107, 87,
            104, 40, 13, 129, 253, 129, 47, 138, 3, 6,
        ];
        for parity in [ParityMode::Even, ParityMode::None] {
            for rule in [BccRule::Xor, BccRule::Sum] {
                let s = decode(input, DecodeOptions::strict(rule, parity));
                let t = decode(input, DecodeOptions::tolerant(rule, parity));
                assert!(s.data_sets.len() <= t.data_sets.len());
                assert!(s
                    .findings
                    .iter()
                    .any(|f| f.kind == FindingKind::Identification && f.offset == 4));
            }
        }
    }

    /// Every byte through the full state machine, bypassing the fast path of `push_with`.
    fn decode_without_fast_path(bytes: &[u8], opts: DecodeOptions) -> Decoded {
        let mut d = Decoder::new(opts);
        for (i, &b) in bytes.iter().enumerate() {
            d.push_slow(b, Timestamp(i as u64), &mut Discard);
        }
        d.finish()
    }

    fn all_options() -> Vec<DecodeOptions> {
        let mut v = Vec::new();
        for mode in [Mode::Strict, Mode::Tolerant] {
            for bcc_rule in [BccRule::Xor, BccRule::Sum] {
                for parity in [ParityMode::Even, ParityMode::None] {
                    v.push(DecodeOptions {
                        mode,
                        bcc_rule,
                        parity,
                    });
                }
            }
        }
        v
    }

    /// The fast path (ordinary characters of an address, value or unit) decodes exactly as the
    /// full state machine: on every fixture, on fields at and past the standard's length limits,
    /// and on the worked example (7-bit and 7E1) with each byte replaced by each special one.
    #[test]
    fn fast_path_decodes_as_the_full_state_machine() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/telegrams");
        let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt" || x == "bin"))
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert!(inputs.len() >= 18);
        let long = |n: usize| "7".repeat(n);
        for (a, v, u) in [(15, 31, 15), (16, 32, 16), (17, 33, 17), (130, 130, 130)] {
            let t = format!(
                "/KAM 1\r\n\x02{}({}*{})\r\nA&*({}*k&W*h)(1)\r\n0.1(2)!\r\n\x03",
                long(a),
                long(v),
                "h".repeat(u),
                long(v)
            );
            inputs.push(t.into_bytes());
        }
        let opts = all_options();
        for input in &inputs {
            for &o in &opts {
                assert_eq!(decode(input, o), decode_without_fast_path(input, o));
            }
        }
        let specials = [
            b'(', b')', b'*', b'&', b'/', b'!', CR, LF, STX, ETX, b' ', b',', 0x7F, 0x00,
        ];
        for base in [WORKED.to_vec(), parity::encode(WORKED)] {
            for i in 0..base.len() {
                let mut v = base.clone();
                for s in specials.iter().copied().chain([base[i] ^ 0x80]) {
                    v[i] = s;
                    for &o in opts.iter().filter(|o| o.bcc_rule == BccRule::Xor) {
                        assert_eq!(decode(&v, o), decode_without_fast_path(&v, o), "{i} {s}");
                    }
                }
            }
        }
    }

    /// The fixtures: every `.txt` and `.bin` file, and the soft-7E1 encoding of every `.txt`.
    fn fixture_inputs() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/telegrams");
        let field = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/telegrams/field");
        let mut inputs = Vec::new();
        let files = std::fs::read_dir(dir)
            .unwrap()
            .chain(std::fs::read_dir(field).unwrap())
            .map(|e| e.unwrap().path());
        for p in files {
            let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
            if ext == "txt" || ext == "bin" {
                let b = std::fs::read(&p).unwrap();
                if ext == "txt" {
                    inputs.push(parity::encode(&b));
                }
                inputs.push(b);
            }
        }
        inputs
    }

    /// Whether the slice fast path of `decode` takes `input`; if it does, its result must be
    /// exactly the state machine's.
    fn check_fast(input: &[u8], o: DecodeOptions) -> bool {
        match decode_fast(input, o) {
            Some(fast) => {
                let slow = decode_state_machine(input, o);
                assert_eq!(fast, slow, "{o:?} {:?}", String::from_utf8_lossy(input));
                true
            }
            None => false,
        }
    }

    /// `decode` (slice fast path) equals the state machine on every fixture, in both modes,
    /// under both BCC rules, with parity none and even; and the fast path is taken where it
    /// should be.
    #[test]
    fn slice_fast_path_equals_state_machine_on_fixtures() {
        let mut inputs = fixture_inputs();
        assert!(inputs.len() >= 30);
        // fields at, and one past, the standard's length limits; '*' and '&' in an address;
        // data sets straight after one another; the identification text at its limit
        for (a, v, u, id) in [
            (15, 31, 15, 15),
            (16, 32, 16, 16),
            (17, 32, 16, 16),
            (16, 33, 16, 16),
            (16, 32, 17, 16),
            (16, 32, 16, 17),
        ] {
            for sep in ["\r\n", ""] {
                let t = format!(
                    "/KAM {}\r\n\x02{}(1){sep}A&*({}){sep}C(1*{}){sep}0.1(2)!\r\n\x03?",
                    "x".repeat(id),
                    "7".repeat(a),
                    "7".repeat(v),
                    "h".repeat(u),
                );
                let t = with_xor_bcc(t.as_bytes(), false);
                let conforming = a <= 16 && v <= 32 && u <= 16 && id <= 16;
                assert_eq!(check_fast(&t, strict()), conforming, "{a} {v} {u} {id}");
                inputs.push(parity::encode(&t));
                inputs.push(t);
            }
        }
        for input in &inputs {
            for o in all_options() {
                assert_eq!(decode(input, o), decode_state_machine(input, o));
                check_fast(input, o);
            }
        }
        for (input, parity) in [
            (WORKED.to_vec(), ParityMode::None),
            (parity::encode(WORKED), ParityMode::Even),
        ] {
            for mode in [Mode::Strict, Mode::Tolerant] {
                for rule in [BccRule::Xor, BccRule::Sum] {
                    let o = DecodeOptions {
                        mode,
                        bcc_rule: rule,
                        parity,
                    };
                    assert!(check_fast(&input, o), "fast path not taken: {o:?}");
                }
            }
        }
        let multical = include_bytes!("../../fixtures/telegrams/multical-sum-bcc.txt");
        assert!(check_fast(
            multical,
            DecodeOptions::strict(BccRule::Sum, ParityMode::None)
        ));
        assert!(!check_fast(multical, strict()));
    }

    /// The last byte replaced by the XOR of everything after the first STX (with even parity
    /// for 7E1 input), so that a mutation inside the data block still gets past the BCC.
    fn with_xor_bcc(v: &[u8], even: bool) -> Vec<u8> {
        let mut v = v.to_vec();
        if let (Some(stx), Some(last)) = (
            v.iter().position(|&b| b & 0x7F == STX),
            v.len().checked_sub(1),
        ) {
            if stx < last {
                let x = v[stx + 1..last].iter().fold(0u8, |a, &b| a ^ (b & 0x7F));
                v[last] = if even { parity::add_even(x) } else { x };
            }
        }
        v
    }

    /// Every single-byte replacement, single-bit flip and truncation of the worked example
    /// (7-bit and 7E1), each also with the BCC recomputed: wherever the fast path is taken, it
    /// equals the state machine.
    #[test]
    fn slice_fast_path_equals_state_machine_on_mutations() {
        let opts = all_options();
        let mut taken = 0usize;
        for (base, even) in [(WORKED.to_vec(), false), (parity::encode(WORKED), true)] {
            let mut check = |v: &[u8]| {
                for w in [v.to_vec(), with_xor_bcc(v, even)] {
                    for &o in &opts {
                        taken += usize::from(check_fast(&w, o));
                    }
                }
            };
            for i in 0..base.len() {
                let mut v = base.clone();
                for b in 0..=255u8 {
                    v[i] = b;
                    check(&v);
                }
                for bit in 0..8 {
                    let mut v = base.clone();
                    v[i] ^= 1 << bit;
                    check(&v);
                }
                check(&base[..i]);
            }
        }
        // the mutations that keep the telegram conforming do take the fast path
        assert!(taken > 10_000, "{taken}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Random mutations (replacements, insertions, deletions) of the worked example and of
        /// the MULTICAL fixture, with and without the BCC recomputed: `decode` equals the state
        /// machine under every option.
        #[test]
        fn slice_fast_path_equals_state_machine_on_random_mutations(
            which in 0..2usize,
            even in proptest::bool::ANY,
            fix_bcc in proptest::bool::ANY,
            edits in proptest::collection::vec((0..4u8, 0..400usize, proptest::num::u8::ANY), 0..6),
        ) {
            let multical: &[u8] = include_bytes!("../../fixtures/telegrams/multical-sum-bcc.txt");
            let base = [WORKED, multical][which];
            let mut v = if even { parity::encode(base) } else { base.to_vec() };
            for (op, at, b) in edits {
                let at = at % (v.len() + 1);
                let b = match b % 4 {
                    // a structural character half the time
                    0 | 1 => [b'(', b')', b'*', b'&', b'/', b'!', CR, LF, STX, ETX, b' ', b',', b'A', b'0'][b as usize % 14],
                    _ => b,
                };
                let b = if even { parity::add_even(b) } else { b };
                match op {
                    0 if at < v.len() => v[at] = b,
                    1 => v.insert(at, b),
                    2 if at < v.len() => { v.remove(at); }
                    _ if at < v.len() => v[at] ^= 1 << (b % 8),
                    _ => {}
                }
            }
            if fix_bcc {
                v = with_xor_bcc(&v, even);
            }
            for o in all_options() {
                proptest::prop_assert_eq!(decode(&v, o), decode_state_machine(&v, o));
            }
        }
    }

    #[test]
    fn parity_detection() {
        assert_eq!(detect_parity(WORKED), ParityMode::None);
        assert_eq!(detect_parity(&parity::encode(WORKED)), ParityMode::Even);
        assert_eq!(detect_parity(&[]), ParityMode::None);
    }

    #[test]
    fn categories_are_the_five() {
        use FindingKind::*;
        for k in [
            Parity,
            HighBit,
            Noise,
            Echo,
            Identification,
            LowerCaseThird,
            MissingStx,
            LineEnd,
            DataSetSyntax,
            CommaDecimal,
            EmptyValue,
            PaddedValue,
            MultipleValues,
            SubValues,
            EndOnOwnLine,
            MissingEnd,
            MissingEtx,
            MissingBcc,
            BccMismatch {
                other_rule_matches: true,
            },
            Truncated,
            TrailingBytes,
            FindingsSuppressed,
            NewIdentification,
            CharsAfterEnd,
            UnitInsideValue,
        ] {
            assert!(["framing", "structure", "bcc", "content", "noise"].contains(&k.category()));
            assert!(!k.name().is_empty());
            assert!(!k.clause().is_empty());
        }
    }

    const BROKEN_THEN_COMPLETE: &[u8] =
        include_bytes!("../../fixtures/telegrams/field/broken-then-complete.bin");
    const TWO_NO_ETX: &[u8] =
        include_bytes!("../../fixtures/telegrams/field/two-telegrams-no-etx.bin");

    /// The ranges of a telegram and its following ones cover the input without gap or overlap.
    fn assert_ranges_cover(d: &Decoded, len: usize) {
        let mut at = 0;
        for t in d.telegrams() {
            assert_eq!(t.range.start, at, "{:?}", t.range);
            assert!(t.following.is_empty() || std::ptr::eq(t, d));
            at = t.range.end;
        }
        assert_eq!(at, len);
    }

    /// An echo of the request and 0x7F/NUL noise, alone, in either order, with or without the
    /// echo's CR LF: the identification starts at the `/` after them, the findings name the echo
    /// and the noise, and none says the identification is broken.
    #[test]
    fn echo_and_noise_before_the_identification() {
        let prefixes: [&[u8]; 7] = [
            b"/?!\r\n",
            b"\x7f\x00\x7f",
            b"\x00\x7f/?!\r\n",
            b"/?!\r\n\x7f\x00",
            b"/?12345678!\r\n\x00",
            b"/?!",
            b"/?!\r",
        ];
        for prefix in prefixes {
            let mut v = prefix.to_vec();
            v.extend_from_slice(WORKED);
            for opts in all_options()
                .into_iter()
                .filter(|o| o.parity == ParityMode::None)
            {
                let d = decode(&v, opts);
                let ctx = format!("{:?} {opts:?}: {:#?}", String::from_utf8_lossy(prefix), d);
                assert_eq!(d.identification_offset, Some(prefix.len()), "{ctx}");
                assert_eq!(
                    d.timing.identification_start,
                    Some(Timestamp(prefix.len() as u64)),
                    "{ctx}"
                );
                assert_eq!(d.data_sets.len(), 17, "{ctx}");
                assert!(d.following.is_empty(), "{ctx}");
                let mut k = kinds(&d);
                k.dedup();
                let expected: &[&str] = match prefix {
                    b"\x7f\x00\x7f" => &["noise"],
                    b"/?!\r\n" | b"/?!" | b"/?!\r" => &["echo"],
                    b"\x00\x7f/?!\r\n" => &["noise", "echo"],
                    _ => &["echo", "noise"],
                };
                assert_eq!(k, expected, "{ctx}");
                assert_eq!(d.findings[0].offset, 0, "{ctx}");
                let echo = d.findings.iter().find(|f| f.kind == FindingKind::Echo);
                assert!(echo.is_none_or(|f| f.message.contains("echo of the request")));
                assert!(d.bcc.ok, "{ctx}");
            }
        }
    }

    /// Field case two-telegrams-no-etx.bin: tolerant reads both push telegrams; the first ends
    /// at the second '/' (offset 31) with one `new_identification` finding there.
    #[test]
    fn two_telegrams_without_etx_are_both_read() {
        let d = decode(TWO_NO_ETX, tolerant());
        assert_eq!(d.following.len(), 1);
        assert_ranges_cover(&d, TWO_NO_ETX.len());
        let second = &d.following[0];
        assert_eq!(d.identification_offset, Some(0));
        assert_eq!(second.identification_offset, Some(31));
        assert_eq!(d.range, 0..31);
        let nums: Vec<Option<f64>> = d
            .telegrams()
            .map(|t| t.data_sets[0].values[0].number())
            .collect();
        assert_eq!(nums, [Some(12.0), Some(13.0)]);
        assert!(d.telegrams().all(|t| t.readable && !t.valid));
        let f = d.findings.last().unwrap();
        assert_eq!((f.kind, f.offset), (FindingKind::NewIdentification, 31));
        assert_eq!(f.severity, Severity::Violation);
        assert_eq!(
            kinds(&d),
            ["missing_stx", "end_on_own_line", "new_identification"]
        );
        assert_eq!(
            kinds(second),
            ["missing_stx", "end_on_own_line", "missing_etx"]
        );
        assert!(second.findings.iter().all(|f| f.offset >= 31));
        assert_eq!(second.bytes, TWO_NO_ETX.len());
    }

    /// Field case broken-then-complete.bin: the first telegram is broken at the second '/'
    /// (offset 30); the second is read and its BCC 'a' is the correct XOR.
    #[test]
    fn broken_telegram_then_a_complete_one() {
        let d = decode(BROKEN_THEN_COMPLETE, tolerant());
        assert_ranges_cover(&d, BROKEN_THEN_COMPLETE.len());
        assert_eq!(kinds(&d), ["new_identification"]);
        assert_eq!(d.findings[0].offset, 30);
        assert!(d.findings[0].message.contains("breaks off"));
        assert!(!d.valid && !d.complete);
        let second = &d.following[..];
        assert_eq!(second.len(), 1);
        let s = &second[0];
        assert!(s.valid && s.complete && s.bcc.ok, "{:#?}", s.findings);
        assert_eq!(s.bcc.received, Some(b'a'));
        assert_eq!(s.identification_offset, Some(30));
        assert_eq!(s.data_sets[0].values[0].raw, "000013");
        // the BCC of the broken telegram does not count the new '/'
        assert_eq!(
            d.bcc.xor,
            crate::iec62056::bcc(BccRule::Xor, &BROKEN_THEN_COMPLETE[10..30])
        );
        // the same on the wire (soft 7E1), and with a parity error on the new '/'
        let mut wire = parity::encode(BROKEN_THEN_COMPLETE);
        let even = DecodeOptions::tolerant(BccRule::Xor, ParityMode::Even);
        let w = decode(&wire, even);
        assert_eq!(
            (w.findings.clone(), w.following.len()),
            (d.findings.clone(), 1)
        );
        assert!(w.following[0].valid);
        wire[30] ^= 0x80;
        let w = decode(&wire, even);
        assert_eq!(kinds(&w), ["new_identification"]);
        assert_eq!(kinds(&w.following[0]), ["parity"]);
        assert_eq!(w.following[0].findings[0].offset, 30);
    }

    /// Incrementally, the decoder says where a new '/' started, and `is_complete` refers to the
    /// telegram being decoded.
    #[test]
    fn incremental_decoder_reports_the_new_identification() {
        let mut d = Decoder::new(tolerant());
        let mut events = Vec::new();
        let mut closed_at = None;
        for (i, &b) in BROKEN_THEN_COMPLETE.iter().enumerate() {
            d.push(b, Timestamp(i as u64), &mut events);
            if closed_at.is_none() && d.telegrams_closed() == 1 {
                closed_at = Some(i);
            }
            assert_eq!(d.is_complete(), i + 1 == BROKEN_THEN_COMPLETE.len(), "{i}");
        }
        assert_eq!(closed_at, Some(30));
        assert_eq!(d.identification_offset(), Some(30));
        let starts: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::IdentificationStart { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
        assert_eq!(starts, [0, 30]);
        assert!(events.iter().any(|e| matches!(e,
            Event::Finding(f) if f.kind == FindingKind::NewIdentification && f.offset == 30)));
        assert_eq!(d.finish(), decode(BROKEN_THEN_COMPLETE, tolerant()));
    }

    /// Strict mode judges the whole input as one telegram: it never splits.
    #[test]
    fn strict_mode_does_not_split() {
        for input in [BROKEN_THEN_COMPLETE, TWO_NO_ETX] {
            let d = decode(input, strict());
            assert!(d.following.is_empty() && !d.valid);
            assert_eq!(d.range, 0..input.len());
        }
    }

    /// Two complete telegrams back to back: the second is read as a telegram of its own, and
    /// the first says a second one followed (bytes after its BCC).
    #[test]
    fn second_telegram_after_the_bcc() {
        let mut v = WORKED.to_vec();
        v.extend_from_slice(WORKED);
        let d = decode(&v, tolerant());
        assert_eq!(kinds(&d), ["new_identification"]);
        assert!(d.findings[0].message.contains("second telegram"));
        assert_eq!(d.findings[0].offset, WORKED.len());
        assert!(d.complete && d.bcc.ok && !d.valid);
        assert!(d.following[0].valid);
        assert_ranges_cover(&d, v.len());
        // a '/' inside a value is still part of the value, not a new telegram
        let d = decode(b"/KAM 1\r\n\x021(2/3)!\r\n\x03\x00", tolerant());
        assert!(d.following.is_empty());
        assert_eq!(d.data_sets[0].values[0].raw, "2/3");
    }

    /// The telegram cap holds: a flood of identification lines gives at most MAX_TELEGRAMS.
    #[test]
    fn telegrams_are_capped() {
        let v = b"/KAM 1\r\n".repeat(MAX_TELEGRAMS * 3);
        let d = decode(&v, tolerant());
        assert_eq!(d.telegrams().count(), MAX_TELEGRAMS);
        assert_ranges_cover(&d, v.len());
    }

    /// Field case chars-after-end.bin: one finding for "7E" between '!' and CR LF, no claim
    /// that ETX is missing; the BCC is right.
    #[test]
    fn characters_between_end_mark_and_line_end() {
        let input = include_bytes!("../../fixtures/telegrams/field/chars-after-end.bin");
        for opts in [strict(), tolerant()] {
            let d = decode(input, opts);
            let after: Vec<&Finding> = d.findings.iter().filter(|f| f.offset >= 30).collect();
            assert_eq!(after.len(), 1, "{:#?}", d.findings);
            let f = after[0];
            assert_eq!((f.kind, f.offset), (FindingKind::CharsAfterEnd, 30));
            assert!(f.message.contains("'7' 'E'"), "{}", f.message);
            assert!(!f.message.contains("after '!' CR LF"), "{}", f.message);
            assert!(d.findings.iter().all(|f| f.kind != FindingKind::MissingEtx));
            assert!(d.bcc.ok && d.complete && !d.valid);
        }
        // straight into ETX, or the input ends: still one finding for the characters
        for (input, last) in [
            (&b"/KAM 1\r\n\x021(2)!xy\x03\x00"[..], "line_end"),
            (&b"/KAM 1\r\n\x021(2)!xy"[..], "missing_etx"),
        ] {
            let d = decode(input, tolerant());
            let k = kinds(&d);
            assert_eq!(
                k.iter().filter(|k| **k == "chars_after_end").count(),
                1,
                "{k:?}"
            );
            assert!(k.contains(&last), "{:#?}", d.findings);
        }
    }

    /// Field case unit-inside-value.bin: tolerant reads 4321 kWh and names the quirk; strict
    /// reports a violation at the space.
    #[test]
    fn unit_inside_the_value() {
        let input = include_bytes!("../../fixtures/telegrams/field/unit-inside-value.bin");
        let t = decode(input, tolerant());
        let v = &t.data_sets[0].values[0];
        assert_eq!((v.number(), v.unit.as_deref()), (Some(4321.0), Some("kWh")));
        assert!(t.readable);
        let s = decode(input, strict());
        assert!(!s.valid);
        for d in [&t, &s] {
            let f = d
                .findings
                .iter()
                .find(|f| f.kind == FindingKind::UnitInsideValue)
                .unwrap();
            assert_eq!((f.offset, f.severity), (25, Severity::Violation));
            assert!(f.message.contains("'*'"), "{}", f.message);
        }
        // only a number followed by a unit-like word is split
        assert_eq!(unit_inside_value("0004321 kWh"), Some((7, 8)));
        assert_eq!(unit_inside_value(" -12,5  %  "), Some((6, 8)));
        assert_eq!(unit_inside_value("12 34"), None);
        assert_eq!(unit_inside_value("A 12"), None);
        assert_eq!(unit_inside_value("12 kWh x"), None);
        assert_eq!(unit_inside_value("12kWh"), None);
    }
}
