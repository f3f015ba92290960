//! IEC 62056-21 (formerly IEC 61107 / IEC 1107) modes A and C: the request, the identification
//! (and the protocol mode and baud rate its fifth character announces), the mode C
//! acknowledgement/option select message, the data message and its block check character.
//!
//! Sans-I/O: bytes and timestamps in, messages, events and findings out. Nothing here reads a
//! port, a pin or a clock. The encoder side (this file) is exact; the incremental decoder lives in
//! [`decoder`] and runs in two modes, strict for conformance and tolerant for reading.
//!
//! Characters on the wire are 7-bit ASCII framed 7E1. Functions here work on 7-bit values unless
//! they say otherwise; [`parity`] moves between 7-bit characters and 8-bit "soft 7E1" bytes.

pub mod decoder;
pub mod exchange;

use std::fmt;

/// Start of text.
pub const STX: u8 = 0x02;
/// End of text.
pub const ETX: u8 = 0x03;
/// Carriage return.
pub const CR: u8 = b'\r';
/// Line feed.
pub const LF: u8 = b'\n';

/// How the block check character is computed over the characters after STX up to and including
/// ETX (NOTES §1). The 351 Combi sheet (004_d1f80f13afa7763c.txt) says "7 bit modulo 2 addition"
/// (XOR); other Kamstrup meters use a 7-bit arithmetic sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BccRule {
    /// Modulo-2 addition (XOR) of the 7-bit characters: IEC 62056-21 and the 351 Combi sheet.
    Xor,
    /// Arithmetic sum of the 7-bit characters, modulo 128.
    Sum,
}

impl BccRule {
    /// The other rule.
    pub fn other(self) -> BccRule {
        match self {
            BccRule::Xor => BccRule::Sum,
            BccRule::Sum => BccRule::Xor,
        }
    }
    /// Lower-case name, as used on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            BccRule::Xor => "xor",
            BccRule::Sum => "sum",
        }
    }
}

impl fmt::Display for BccRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BccRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "xor" => Ok(BccRule::Xor),
            "sum" => Ok(BccRule::Sum),
            other => Err(format!(
                "unknown BCC rule {other:?} (expected \"xor\" or \"sum\")"
            )),
        }
    }
}

/// Block check character of `block` (the characters after STX, ETX included) under `rule`. Only
/// the low seven bits of each byte count, so parity bits do not disturb it.
pub fn bcc(rule: BccRule, block: &[u8]) -> u8 {
    match rule {
        BccRule::Xor => block.iter().fold(0u8, |a, &b| a ^ (b & 0x7F)),
        BccRule::Sum => block.iter().fold(0u8, |a, &b| a.wrapping_add(b & 0x7F)) & 0x7F,
    }
}

/// Soft 7E1: the even-parity bit carried in bit 7 of an 8-bit byte (NOTES §2).
pub mod parity {
    /// The 8-bit byte carrying 7-bit `c` with its even-parity bit in bit 7.
    pub fn add_even(c: u8) -> u8 {
        let c = c & 0x7F;
        if c.count_ones() % 2 == 1 {
            c | 0x80
        } else {
            c
        }
    }
    /// Whether the 8-bit `byte` (7 data bits + parity in bit 7) has even parity.
    pub fn is_even(byte: u8) -> bool {
        byte.count_ones() % 2 == 0
    }
    /// Adds parity to every character.
    pub fn encode(chars: &[u8]) -> Vec<u8> {
        chars.iter().map(|&c| add_even(c)).collect()
    }
}

/// A mode A request: `/?!` CR LF, or the addressed `/?ADDRESS!` CR LF.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Request {
    /// Device address; `None` for the general request.
    pub address: Option<String>,
}

/// Why a request could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The bytes do not start with `/?`.
    #[error("request must start with \"/?\" (got {0:?})")]
    BadStart(String),
    /// No `!` before the line end.
    #[error("request has no '!' before CR LF")]
    NoEnd,
    /// The line end is not CR LF.
    #[error("request must end with CR LF")]
    BadLineEnd,
    /// The address has characters the standard does not allow (only 0-9, A-Z, a-z and space, up
    /// to 32 characters).
    #[error("invalid device address {0:?} (0-9, A-Z, a-z, space; at most 32 characters)")]
    BadAddress(String),
}

