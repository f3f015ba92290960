//! What a module forwards, and the pure judge of `module.data`: the values the module reports it
//! forwarded ([`Forwarded`], OBIS code → value and unit) against the answers the meter sent in
//! the same window ([`sent_answers`], decoded from the [`WireLog`]).
//!
//! The rule (004 "IEC61107 data request": 7E1 with even parity, `[ETX][BCC]` with the BCC "by 7
//! bit modulo 2 addition"): values from an answer whose BCC and parity check are forwarded as
//! the meter sent them; nothing is forwarded from an answer whose BCC or parity does not check.
//! Timestamps play no part here; the judge is pure.

use serde::{Deserialize, Serialize};

use super::{Dir, WireLog};
use crate::iec62056::decoder::{DecodeOptions, Decoded, Decoder, FindingKind, ParityMode};
use crate::iec62056::{BccRule, DataSet};

/// One value a module forwarded (or the meter sent): `{"obis":"1.8.0","value":"0001234","unit":"kWh"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedValue {
    /// The data set's address (OBIS-like code as in the answer, e.g. `1.8.0`).
    pub obis: String,
    /// The value as a string: exactly as sent (`0001234`), or a number equal to it (`1234`).
    pub value: String,
    /// The unit after `*` (`kWh`), if the module reports one (compared without regard to case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl ForwardedValue {
    /// The first value of a decoded data set (the 351's data sets have one).
    pub fn from_data_set(d: &DataSet) -> Option<ForwardedValue> {
        d.values.first().map(|v| ForwardedValue {
            obis: d.address.clone(),
            value: v.raw.clone(),
            unit: v.unit.clone(),
        })
    }

    /// Whether this (reported) value is `sent`: the same address, the same value as sent or
    /// as a number, and the same unit when one is reported.
    pub fn matches(&self, sent: &ForwardedValue) -> bool {
        let same_value = self.value.trim() == sent.value.trim()
            || matches!(
                (number(&self.value), number(&sent.value)),
                (Some(a), Some(b)) if a == b
            );
        let same_unit = match (&self.unit, &sent.unit) {
            (None, _) => true,
            (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
            (Some(a), None) => a.trim().is_empty(),
        };
        self.obis.trim() == sent.obis.trim() && same_value && same_unit
    }
}

impl std::fmt::Display for ForwardedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.unit {
            Some(u) => write!(f, "{}({}*{u})", self.obis, self.value),
            None => write!(f, "{}({})", self.obis, self.value),
        }
    }
}

fn number(s: &str) -> Option<f64> {
    crate::iec62056::Value::new(s).number()
}

/// What a module reports it forwarded in one window: the JSON `--module-report` prints,
/// `{"values":[{"obis":"1.8.0","value":"0001234","unit":"kWh"}, …]}` (`unit` optional; other
/// fields are ignored). An empty list: nothing forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Forwarded {
    /// The values, in any order.
    pub values: Vec<ForwardedValue>,
}

/// Why the rig has no report of what the module forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The bench has no way to learn what the module forwarded.
    #[error("the rig cannot see what this module forwards: give rig module --module-report CMD, a command that prints the forwarded values as JSON")]
    NotReported,
    /// The command could not be started.
    #[error("--module-report {command:?} could not be started: {source}; check the command (it runs under sh -c)")]
    Spawn {
        /// The command.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The command ran longer than allowed and was killed.
    #[error("--module-report {command:?} did not finish within {timeout_s} s and was killed; make it print the forwarded values and exit")]
    Timeout {
        /// The command.
        command: String,
        /// The limit, seconds.
        timeout_s: f64,
    },
    /// The command exited with a failure.
    #[error("--module-report {command:?} failed ({status}): {stderr}; fix the command (run it by hand to see why)")]
    Failed {
        /// The command.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of what it wrote on stderr.
        stderr: String,
    },
    /// The command's output is not the JSON shape.
    #[error("--module-report {command:?} printed no valid report ({detail}); expected {{\"values\":[{{\"obis\":\"1.8.0\",\"value\":\"0001234\",\"unit\":\"kWh\"}}]}}, got {output:?}")]
    BadJson {
        /// The command.
        command: String,
        /// What the parser said.
        detail: String,
        /// The start of the output.
        output: String,
    },
}

