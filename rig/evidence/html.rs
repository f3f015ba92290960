//! `OUT/report.html`: one self-contained page a person can read or sign — no JavaScript, no
//! network, plots as inline SVG (plotters' SVG backend), print styles for PDF.
//!
//! The page is a function of `record.json` alone ([`render`]), so `rig report RUN_DIR` rebuilds it
//! and the live page is the same: the [`HtmlReport`] observer, placed after the records writer,
//! re-reads the record after each case and at the end and rewrites the page (atomically), reusing
//! the HTML of cases already rendered. A run that did not complete says so at the top.
//!
//! Sections: the run (id, state, outcome, times), the meter (identification, profile,
//! configuration codes), the rig (version, target, timing source and uncertainty), the summary,
//! then every case: verdict, the clause quoted by document title and section
//! ([`super::sources`]), measured values with limits and uncertainty, plots of its series (every
//! exchange's response time against the window, every pulse width and pause against its limits)
//! and of each limited measurement against its band, its findings and a link to its capture.
//! [`compare`] renders two runs side by side, case by case and value by value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use maud::{html, Markup, PreEscaped, DOCTYPE};
use plotters::prelude::*;

use super::sources;
use crate::report::{read_record, Record, RecordedCase, RunState};
use crate::suite::{fmt_num, Event, Measurement, ObserverError, Verdict};

use super::Series;

/// The page's file name in a run directory.
pub const REPORT: &str = "report.html";

