//! Fuzz target: the mode A decoder in both modes, both parity modes and both BCC rules, with
//! invariants checked on every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meter_rig::iec62056::decoder::{
    decode, decode_state_machine, DecodeOptions, Decoder, Event, Mode, ParityMode, Severity,
    MAX_DATA_SETS, MAX_FINDINGS,
};
use meter_rig::iec62056::{bcc, parity as p7e1, BccRule, STX};
use meter_rig::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    // The input with its last byte replaced by the BCC the rule expects (over everything after
    // the first STX; even parity added for 7E1): a random mutation rarely keeps the BCC right,
    // and without it the slice fast path of decode() would almost never get past its BCC check.
    if let Some(stx) = data.iter().position(|&b| b & 0x7F == STX) {
        if stx + 1 < data.len() {
            let last = data.len() - 1;
            for parity in [ParityMode::Even, ParityMode::None] {
                for bcc_rule in [BccRule::Xor, BccRule::Sum] {
                    let c = bcc(bcc_rule, &data[stx + 1..last]);
                    let mut v = data.to_vec();
                    v[last] = match parity {
                        ParityMode::Even => p7e1::add_even(c),
                        ParityMode::None => c,
                    };
                    for mode in [Mode::Strict, Mode::Tolerant] {
                        let o = DecodeOptions { mode, bcc_rule, parity };
                        assert_eq!(decode(&v, o), decode_state_machine(&v, o));
                    }
                }
            }
        }
    }
    for parity in [ParityMode::Even, ParityMode::None] {
        for bcc_rule in [BccRule::Xor, BccRule::Sum] {
            let strict = DecodeOptions { mode: Mode::Strict, bcc_rule, parity };
            let tolerant = DecodeOptions { mode: Mode::Tolerant, bcc_rule, parity };
            let s = decode(data, strict);
            let t = decode(data, tolerant);
            // the slice fast path of decode() gives exactly what the state machine gives
            assert_eq!(s, decode_state_machine(data, strict));
            assert_eq!(t, decode_state_machine(data, tolerant));
            for d in [&s, &t] {
                assert_eq!(d.bytes, data.len());
                assert!(d.findings.len() <= MAX_FINDINGS + 2);
                assert!(d.data_sets.len() <= MAX_DATA_SETS);
                assert_eq!(d.timing.data_sets.len(), d.data_sets.len());
                for f in &d.findings {
                    assert!(f.offset <= data.len());
                    assert!(!f.message.is_empty());
                }
                let violations = d.findings.iter().any(|f| f.severity == Severity::Violation);
                if d.valid {
                    assert!(!violations && d.complete && d.bcc.ok && d.identification.is_some());
                }
                assert_eq!(d.readable, d.identification.is_some() && !d.data_sets.is_empty());
                assert_eq!(d.complete, d.bcc.received.is_some());
                assert_eq!(d.bcc.xor & 0x80, 0);
                assert_eq!(d.bcc.sum & 0x80, 0);
            }
            // a conforming telegram reads the same in both modes
            if s.valid {
                assert_eq!(s, t);
            }
            // strict never recovers more data sets than tolerant
            assert!(s.data_sets.len() <= t.data_sets.len() || t.data_sets.len() == MAX_DATA_SETS);
            // incremental feeding with other timestamps: same data, events agree with the summary
            let mut dec = Decoder::new(tolerant);
            let mut events = Vec::new();
            let mut completed_at = None;
            for (i, &b) in data.iter().enumerate() {
                dec.push(b, Timestamp::from_ms(i as u64), &mut events);
                if completed_at.is_none() && dec.is_complete() {
                    completed_at = Some(i);
                }
            }
            let inc = dec.finish();
            assert_eq!(inc.data_sets, t.data_sets);
            assert_eq!(inc.findings, t.findings);
            assert_eq!(inc.valid, t.valid);
            let n_ds = events.iter().filter(|e| matches!(e, Event::DataSet { .. })).count();
            assert!(n_ds <= inc.data_sets.len());
            if let Some(i) = completed_at {
                assert_eq!(inc.timing.bcc, Some(Timestamp::from_ms(i as u64)));
            }
        }
    }
});
