//! An independent decoder reads the simulated wire: the software meter's data-out edges, written
//! as a VCD, decoded by sigrok-cli's UART decoder (NOTES §6), must give the same characters and
//! the same parity errors as the rig's own software UART and codec.
//!
//! Needs `sigrok-cli` (Debian package). Where it is missing the test says so and returns without
//! a verdict; with `METER_RIG_REQUIRE_PEERS=1` (set by `.ci/run`) it fails instead.

use std::fmt::Write as _;
use std::process::Command;

use meter_rig::iec62056::decoder::{decode, DecodeOptions, FindingKind, ParityMode};
use meter_rig::iec62056::{parity, BccRule, Request};
use meter_rig::meter::config::MeterSpec;
use meter_rig::sim::SoftMeter;
use meter_rig::time::Timestamp;
use meter_rig::uart::{frame_edges, Edge, UartRx};

fn sigrok_available() -> bool {
    crate::util::peer_available(
        &["sigrok-cli", "--version"],
        "sigrok-cli",
        "apt-get install sigrok-cli",
    )
}

/// The meter's answer to one request, as data-out edges (the path `SimTarget` puts on its wire).
fn answer_edges(spec: MeterSpec) -> Vec<Edge> {
    let baud = spec.baud;
    let mut m = SoftMeter::new(spec);
    let mut t = Timestamp::from_ms(10);
    for b in parity::encode(&Request::general().encode()) {
        t = Timestamp(t.as_ns() + meter_rig::uart::frame_ns(baud, 1));
        meter_rig::line::CharPeer::receive(&mut m, b, t);
    }
    m.advance(Timestamp::from_ms(30_000));
    let mut frames = Vec::new();
    m.take_frames(Timestamp::from_ms(30_000), &mut frames);
    frames
        .into_iter()
        .flat_map(|(c, opts)| frame_edges(c.byte, c.start, baud, 1, opts).0)
        .collect()
}

fn vcd(edges: &[Edge]) -> String {
    let mut s = String::from("$timescale 1 us $end\n$scope module rig $end\n$var wire 1 ! data_out $end\n$upscope $end\n$enddefinitions $end\n#0\n1!\n");
    for e in edges {
        let _ = writeln!(s, "#{}\n{}!", (e.t.as_ns() + 500) / 1000, e.level as u8);
    }
    let _ = writeln!(
        s,
        "#{}",
        edges.last().map_or(0, |e| e.t.as_ns() / 1000) + 100_000
    );
    s
}

/// sigrok's reading: (7-bit characters, indexes of characters with a parity error).
fn sigrok_decode(edges: &[Edge], name: &str) -> (Vec<u8>, Vec<usize>) {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-{}-{name}.vcd", std::process::id()));
    std::fs::write(&path, vcd(edges)).unwrap();
    let out = Command::new("sigrok-cli")
        .args([
            "-I",
            "vcd",
            "-i",
            path.to_str().unwrap(),
            "-P",
            "uart:rx=data_out:baudrate=300:data_bits=7:parity=even",
            "-A",
            "uart=rx-data:rx-parity-err",
        ])
        .output()
        .expect("run sigrok-cli");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut chars = Vec::new();
    let mut parity_errors = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v = line.trim_start_matches("uart-1: ");
        if v.contains("arity") {
            parity_errors.push(chars.len() - 1);
        } else if let Ok(b) = u8::from_str_radix(v, 16) {
            chars.push(b);
        }
    }
    (chars, parity_errors)
}

/// The rig's reading of the same edges.
fn rig_decode(edges: &[Edge]) -> (Vec<u8>, Vec<usize>) {
    let mut rx = UartRx::new(300);
    let mut chars = Vec::new();
    for e in edges {
        rx.push(*e, &mut chars);
    }
    rx.advance(
        Timestamp(edges.last().unwrap().t.as_ns() + 1_000_000_000),
        &mut chars,
    );
    let bytes: Vec<u8> = chars.iter().map(|c| c.byte).collect();
    let d = decode(
        &bytes,
        DecodeOptions::strict(BccRule::Xor, ParityMode::Even),
    );
    let parity_at = d
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Parity)
        .map(|f| f.offset)
        .collect();
    (bytes.iter().map(|b| b & 0x7F).collect(), parity_at)
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs sigrok-cli (apt-get install sigrok-cli); run with cargo test --features peers (.ci/run does)"
)]
fn sigrok_reads_the_simulated_wire_like_the_rig_does() {
    if !sigrok_available() {
        return;
    }
    let healthy =
        MeterSpec::from_file(&crate::util::path("fixtures/meters/worked-example.toml")).unwrap();
    let edges = answer_edges(healthy);
    let (theirs, their_parity) = sigrok_decode(&edges, "healthy");
    let (ours, our_parity) = rig_decode(&edges);
    assert_eq!(theirs.len(), 359);
    assert_eq!(theirs, ours);
    assert!(their_parity.is_empty() && our_parity.is_empty());

    let text =
        std::fs::read_to_string(crate::util::path("fixtures/meters/worked-example.toml")).unwrap();
    let faulty = MeterSpec::from_toml(&format!("{text}parity_error_at = 57\n"), "t", None).unwrap();
    let edges = answer_edges(faulty);
    let (theirs, their_parity) = sigrok_decode(&edges, "parity");
    let (ours, our_parity) = rig_decode(&edges);
    assert_eq!(theirs, ours);
    assert_eq!(their_parity, vec![57]);
    assert_eq!(our_parity, vec![57]);
}
