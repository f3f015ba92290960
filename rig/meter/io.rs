//! Module I/O per KK (351 Combi, 000 "KK Module i/o") and Z3 (OMNIPOWER, 002/003): what each of
//! the two ports does, and how the tariff inputs select a register.
//!
//! Conventions: "I/O 1" is port 1 (pin 4), "I/O 2" is port 2 (pin 3). An input's logical value is
//! the "1"/"0" of the sheet's tariff tables; at the pin, the module pulls the port low (through its
//! optocoupler, against the meter's 1 MΩ pull-up) to assert logical 1. Pure data.

use super::profile::IoTable;
use crate::target::Port;

/// What a port does for a given I/O code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortRole {
    /// Not used.
    None,
    /// Tariff control input.
    TariffIn,
    /// Pulse input counted in 96.50.1.
    PulseIn,
    /// Alarm input (info code 100,000); `inverted` when the alarm is the released state.
    AlarmIn {
        /// Inverted alarm input.
        inverted: bool,
    },
    /// Max (peak) reset input.
    MaxReset,
    /// Active energy (A+) pulse output.
    ActiveOut,
    /// Reactive energy (R+) pulse output.
    ReactiveOut,
    /// OMNIPOWER export (A-) pulse output: modelled as silent (the model has no export energy).
    ExportOut,
    /// OMNIPOWER debiting stop pulse input: a billing reset like max reset.
    DebitingStop,
}

impl PortRole {
    /// Whether the rig drives this port (a meter input).
    pub fn is_input(self) -> bool {
        matches!(
            self,
            PortRole::TariffIn
                | PortRole::PulseIn
                | PortRole::AlarmIn { .. }
                | PortRole::MaxReset
                | PortRole::DebitingStop
        )
    }
    /// Whether the meter drives this port (a pulse output).
    pub fn is_output(self) -> bool {
        matches!(
            self,
            PortRole::ActiveOut | PortRole::ReactiveOut | PortRole::ExportOut
        )
    }
}

/// How the active tariff is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum TariffControl {
    /// Communication control: the module does not select; the meter stays in tariff 1 here.
    Communication,
    /// Module control through one (2-tariff) or two (4-tariff) inputs.
    Module {
        /// 2 or 4 tariffs.
        tariffs: u8,
        /// Inverted table.
        inverted: bool,
        /// Input 1 of the table.
        input1: Port,
        /// Input 2 (4-tariff only).
        input2: Option<Port>,
    },
}

impl TariffControl {
    /// The tariff (1–4) the software meter registers in for logical inputs `in1`, `in2`
    /// (000, "Tariff control"). For 2-tariff, `in2` is ignored: 0 → 1, 1 → 2 (inverted: 1 → 1, 0 → 2).
    /// The meter's own table; the suites judge by [`TariffControl::table`], which reads the
    /// independent transcription in `meter::sheet`.
    pub fn tariff(&self, in1: bool, in2: bool) -> u8 {
        match *self {
            TariffControl::Communication => 1,
            TariffControl::Module {
                tariffs: 2,
                inverted,
                ..
            } => {
                if in1 != inverted {
                    2
                } else {
                    1
                }
            }
            TariffControl::Module { inverted, .. } => {
                let (a, b) = if inverted { (!in1, !in2) } else { (in1, in2) };
                1 + a as u8 + 2 * b as u8
            }
        }
    }

    /// The expected tariff for each input state index (bit 0 = input 1, bit 1 = input 2); the
    /// states a test walks: 2 for 2-tariff, 4 for 4-tariff, none for communication control.
    /// Expectations come from the judge's transcription of 000's tables (`meter::sheet`), not from
    /// the software meter's [`TariffControl::tariff`].
    pub fn table(&self) -> Vec<(u8, u8)> {
        match *self {
            TariffControl::Communication => vec![],
            TariffControl::Module {
                tariffs, inverted, ..
            } => {
                let states = if tariffs == 2 { 2 } else { 4 };
                (0..states)
                    .map(|s| {
                        let t = super::sheet::tariff(tariffs, inverted, s & 1 == 1, s & 2 == 2);
                        (s, t)
                    })
                    .collect()
            }
        }
    }
}

/// Roles of both ports and the tariff control for one I/O code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IoMap {
    /// The code (KK or Z3).
    pub code: u8,
    /// The sheet's description.
    pub description: &'static str,
    /// Port 1 (I/O 1).
    pub port1: PortRole,
    /// Port 2 (I/O 2).
    pub port2: PortRole,
    /// Tariff control.
    pub tariff: TariffControl,
}

