//! Meter profiles: every limit the suites judge, each with the clause it comes from.
//!
//! A limit that cites no clause has no business failing anyone, so limits live here, next to their
//! source, and nowhere else. Pure data.

use super::readout::{RegisterSpec, COMBI_351 as COMBI_351_LAYOUT};
use crate::iec62056::BccRule;

/// Where a limit comes from: a source document in `shared/seeds` and its section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Clause {
    /// File name of the source document.
    pub source: &'static str,
    /// Section, table or sentence in it.
    pub section: &'static str,
}

impl std::fmt::Display for Clause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} §{}", self.source, self.section)
    }
}

/// The 351 Combi interface specification.
pub const SPEC_351: &str = "004_d1f80f13afa7763c.txt";
/// The 351 Combi data sheet.
pub const SHEET_351: &str = "000_c06f58957f887af9.txt";
/// The OMNIPOWER three-phase data sheet.
pub const SHEET_OMNI_3PH: &str = "002_2f062e5fcd422fbd.txt";
/// The OMNIPOWER CT data sheet.
pub const SHEET_OMNI_CT: &str = "003_d5a047765b630495.txt";

/// Which meter family a profile models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileId {
    /// Kamstrup 351 Combi (000/001/004).
    #[serde(rename = "351-combi")]
    Combi351,
    /// Kamstrup OMNIPOWER three-phase, direct connected (002).
    #[serde(rename = "omnipower-3ph")]
    OmnipowerThreePhase,
    /// Kamstrup OMNIPOWER CT (003).
    #[serde(rename = "omnipower-ct")]
    OmnipowerCt,
}

/// How the module I/O code is read (KK for the 351, Z3 for OMNIPOWER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IoTable {
    /// 351 Combi KK 00–19.
    Kk351,
    /// OMNIPOWER Z3 00–16 (the codes that map onto the module interface's two ports).
    Z3,
}

/// A meter family's promises at the module interface.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Profile {
    /// Identifier used in meter files.
    pub id: ProfileId,
    /// Human name.
    pub name: &'static str,
    /// The documents it is built from.
    pub sources: &'static [&'static str],
    /// The identification's manufacturer code (`/KAM`), as the software meter sends it.
    pub manufacturer: &'static str,
    /// The mode A readout's data sets in the order the software meter sends them (for the
    /// OMNIPOWER, the 351's: an assumption the readout clause records). The suites judge by
    /// `meter::sheet`'s transcription instead.
    #[serde(skip)]
    pub readout_layout: &'static [RegisterSpec],
    /// Default line rate.
    pub baud: u32,
    /// BCC rule of the readout.
    pub bcc_rule: BccRule,
    /// Clause for the BCC rule.
    pub bcc_clause: Clause,
    /// Earliest answer after the request, ms.
    pub response_min_ms: f64,
    /// Latest answer after the request, ms.
    pub response_max_ms: f64,
    /// Clause for the response window.
    pub response_clause: Clause,
    /// Clause for the readout layout (identification, data sets, framing).
    pub readout_clause: Clause,
    /// Clause for the serial framing (300 baud 7E1).
    pub framing_clause: Clause,
    /// Accuracy class of active energy, percent.
    pub accuracy_pct: f64,
    /// Clause for the accuracy class.
    pub accuracy_clause: Clause,
    /// Module pulse output constant when weighted by verified (secondary) energy, imp/kWh.
    pub secondary_pulse_constant: u32,
    /// Clause for the pulse constant.
    pub pulse_constant_clause: Clause,
    /// Allowed true-energy pulse constants, imp/kWh.
    pub primary_pulse_constant_range: (u32, u32),
    /// Relative pulse-length tolerance, percent.
    pub pulse_width_tolerance_pct: f64,
    /// Clause for the pulse lengths and tolerance.
    pub pulse_width_clause: Clause,
    /// Minimum pause between pulses, ms.
    pub min_pause_ms: f64,
    /// Clause for the pause.
    pub pause_clause: Clause,
    /// Clause for the tariff tables.
    pub tariff_clause: Clause,
    /// Clause for the module I/O code table.
    pub io_clause: Clause,
    /// How the I/O code is read.
    pub io_table: IoTable,
    /// Clause for the transformer ratio.
    pub ratio_clause: Clause,
    /// Clause for the registers (peak, reset counter, pulse input).
    pub registers_clause: Clause,
    /// Measuring systems (phases).
    pub phases: u32,
    /// Nominal phase voltage Un at the meter terminals, V.
    pub nominal_voltage_v: f64,
    /// How far above Un the voltage range reaches, percent (000: ±10 %; 002/003: −20 % +15 %).
    pub voltage_upper_tolerance_pct: f64,
    /// Maximum current Imax at the meter terminals, A (secondary for transformer meters).
    pub max_current_a: f64,
    /// Clause for Un and Imax.
    pub max_load_clause: Clause,
    /// The optical port's protocol mode C, when the sheets offer it (`None`: mode A only).
    pub mode_c: Option<ModeC>,
}