impl Request {
    /// The general request `/?!` CR LF.
    pub fn general() -> Self {
        Request { address: None }
    }
    /// A request for one device address.
    pub fn addressed(address: impl Into<String>) -> Self {
        Request {
            address: Some(address.into()),
        }
    }
    /// The request's 7-bit characters.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = b"/?".to_vec();
        if let Some(a) = &self.address {
            v.extend_from_slice(a.as_bytes());
        }
        v.extend_from_slice(b"!\r\n");
        v
    }
    /// Parses a complete request (7-bit characters, CR LF included).
    pub fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
        if !bytes.starts_with(b"/?") {
            return Err(RequestError::BadStart(
                String::from_utf8_lossy(&bytes[..bytes.len().min(8)]).into_owned(),
            ));
        }
        let rest = &bytes[2..];
        let bang = rest
            .iter()
            .position(|&b| b == b'!')
            .ok_or(RequestError::NoEnd)?;
        if &rest[bang + 1..] != b"\r\n" {
            return Err(RequestError::BadLineEnd);
        }
        let addr = &rest[..bang];
        if addr.len() > 32 || !addr.iter().all(|b| b.is_ascii_alphanumeric() || *b == b' ') {
            return Err(RequestError::BadAddress(
                String::from_utf8_lossy(addr).into_owned(),
            ));
        }
        Ok(Request {
            address: if addr.is_empty() {
                None
            } else {
                Some(String::from_utf8_lossy(addr).into_owned())
            },
        })
    }
}

/// The meter's identification line `/XXXZ text` CR LF.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identification {
    /// Three-letter manufacturer code (`KAM`).
    pub manufacturer: String,
    /// The fifth character: baud-rate identification in the standard; Kamstrup sends a space.
    pub mode_char: char,
    /// The identification text after the fifth character (the 351 Combi sends its type number).
    pub text: String,
}

/// The standard's reaction-time class, read from the case of the manufacturer's third letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReactionClass {
    /// Lower-case third letter: the meter may answer after 20 ms.
    Fast20ms,
    /// Upper-case third letter: the meter answers after 200 ms.
    Standard200ms,
}

impl Identification {
    /// Kamstrup's identification with the given type number (`/KAM <type>`).
    pub fn kamstrup(text: impl Into<String>) -> Self {
        Identification {
            manufacturer: "KAM".into(),
            mode_char: ' ',
            text: text.into(),
        }
    }
    /// The line's 7-bit characters, CR LF included.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(7 + self.text.len());
        v.push(b'/');
        v.extend_from_slice(self.manufacturer.as_bytes());
        let mut buf = [0u8; 4];
        v.extend_from_slice(self.mode_char.encode_utf8(&mut buf).as_bytes());
        v.extend_from_slice(self.text.as_bytes());
        v.extend_from_slice(b"\r\n");
        v
    }
    /// The protocol mode the fifth character announces (IEC 62056-21 §6.3.14 item 23).
    pub fn announced_mode(&self) -> AnnouncedMode {
        AnnouncedMode::of(self.mode_char)
    }
    /// The standard's lower-case-third-letter rule, as a fact (not a verdict: the meter profile
    /// sets the limits, NOTES §1).
    pub fn reaction_class(&self) -> ReactionClass {
        match self.manufacturer.chars().nth(2) {
            Some(c) if c.is_ascii_lowercase() => ReactionClass::Fast20ms,
            _ => ReactionClass::Standard200ms,
        }
    }
}

/// Acknowledge (ACK), the first character of the mode C acknowledgement/option select message.
pub const ACK: u8 = 0x06;

/// The baud rate a mode B identification announces with its fifth character (IEC 62056-21
/// §6.3.14 item 23, "baud rate identification", protocol mode B): `'A'`–`'F'` for 600–19200
/// baud. `None` for every other character (`'G'`–`'I'` are reserved there).
pub fn mode_b_baud(c: char) -> Option<u32> {
    Some(match c {
        'A' => 600,
        'B' => 1200,
        'C' => 2400,
        'D' => 4800,
        'E' => 9600,
        'F' => 19200,
        _ => return None,
    })
}

/// The baud rate a mode C identification announces with its fifth character (IEC 62056-21
/// §6.3.14 item 23, protocol modes C and E): `'0'`–`'6'` for 300–19200 baud. `None` for every
/// other character (`'7'`–`'9'` are reserved there).
pub fn mode_c_baud(c: char) -> Option<u32> {
    Some(match c {
        '0' => 300,
        '1' => 600,
        '2' => 1200,
        '3' => 2400,
        '4' => 4800,
        '5' => 9600,
        '6' => 19200,
        _ => return None,
    })
}

/// The mode C baud character for `baud` (the inverse of [`mode_c_baud`]); `None` for a rate the
/// table does not have.
pub fn mode_c_char(baud: u32) -> Option<char> {
    ('0'..='6').find(|&c| mode_c_baud(c) == Some(baud))
}

