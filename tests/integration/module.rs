//! The `module` suite in virtual time: every case against the reference software module with
//! its matching fault knob (it must fail) and against the healthy one (it must pass), with the
//! boundaries (an answer at 499.9 ms waited for; a repeat sooner than 500 ms flagged).

use meter_rig::meter::config::MeterSpec;
use meter_rig::module::data::{Forwarded, ReportError};
use meter_rig::module::reference::{ModuleKnobs, VirtualBench};
use meter_rig::module::{BenchTarget, ModuleBench};
use meter_rig::suite::{self, CaseResult, RunOptions, Verdict};
use meter_rig::target::Target;

use meter_rig::suite::Discard as Null;

fn run_case(case: &str, knobs: ModuleKnobs) -> CaseResult {
    let spec = MeterSpec::builtin_default();
    let mut t = BenchTarget::new(Box::new(VirtualBench { knobs }), "module:reference", true);
    let mut opts = RunOptions::for_target(&t.capabilities());
    opts.cases = vec![case.into()];
    let mut cases = suite::run(&mut t, &spec, &opts, &mut Null);
    assert_eq!(cases.len(), 1, "{case} selected once");
    cases.remove(0)
}

fn verdict(case: &str, knobs: ModuleKnobs) -> (Verdict, String) {
    let r = run_case(case, knobs);
    (r.verdict, r.message)
}

fn measured(r: &CaseResult, name: &str) -> f64 {
    r.measurements
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| m.value)
        .unwrap_or_else(|| panic!("{name} in {:?}", r.measurements))
}

#[test]
fn request_passes_for_the_healthy_module_general_and_addressed() {
    let r = run_case("module.request", ModuleKnobs::default());
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert_eq!(measured(&r, "requests"), 1.0);
    let addressed = ModuleKnobs {
        address: Some("12345678".into()),
        ..ModuleKnobs::default()
    };
    let (v, m) = verdict("module.request", addressed);
    assert_eq!(v, Verdict::Pass, "{m}");
}

#[test]
fn request_fails_for_wrong_parity() {
    let knobs = ModuleKnobs {
        odd_parity: true,
        ..ModuleKnobs::default()
    };
    let (v, m) = verdict("module.request", knobs);
    assert_eq!(v, Verdict::Fail, "{m}");
    assert!(m.contains("odd parity"), "{m}");
}

#[test]
fn request_fails_without_cr_lf() {
    let knobs = ModuleKnobs {
        no_crlf: true,
        tries: 1,
        ..ModuleKnobs::default()
    };
    let (v, m) = verdict("module.request", knobs);
    assert_eq!(v, Verdict::Fail, "{m}");
    assert!(m.contains("CR LF") || m.contains('!'), "{m}");
}

#[test]
fn patience_passes_when_the_answer_at_499_9_ms_with_1500_ms_pauses_is_waited_for() {
    let r = run_case("module.patience", ModuleKnobs::default());
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert_eq!(measured(&r, "served_reaction"), 499.9);
    // 17 data lines and the identification, each followed by 1.5 s
    assert!(measured(&r, "request_to_bcc") > 17.0 * 1500.0);
}

#[test]
fn patience_fails_for_an_impatient_module() {
    // gives up 1400 ms after a character: just under the 1500 ms the meter may pause
    let knobs = ModuleKnobs {
        char_wait_ms: Some(1400.0),
        ..ModuleKnobs::default()
    };
    let (v, m) = verdict("module.patience", knobs);
    assert_eq!(v, Verdict::Fail, "{m}");
    assert!(m.contains("still coming"), "{m}");
}

#[test]
fn patience_fails_for_a_module_that_gives_up_before_500_ms() {
    let knobs = ModuleKnobs {
        answer_wait_ms: Some(450.0),
        retry_after_ms: 0.0,
        ..ModuleKnobs::default()
    };
    let (v, m) = verdict("module.patience", knobs);
    assert_eq!(v, Verdict::Fail, "{m}");
}