/// An optical port that answers in IEC 62056-21 protocol mode C.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ModeC {
    /// The rate the identification announces and the data message is sent at, baud. The sheets
    /// name no rate (nor the port Z18 configures); 9600 (baud character `'5'`) on the optical
    /// port is an assumption the clause records.
    pub baud: u32,
    /// Where the sheets offer mode C.
    pub clause: Clause,
}

impl Profile {
    /// The highest phase voltage of the voltage range, V: Un plus its upper tolerance.
    pub fn max_voltage_v(&self) -> f64 {
        self.nominal_voltage_v * (100.0 + self.voltage_upper_tolerance_pct) / 100.0
    }

    /// The largest load a meter file may put on the meter terminals: phases × the top of the
    /// voltage range × Imax, in W (and var, for reactive power). True (primary) power is this ×
    /// the transformer ratio.
    pub fn max_terminal_power_w(&self) -> f64 {
        f64::from(self.phases) * self.max_voltage_v() * self.max_current_a
    }
}

/// The Kamstrup 351 Combi.
pub static COMBI_351: Profile = Profile {
    id: ProfileId::Combi351,
    name: "Kamstrup 351 Combi",
    sources: &[SPEC_351, SHEET_351, "001_fb0b65c21cb40e49.txt"],
    manufacturer: "KAM",
    readout_layout: &COMBI_351_LAYOUT,
    baud: 300,
    bcc_rule: BccRule::Xor,
    bcc_clause: Clause { source: SPEC_351, section: "IEC61107 data request: BCC by 7 bit modulo 2 addition, STX excluded, ETX included" },
    response_min_ms: 20.0,
    response_max_ms: 500.0,
    response_clause: Clause { source: SPEC_351, section: "IEC61107 data request, Note 1: response between 20 and 500 msec after request" },
    readout_clause: Clause { source: SPEC_351, section: "IEC61107 data request: /KAM, STX, 17 data sets, '!', ETX, BCC" },
    framing_clause: Clause { source: SPEC_351, section: "IEC61107 data request: 300 baud, 1 start bit, 7 data bits, even parity, 1 stop bit" },
    accuracy_pct: 1.0,
    accuracy_clause: Clause { source: SHEET_351, section: "Metrological data: Class 1, IEC 61036" },
    secondary_pulse_constant: 10_000,
    pulse_constant_clause: Clause { source: SHEET_351, section: "Module controlled pulse output: secondary 10,000 imp/kWh; primary 1 to 100,000 imp/kWh (P)" },
    primary_pulse_constant_range: (1, 100_000),
    pulse_width_tolerance_pct: 10.0,
    pulse_width_clause: Clause { source: SHEET_351, section: "Configuration 2, MM: pulse length 30 ms / 80 ms (tolerance ±10 % as the family's S0, 002/003 Technical data)" },
    min_pause_ms: 30.0,
    pause_clause: Clause { source: SHEET_351, section: "Metrological data: S0 per DIN 43864 (pause ≥ 30 ms)" },
    tariff_clause: Clause { source: SHEET_351, section: "Tariff control: normal and inverted input tables" },
    io_clause: Clause { source: SHEET_351, section: "Configuration 1, KK Module i/o 00–19" },
    io_table: IoTable::Kk351,
    ratio_clause: Clause { source: SHEET_351, section: "Configuration 1, HH Transformer ratio (x/5)" },
    registers_clause: Clause { source: SHEET_351, section: "Display configurations (peak power, pulse input) and Configuration 2 (NN, Q)" },
    phases: 3,
    nominal_voltage_v: 230.0,
    voltage_upper_tolerance_pct: 10.0,
    max_current_a: 6.0,
    max_load_clause: Clause { source: SHEET_351, section: "Technical data: voltage range Un 3 x 230/400 VAC +/- 10%; current range In 5 A, Imax 6 A" },
    mode_c: None,
};