const CSS: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#111;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #333;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#eee}.num{text-align:right;font-variant-numeric:tabular-nums}
.banner{border:3px solid #b00;background:#fee;padding:.6em 1em;font-weight:bold;margin:1em 0}
.v{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff;font-weight:bold;text-transform:uppercase;font-size:.85em}
.pass{background:#1a7f37}.fail{background:#c00}.inconclusive{background:#b36b00}.skip{background:#777}.error{background:#6a1b9a}.not_run{background:#444}
.case{border:1px solid #ccc;border-left:6px solid #777;padding:.3em 1em 1em;margin:1em 0;page-break-inside:avoid;break-inside:avoid}
.case.c-pass{border-left-color:#1a7f37}.case.c-fail{border-left-color:#c00}.case.c-inconclusive{border-left-color:#b36b00}.case.c-error{border-left-color:#6a1b9a}
.clause{font-style:italic;color:#333}.plots svg{display:block;margin:.3em 0;max-width:100%;height:auto}
.gauge svg{display:block}.small{color:#555;font-size:.9em}
@media print{body{margin:0;max-width:none;font-size:11px}a{color:#000;text-decoration:none}.case{page-break-inside:avoid}}
";

/// A verdict's word and CSS class.
fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Skip => "skip",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Error => "error",
    }
}

fn badge(word: &str) -> Markup {
    html! { span class={"v " (word)} { (word) } }
}

/// The page for `r`. `cache` holds the HTML of cases already rendered (by id and snapshot of
/// their content); pass an empty map when rendering once.
pub fn render(r: &Record, cache: &mut BTreeMap<String, String>) -> String {
    let body = html! {
        (banner(r))
        h1 { "meter-rig test report" }
        p.small { "Run " code { (r.run_id) } " — state " b { (r.state) }
            @if let Some(o) = &r.outcome { ", outcome " b { (o.name()) } }
            " — started " (r.started) @if let Some(e) = &r.ended { ", ended " (e) } }
        (meter_section(r))
        (rig_section(r))
        (summary_section(r))
        h2 { "Cases" }
        @for c in &r.cases {
            (PreEscaped(cache.entry(case_key(c)).or_insert_with(|| case_section(c).into_string()).as_str()))
        }
        @for p in r.unrun() {
            div.case id=(p.id) {
                h3 { (p.id) " " (badge("not_run")) }
                p { (p.title) }
                p { (r.not_run_reason()) }
            }
        }
        (sources_section(r))
    };
    page(&format!("meter-rig report {}", r.run_id), body)
}

fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

/// A cache key: the case's id and what it rendered from (a case is recorded once per run).
fn case_key(c: &RecordedCase) -> String {
    format!("{}\u{1f}{}\u{1f}{}", c.id, c.verdict, c.attachments.len())
}

/// The warning at the top of a run that did not complete.
fn banner(r: &Record) -> Markup {
    let unrun = r.unrun().count();
    let why = match r.state {
        RunState::Complete => return html! {},
        RunState::Running => {
            "This run is still running (or its writer was killed): the report is partial."
                .to_string()
        }
        RunState::Stopped => format!(
            "This run stopped half-way: {}.",
            r.aborted.as_deref().unwrap_or("no reason recorded")
        ),
        RunState::Interrupted => {
            "This run was interrupted: its process died before the end.".into()
        }
    };
    html! { div.banner { (why) " " (r.cases.len()) " of " (r.cases.len() + unrun)
    " selected cases were recorded; " (unrun) " not run." } }
}

fn meter_section(r: &Record) -> Markup {
    let m = &r.meter;
    let s = |k: &str| m.get(k).map(json_text).unwrap_or_else(|| "—".into());
    let profile = m
        .pointer("/profile/name")
        .map(json_text)
        .unwrap_or_else(|| s("profile"));
    let codes: Vec<(String, String)> = m
        .get("codes")
        .and_then(|c| c.as_object())
        .map(|o| {
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.to_uppercase(), json_text(v)))
                .collect()
        })
        .unwrap_or_default();
    html! {
        h2 { "Meter" }
        table {
            tr { th { "identification" } td { "/KAM " (s("type_number")) } }
            tr { th { "profile" } td { (profile) } }
            tr { th { "configuration codes" } td {
                @for (k, v) in &codes { (k) " " code { (v) } "  " } } }
            tr { th { "line" } td { (s("baud")) " baud" } }
            tr { th { "transformer ratio" } td { (s("ratio")) } }
            tr { th { "pulse constant" } td { (s("pulse_constant")) " imp/kWh" } }
            tr { th { "meter file" } td { (s("path")) } }
        }
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn rig_section(r: &Record) -> Markup {
    let c = &r.capabilities;
    let ms = |ns: u64| fmt_num(ns as f64 / 1e6);
    html! {
        h2 { "Rig" }
        table {
            tr { th { "rig version" } td { (r.rig_version) } }
            tr { th { "target" } td { (r.target) } }
            tr { th { "data-line timing" } td { (c.data_timing) " ±" (ms(c.data_uncertainty_ns)) " ms"
                @if c.virtual_time { " (virtual time: exact)" } } }
            tr { th { "pin timing" } td {
                @if c.pins { "edge ±" (ms(c.pin_uncertainty_ns)) " ms" } @else { "no pins on this target" } } }
            tr { th { "parity" } td { @if c.parity_checked { "checked by the rig" } @else { "not checked (UART framing)" } } }
            tr { th { "wiring calibration" } td {
                @if c.virtual_time { "none needed (simulated wire)" }
                @else { "optocoupler delays from the wiring file (rig calibrate), subtracted from every pin timestamp; their spread is in the pin timing uncertainty above (the record does not carry the delays themselves)" } } }
            tr { th { "time covered" } td { (fmt_num(r.target_time_s)) " s on the target's clock, "
                (format!("{:.3}", r.wall_time_s)) " s wall" } }
        }
    }
}

fn summary_section(r: &Record) -> Markup {
    let s = &r.summary;
    html! {
        h2 { "Summary" }
        p { b { (s.pass) } " passed, " b { (s.fail) } " failed, " b { (s.inconclusive) } " inconclusive, "
            b { (s.skip) } " skipped, " b { (s.error) } " errors"
            @let n = r.unrun().count(); @if n > 0 { ", " b { (n) } " not run" } }
        table {
            tr { th { "case" } th { "verdict" } th { "what was seen" } }
            @for c in &r.cases {
                tr { td { a href={"#" (c.id)} { (c.id) } } td { (badge(verdict_word(c.verdict))) }
                     td { (shorten(&c.message, 140)) } }
            }
            @for p in r.unrun() {
                tr { td { a href={"#" (p.id)} { (p.id) } } td { (badge("not_run")) } td { } }
            }
        }
    }
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// One case: verdict, clause, message, measurements, plots, findings, capture.
fn case_section(c: &RecordedCase) -> Markup {
    let word = verdict_word(c.verdict);
    let gauges: Vec<(&Measurement, String)> = c
        .measurements
        .iter()
        .filter_map(|m| gauge_svg(m).map(|g| (m, g)))
        .collect();
    html! {
        div class={"case c-" (word)} id=(c.id) {
            h3 { (c.id) " " (badge(word)) }
            p { (c.title) }
            p.clause { "Clause: " (sources::cite(&c.clause.source, &c.clause.section)) }
            p { (c.message) }
            @if !c.measurements.is_empty() {
                table {
                    tr { th { "measurement" } th { "value" } th { "limits" } th { "uncertainty" }
                         th { "source" } th { "verdict" } th { "against the limits" } }
                    @for m in &c.measurements {
                        tr {
                            td { (m.name) }
                            td.num { (m.value_text()) " " (m.unit) }
                            td { (m.limit_text()) }
                            td.num { "±" (fmt_num(m.uncertainty)) " " (m.unit) }
                            td { (m.source) }
                            td { (badge(verdict_word(m.verdict))) @if m.marginal { " marginal" } }
                            td.gauge { @if let Some((_, g)) = gauges.iter().find(|(g, _)| std::ptr::eq(*g, m)) { (PreEscaped(g)) } }
                        }
                    }
                }
            }
            @if !c.series.is_empty() {
                div.plots { @for s in &c.series { (PreEscaped(series_svg(s))) } }
            }
            @if !c.details.is_empty() {
                details open[c.verdict != Verdict::Pass] {
                    summary { (c.details.len()) " findings" }
                    ul { @for d in c.details.iter().take(40) { li { (d) } } }
                    @if c.details.len() > 40 { p.small { (c.details.len() - 40) " more in record.json" } }
                }
            }
            @for a in &c.attachments {
                p { "Capture: " a href=(a.path) { (a.path) } span.small { " (" (a.media_type) ", "
                    (a.bytes) " bytes, SHA-256 " code { (a.sha256) } ")" } }
            }
        }
    }
}

/// A measurement against its limits as a small inline SVG: the band in green, the value as a
/// dot with its uncertainty (red outside the band). `None` without a value or a limit.
fn gauge_svg(m: &Measurement) -> Option<String> {
    let v = m.value?;
    if m.low.is_none() && m.high.is_none() {
        return None;
    }
    let lo = m.low.or(m.high).unwrap_or(v).min(v);
    let hi = m.high.or(m.low).unwrap_or(v).max(v);
    let span = (hi - lo)
        .abs()
        .max(m.uncertainty * 2.0)
        .max(lo.abs().max(hi.abs()) * 0.2)
        .max(1.0);
    let (x0, x1) = (lo.min(v) - span * 0.3, hi.max(v) + span * 0.3);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (220, 26)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(2)
            .build_cartesian_2d(x0..x1, 0f64..1f64)
            .ok()?;
        let band = RGBColor(26, 127, 55).mix(0.3).filled();
        let (bl, bh) = (m.low.unwrap_or(x0), m.high.unwrap_or(x1));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(bl, 0.2), (bh, 0.8)],
                band,
            )))
            .ok()?;
        let color = if m.verdict == Verdict::Fail {
            RED
        } else {
            BLACK
        };
        let u = m.uncertainty.abs();
        if u > 0.0 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(v - u, 0.5), (v + u, 0.5)],
                    color.stroke_width(2),
                )))
                .ok()?;
        }
        chart
            .draw_series(std::iter::once(Circle::new((v, 0.5), 4, color.filled())))
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// A series over target time against its limits: the allowed band shaded, every value a dot
/// (red outside the band), the limits as lines, labelled with name, unit and count.
pub fn series_svg(s: &Series) -> String {
    let mut svg = String::new();
    let _ = draw_series(s, &mut svg);
    svg
}