#[test]
fn repetition_passes_for_the_healthy_module_and_reports_spacing_and_count() {
    let r = run_case("module.repetition", ModuleKnobs::default());
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert_eq!(measured(&r, "silent.requests"), 3.0);
    assert_eq!(measured(&r, "bad_bcc.requests"), 3.0);
    // noise right before a whole answer: the module reads the answer after it, once
    assert_eq!(measured(&r, "noise.requests"), 1.0);
    // 1500 ms (and a character) of waiting plus 2000 ms before asking again
    let s = measured(&r, "silent.min_spacing");
    assert!((3500.0..3600.0).contains(&s), "{s}");
}

#[test]
fn repetition_flags_a_repeat_sooner_than_500_ms() {
    // waits 499 ms for the first character, then asks again at once: inside 004 Note 1's window
    let knobs = ModuleKnobs {
        answer_wait_ms: Some(499.0),
        retry_after_ms: 0.0,
        ..ModuleKnobs::default()
    };
    let (v, m) = verdict("module.repetition", knobs);
    assert_eq!(v, Verdict::Fail, "{m}");
    assert!(m.contains("silent: asked again"), "{m}");
}

#[test]
fn repetition_passes_a_repeat_just_after_500_ms() {
    let knobs = ModuleKnobs {
        answer_wait_ms: Some(501.0),
        retry_after_ms: 0.0,
        ..ModuleKnobs::default()
    };
    let r = run_case("module.repetition", knobs);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    let s = measured(&r, "silent.min_spacing");
    assert!((501.0..502.0).contains(&s), "{s}");
}

#[test]
fn the_module_suite_is_not_run_by_rig_run_and_skips_against_a_meter() {
    let spec = MeterSpec::builtin_default();
    let mut sim = meter_rig::sim::SimTarget::new(spec.clone());
    let all = RunOptions::for_target(&sim.capabilities());
    assert!(suite::selected(&all).iter().all(|c| c.suite != "module"));
    let mut opts = all.clone();
    opts.suites = vec!["module".into()];
    let cases = suite::run(&mut sim, &spec, &opts, &mut Null);
    assert_eq!(cases.len(), meter_rig::suite::registry::MODULE_CASES.len());
    for c in &cases {
        assert_eq!(c.verdict, Verdict::Skip, "{}", c.id);
        assert!(c.message.contains("rig module"), "{}", c.message);
    }
}

#[test]
fn patience_passes_a_module_that_waits_just_past_the_slowest_reaction() {
    // 540 ms for the first character: the answer's '/' starts at 499.9 ms and is whole one
    // character (33.3 ms) later, at 533.2 ms
    let knobs = ModuleKnobs {
        answer_wait_ms: Some(540.0),
        ..ModuleKnobs::default()
    };
    let (v, m) = verdict("module.patience", knobs);
    assert_eq!(v, Verdict::Pass, "{m}");
}

fn supply(base_ma: f64, peak_ma: f64) -> CaseResult {
    let knobs = ModuleKnobs {
        supply: meter_rig::module::supply::CurrentTrace {
            base_ma,
            peak_ma,
            peak_ms: 100.0,
            period_s: 15.0,
        },
        ..ModuleKnobs::default()
    };
    run_case("module.supply", knobs)
}

#[test]
fn supply_passes_the_healthy_module_and_0_99_ma_and_fails_1_01_ma_average() {
    let r = run_case("module.supply", ModuleKnobs::default());
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    let r = supply(0.99, 0.99);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert!((measured(&r, "average_60s") - 0.99).abs() < 1e-9);
    let r = supply(1.01, 1.01);
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
    assert!(r.message.contains("average_60s"), "{}", r.message);
    // the reference module's knob of the issue: 1.2 mA
    assert_eq!(supply(1.2, 1.2).verdict, Verdict::Fail);
}

#[test]
fn supply_passes_4_9_ma_peaks_and_fails_5_1_ma_and_6_ma_peaks() {
    let r = supply(0.5, 4.9);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert_eq!(measured(&r, "peaks_over_5ma"), 0.0);
    let r = supply(0.5, 5.1);
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
    // 180 s, a peak every 15 s from 0
    assert_eq!(measured(&r, "peaks_over_5ma"), 12.0);
    assert_eq!(measured(&r, "longest_over_5ma"), 100.0);
    assert_eq!(supply(0.5, 6.0).verdict, Verdict::Fail);
}