impl Forwarded {
    /// Parses the report a `--module-report` command printed (`command` names it in errors).
    ///
    /// # Errors
    /// [`ReportError::BadJson`] for anything but the shape of [`Forwarded`].
    pub fn parse(command: &str, output: &str) -> Result<Forwarded, ReportError> {
        serde_json::from_str(output.trim()).map_err(|e| ReportError::BadJson {
            command: command.into(),
            detail: e.to_string(),
            output: output.chars().take(200).collect(),
        })
    }
}

/// One answer the meter sent in a window, as decoded from the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct SentAnswer {
    /// Its data sets' values, in order.
    pub values: Vec<ForwardedValue>,
    /// The BCC byte arrived.
    pub complete: bool,
    /// The BCC matches the meter's rule.
    pub bcc_ok: bool,
    /// Every character has even parity.
    pub parity_ok: bool,
}

impl SentAnswer {
    /// Whether a module may forward its values: whole, its BCC and parity check.
    pub fn valid(&self) -> bool {
        self.complete && self.bcc_ok && self.parity_ok
    }

    /// Why a module must not forward from it (`None` when it may).
    pub fn defect(&self) -> Option<&'static str> {
        if !self.complete {
            Some("an unfinished answer (no BCC)")
        } else if !self.bcc_ok {
            Some("an answer whose BCC does not check")
        } else if !self.parity_ok {
            Some("an answer with a parity error")
        } else {
            None
        }
    }

    fn from_decoded(d: &Decoded) -> SentAnswer {
        SentAnswer {
            values: d
                .data_sets
                .iter()
                .filter_map(ForwardedValue::from_data_set)
                .collect(),
            complete: d.complete,
            bcc_ok: d.bcc.ok,
            parity_ok: !d
                .findings
                .iter()
                .any(|f| matches!(f.kind, FindingKind::Parity)),
        }
    }
}

/// The answers the meter sent in `log` (every character from the meter, parity in bit 7 as
/// the rig generated it), in order; only those with an identification.
pub fn sent_answers(log: &WireLog, rule: BccRule) -> Vec<SentAnswer> {
    let mut d = Decoder::new(DecodeOptions::tolerant(rule, ParityMode::Even));
    for c in log.chars.iter().filter(|c| c.dir == Dir::FromMeter) {
        d.feed(c.byte, c.start);
    }
    let decoded = d.finish();
    decoded
        .telegrams()
        .filter(|t| t.identification.is_some())
        .map(SentAnswer::from_decoded)
        .collect()
}