fn draw_series(s: &Series, svg: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = s.points.first().map_or(0.0, |p| p[0]);
    let span = s.points.iter().map(|p| p[0] - t0).fold(0.0f64, f64::max);
    // the time axis in a unit a person reads: s, min, h or days after the first point
    let (div, unit) = match span {
        x if x > 2.0 * 86_400.0 => (86_400.0, "days"),
        x if x > 2.0 * 3600.0 => (3600.0, "h"),
        x if x > 120.0 => (60.0, "min"),
        _ => (1.0, "s"),
    };
    let x = |t: f64| (t - t0) / div;
    let ys = s.points.iter().map(|p| p[1]);
    let xmax = (span / div).max(1.0);
    let (mut ymin, mut ymax) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    for l in [s.low, s.high].into_iter().flatten() {
        (ymin, ymax) = (ymin.min(l), ymax.max(l));
    }
    if !ymin.is_finite() {
        (ymin, ymax) = (0.0, 1.0);
    }
    let pad = ((ymax - ymin) * 0.15).max(1.0);
    let (y0, y1) = (ymin - pad, ymax + pad);
    let root = SVGBackend::with_string(svg, (640, 220)).into_drawing_area();
    root.fill(&WHITE)?;
    let cut = if s.total > s.points.len() {
        format!(" (first {} of {})", s.points.len(), s.total)
    } else {
        format!(" ({})", s.total)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{} [{}]{cut}", s.name, s.unit), ("sans-serif", 15))
        .margin(6)
        .x_label_area_size(28)
        .y_label_area_size(52)
        .build_cartesian_2d(-xmax * 0.03..xmax * 1.03, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(format!("{unit} after the first"))
        .y_desc(s.unit.as_str())
        .light_line_style(WHITE)
        .draw()?;
    if s.low.is_some() || s.high.is_some() {
        let band = RGBColor(26, 127, 55).mix(0.15).filled();
        let (bl, bh) = (s.low.unwrap_or(y0), s.high.unwrap_or(y1));
        let corners = [(-xmax * 0.03, bl), (xmax * 1.03, bh)];
        chart.draw_series(std::iter::once(Rectangle::new(corners, band)))?;
    }
    for l in [s.low, s.high].into_iter().flatten() {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(-xmax * 0.03, l), (xmax * 1.03, l)],
            RGBColor(26, 127, 55).stroke_width(1),
        )))?;
    }
    let out = |y: f64| s.low.is_some_and(|l| y < l) || s.high.is_some_and(|h| y > h);
    chart.draw_series(s.points.iter().map(|p| {
        let c = if out(p[1]) { RED } else { BLUE };
        Circle::new((x(p[0]), p[1]), 3, c.filled())
    }))?;
    root.present()?;
    Ok(())
}