#[test]
fn rig_module_reference_writes_rig_run_records_and_exit_codes() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-module-cli-{}", std::process::id()));
    let out = dir.join("out");
    let knobs = dir.join("knobs.toml");
    std::fs::create_dir_all(&dir).unwrap();
    let o = crate::util::run_rig(&["module", "--reference", "--out", out.to_str().unwrap()]);
    assert_eq!(
        crate::util::code(&o),
        0,
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("record.json")).unwrap()).unwrap();
    assert_eq!(record["target"], "module:reference");
    assert_eq!(
        record["cases"].as_array().unwrap().len(),
        meter_rig::suite::registry::MODULE_CASES.len()
    );
    assert!(out.join("junit.xml").exists() && out.join("measurements.csv").exists());
    // the issue's supply knob: 1.2 mA average
    std::fs::write(&knobs, "[supply]\nbase_ma = 1.2\n").unwrap();
    let o = crate::util::run_rig(&[
        "module",
        "--reference",
        "--knobs",
        knobs.to_str().unwrap(),
        "--case",
        "module.supply",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(crate::util::code(&o), 1, "{stdout}");
    assert!(stdout.contains("average_60s"), "{stdout}");
    // a typo in a knob is refused, not ignored
    std::fs::write(&knobs, "odd_parrity = true\n").unwrap();
    let o = crate::util::run_rig(&["module", "--reference", "--knobs", knobs.to_str().unwrap()]);
    assert_eq!(crate::util::code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("odd_parrity"));
    let o = crate::util::run_rig(&["module", "--out", out.to_str().unwrap()]);
    assert_eq!(crate::util::code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--link PATH"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn data_knobs(bcc: bool, parity: bool) -> ModuleKnobs {
    ModuleKnobs {
        forwards_bad_bcc: bcc,
        forwards_bad_parity: parity,
        ..ModuleKnobs::default()
    }
}

#[test]
fn data_passes_the_healthy_module_forwarding_the_17_values_and_nothing_from_bad_ones() {
    let r = run_case("module.data", ModuleKnobs::default());
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert_eq!(measured(&r, "good.forwarded"), 17.0);
    assert_eq!(measured(&r, "bad_bcc.forwarded"), 0.0);
    assert_eq!(measured(&r, "bad_parity.forwarded"), 0.0);
}

#[test]
fn data_fails_a_module_that_forwards_data_from_a_bad_bcc() {
    let r = run_case("module.data", data_knobs(true, false));
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
    assert!(r.message.contains("bad_bcc: forwarded"), "{}", r.message);
    assert!(r.message.contains("BCC does not check"), "{}", r.message);
    // three tries, 17 values each
    assert_eq!(measured(&r, "bad_bcc.forwarded"), 51.0);
    assert_eq!(measured(&r, "bad_parity.forwarded"), 0.0);
}

#[test]
fn data_fails_a_module_that_forwards_data_with_a_parity_error() {
    let r = run_case("module.data", data_knobs(false, true));
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
    assert!(r.message.contains("parity error"), "{}", r.message);
    assert_eq!(measured(&r, "bad_bcc.forwarded"), 0.0);
    assert_eq!(measured(&r, "bad_parity.forwarded"), 51.0);
}

/// The reference module without its own account of what it forwarded: an external module
/// without --module-report.
struct Unreported(VirtualBench);

impl ModuleBench for Unreported {
    fn observe(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
    ) -> Result<meter_rig::module::WireLog, meter_rig::target::TargetError> {
        self.0.observe(meter, window_s)
    }
}

#[test]
fn data_is_skipped_naming_module_report_when_the_rig_cannot_see_what_was_forwarded() {
    let spec = MeterSpec::builtin_default();
    let bench = Unreported(VirtualBench::default());
    let mut t = BenchTarget::new(Box::new(bench), "module:link:/tmp/meter", false);
    let mut opts = RunOptions::for_target(&t.capabilities());
    opts.cases = vec!["module.data".into()];
    let r = suite::run(&mut t, &spec, &opts, &mut Null).remove(0);
    assert_eq!(r.verdict, Verdict::Skip, "{}", r.message);
    assert!(r.message.contains("--module-report CMD"), "{}", r.message);
}

/// The healthy answer's values as `--module-report` JSON.
fn healthy_report() -> String {
    let spec = MeterSpec::builtin_default();
    let (_, f) = VirtualBench::default()
        .observe_forwarded(&spec, 20.0, "good")
        .unwrap();
    serde_json::to_string(&f.unwrap()).unwrap()
}

#[test]
fn rig_module_data_with_a_module_report_command() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-module-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    std::fs::write(&good, healthy_report()).unwrap();
    let out = dir.join("out");
    let run = |cmd: &str| {
        let o = crate::util::run_rig(&[
            "module",
            "--reference",
            "--case",
            "module.data",
            "--module-report",
            cmd,
            "--module-report-timeout",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]);
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("record.json")).unwrap()).unwrap();
        let case = record["cases"][0].clone();
        (crate::util::code(&o), case)
    };
    let g = good.to_str().unwrap();
    // what a conforming module reports: the good answer's values, nothing after the bad ones
    let (code, case) = run(&format!(
        r#"case "$RIG_MODULE_WINDOW" in good) cat {g};; *) echo '{{"values":[]}}';; esac"#
    ));
    assert_eq!(code, 0, "{case}");
    assert_eq!(case["verdict"], "pass", "{case}");
    // a module that forwards the same values after the bad BCC as well
    let (code, case) = run(&format!("cat {g}"));
    assert_eq!(code, 1, "{case}");
    assert_eq!(case["verdict"], "fail", "{case}");
    assert!(
        case["message"]
            .as_str()
            .unwrap()
            .contains("BCC does not check"),
        "{case}"
    );
    // failure, timeout and bad JSON are never a pass
    for (cmd, says) in [
        ("exit 4", "failed"),
        ("sleep 5", "did not finish within 2 s"),
        ("echo values", "no valid report"),
    ] {
        let (code, case) = run(cmd);
        assert_eq!(code, 1, "{cmd}: {case}");
        assert_eq!(case["verdict"], "inconclusive", "{cmd}: {case}");
        assert!(
            case["message"].as_str().unwrap().contains(says),
            "{cmd}: {case}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The healthy reference module with its report rewritten by `edit`, as an external module's
/// report may differ in form (or in substance) from what the meter sent.
struct Edited(VirtualBench, fn(&mut Forwarded));

impl ModuleBench for Edited {
    fn observe(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
    ) -> Result<meter_rig::module::WireLog, meter_rig::target::TargetError> {
        self.0.observe(meter, window_s)
    }
    fn reports_forwarded(&self) -> bool {
        true
    }
    fn observe_forwarded(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
        window: &str,
    ) -> Result<
        (meter_rig::module::WireLog, Result<Forwarded, ReportError>),
        meter_rig::target::TargetError,
    > {
        let (log, f) = self.0.observe_forwarded(meter, window_s, window)?;
        Ok((
            log,
            f.map(|mut f| {
                (self.1)(&mut f);
                f
            }),
        ))
    }
}

fn data_with(edit: fn(&mut Forwarded)) -> CaseResult {
    let spec = MeterSpec::builtin_default();
    let bench = Edited(VirtualBench::default(), edit);
    let mut t = BenchTarget::new(Box::new(bench), "module:edited", true);
    let mut opts = RunOptions::for_target(&t.capabilities());
    opts.cases = vec!["module.data".into()];
    suite::run(&mut t, &spec, &opts, &mut Null).remove(0)
}

#[test]
fn data_passes_values_forwarded_as_numbers_without_units_and_fails_one_digit_off_or_left_out() {
    // just inside: 1.8.0 as 12658 (the meter sent 0012658*kWh), no units
    let r = data_with(|f| {
        for v in &mut f.values {
            v.unit = None;
            if let Ok(n) = v.value.parse::<f64>() {
                v.value = n.to_string();
            }
        }
    });
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    let r = data_with(|f| {
        for v in f.values.iter_mut().filter(|v| v.obis == "1.8.0") {
            v.value = "0012659".into();
        }
    });
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
    assert!(
        r.message
            .contains("good: forwarded 1.8.0(0012659*kWh), but the meter sent 1.8.0(0012658*kWh)"),
        "{}",
        r.message
    );
    let r = data_with(|f| f.values.retain(|v| v.obis != "1.8.0"));
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.message);
    assert!(
        r.message.contains("did not forward 1 of the 17 values"),
        "{}",
        r.message
    );
}

#[test]
fn data_serves_no_parity_error_over_a_link_that_carries_no_parity() {
    // a 7-bit link: the rig cannot send the module a parity error
    let spec = MeterSpec::builtin_default();
    let mut t = BenchTarget::new(Box::new(VirtualBench::default()), "module:7bit", true)
        .with_parity_checked(false);
    let mut opts = RunOptions::for_target(&t.capabilities());
    opts.cases = vec!["module.data".into()];
    let r = suite::run(&mut t, &spec, &opts, &mut Null).remove(0);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert!(r
        .measurements
        .iter()
        .all(|m| m.name != "bad_parity.forwarded" || m.value.is_none()));
    assert!(
        r.details
            .iter()
            .any(|d| d.contains("bad_parity: not served")),
        "{:?}",
        r.details
    );
}

fn fixture(name: &str) -> MeterSpec {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/meters")
        .join(name);
    MeterSpec::from_file(&p).unwrap()
}

fn run_on(spec: &MeterSpec, case: &str, knobs: ModuleKnobs) -> CaseResult {
    let mut t = BenchTarget::new(Box::new(VirtualBench { knobs }), "module:reference", true);
    let mut opts = RunOptions::for_target(&t.capabilities());
    opts.cases = vec![case.into()];
    let mut cases = suite::run(&mut t, spec, &opts, &mut Null);
    cases.remove(0)
}

fn drive(d: meter_rig::module::drive::DriveKnobs) -> ModuleKnobs {
    ModuleKnobs {
        drive: d,
        ..ModuleKnobs::default()
    }
}

#[test]
fn tariff_drive_reads_the_4_tariff_walk_and_records_a_bounce_as_information() {
    // KK 01 (4-tariff): the healthy module walks 1 2 3 4 1, five seconds each
    let spec = fixture("office-day.toml");
    let r = run_on(&spec, "module.tariff_drive", ModuleKnobs::default());
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert!(
        r.message.contains("tariff 1 → 2 → 3 → 4 → 1"),
        "{}",
        r.message
    );
    assert!(r.message.contains("informational"), "{}", r.message);
    assert_eq!(measured(&r, "tariff_changes"), 4.0);
    assert_eq!(measured(&r, "tariffs_used"), 4.0);
    assert_eq!(measured(&r, "shortest_dwell"), 5000.0);
    // a contact that bounces twice at every change: the meter reads the flips; no clause limits
    // them, so the case still passes and the figures show it
    let bouncy = drive(meter_rig::module::drive::DriveKnobs {
        tariff_bounce: 2,
        bounce_ms: 1.0,
        ..Default::default()
    });
    let r = run_on(&spec, "module.tariff_drive", bouncy);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert!(measured(&r, "tariff_changes") > 4.0 * 4.0);
    assert!((measured(&r, "shortest_dwell") - 1.0).abs() < 1e-6);
}

#[test]
fn tariff_drive_reads_a_2_tariff_input_and_skips_tariffs_by_communication() {
    // KK 15: 2-tariff on port 2; the script's 3 and 4 do not exist there: 1 → 2 → 1
    let r = run_on(
        &fixture("max-reset-tariff.toml"),
        "module.tariff_drive",
        ModuleKnobs::default(),
    );
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert!(r.message.contains("tariff 1 → 2 → 1"), "{}", r.message);
    assert_eq!(measured(&r, "tariff_changes"), 2.0);
    // KK 05: tariffs by communication
    let r = run_case("module.tariff_drive", ModuleKnobs::default());
    assert_eq!(r.verdict, Verdict::Skip, "{}", r.message);
    assert!(r.message.contains("KK 05"), "{}", r.message);
}

#[test]
fn pulse_out_counts_pulses_and_max_resets_and_records_short_pulses_as_information() {
    // KK 05: pulse in on port 1; ten pulses of 50 ms with 50 ms gaps
    let r = run_case("module.pulse_out", ModuleKnobs::default());
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert_eq!(measured(&r, "pulse_in.count"), 10.0);
    assert_eq!(measured(&r, "pulse_in.shortest"), 50.0);
    assert_eq!(measured(&r, "pulse_in.shortest_gap"), 50.0);
    assert_eq!(measured(&r, "pulse_in.shortest_period"), 100.0);
    // pulses of 2 ms: the software meter counts them all (no source gives a minimum length)
    let short = drive(meter_rig::module::drive::DriveKnobs {
        pulse_ms: 2.0,
        pulses: 25,
        ..Default::default()
    });
    let r = run_case("module.pulse_out", short);
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert!(r.message.contains("informational"), "{}", r.message);
    assert_eq!(measured(&r, "pulse_in.count"), 25.0);
    assert_eq!(measured(&r, "pulse_in.shortest"), 2.0);
    // KK 15: one max-reset press of 500 ms on port 1
    let r = run_on(
        &fixture("max-reset-tariff.toml"),
        "module.pulse_out",
        ModuleKnobs::default(),
    );
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.message);
    assert_eq!(measured(&r, "max_reset.count"), 1.0);
    assert_eq!(measured(&r, "max_reset.shortest"), 500.0);
    // KK 01: tariff inputs only
    let r = run_on(
        &fixture("office-day.toml"),
        "module.pulse_out",
        ModuleKnobs::default(),
    );
    assert_eq!(r.verdict, Verdict::Skip, "{}", r.message);
}