/// The OMNIPOWER three-phase meter: S0 1000 imp/kWh, 30 ms ±10 %, Z3 module codes, Z8 pulse length.
/// The mode A readout layout is not in its data sheet; the profile uses the 351's (an assumption
/// recorded in every record that uses it).
pub static OMNIPOWER_3PH: Profile = Profile {
    id: ProfileId::OmnipowerThreePhase,
    name: "Kamstrup OMNIPOWER three-phase",
    sources: &[SHEET_OMNI_3PH],
    manufacturer: "KAM",
    readout_layout: &COMBI_351_LAYOUT,
    baud: 300,
    bcc_rule: BccRule::Xor,
    bcc_clause: Clause {
        source: SHEET_OMNI_3PH,
        section: "Z18 1107 configuration: mode A (BCC per IEC 62056-21)",
    },
    response_min_ms: 20.0,
    response_max_ms: 500.0,
    response_clause: Clause {
        source: SPEC_351,
        section: "Note 1 (351 module interface, assumed for OMNIPOWER mode A)",
    },
    readout_clause: Clause {
        source: SPEC_351,
        section: "IEC61107 data request (351 layout assumed for OMNIPOWER mode A)",
    },
    framing_clause: Clause {
        source: SPEC_351,
        section: "300 baud 7E1 (assumed for OMNIPOWER mode A)",
    },
    accuracy_pct: 1.0,
    accuracy_clause: Clause {
        source: SHEET_OMNI_3PH,
        section: "Technical data: accuracy class B / class 1",
    },
    secondary_pulse_constant: 1_000,
    pulse_constant_clause: Clause {
        source: SHEET_OMNI_3PH,
        section: "Technical data: S0 pulse output 1000 imp/kWh",
    },
    primary_pulse_constant_range: (1_000, 1_000),
    pulse_width_tolerance_pct: 10.0,
    pulse_width_clause: Clause {
        source: SHEET_OMNI_3PH,
        section: "Technical data: pulse time 30 ms ± 10 %; Z8 pulse out length 30/80 ms",
    },
    min_pause_ms: 30.0,
    pause_clause: Clause {
        source: SHEET_OMNI_3PH,
        section: "Approvals: S0 pulse output DIN 43864 (pause ≥ 30 ms)",
    },
    tariff_clause: Clause {
        source: SHEET_351,
        section: "Tariff control tables of the 351, assumed for the 2-tariff / 4-tariff inputs Z3 names",
    },
    io_clause: Clause {
        source: SHEET_OMNI_3PH,
        section: "Configuration – software, Z3 Primary module configuration",
    },
    io_table: IoTable::Z3,
    ratio_clause: Clause {
        source: SHEET_OMNI_3PH,
        section: "direct connected: no transformer ratio",
    },
    registers_clause: Clause {
        source: SHEET_OMNI_3PH,
        section: "Permanent memory: registers",
    },
    phases: 3,
    nominal_voltage_v: 230.0,
    voltage_upper_tolerance_pct: 15.0,
    max_current_a: 100.0,
    max_load_clause: Clause {
        source: SHEET_OMNI_3PH,
        section: "Technical data: nominal voltage Un 3x230/400 VAC -20 % - +15 %; current Imin - Iref (Imax) 0.25-5(100) A",
    },
    mode_c: Some(ModeC {
        baud: 9600,
        clause: Clause {
            source: SHEET_OMNI_3PH,
            section: "Z18 1107 configuration 001/002: Mode A and C (the sheet names neither port nor rate: the optical port and 9600 baud are assumed; its Various table gives the optical reading as DLMS/COSEM); IEC 62056-21 §6.3.3, §6.3.14, §6.4.4",
        },
    }),
};