/// The protocol mode an identification's fifth character announces (IEC 62056-21 §6.3.14 item
/// 23 and §6.4): a fact about the identification, judged by the suites against the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AnnouncedMode {
    /// Mode A: any printable character the other modes do not claim (Kamstrup's module
    /// interface sends a space, 004); the readout follows at the initial rate.
    A,
    /// Mode B: `'A'`–`'F'`; the meter switches to `baud` by itself after the identification.
    B {
        /// The announced rate.
        baud: u32,
    },
    /// Mode C: `'0'`–`'6'`; the meter waits for an acknowledgement/option select message and
    /// switches to `baud` (or the rate the acknowledgement names) after it.
    C {
        /// The announced rate.
        baud: u32,
    },
    /// A character the standard reserves (`'G'`–`'I'`, `'7'`–`'9'`): no mode can be told.
    Reserved {
        /// The character.
        character: char,
    },
}

impl AnnouncedMode {
    /// The mode a fifth character announces.
    pub fn of(c: char) -> AnnouncedMode {
        if let Some(baud) = mode_c_baud(c) {
            AnnouncedMode::C { baud }
        } else if let Some(baud) = mode_b_baud(c) {
            AnnouncedMode::B { baud }
        } else if matches!(c, 'G'..='I' | '7'..='9') {
            AnnouncedMode::Reserved { character: c }
        } else {
            AnnouncedMode::A
        }
    }
}

impl fmt::Display for AnnouncedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnnouncedMode::A => f.write_str("protocol mode A (the readout follows at the initial rate)"),
            AnnouncedMode::B { baud } => write!(
                f,
                "protocol mode B at {baud} baud (the meter switches after the identification)"
            ),
            AnnouncedMode::C { baud } => write!(
                f,
                "protocol mode C at {baud} baud (the meter waits for ACK 0 Z 0 CR LF and switches after it)"
            ),
            AnnouncedMode::Reserved { character } => write!(
                f,
                "a reserved baud character {character:?} (no protocol mode; IEC 62056-21 reserves 'G'-'I' and '7'-'9')"
            ),
        }
    }
}

/// The mode C acknowledgement/option select message `ACK V Z Y CR LF` (IEC 62056-21 §6.3.3):
/// protocol control `V` (`'0'` normal protocol), baud character `Z` (the mode C table,
/// [`mode_c_baud`]) and mode control `Y` (`'0'` data readout, `'1'` programming).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AckOptionSelect {
    /// Protocol control character `V`.
    pub protocol: char,
    /// Baud rate character `Z`.
    pub baud_char: char,
    /// Mode control character `Y`.
    pub mode: char,
}

/// Why an acknowledgement/option select message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// Not six characters `ACK V Z Y CR LF`.
    #[error("acknowledgement must be ACK V Z Y CR LF, six characters (got {0:?})")]
    Shape(Vec<u8>),
    /// The baud character is not in the mode C table.
    #[error("baud character {0:?} is not in the mode C table '0'-'6' (IEC 62056-21 §6.3.14)")]
    Baud(char),
}

impl AckOptionSelect {
    /// The data readout at the rate `baud_char` names: `ACK 0 Z 0` CR LF.
    pub fn readout(baud_char: char) -> Self {
        AckOptionSelect {
            protocol: '0',
            baud_char,
            mode: '0',
        }
    }
    /// The message's 7-bit characters, CR LF included.
    pub fn encode(&self) -> Vec<u8> {
        vec![
            ACK,
            self.protocol as u8,
            self.baud_char as u8,
            self.mode as u8,
            CR,
            LF,
        ]
    }
    /// Parses a complete message (7-bit characters, CR LF included).
    ///
    /// # Errors
    /// [`AckError::Shape`] when it is not `ACK V Z Y CR LF`; [`AckError::Baud`] when `Z` is not in
    /// the mode C table.
    pub fn parse(bytes: &[u8]) -> Result<Self, AckError> {
        match bytes {
            [ACK, v, z, y, CR, LF] if v.is_ascii_digit() && y.is_ascii_digit() => {
                let z = *z as char;
                mode_c_baud(z).ok_or(AckError::Baud(z))?;
                Ok(AckOptionSelect {
                    protocol: *v as char,
                    baud_char: z,
                    mode: *y as char,
                })
            }
            _ => Err(AckError::Shape(bytes.to_vec())),
        }
    }
    /// The rate the message selects.
    pub fn baud(&self) -> u32 {
        mode_c_baud(self.baud_char).unwrap_or(300)
    }
}

