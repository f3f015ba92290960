//! The `gpio` backend: any Linux board through the GPIO character device, uAPI v2 (gpiocdev).
//!
//! One line request per chip holds that chip's inputs (both-edge detection, CLOCK_MONOTONIC event
//! clock, **no kernel debounce**) and outputs (set inactive in the request itself, so a line never
//! glitches active when requested). Edge events carry the kernel's timestamp, the request-wide
//! `seqno` and the per-line `line_seqno`; [`super::PinTarget`] checks both.
//!
//! Releasing (drop) drives every output inactive and holds it for [`super::RELEASE_HOLD`] before
//! the request's file descriptor is closed; closing it returns the line to the kernel, which on most
//! drivers keeps the last level but on gpio-sim falls back to the simulated pull.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gpiocdev::line::{EdgeDetection, EdgeKind, EventClock, Offset, Value};
use gpiocdev::request::Request;

use super::safe::{Driven, OutputBank};
use super::wiring::{ChipInventory, GpioRef};
use super::{monotonic_now, BusConfig, PinBus, PinEdge, PinError, Signal};
use crate::time::Timestamp;
use crate::uart::Level;

/// One line of a request as an `embedded_hal` output pin.
#[derive(Debug, Clone)]
pub struct CdevLine {
    req: Arc<Request>,
    offset: Offset,
}

/// The error of a [`CdevLine`] write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdevError(pub String);

impl embedded_hal::digital::Error for CdevError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

impl embedded_hal::digital::ErrorType for CdevLine {
    type Error = CdevError;
}

impl embedded_hal::digital::OutputPin for CdevLine {
    fn set_low(&mut self) -> Result<(), CdevError> {
        self.req
            .set_value(self.offset, Value::Inactive)
            .map_err(|e| CdevError(format!("set_value line {} low: {e}", self.offset)))
    }
    fn set_high(&mut self) -> Result<(), CdevError> {
        self.req
            .set_value(self.offset, Value::Active)
            .map_err(|e| CdevError(format!("set_value line {} high: {e}", self.offset)))
    }
}

/// Inputs (offset, signal) and outputs (offset, signal, active_high) of one chip.
type ChipLines = (Vec<(Offset, Signal)>, Vec<(Offset, Signal, bool)>);

#[derive(Debug)]
struct ChipReq {
    path: PathBuf,
    req: Arc<Request>,
    /// offset → input signal
    inputs: BTreeMap<Offset, Signal>,
}

/// A bus on one or more GPIO chips.
#[derive(Debug)]
pub struct GpioBus {
    // outputs first: dropped (driven inactive, held) before the requests close
    outputs: OutputBank<CdevLine>,
    chips: Vec<ChipReq>,
    input_at: BTreeMap<Signal, (usize, Offset)>,
}