#[test]
fn the_drive_knobs_are_read_from_the_knobs_file() {
    let k: ModuleKnobs = toml::from_str("[drive]\npulse_ms = 2.0\ntariff_bounce = 3\n").unwrap();
    assert_eq!(k.drive.pulse_ms, 2.0);
    assert_eq!(k.drive.tariff_bounce, 3);
    assert!(toml::from_str::<ModuleKnobs>("[drive]\npulse_length = 2.0\n").is_err());
}

/// The example knobs files README points vendors to: each parses, and its named case fails
/// (or, for the informational cases, shows the knob in its figures) through `rig module`.
#[test]
fn the_example_knobs_files_fail_the_case_they_name() {
    let out = crate::util::scratch("module-knobs-examples");
    for (file, meter, case, verdict) in [
        ("impatient.toml", None, "module.patience", "fail"),
        ("forwards-bad-bcc.toml", None, "module.data", "fail"),
        ("draws-6ma.toml", None, "module.supply", "fail"),
        (
            "bouncing-tariff.toml",
            Some("fixtures/meters/office-day.toml"),
            "module.tariff_drive",
            "pass",
        ),
        ("bouncing-tariff.toml", None, "module.pulse_out", "pass"),
    ] {
        let knobs = crate::util::path(&format!("fixtures/module/{file}"));
        let mut args = vec![
            "module".to_string(),
            "--reference".into(),
            "--knobs".into(),
            knobs.display().to_string(),
            "--case".into(),
            case.into(),
            "--out".into(),
            out.display().to_string(),
        ];
        if let Some(m) = meter {
            args.push("--meter".into());
            args.push(crate::util::path(m).display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = crate::util::run_rig(&args);
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("record.json")).unwrap()).unwrap();
        let c = &record["cases"][0];
        assert_eq!(c["verdict"], verdict, "{file} {case}: {c}");
        assert_eq!(
            crate::util::code(&o),
            if verdict == "fail" { 1 } else { 0 },
            "{file}"
        );
        if case == "module.tariff_drive" {
            assert!(c.to_string().contains("shortest dwell 1 ms"), "{c}");
        }
        if case == "module.pulse_out" {
            assert!(c.to_string().contains("shortest 2 ms"), "{c}");
        }
    }
}