impl IoMap {
    /// The role of `port`.
    pub fn role(&self, port: Port) -> PortRole {
        match port {
            Port::Port1 => self.port1,
            Port::Port2 => self.port2,
        }
    }
    /// The first port with `pred(role)`.
    pub fn find(&self, pred: impl Fn(PortRole) -> bool) -> Option<Port> {
        Port::ALL.into_iter().find(|&p| pred(self.role(p)))
    }
}

/// One module I/O code of one table, as a meter is configured ("KK 05", "Z3 16"): the one
/// source of port roles for the software meter, the suites and the wiring check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoCode {
    /// Which table the code is from.
    pub table: IoTable,
    /// The code's entry in that table.
    pub map: IoMap,
}

impl IoCode {
    /// A 351 Combi KK code (000 "KK Module i/o"); `None` outside 00–19.
    pub fn kk(code: u8) -> Option<IoCode> {
        KK_351.get(code as usize).map(|&map| IoCode {
            table: IoTable::Kk351,
            map,
        })
    }
    /// An OMNIPOWER Z3 code (002/003 "Z3 Primary module configuration"); `None` outside 00–16.
    pub fn z3(code: u8) -> Option<IoCode> {
        Z3_OMNI.get(code as usize).map(|&map| IoCode {
            table: IoTable::Z3,
            map,
        })
    }
}

impl std::fmt::Display for IoCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = match self.table {
            IoTable::Kk351 => "KK",
            IoTable::Z3 => "Z3",
        };
        write!(f, "{table} {:02}", self.map.code)
    }
}

use PortRole::*;

const fn t2(inverted: bool, input1: Port) -> TariffControl {
    TariffControl::Module {
        tariffs: 2,
        inverted,
        input1,
        input2: Option::None,
    }
}
const fn t4(inverted: bool) -> TariffControl {
    TariffControl::Module {
        tariffs: 4,
        inverted,
        input1: Port::Port1,
        input2: Some(Port::Port2),
    }
}
const COMM: TariffControl = TariffControl::Communication;
const P1: Port = Port::Port1;
const P2: Port = Port::Port2;

const fn io(
    code: u8,
    description: &'static str,
    port1: PortRole,
    port2: PortRole,
    tariff: TariffControl,
) -> IoMap {
    IoMap {
        code,
        description,
        port1,
        port2,
        tariff,
    }
}

/// The software meter's module pulse length for an MM (351, 000 Configuration 2) or Z8
/// (OMNIPOWER, 002/003) code, ms. The suites judge by `meter::sheet::pulse_length_ms` instead.
pub fn pulse_length_ms(table: crate::meter::profile::IoTable, code: u8) -> Option<f64> {
    use crate::meter::profile::IoTable;
    match (table, code) {
        (IoTable::Kk351, 1 | 3) => Some(30.0),
        (IoTable::Kk351, 2 | 4) => Some(80.0),
        (IoTable::Z3, 1 | 2) => Some(30.0),
        (IoTable::Z3, 3 | 4) => Some(80.0),
        _ => Option::None,
    }
}

/// KK 00–19 (000_c06f58957f887af9.txt, "KK Module i/o").
pub const KK_351: [IoMap; 20] = [
    io(0, "No function", None, None, COMM),
    io(1, "4-tariff", TariffIn, TariffIn, t4(false)),
    io(2, "4-tariff inverted", TariffIn, TariffIn, t4(true)),
    io(
        3,
        "Pulse in/alarm in",
        PulseIn,
        AlarmIn { inverted: false },
        COMM,
    ),
    io(
        4,
        "Pulse in/inv. alarm in",
        PulseIn,
        AlarmIn { inverted: true },
        COMM,
    ),
    io(5, "Pulse in/A+ out", PulseIn, ActiveOut, COMM),
    io(6, "R+ out/A+ out", ReactiveOut, ActiveOut, COMM),
    io(
        7,
        "2-tariff/alarm in",
        TariffIn,
        AlarmIn { inverted: false },
        t2(false, P1),
    ),
    io(
        8,
        "2-tariff inv./alarm in",
        TariffIn,
        AlarmIn { inverted: false },
        t2(true, P1),
    ),
    io(
        9,
        "2-tariff/alarm in inv.",
        TariffIn,
        AlarmIn { inverted: true },
        t2(false, P1),
    ),
    io(
        10,
        "2-tariff inv./alarm in inv.",
        TariffIn,
        AlarmIn { inverted: true },
        t2(true, P1),
    ),
    io(11, "2-tariff/A+ out", TariffIn, ActiveOut, t2(false, P1)),
    io(
        12,
        "2-tariff inv./A+ out",
        TariffIn,
        ActiveOut,
        t2(true, P1),
    ),
    io(13, "Pulse in/2-tariff", PulseIn, TariffIn, t2(false, P2)),
    io(
        14,
        "Pulse in/2-tariff inv.",
        PulseIn,
        TariffIn,
        t2(true, P2),
    ),
    io(15, "Max reset/2-tariff", MaxReset, TariffIn, t2(false, P2)),
    io(
        16,
        "Max reset/2-tariff inv.",
        MaxReset,
        TariffIn,
        t2(true, P2),
    ),
    io(17, "Max reset/A+ out", MaxReset, ActiveOut, COMM),
    io(
        18,
        "Max reset/alarm in",
        MaxReset,
        AlarmIn { inverted: false },
        COMM,
    ),
    io(
        19,
        "Max reset/alarm in inv.",
        MaxReset,
        AlarmIn { inverted: true },
        COMM,
    ),
];

