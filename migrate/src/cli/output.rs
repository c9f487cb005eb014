//! What a long command shows while it runs and when it ends: the apply's
//! [`Event`]s as progress bars on a terminal, plain lines in a log, or
//! JSON lines with `--json`; then the closing summary.
//!
//! Totals are estimates (the plan's counts, made before the apply; a
//! backfill also reads again items it has just written in their new
//! form), so a bar grows when its count passes the estimate instead of
//! overflowing, and a count past it says so.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanCount, HumanDuration, ProgressBar, ProgressStyle};
use serde_json::json;

use super::json;
use super::term::{bars, eline};
use crate::apply::{ApplyReport, Event, Observer};
use crate::plan::Plan;
use crate::render::render_plan;

/// Where the report goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// Bars on a terminal's standard error.
    Bars,
    /// Plain lines on standard error, for logs.
    Lines,
    /// JSON lines on standard output.
    Json,
    /// Warnings and results only (`-q`).
    Quiet,
}

/// Shows a command's progress and results; the [`Observer`] of an apply.
pub struct Progress {
    out: Out,
    /// Items the plan counted, for a backfill that reports no total.
    items: Option<u64>,
    /// Items the plan counted as changing: about what will be written.
    writes: Option<u64>,
    phase: Mutex<Option<Phase>>,
}

/// The step running now.
struct Phase {
    started: Instant,
    /// "Still working" while the step reports no counts.
    spinner: Option<ProgressBar>,
    counts: Option<Counts>,
}

/// A step's counts so far. Events come from every segment's task; a
/// count never goes back even when an event overtakes a later one.
struct Counts {
    /// A verification (items checked, nothing written) or a backfill.
    verify: bool,
    scanned: u64,
    written: u64,
    total: Option<u64>,
    /// (scanned or verified, written) on a terminal.
    bars: Option<(ProgressBar, Option<ProgressBar>)>,
    /// When a line was last printed, and whether newer counts are unshown.
    shown: Option<Instant>,
    unshown: bool,
}

impl Progress {
    /// JSON lines with `json`, nothing but warnings and results with
    /// `quiet`, else bars when standard error is a terminal and plain
    /// lines when it is not.
    pub fn new(json: bool, quiet: bool) -> Self {
        let out = match (json, quiet) {
            (true, _) => Out::Json,
            (false, true) => Out::Quiet,
            (false, false) if std::io::stderr().is_terminal() => Out::Bars,
            (false, false) => Out::Lines,
        };
        Progress { out, items: None, writes: None, phase: Mutex::new(None) }
    }

    /// Takes the estimates of the bars from `plan`'s counts.
    pub fn with_plan(mut self, plan: &Plan) -> Self {
        let sum = |f: fn(&crate::plan::EntityReport) -> u64| Some(plan.entities.iter().map(f).sum::<u64>()).filter(|n| *n > 0);
        self.items = sum(|e| e.items);
        self.writes = sum(|e| e.changing);
        self
    }

    /// Whether the report is JSON lines.
    pub fn is_json(&self) -> bool {
        self.out == Out::Json
    }

    /// Shows the plan about to be applied.
    pub fn plan(&self, plan: &Plan) {
        let text = render_plan(plan);
        if self.is_json() {
            // The rendering's last line is its verdict ("Plan: 1 to add,
            // ..." or "No changes. ...").
            let verdict = text.lines().rev().find(|l| l.starts_with("Plan: ") || l.starts_with("No changes.")).unwrap_or("");
            let level = if plan.blocking_errors().is_empty() { "info" } else { "error" };
            json::emit(level, "plan", verdict, Some(serde_json::to_value(plan).unwrap_or_default()));
        } else {
            print!("{text}");
        }
    }

    /// A step begins; `number` of `total` when the command counts them.
    pub fn step(&self, number: Option<(usize, usize)>, text: &str) {
        let mut phase = self.phase.lock().expect("progress");
        self.end(&mut phase);
        let message = match number {
            Some((n, of)) => format!("[{n}/{of}] {text}"),
            None => text.to_string(),
        };
        let spinner = match self.out {
            Out::Bars => {
                eline(&message);
                let spinner = bars().add(ProgressBar::new_spinner().with_style(style("      {spinner} {elapsed}")));
                spinner.enable_steady_tick(Duration::from_millis(120));
                Some(spinner)
            }
            Out::Lines => {
                eline(&message);
                None
            }
            Out::Json => {
                let details = match number {
                    Some((n, of)) => json!({"number": n, "total": of, "text": text}),
                    None => json!({"text": text}),
                };
                json::emit("info", "step", &message, Some(details));
                None
            }
            Out::Quiet => None,
        };
        *phase = Some(Phase { started: Instant::now(), spinner, counts: None });
    }

    /// A warning, shown even with `-q`.
    pub fn warning(&self, text: &str) {
        if self.is_json() {
            json::emit("warn", "warning", text, None);
        } else {
            eline(&format!("Warning: {text}"));
        }
    }