/// Resolves a chip as written (name, `/dev/` path, or label) to its device path.
pub fn chip_path(chip: &str, inv: &ChipInventory) -> Result<PathBuf, PinError> {
    if chip.starts_with('/') {
        return Ok(PathBuf::from(chip));
    }
    match inv.find(chip) {
        Some((name, _)) => Ok(PathBuf::from("/dev").join(name)),
        None => Err(PinError::NoSuchChip {
            chip: chip.into(),
            present: if inv.chips.is_empty() {
                "none".into()
            } else {
                inv.chips.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        }),
    }
}

fn open_err(path: &std::path::Path, call: &str, e: gpiocdev::Error) -> PinError {
    let s = e.to_string();
    let hint = if s.contains("ermission") || s.contains("EACCES") {
        "; permission denied: add the user to group `gpio` (udev rule in crate::pins docs)"
    } else if s.contains("busy") || s.contains("EBUSY") {
        "; line busy: another consumer holds it (see gpioinfo)"
    } else {
        ""
    };
    PinError::Open {
        device: path.display().to_string(),
        call: call.into(),
        detail: format!("{s}{hint}"),
    }
}

impl GpioBus {
    /// Opens the lines of `cfg`: one request per chip, outputs inactive from the start.
    pub fn open(cfg: &BusConfig) -> Result<Self, PinError> {
        let inv = ChipInventory::scan();
        super::check_clock()?;
        let split = |g: &GpioRef| -> Result<(PathBuf, Offset), PinError> {
            match (&g.chip, g.line, g.bcm) {
                (Some(c), Some(l), None) => Ok((chip_path(c, &inv)?, l)),
                _ => Err(PinError::Wiring(format!(
                    "{g}: the gpio backend needs `chip` and `line`"
                ))),
            }
        };
        // group by chip
        let mut per_chip: BTreeMap<PathBuf, ChipLines> = BTreeMap::new();
        for i in &cfg.inputs {
            let (p, o) = split(&i.gpio)?;
            per_chip.entry(p).or_default().0.push((o, i.signal));
        }
        for o in &cfg.outputs {
            let (p, off) = split(&o.gpio)?;
            per_chip
                .entry(p)
                .or_default()
                .1
                .push((off, o.signal, o.active_high));
        }
        let mut chips = Vec::new();
        let mut outs = Vec::new();
        let mut input_at = BTreeMap::new();
        for (path, (ins, os)) in per_chip {
            let mut b = Request::builder();
            b.on_chip(&path).with_consumer(cfg.consumer.clone());
            if let Some(n) = cfg.event_buffer {
                b.with_kernel_event_buffer_size(n);
            }
            for &(off, _) in &ins {
                b.with_line(off)
                    .as_input()
                    .with_edge_detection(EdgeDetection::BothEdges)
                    .with_event_clock(EventClock::Monotonic);
            }
            for &(off, _, active_high) in &os {
                // inactive from the moment the line is requested
                let v = if active_high {
                    Value::Inactive
                } else {
                    Value::Active
                };
                b.with_line(off).as_output(v);
            }
            let req = Arc::new(
                b.request()
                    .map_err(|e| open_err(&path, "request lines", e))?,
            );
            let idx = chips.len();
            for &(off, s) in &ins {
                input_at.insert(s, (idx, off));
            }
            for &(off, s, active_high) in &os {
                outs.push((
                    s,
                    Driven::new(
                        CdevLine {
                            req: req.clone(),
                            offset: off,
                        },
                        active_high,
                    ),
                ));
            }
            chips.push(ChipReq {
                path,
                req,
                inputs: ins.into_iter().collect(),
            });
        }
        let desc = chips
            .iter()
            .map(|c| c.path.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let outputs = OutputBank::new(&desc, outs)?;
        Ok(GpioBus {
            outputs,
            chips,
            input_at,
        })
    }

    fn read_ready(&self, out: &mut Vec<PinEdge>) -> Result<(), PinError> {
        for (i, c) in self.chips.iter().enumerate() {
            if c.inputs.is_empty() {
                continue;
            }
            let io = |call: &str, e: gpiocdev::Error| PinError::Io {
                device: c.path.display().to_string(),
                call: call.into(),
                detail: e.to_string(),
            };
            // Read raw events in bulk and parse every one (gpiocdev 0.8's read_edge_event with
            // only uapi_v2 reads up to 8 events into its buffer and returns the first).
            let size = c.req.edge_event_u64_size();
            let mut buf = vec![0u64; size * 64];
            while c
                .req
                .has_edge_event()
                .map_err(|e| io("has_edge_event", e))?
            {
                let n = c
                    .req
                    .read_edge_events_into_slice(&mut buf)
                    .map_err(|e| io("read edge events", e))?;
                for chunk in buf[..n].chunks_exact(size) {
                    let ev = c
                        .req
                        .edge_event_from_slice(chunk)
                        .map_err(|e| io("parse edge event", e))?;
                    let Some(&signal) = c.inputs.get(&ev.offset) else {
                        continue;
                    };
                    out.push(PinEdge {
                        signal,
                        t: Timestamp(ev.timestamp_ns),
                        level: Level::from_high(ev.kind == EdgeKind::Rising),
                        stream: i as u16,
                        seqno: ev.seqno,
                        line_seqno: ev.line_seqno,
                    });
                }
            }
        }
        Ok(())
    }
}

impl PinBus for GpioBus {
    fn describe(&self) -> String {
        format!(
            "gpio:{}",
            self.chips
                .iter()
                .map(|c| c.path.display().to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
    }

    fn set_output(&mut self, signal: Signal, active: bool) -> Result<(), PinError> {
        self.outputs.set(signal, active)
    }

    fn read_edges(&mut self, deadline: Timestamp) -> Result<Vec<PinEdge>, PinError> {
        let mut out = Vec::new();
        let with_inputs: Vec<&ChipReq> =
            self.chips.iter().filter(|c| !c.inputs.is_empty()).collect();
        loop {
            self.read_ready(&mut out)?;
            if !out.is_empty() {
                out.sort_by_key(|e| e.t);
                return Ok(out);
            }
            let now = monotonic_now();
            if now >= deadline {
                return Ok(out);
            }
            let left = deadline.saturating_since(now);
            match with_inputs.as_slice() {
                [] => std::thread::sleep(left),
                [one] => {
                    one.req.wait_edge_event(left).map_err(|e| PinError::Io {
                        device: one.path.display().to_string(),
                        call: "wait_edge_event".into(),
                        detail: e.to_string(),
                    })?;
                }
                _ => std::thread::sleep(left.min(Duration::from_millis(1))),
            }
        }
    }

    fn now(&self) -> Result<Timestamp, PinError> {
        Ok(monotonic_now())
    }

    fn level(&mut self, signal: Signal) -> Result<bool, PinError> {
        let &(i, off) = self
            .input_at
            .get(&signal)
            .ok_or_else(|| PinError::Wiring(format!("{signal} is not an input of this bus")))?;
        let c = &self.chips[i];
        let v = c.req.value(off).map_err(|e| PinError::Io {
            device: c.path.display().to_string(),
            call: format!("get_value line {off}"),
            detail: e.to_string(),
        })?;
        Ok(v == Value::Active)
    }

    fn all_inactive(&mut self) -> Result<(), PinError> {
        self.outputs.all_inactive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_chip_is_named_with_what_exists() {
        let mut inv = ChipInventory::default();
        inv.chips.insert("gpiochip0".into(), ("pinctrl".into(), 54));
        assert_eq!(
            chip_path("gpiochip7", &inv),
            Err(PinError::NoSuchChip {
                chip: "gpiochip7".into(),
                present: "gpiochip0".into()
            })
        );
        assert_eq!(
            chip_path("pinctrl", &inv),
            Ok(PathBuf::from("/dev/gpiochip0"))
        );
        assert_eq!(
            chip_path("/dev/gpiochip3", &inv),
            Ok(PathBuf::from("/dev/gpiochip3"))
        );
    }
}
