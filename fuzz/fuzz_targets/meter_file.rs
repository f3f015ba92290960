//! Fuzz target: arbitrary text as a meter file. Every input either parses into a `MeterSpec` or
//! gives a `MeterFileError` with a non-empty message; a file that parses builds the software
//! meter and answers one general readout in virtual time (so a parsed-but-poisonous file, one
//! that would panic or hang the simulator, is caught too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meter_rig::meter::config::{MeterFileError, MeterSpec};
use meter_rig::sim::SimTarget;
use meter_rig::suite::{Ctx, RunOptions};
use meter_rig::target::Target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // schedules resolve as for the fixtures (`../loads/office-day.csv`); special files (a
    // device, a pipe) and files over 16 MiB are refused by the parser
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/meters");
    let spec = match MeterSpec::from_toml(text, "fuzz.toml", Some(&base)) {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if let MeterFileError::Invalid { field, problem, .. } = &e {
                assert!(!field.is_empty() && !problem.is_empty(), "{e}");
            }
            return;
        }
    };
    let mut target = SimTarget::new(spec.clone());
    let caps = target.capabilities();
    let opts = RunOptions::for_target(&caps);
    let mut ctx = Ctx {
        target: &mut target,
        spec: &spec,
        opts: &opts,
        caps: caps.clone(),
    };
    // a silent or truncated meter ends in a timeout or a partial answer: both are fine here
    let _ = ctx.readout();
    // and a second one after a simulated minute of its load (pulses; the worst legal load, 351
    // HH 95 with 100,000 imp/kWh on true energy, is about 46,000 pulses a second per port)
    let _ = ctx.wait(std::time::Duration::from_secs(60));
    let _ = ctx.readout();
});