/// OMNIPOWER Z3 00–16 (002/003, "Z3 Primary module configuration"); codes 17–29 drive load
/// control relays and earth-fault modules, which the module-interface model does not cover.
pub const Z3_OMNI: [IoMap; 17] = [
    io(0, "No function", None, None, COMM),
    io(1, "4-tariff", TariffIn, TariffIn, t4(false)),
    io(2, "4-tariff inverted", TariffIn, TariffIn, t4(true)),
    io(
        3,
        "Pulse in / Alarm in",
        PulseIn,
        AlarmIn { inverted: false },
        COMM,
    ),
    io(
        4,
        "Pulse in / Alarm in inverted",
        PulseIn,
        AlarmIn { inverted: true },
        COMM,
    ),
    io(5, "Pulse in / A+ out", PulseIn, ActiveOut, COMM),
    io(6, "R+ out / A+ out", ReactiveOut, ActiveOut, COMM),
    io(
        7,
        "2-tariff / Alarm in",
        TariffIn,
        AlarmIn { inverted: false },
        t2(false, P1),
    ),
    io(
        8,
        "2-tariff inverted / Alarm in",
        TariffIn,
        AlarmIn { inverted: false },
        t2(true, P1),
    ),
    io(
        9,
        "2-tariff / Alarm in inverted",
        TariffIn,
        AlarmIn { inverted: true },
        t2(false, P1),
    ),
    io(
        10,
        "2-tariff inverted / Alarm in inverted",
        TariffIn,
        AlarmIn { inverted: true },
        t2(true, P1),
    ),
    io(11, "2-tariff / A+ out", TariffIn, ActiveOut, t2(false, P1)),
    io(
        12,
        "2-tariff inverted / A+ out",
        TariffIn,
        ActiveOut,
        t2(true, P1),
    ),
    io(13, "Pulse in / 2-tariff", PulseIn, TariffIn, t2(false, P2)),
    io(
        14,
        "Pulse in / 2-tariff inverted",
        PulseIn,
        TariffIn,
        t2(true, P2),
    ),
    io(15, "Debiting stop pulse / -", DebitingStop, None, COMM),
    io(16, "A- out / A+ out", ExportOut, ActiveOut, COMM),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tariff_tables_match_the_sheet() {
        // 000 "Tariff control": normal (in1,in2) 00→1 10→2 01→3 11→4; inverted 11→1 01→2 10→3 00→4
        let n = KK_351[1].tariff;
        assert_eq!(
            [
                n.tariff(false, false),
                n.tariff(true, false),
                n.tariff(false, true),
                n.tariff(true, true)
            ],
            [1, 2, 3, 4]
        );
        let i = KK_351[2].tariff;
        assert_eq!(
            [
                i.tariff(true, true),
                i.tariff(false, true),
                i.tariff(true, false),
                i.tariff(false, false)
            ],
            [1, 2, 3, 4]
        );
        let t = KK_351[7].tariff;
        assert_eq!([t.tariff(false, false), t.tariff(true, false)], [1, 2]);
        let ti = KK_351[8].tariff;
        assert_eq!([ti.tariff(true, false), ti.tariff(false, false)], [1, 2]);
    }

    #[test]
    fn codes_are_in_order() {
        for (i, m) in KK_351.iter().enumerate() {
            assert_eq!(m.code as usize, i);
        }
        for (i, m) in Z3_OMNI.iter().enumerate() {
            assert_eq!(m.code as usize, i);
        }
    }
}
