//! `rig module --port PATH` in real time over a pty pair at 300 baud: the rig serves the meter on
//! the pair's slave device as on a serial port, and the test plays a conforming module on the
//! master end, in soft 7E1 (parity in bit 7 both ways, so the rig sees the module's parity).

use std::io::{BufRead, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use meter_rig::iec62056::parity;
use serialport::{SerialPort, TTYPort};

/// Ends the rig it holds (by its handle) if the test fails before it exits.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads from `port` until the character after ETX (the BCC) or `limit`.
fn read_answer(port: &mut TTYPort, limit: Duration) -> Vec<u8> {
    port.set_timeout(Duration::from_millis(200)).unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while t0.elapsed() < limit {
        match port.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
        if let Some(i) = got.iter().position(|b| b & 0x7F == 0x03) {
            if got.len() > i + 1 {
                break;
            }
        }
    }
    got
}

#[test]
fn rig_module_port_serves_the_meter_on_a_serial_port_and_sees_the_modules_parity() {
    let _serial = crate::util::realtime();
    let (mut master, slave) = TTYPort::pair().expect("openpty");
    let device = slave.name().expect("slave name");
    let out = crate::util::scratch("module-port");
    let mut rig = Reaped(
        crate::util::rig()
            .args(["module", "--port", &device, "--out", out.to_str().unwrap()])
            .args(["--case", "module.request", "--case", "module.data"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rig"),
    );
    let mut stderr = std::io::BufReader::new(rig.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("serving the meter on"), "{line}");
    assert!(line.contains("soft7e1"), "{line}");
    // the module: a request in 7E1, then the whole answer
    master.write_all(&parity::encode(b"/?!\r\n")).unwrap();
    let answer = read_answer(&mut master, Duration::from_secs(18));
    assert_eq!(answer.first().map(|b| b & 0x7F), Some(b'/'), "{answer:?}");
    assert!(answer.len() > 300, "{} characters", answer.len());
    assert!(answer.iter().all(|&b| parity::is_even(b)), "{answer:?}");
    let text: Vec<u8> = answer.iter().map(|b| b & 0x7F).collect();
    assert!(
        String::from_utf8_lossy(&text).contains("1.8.0("),
        "{text:?}"
    );
    let status = rig.0.wait().unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("record.json")).unwrap()).unwrap();
    assert_eq!(status.code(), Some(0), "{record}");
    assert_eq!(record["target"], format!("module:port:{device}"));
    let request = &record["cases"][0];
    assert_eq!(request["id"], "module.request");
    assert_eq!(request["verdict"], "pass", "{request}");
    assert!(!request.to_string().contains("not observable"), "{request}");
    // no --module-report: module.data cannot see what the module forwarded
    let data = &record["cases"][1];
    assert_eq!(data["verdict"], "skip", "{data}");
    assert!(
        data["message"]
            .as_str()
            .unwrap()
            .contains("--module-report"),
        "{data}"
    );
    drop(slave);
}