    /// Something to tell the user (what to run next, what happened),
    /// shown even with `-q`.
    pub fn note(&self, text: &str) {
        if self.is_json() {
            json::emit("info", "message", text.trim(), None);
        } else {
            eline(text);
        }
    }

    /// Ends the current step's display with a line of what it did.
    pub fn finish(&self) {
        self.end(&mut self.phase.lock().expect("progress"));
    }

    /// The closing summary of an apply (`plan_shown`: the plan, and so
    /// "no changes", is on screen already).
    pub fn summary(&self, plan: &Plan, report: &ApplyReport, plan_shown: bool) {
        self.finish();
        if self.is_json() {
            let verification = report.verification.as_ref().map(|v| json!({"counts": v.counts, "unknown": v.unknown, "problems": v.problems}));
            let details = json!({
                "table": plan.table,
                "changes": plan.changes.len(),
                "scanned": report.scanned,
                "moved": report.moved,
                "updated": report.updated,
                "deleted": report.deleted,
                "unknown": report.unknown,
                "resumed": report.resumed,
                "exports": report.exports,
                "verification": verification,
                "cutover": report.cutover,
                "warnings": report.warnings,
            });
            let text = render_report(plan, report);
            json::emit("info", "summary", text.trim().lines().next().unwrap_or(""), Some(details));
        } else if !(plan_shown && plan.is_empty()) {
            print!("{}", render_report(plan, report));
        }
    }

    fn progress(&self, scanned: u64, written: u64, total: Option<u64>, verify: bool) {
        let mut guard = self.phase.lock().expect("progress");
        let phase = guard.get_or_insert_with(|| Phase { started: Instant::now(), spinner: None, counts: None });
        let counts =
            phase.counts.get_or_insert_with(|| Counts { verify, scanned: 0, written: 0, total: None, bars: None, shown: None, unshown: false });
        counts.scanned = counts.scanned.max(scanned);
        counts.written = counts.written.max(written);
        counts.total = total.or(self.items);
        match self.out {
            Out::Bars => {
                if let Some(spinner) = phase.spinner.take() {
                    spinner.finish_and_clear();
                    bars().remove(&spinner);
                }
                let (scan, write) = counts.bars.get_or_insert_with(|| {
                    let bar = |label: &'static str, estimate: Option<u64>| {
                        let template = match estimate {
                            Some(_) => "      {prefix:>7} [{bar:30}] {human_pos:>10}/~{human_len} items, {rate}, ETA {eta}",
                            None => "      {prefix:>7} {spinner} {human_pos:>10} items, {rate}, {elapsed}",
                        };
                        let bar = ProgressBar::with_draw_target(estimate, indicatif::ProgressDrawTarget::hidden())
                            .with_style(style(template).progress_chars("#>."))
                            .with_prefix(label);
                        bars().add(bar)
                    };
                    if counts.verify {
                        (bar("checked", counts.total), None)
                    } else {
                        (bar("scanned", counts.total), Some(bar("written", self.writes)))
                    }
                });
                advance(scan, counts.scanned);
                if let Some(write) = write {
                    advance(write, counts.written);
                }
            }
            Out::Lines | Out::Json => {
                let every = if self.out == Out::Json { Duration::from_secs(1) } else { Duration::from_secs(5) };
                if counts.shown.is_some_and(|at| at.elapsed() < every) {
                    counts.unshown = true;
                } else {
                    counts.shown = Some(Instant::now());
                    counts.unshown = false;
                    self.show_counts(counts, phase.started);
                }
            }
            Out::Quiet => {}
        }
    }

    fn show_counts(&self, counts: &Counts, started: Instant) {
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let rate = counts.scanned as f64 / secs;
        let of = |n: u64, estimate: Option<u64>| match estimate {
            Some(e) if n <= e => format!("{} of ~{}", HumanCount(n), HumanCount(e)),
            Some(e) => format!("{} (the estimate was {})", HumanCount(n), HumanCount(e)),
            None => HumanCount(n).to_string(),
        };
        // Time left by the scan while it is short of its estimate, then by
        // the writes still expected.
        let left = |done: u64, estimate: Option<u64>| {
            let rate = done as f64 / secs;
            estimate.filter(|e| *e > done && rate > 0.0).map(|e| Duration::from_secs_f64((e - done) as f64 / rate))
        };
        let eta = left(counts.scanned, counts.total).or_else(|| left(counts.written, self.writes).filter(|_| !counts.verify));
        let eta_text = eta.filter(|d| d.as_secs() > 0).map(|d| format!(", about {} left", HumanDuration(d))).unwrap_or_default();
        let message = if counts.verify {
            format!("{} items checked, {:.0} items/s{eta_text}", of(counts.scanned, counts.total), rate)
        } else {
            format!("{} items scanned, {} written, {:.0} items/s{eta_text}", of(counts.scanned, counts.total), of(counts.written, self.writes), rate)
        };
        if self.is_json() {
            let details = if counts.verify {
                json!({
                    "checked": counts.scanned,
                    "estimated_items": counts.total,
                    "items_per_second": (rate * 10.0).round() / 10.0,
                    "eta_seconds": eta.map(|d| d.as_secs()),
                })
            } else {
                json!({
                    "scanned": counts.scanned,
                    "written": counts.written,
                    "estimated_items": counts.total,
                    "estimated_writes": self.writes,
                    "items_per_second": (rate * 10.0).round() / 10.0,
                    "eta_seconds": eta.map(|d| d.as_secs()),
                })
            };
            json::emit("info", "progress", &message, Some(details));
        } else {
            eline(&format!("      {message}"));
        }
    }

    /// Clears the step's spinner and bars, leaving a line of what it did.
    fn end(&self, phase: &mut Option<Phase>) {
        let Some(phase) = phase.take() else { return };
        if let Some(spinner) = phase.spinner {
            spinner.finish_and_clear();
            bars().remove(&spinner);
        }
        let Some(counts) = phase.counts else { return };
        match self.out {
            Out::Bars | Out::Lines => {
                if let Some((scan, write)) = &counts.bars {
                    for bar in std::iter::once(scan).chain(write) {
                        bar.finish_and_clear();
                        bars().remove(bar);
                    }
                }
                let took = phase.started.elapsed();
                let rate = counts.scanned as f64 / took.as_secs_f64().max(1e-3);
                if counts.verify {
                    eline(&format!("      {} items checked in {} ({rate:.0} items/s)", HumanCount(counts.scanned), HumanDuration(took)));
                } else {
                    eline(&format!(
                        "      {} items scanned, {} written in {} ({rate:.0} items/s)",
                        HumanCount(counts.scanned),
                        HumanCount(counts.written),
                        HumanDuration(took),
                    ));
                }
            }
            Out::Json if counts.unshown => self.show_counts(&counts, phase.started),
            Out::Json | Out::Quiet => {}
        }
    }
}