/// What `module.data` found in one window: each value forwarded that no answer whose BCC and
/// parity check carried (from a bad answer, or never sent), and, when the meter sent a valid
/// answer, each of its values the module did not forward (the last valid answer is the
/// reference; a module forwarding all of any one valid answer is complete).
pub fn data_problems(sent: &[SentAnswer], forwarded: &Forwarded) -> Vec<String> {
    let mut p = Vec::new();
    // values that came from a bad answer, grouped by its defect
    let mut from_bad: Vec<(&'static str, Vec<String>)> = Vec::new();
    for f in &forwarded.values {
        if sent
            .iter()
            .filter(|a| a.valid())
            .any(|a| a.values.iter().any(|s| f.matches(s)))
        {
            continue;
        }
        let bad = sent
            .iter()
            .find(|a| !a.valid() && a.values.iter().any(|s| f.matches(s)));
        if let Some(defect) = bad.and_then(SentAnswer::defect) {
            match from_bad.iter_mut().find(|(d, _)| *d == defect) {
                Some((_, v)) => v.push(f.to_string()),
                None => from_bad.push((defect, vec![f.to_string()])),
            }
            continue;
        }
        let sent_as = sent
            .iter()
            .flat_map(|a| a.values.iter())
            .find(|s| s.obis.trim() == f.obis.trim());
        p.push(match sent_as {
            Some(s) => format!("forwarded {f}, but the meter sent {s}"),
            None => format!("forwarded {f}, which the meter did not send"),
        });
    }
    for (defect, values) in from_bad {
        let more = values.len().saturating_sub(3);
        let mut shown = values
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if more > 0 {
            shown.push_str(&format!(", … {more} more"));
        }
        p.insert(
            0,
            format!(
                "forwarded {} value(s) from {defect} ({shown}): nothing may be forwarded from it",
                values.len()
            ),
        );
    }
    let valid: Vec<&SentAnswer> = sent.iter().filter(|a| a.valid()).collect();
    let complete = |a: &&SentAnswer| {
        a.values
            .iter()
            .all(|s| forwarded.values.iter().any(|f| f.matches(s)))
    };
    if let Some(last) = valid.last().filter(|_| !valid.iter().any(complete)) {
        let missing: Vec<String> = last
            .values
            .iter()
            .filter(|s| !forwarded.values.iter().any(|f| f.matches(s)))
            .map(|s| s.to_string())
            .collect();
        p.push(format!(
            "did not forward {} of the {} values of the answer whose BCC and parity check: {}",
            missing.len(),
            last.values.len(),
            missing.join(", ")
        ));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(obis: &str, value: &str, unit: Option<&str>) -> ForwardedValue {
        ForwardedValue {
            obis: obis.into(),
            value: value.into(),
            unit: unit.map(Into::into),
        }
    }

    fn answer(ok: bool) -> SentAnswer {
        SentAnswer {
            values: vec![
                v("0.0.0", "00000000", None),
                v("1.8.0", "0012658", Some("kWh")),
            ],
            complete: true,
            bcc_ok: ok,
            parity_ok: true,
        }
    }

    #[test]
    fn the_json_shape_parses_and_bad_json_is_a_typed_error() {
        let f = Forwarded::parse(
            "x",
            r#"{"values":[{"obis":"1.8.0","value":"0012658","unit":"kWh"},{"obis":"0.0.0","value":"0"}],"module":"kk05"}"#,
        )
        .unwrap();
        assert_eq!(f.values.len(), 2);
        assert_eq!(f.values[1].unit, None);
        let e = Forwarded::parse("cat r.json", r#"{"values":[{"obis":"1.8.0"}]}"#).unwrap_err();
        assert!(matches!(e, ReportError::BadJson { .. }), "{e}");
        assert!(e.to_string().contains("missing field `value`"), "{e}");
        assert!(Forwarded::parse("x", "").is_err());
    }

    #[test]
    fn equal_values_pass_and_numbers_equal_as_numbers() {
        let sent = [answer(true)];
        let all = Forwarded {
            values: vec![
                v("1.8.0", "12658", Some("KWH")),
                v("0.0.0", "00000000", None),
            ],
        };
        assert!(data_problems(&sent, &all).is_empty());
        let wrong = Forwarded {
            values: vec![v("1.8.0", "0012659", Some("kWh")), v("0.0.0", "0", None)],
        };
        let p = data_problems(&sent, &wrong);
        assert!(
            p[0].contains("but the meter sent 1.8.0(0012658*kWh)"),
            "{p:?}"
        );
        assert!(p[1].contains("did not forward 1 of the 2"), "{p:?}");
    }

    #[test]
    fn nothing_may_come_from_a_bad_bcc_and_nothing_forwarded_is_right() {
        let sent = [answer(false)];
        assert!(data_problems(&sent, &Forwarded::default()).is_empty());
        let f = Forwarded {
            values: vec![v("1.8.0", "0012658", Some("kWh"))],
        };
        let p = data_problems(&sent, &f);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("forwarded 1 value(s) from an answer whose BCC does not check"),
            "{p:?}"
        );
        // a good answer after the bad one: its values may be forwarded
        assert!(data_problems(&[answer(false), answer(true)], &f)[0].contains("did not forward"));
    }
}
