//! Decoder throughput: the 351 worked example and a large synthetic stream of telegrams, in strict
//! and tolerant mode, 7-bit and soft 7E1. Prints MB/s. Run with `cargo bench --bench decode`.
//! (Plain `harness = false` timing loop; no criterion.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use meter_rig::iec62056::decoder::{decode, DecodeOptions, Decoder, Mode, ParityMode};
use meter_rig::iec62056::{parity, BccRule, DataSet, Identification, Telegram, Value};
use meter_rig::time::Timestamp;

const WORKED: &[u8] = include_bytes!("../fixtures/telegrams/kamstrup-351-worked-example.txt");

/// A stream of `n` 351-style telegrams with varying values, one after the other.
fn synthetic_stream(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let data_sets = meter_rig::meter::readout::COMBI_351
            .iter()
            .enumerate()
            .map(|(k, spec)| {
                let raw = spec.format.format_number((i * 17 + k) as f64 * 1.37);
                DataSet::single(
                    spec.address,
                    Value {
                        raw,
                        unit: spec.unit.map(String::from),
                    },
                )
            })
            .collect();
        let t = Telegram {
            identification: Identification::kamstrup("685351A300100"),
            data_sets,
        };
        v.extend_from_slice(&t.encode(BccRule::Xor).0);
    }
    v
}

/// Decodes a stream the way a reader does: a new decoder after each complete telegram.
fn decode_stream(bytes: &[u8], opts: DecodeOptions) -> usize {
    let mut d = Decoder::new(opts);
    let mut out = Vec::new();
    let mut sets = 0;
    for (i, &b) in bytes.iter().enumerate() {
        d.push(b, Timestamp(i as u64), &mut out);
        out.clear();
        if d.is_complete() {
            let done = std::mem::replace(&mut d, Decoder::new(opts));
            sets += done.finish().data_sets.len();
        }
    }
    sets + d.finish().data_sets.len()
}

fn measure(name: &str, bytes: usize, mut f: impl FnMut() -> usize) {
    // warm up, then run for at least 2 s
    for _ in 0..3 {
        black_box(f());
    }
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        black_box(f());
        iters += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (bytes as f64 * iters as f64) / 1e6;
    println!(
        "{name:<44} {:>9.1} MB/s  ({iters} iterations of {bytes} bytes in {secs:.2} s)",
        mb / secs
    );
}

fn main() {
    let worked_7e1 = parity::encode(WORKED);
    let stream = synthetic_stream(2000);
    let stream_7e1 = parity::encode(&stream);
    println!(
        "decoder throughput (worked example {} bytes, synthetic stream {} bytes = 2000 telegrams)",
        WORKED.len(),
        stream.len()
    );
    for mode in [Mode::Strict, Mode::Tolerant] {
        let m = format!("{mode:?}").to_lowercase();
        let none = DecodeOptions {
            mode,
            bcc_rule: BccRule::Xor,
            parity: ParityMode::None,
        };
        let even = DecodeOptions {
            mode,
            parity: ParityMode::Even,
            ..none
        };
        assert!(decode(WORKED, none).valid && decode(&worked_7e1, even).valid);
        assert_eq!(decode_stream(&stream, none), 2000 * 17);
        measure(&format!("{m} worked example, 7-bit"), WORKED.len(), || {
            decode(black_box(WORKED), none).data_sets.len()
        });
        measure(
            &format!("{m} worked example, 7E1"),
            worked_7e1.len(),
            || decode(black_box(&worked_7e1), even).data_sets.len(),
        );
        measure(
            &format!("{m} synthetic stream, 7-bit"),
            stream.len(),
            || decode_stream(black_box(&stream), none),
        );
        measure(
            &format!("{m} synthetic stream, 7E1"),
            stream_7e1.len(),
            || decode_stream(black_box(&stream_7e1), even),
        );
    }
}