fn sources_section(r: &Record) -> Markup {
    let mut cited: Vec<&str> = r.cases.iter().map(|c| c.clause.source.as_str()).collect();
    cited.sort();
    cited.dedup();
    html! {
        h2 { "Documents cited" }
        table {
            tr { th { "document" } th { "publisher" } th { "revision as printed" } th { "file" } }
            @for f in cited {
                @if let Some(s) = sources::by_file(f) {
                    tr { td { (s.title) } td { (s.publisher) } td { (s.revision) } td { code { (s.file) } } }
                } @else {
                    tr { td { (f) } td { "—" } td { "—" } td { code { (f) } } }
                }
            }
        }
    }
}

/// Two runs side by side: every case of either with both verdicts, and every measurement of
/// either with both values (a changed verdict highlighted).
pub fn compare(a: &Record, b: &Record) -> String {
    let mut ids: Vec<&str> = a.cases.iter().map(|c| c.id.as_str()).collect();
    for c in &b.cases {
        if !ids.contains(&c.id.as_str()) {
            ids.push(&c.id);
        }
    }
    let find = |r: &'_ Record, id: &str| r.cases.iter().find(|c| c.id == id).cloned();
    let body = html! {
        h1 { "meter-rig: two runs compared" }
        table {
            tr { th { } th { "A" } th { "B" } }
            tr { th { "run" } td { (a.run_id) } td { (b.run_id) } }
            tr { th { "target" } td { (a.target) } td { (b.target) } }
            tr { th { "state" } td { (a.state) } td { (b.state) } }
            tr { th { "summary" } td { (summary_text(a)) } td { (summary_text(b)) } }
        }
        table {
            tr { th { "case / measurement" } th { "A" } th { "B" } th { "limits" } }
            @for id in &ids {
                @let (ca, cb) = (find(a, id), find(b, id));
                @let word = |c: &Option<RecordedCase>| c.as_ref().map_or("not_run", |c| verdict_word(c.verdict));
                tr style=(if word(&ca) != word(&cb) { "background:#fee" } else { "" }) {
                    th { (id) } td { (badge(word(&ca))) } td { (badge(word(&cb))) } td { }
                }
                @for name in measurement_names(ca.as_ref(), cb.as_ref()) {
                    @let ma = ca.as_ref().and_then(|c| c.measurements.iter().find(|m| m.name == name));
                    @let mb = cb.as_ref().and_then(|c| c.measurements.iter().find(|m| m.name == name));
                    tr {
                        td { "\u{a0}\u{a0}" (name) }
                        td.num { (ma.map_or("—".into(), |m| format!("{} {}", m.value_text(), m.unit))) }
                        td.num { (mb.map_or("—".into(), |m| format!("{} {}", m.value_text(), m.unit))) }
                        td { (ma.or(mb).map_or(String::new(), |m| m.limit_text())) }
                    }
                }
            }
        }
    };
    page(&format!("meter-rig: {} vs {}", a.run_id, b.run_id), body)
}