/// One value of a data set: `VALUE` or `VALUE*UNIT` between parentheses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Value {
    /// The value exactly as sent (without the unit).
    pub raw: String,
    /// The unit after `*`, if any.
    pub unit: Option<String>,
}

impl Value {
    /// A value without unit.
    pub fn new(raw: impl Into<String>) -> Self {
        Value {
            raw: raw.into(),
            unit: None,
        }
    }
    /// A value with a unit.
    pub fn with_unit(raw: impl Into<String>, unit: impl Into<String>) -> Self {
        Value {
            raw: raw.into(),
            unit: Some(unit.into()),
        }
    }
    /// The value as a number: digits with an optional `.` (or, tolerantly, `,`) decimal mark and
    /// sign, surrounding spaces ignored. `None` when it is not a number.
    pub fn number(&self) -> Option<f64> {
        let s = self.raw.trim();
        if s.is_empty() || !s.bytes().any(|b| b.is_ascii_digit()) {
            return None;
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b',' | b'-' | b'+'))
        {
            return None;
        }
        s.replace(',', ".").parse().ok()
    }
}

/// A data set `ADDRESS(VALUE*UNIT)(…)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataSet {
    /// The address (OBIS-like code such as `1.8.0`).
    pub address: String,
    /// One or more values.
    pub values: Vec<Value>,
}

impl DataSet {
    /// A data set with one value.
    pub fn single(address: impl Into<String>, value: Value) -> Self {
        DataSet {
            address: address.into(),
            values: vec![value],
        }
    }
    /// Appends the data set's characters (no line end).
    pub fn encode_into(&self, v: &mut Vec<u8>) {
        v.extend_from_slice(self.address.as_bytes());
        for val in &self.values {
            v.push(b'(');
            v.extend_from_slice(val.raw.as_bytes());
            if let Some(u) = &val.unit {
                v.push(b'*');
                v.extend_from_slice(u.as_bytes());
            }
            v.push(b')');
        }
    }
}

/// A complete mode A answer: identification and data message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Telegram {
    /// The identification line.
    pub identification: Identification,
    /// The data sets in order.
    pub data_sets: Vec<DataSet>,
}

/// Byte ranges of an encoded telegram, for callers that inject faults or time elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Index of STX.
    pub stx: usize,
    /// Index of ETX.
    pub etx: usize,
    /// Index of the BCC.
    pub bcc: usize,
}