impl Observer for Progress {
    fn event(&self, event: Event) {
        match event {
            Event::Step { number, total, text } => self.step(Some((number, total)), &text),
            Event::Progress { scanned, written, total } => self.progress(scanned, written, total, false),
            Event::Verified { checked, total } => self.progress(checked, 0, total, true),
            Event::Warning(text) => {
                // Above the step's bars, which go on.
                self.warning(&text)
            }
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid progress template")
        .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} items/s", state.per_sec());
        })
}

/// Moves a bar to `count`, lengthening it when the count passes its
/// estimate: a full bar means done, never "more than expected".
fn advance(bar: &ProgressBar, count: u64) {
    if bar.length().is_some_and(|len| count > len) {
        bar.set_length(count);
    }
    bar.set_position(count);
}

/// The closing summary of an apply.
pub fn render_report(plan: &Plan, report: &ApplyReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("\nNo changes. The table matches the design.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "\nApply complete! Items: {} moved, {} updated in place, {} deleted ({} scanned{}).",
        report.moved,
        report.updated,
        report.deleted,
        report.scanned,
        if report.resumed { ", resumed from checkpoints" } else { "" }
    );
    if let Some(v) = &report.verification {
        let counts: Vec<String> = v.counts.iter().filter(|(_, n)| **n > 0).map(|(e, n)| format!("{e} {n}")).collect();
        if counts.is_empty() {
            let _ = writeln!(out, "Verified: the table holds no items of the new design's entities yet.");
        } else {
            let _ = writeln!(out, "Verified: every item conforms to the new design ({}).", counts.join(", "));
        }
    }
    for path in &report.exports {
        let _ = writeln!(out, "Exported destroyed items to {} (undo: singletable migrate restore {} --table {}).", path.display(), path.display(), plan.table);
    }
    for w in &report.warnings {
        let _ = writeln!(out, "Warning: {w}");
    }
    if !report.cutover.is_empty() {
        let _ = writeln!(out, "\nCut-over:");
        for step in &report.cutover {
            let _ = writeln!(out, "  {step}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_grows_past_its_estimate_instead_of_overflowing() {
        let bar = ProgressBar::with_draw_target(Some(20_000), indicatif::ProgressDrawTarget::hidden());
        advance(&bar, 14_055);
        assert_eq!((bar.position(), bar.length()), (14_055, Some(20_000)));
        advance(&bar, 20_046);
        assert_eq!((bar.position(), bar.length()), (20_046, Some(20_046)));
        let unknown = ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
        advance(&unknown, 7);
        assert_eq!((unknown.position(), unknown.length()), (7, None));
    }

    #[derive(singletable::Item)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    struct User {
        org: String,
        id: String,
    }

    #[test]
    fn an_empty_table_verifies_without_an_empty_list() {
        let plan = Plan {
            table: "t".into(),
            from: None,
            to: singletable::TableDesign::new("t").entity::<User>().build().unwrap(),
            changes: vec![crate::plan::Change::CreateTable { table: "t".into() }],
            entities: vec![],
            fingerprint: String::new(),
            defaults: vec![],
        };
        let report = ApplyReport { verification: Some(Default::default()), ..Default::default() };
        let text = render_report(&plan, &report);
        assert!(text.contains("Verified: the table holds no items of the new design's entities yet."), "{text}");
        assert!(!text.contains("()"), "{text}");
    }
}