fn summary_text(r: &Record) -> String {
    let s = &r.summary;
    format!(
        "{} pass, {} fail, {} inconclusive, {} skip, {} error",
        s.pass, s.fail, s.inconclusive, s.skip, s.error
    )
}

fn measurement_names(a: Option<&RecordedCase>, b: Option<&RecordedCase>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for c in [a, b].into_iter().flatten() {
        for m in &c.measurements {
            if !v.contains(&m.name) {
                v.push(m.name.clone());
            }
        }
    }
    v
}

/// Rebuilds `dir/report.html` from `dir/record.json` (what `rig report` and the observer do).
///
/// # Errors
/// The record cannot be read, or the page cannot be written.
pub fn rebuild(
    dir: &Path,
    cache: &mut BTreeMap<String, String>,
) -> Result<PathBuf, crate::report::RecordError> {
    let r = read_record(dir)?;
    let path = dir.join(REPORT);
    // replaced through a temporary file and a rename, without fsync: the page is derived from
    // record.json (fsynced), and 23 fsyncs of it would double the run's wall time on a busy disk
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, render(&r, cache).as_bytes())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| crate::report::RecordError::Io {
            path: path.display().to_string(),
            call: "write",
            os: source,
        })?;
    Ok(path)
}

/// The report as an observer: after the records writer, it rebuilds the page from `record.json`
/// on each case done and at the run's end.
#[derive(Debug)]
pub struct HtmlReport {
    dir: PathBuf,
    cache: BTreeMap<String, String>,
}

impl HtmlReport {
    /// A report for the run directory `dir`.
    pub fn new(dir: &Path) -> Self {
        HtmlReport {
            dir: dir.to_path_buf(),
            cache: BTreeMap::new(),
        }
    }
}

impl crate::suite::Observer for HtmlReport {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        if matches!(
            e,
            Event::RunStarted { .. } | Event::CaseDone { .. } | Event::RunEnded { .. }
        ) {
            rebuild(&self.dir, &mut self.cache).map_err(|e| ObserverError {
                observer: "report.html",
                source: Box::new(e),
            })?;
        }
        Ok(())
    }
}