impl Telegram {
    /// Encodes the telegram in the 351 Combi's layout (004_d1f80f13afa7763c.txt): identification,
    /// STX, one data set per line ended CR LF, `!` straight after the last data set then CR LF,
    /// ETX and the BCC under `rule`. Returns 7-bit characters and their layout.
    pub fn encode(&self, rule: BccRule) -> (Vec<u8>, Layout) {
        let mut v = self.identification.encode();
        let stx = v.len();
        v.push(STX);
        let n = self.data_sets.len();
        for (i, ds) in self.data_sets.iter().enumerate() {
            ds.encode_into(&mut v);
            if i + 1 == n {
                v.push(b'!');
            }
            v.extend_from_slice(b"\r\n");
        }
        if n == 0 {
            v.extend_from_slice(b"!\r\n");
        }
        let etx = v.len();
        v.push(ETX);
        let b = bcc(rule, &v[stx + 1..=etx]);
        v.push(b);
        (
            v,
            Layout {
                stx,
                etx,
                bcc: etx + 1,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_roundtrip() {
        assert_eq!(Request::general().encode(), b"/?!\r\n");
        assert_eq!(Request::addressed("12345678").encode(), b"/?12345678!\r\n");
        assert_eq!(Request::parse(b"/?!\r\n").unwrap(), Request::general());
        assert_eq!(
            Request::parse(b"/?12345678!\r\n").unwrap(),
            Request::addressed("12345678")
        );
        assert_eq!(Request::parse(b"/?!\n"), Err(RequestError::BadLineEnd));
        assert_eq!(Request::parse(b"/?ab\r\n"), Err(RequestError::NoEnd));
        assert!(matches!(
            Request::parse(b"?!\r\n"),
            Err(RequestError::BadStart(_))
        ));
        assert!(matches!(
            Request::parse(b"/?a/b!\r\n"),
            Err(RequestError::BadAddress(_))
        ));
    }

    #[test]
    fn golden_vector_bcc_is_7_under_both_rules() {
        // 004_d1f80f13afa7763c.txt worked example, NOTES §1: BCC '7' (0x37), 359 characters
        let regs = [
            ("0.0.0", "00000000", None),
            ("0.2.0", "5000D1", None),
            ("1.8.0", "0012658", Some("kWh")),
            ("1.8.1", "0000886", Some("kWh")),
            ("1.8.2", "0000854", Some("kWh")),
            ("1.8.3", "0002375", Some("kWh")),
            ("1.8.4", "0008543", Some("kWh")),
            ("3.8.0", "0000129", Some("kvarh")),
            ("96.8.0", "0000024", Some("h")),
            ("96.50.1", "0001027", None),
            ("1.6.0", "000023.4", Some("kW")),
            ("3.6.0", "000001.5", Some("kvar")),
            ("1.6.0.1", "000000.0", Some("kW")),
            ("3.6.0.1", "000000.0", Some("kvar")),
            ("1.2.0", "000057.0", Some("kW")),
            ("3.2.0", "000003.2", Some("kvar")),
            ("0.1", "0000000", None),
        ];
        let t = Telegram {
            identification: Identification::kamstrup("685351A300100"),
            data_sets: regs
                .iter()
                .map(|(a, r, u)| {
                    DataSet::single(
                        *a,
                        Value {
                            raw: r.to_string(),
                            unit: u.map(String::from),
                        },
                    )
                })
                .collect(),
        };
        for rule in [BccRule::Xor, BccRule::Sum] {
            let (bytes, layout) = t.encode(rule);
            assert_eq!(bytes.len(), 359);
            assert_eq!(bytes[layout.bcc], b'7', "{rule}");
        }
    }

    #[test]
    fn baud_tables_and_announced_modes() {
        assert_eq!(mode_c_baud('0'), Some(300));
        assert_eq!(mode_c_baud('5'), Some(9600));
        assert_eq!(mode_c_baud('6'), Some(19200));
        assert_eq!(mode_c_baud('7'), None);
        assert_eq!(mode_b_baud('C'), Some(2400));
        assert_eq!(mode_b_baud('G'), None);
        assert_eq!(mode_c_char(9600), Some('5'));
        assert_eq!(mode_c_char(9601), None);
        let id = |c| Identification {
            manufacturer: "KAM".into(),
            mode_char: c,
            text: "x".into(),
        };
        assert_eq!(id(' ').announced_mode(), AnnouncedMode::A);
        assert_eq!(id('5').announced_mode(), AnnouncedMode::C { baud: 9600 });
        // the Landis+Gyr identification /LUGCUH50: 'C' is mode B at 2400 baud
        assert_eq!(id('C').announced_mode(), AnnouncedMode::B { baud: 2400 });
        assert_eq!(
            id('9').announced_mode(),
            AnnouncedMode::Reserved { character: '9' }
        );
        assert!(AnnouncedMode::C { baud: 9600 }
            .to_string()
            .contains("ACK 0 Z 0"));
    }

    #[test]
    fn ack_option_select_roundtrip() {
        let a = AckOptionSelect::readout('5');
        assert_eq!(a.encode(), b"\x06050\r\n");
        assert_eq!(AckOptionSelect::parse(&a.encode()), Ok(a));
        assert_eq!(a.baud(), 9600);
        assert_eq!(
            AckOptionSelect::parse(b"\x06090\r\n"),
            Err(AckError::Baud('9'))
        );
        assert!(matches!(
            AckOptionSelect::parse(b"\x0605\r\n"),
            Err(AckError::Shape(_))
        ));
    }

    #[test]
    fn parity_bit() {
        assert_eq!(parity::add_even(b'/'), 0xAF); // 0x2F has 5 ones
        assert_eq!(parity::add_even(b'0'), 0x30); // two ones
        for c in 0..128u8 {
            assert!(parity::is_even(parity::add_even(c)));
            assert!(!parity::is_even(parity::add_even(c) ^ 0x80));
        }
    }

    #[test]
    fn reaction_class_fact() {
        assert_eq!(
            Identification::kamstrup("x").reaction_class(),
            ReactionClass::Standard200ms
        );
        let id = Identification {
            manufacturer: "KAm".into(),
            mode_char: ' ',
            text: String::new(),
        };
        assert_eq!(id.reaction_class(), ReactionClass::Fast20ms);
    }

    #[test]
    fn number_parsing() {
        assert_eq!(Value::new("000023.4").number(), Some(23.4));
        assert_eq!(Value::new("000007,4").number(), Some(7.4));
        assert_eq!(Value::new(" 12 ").number(), Some(12.0));
        assert_eq!(Value::new("5000D1").number(), None);
        assert_eq!(Value::new("").number(), None);
    }
}