/// The OMNIPOWER CT meter: S0 5000 imp/kWh secondary, ratio 1–600 (Z21), Z24 pulse basis.
pub static OMNIPOWER_CT: Profile = Profile {
    id: ProfileId::OmnipowerCt,
    name: "Kamstrup OMNIPOWER CT",
    sources: &[SHEET_OMNI_CT],
    manufacturer: "KAM",
    readout_layout: &COMBI_351_LAYOUT,
    baud: 300,
    bcc_rule: BccRule::Xor,
    bcc_clause: Clause {
        source: SHEET_OMNI_CT,
        section: "Z18 1107 configuration: mode A (BCC per IEC 62056-21)",
    },
    response_min_ms: 20.0,
    response_max_ms: 500.0,
    response_clause: Clause {
        source: SPEC_351,
        section: "Note 1 (351 module interface, assumed for OMNIPOWER mode A)",
    },
    readout_clause: Clause {
        source: SPEC_351,
        section: "IEC61107 data request (351 layout assumed for OMNIPOWER mode A)",
    },
    framing_clause: Clause {
        source: SPEC_351,
        section: "300 baud 7E1 (assumed for OMNIPOWER mode A)",
    },
    accuracy_pct: 1.0,
    accuracy_clause: Clause {
        source: SHEET_OMNI_CT,
        section: "Technical data: accuracy class",
    },
    secondary_pulse_constant: 5_000,
    pulse_constant_clause: Clause {
        source: SHEET_OMNI_CT,
        section: "Technical data: S0 pulse output 5000 imp/kWh (secondary); Z24 pulse output basis",
    },
    primary_pulse_constant_range: (1, 100_000),
    pulse_width_tolerance_pct: 10.0,
    pulse_width_clause: Clause {
        source: SHEET_OMNI_CT,
        section: "Technical data: pulse time 30 ms ± 10 %; Z8 pulse out length 30/80 ms",
    },
    min_pause_ms: 30.0,
    pause_clause: Clause {
        source: SHEET_OMNI_CT,
        section: "Approvals: S0 pulse output DIN 43864 (pause ≥ 30 ms)",
    },
    tariff_clause: Clause {
        source: SHEET_351,
        section: "Tariff control tables of the 351, assumed for the 2-tariff / 4-tariff inputs Z3 names",
    },
    io_clause: Clause {
        source: SHEET_OMNI_CT,
        section: "Configuration – software, Z3 Primary module configuration",
    },
    io_table: IoTable::Z3,
    ratio_clause: Clause {
        source: SHEET_OMNI_CT,
        section: "Z21 Transformer ratio 1–600",
    },
    registers_clause: Clause {
        source: SHEET_OMNI_CT,
        section: "Permanent memory: registers",
    },
    phases: 3,
    nominal_voltage_v: 230.0,
    voltage_upper_tolerance_pct: 15.0,
    max_current_a: 6.0,
    max_load_clause: Clause {
        source: SHEET_OMNI_CT,
        section: "Technical data: nominal voltage Un 3 x 230/400 VAC -20 % - +15 %; current Imin - In (Imax) 0.05 - 5(6) A",
    },
    mode_c: Some(ModeC {
        baud: 9600,
        clause: Clause {
            source: SHEET_OMNI_CT,
            section: "Z18 1107 configuration 001/002: Mode A and C (the sheet names neither port nor rate: the optical port and 9600 baud are assumed; its Various table gives the optical reading as DLMS/COSEM); IEC 62056-21 §6.3.3, §6.3.14, §6.4.4",
        },
    }),
};

impl ProfileId {
    /// The profile's data.
    pub fn profile(self) -> &'static Profile {
        match self {
            ProfileId::Combi351 => &COMBI_351,
            ProfileId::OmnipowerThreePhase => &OMNIPOWER_3PH,
            ProfileId::OmnipowerCt => &OMNIPOWER_CT,
        }
    }
}

/// 351 Combi HH codes → primary amperes of an x/5 A transformer (000, Configuration 1).
pub const HH_351: [(u8, u32); 20] = [
    (0, 5),
    (2, 50),
    (5, 100),
    (7, 120),
    (10, 150),
    (11, 160),
    (15, 200),
    (20, 250),
    (25, 300),
    (30, 400),
    (35, 500),
    (40, 600),
    (50, 800),
    (60, 1000),
    (70, 1200),
    (71, 1250),
    (80, 1400),
    (84, 1500),
    (90, 1800),
    (95, 2000),
];

/// OMNIPOWER CT Z21 codes are the ratio itself (003, Z21: 001 = 5/5 … 600 = 3000/5).
pub const Z21_CT: [u32; 17] = [
    1, 2, 3, 4, 10, 15, 20, 24, 30, 32, 40, 60, 100, 200, 300, 400, 600,
];
