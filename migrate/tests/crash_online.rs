//! Crash tests of the online apply and of saved plans (issue 10, "Tests
//! and figures", "Crash"; deliverable 6): the `singletable` binary, run as
//! a user runs it, killed with SIGKILL at seeded points, then run again
//! with the SAME saved plan (`migrate plan --out plan.json`, never a
//! fresh plan), until it completes.
//!
//! # `online_apply_survives_kill_9_in_every_phase_with_writers`
//!
//! One table of 2,000 `User`s (more with CRASH_ONLINE_MIGRATIONS; the chaos harness's entities
//! and ledger: `chaos/*.rs`), key move `ORG#{org}` -> `TENANT#{org}`,
//! applied with `migrate apply plan.json --online --lease-seconds 2`
//! while (in most migrations) the chaos writers play the application:
//! the old version until cut-over, the new one after it, every
//! acknowledged write in an exact ledger. The driver moves the phases as a
//! user would: it waits for `caught up` in the apply's log, pauses the old
//! writers, runs `migrate cutover --table T`, waits for the cut-over (the
//! online state's phase; `Cut over in` in the log), switches the writers
//! to the new version, runs `migrate complete --table T` and waits for
//! exit 0. SIGKILLs fall at seeded points of every phase: while the stream
//! is turned on, during the backfill, after `caught up`, after the
//! cut-over was requested, after completion was requested. After each
//! kill, with the writers held still, the form that is the truth at that
//! moment (the old form until the writers switch to the new version, the
//! new form after) must equal the ledger: no acknowledged update lost, no
//! deleted item back, nothing missing, no duplicate, index keys right.
//! (When the cut-over is done but the writers have not switched yet, both
//! forms must equal it.) At the end: the same for the new forms, no old
//! form left, and no reserved item but the design record (no lock, no
//! checkpoint, no `#ONLINE`).
//!
//! # `a_saved_plan_that_creates_an_index_and_moves_items_resumes_after_kill_9`
//!
//! A plan that creates index `gsi1` and moves every item, saved, applied
//! `--offline` and killed at seeded points (right after the index exists,
//! during the rewrite, during verification), re-run each time with the
//! same plan file until it exits 0; then the same with `--online
//! --auto-cutover --auto-complete` (kills after the index exists, during
//! the backfill, right after `caught up` (the cut-over), right after `Cut
//! over in` (contract)). No writers. After every kill each item is in its
//! old form, its new form or both, unchanged; at the end every item is in
//! its new form with its index keys and only the design record is left.
//!
//! # `a_saved_plan_killed_after_it_recorded_the_design_runs_again`
//!
//! The kill after the last write: the saved plan run again after an
//! apply killed right after recording the new design (or that finished)
//! must exit 0. At the time of writing it fails: `prepare`
//! (`migrate/src/apply/mod.rs`, the fingerprint check) refuses the plan
//! as stale (`table ... changed since the plan was made ...; plan again`)
//! because the recorded design is now the plan's target.
//!
//! Measured on 2 shared cores, DynamoDB Local, debug binary: test 1 about
//! 50-70 s (10 kills), test 2 about 32 s (8 kills), test 3 about 3 s.
//!
//! Knobs (environment): `CRASH_ONLINE_SEED` (the seed is printed),
//! `CRASH_ONLINE_MIGRATIONS` (2), `CRASH_ONLINE_ITEMS` (2000),
//! `CRASH_ONLINE_PACE_MS` (writers' pause between operations, 10).

#[allow(dead_code)]
#[path = "chaos/entities.rs"]
mod entities;
#[allow(dead_code)]
#[path = "chaos/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "chaos/ledger.rs"]
mod ledger;
#[allow(dead_code)]
#[path = "crash_online/support.rs"]
mod support;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use singletable::{Table, TableDesign};
use singletable_migrate::reserved::{read_recorded_design, record_design, DESIGN_SK};
use singletable_migrate::{Phase, Plan};

use entities::{key_move, v1, UserForm, UserState};
use harness::{Config, Harness, Rename};
use ledger::{CheckReport, Forms, Ledger};
use support::{env_or, is_reserved, path, reserved_sks, scan_all, text, Apply, Deadline, Raw, Seen};

/// One test at a time: each loads both cores, and the time budgets mean
/// something only alone.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const DEFAULT_SEED: u64 = 0x0C2A_5400_0010;
const LEASE_SECONDS: &str = "2";
/// Test 1's budget, and test 2's.
const BUDGET_ONLINE: Duration = Duration::from_secs(100);
const BUDGET_SAVED_PLAN: Duration = Duration::from_secs(60);
/// What an apply says when it stops for want of a lock renewal.
const LOCK_LOST: &str = "lost the migration lock";
/// The longest any one phase of one run may take.
const PHASE_LIMIT: Duration = Duration::from_secs(45);

// ---------------------------------------------------------------------
// Test 1: the online apply under writers, killed in every phase
// ---------------------------------------------------------------------

/// One key form: the truth at a moment (`ORG` before the writers switch,
/// `TENANT` after), checked as if it were the only form.
struct Form(&'static str);

fn index_attrs(s: &UserState) -> Vec<(&'static str, String)> {
    vec![("gsi1pk", format!("EMAIL#{}", s.email)), ("gsi1sk", "USER".to_string())]
}

impl Forms for Form {
    fn old_pk(&self, org: &str) -> String {
        format!("{}#{org}", self.0)
    }
    fn new_pk(&self, org: &str) -> String {
        format!("{}#{org}", self.0)
    }
    fn new_index_attrs(&self, _org: &str, _id: &str, s: &UserState) -> Vec<(&'static str, String)> {
        index_attrs(s)
    }
}

/// The migration's end: old form `ORG#`, new form `TENANT#`.
struct KeyMove;

impl Forms for KeyMove {
    fn old_pk(&self, org: &str) -> String {
        format!("ORG#{org}")
    }
    fn new_pk(&self, org: &str) -> String {
        format!("TENANT#{org}")
    }
    fn new_index_attrs(&self, _org: &str, _id: &str, s: &UserState) -> Vec<(&'static str, String)> {
        index_attrs(s)
    }
}

/// The items of one form (`ORG` or `TENANT`) checked against the ledger.
fn check_form(items: &[Raw], ledger: &Ledger, form: &'static str) -> CheckReport {
    let prefix = format!("{form}#");
    let kept: Vec<Raw> = items.iter().filter(|i| !is_reserved(i) && text(i, "pk").starts_with(&prefix)).cloned().collect();
    ledger::check(&kept, ledger, &Form(form), false)
}

fn counts(c: &CheckReport) -> String {
    format!(
        "lost updates {}, resurrected deletes {}, missing {}, duplicates {}, wrong/missing index keys {}/{}, phantoms {}, undecodable {}, old-form orphans {}",
        c.lost_updates, c.resurrected_deletes, c.missing, c.duplicates, c.wrong_index_keys, c.missing_index_keys, c.phantoms, c.undecodable, c.old_form_orphans
    )
}

/// Where a migration kills its apply, in order.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after the log says the stream is being turned on (first
    /// run only).
    StreamOn(u64),
    /// This share of the backfill's (estimated) duration after the log
    /// says it started.
    Backfill(f64),
    /// This long after the log says `caught up`.
    CaughtUp(u64),
    /// This long after `migrate cutover` was run.
    Cutover(u64),
    /// This long after `migrate complete` was run.
    Contract(u64),
}

impl Kill {
    fn stage(self) -> Stage {
        match self {
            Kill::StreamOn(_) | Kill::Backfill(_) | Kill::CaughtUp(_) => Stage::Expand,
            Kill::Cutover(_) => Stage::Cutover,
            Kill::Contract(_) => Stage::Contract,
        }
    }
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kill::StreamOn(ms) => write!(f, "stream-on+{ms}ms"),
            Kill::Backfill(x) => write!(f, "backfill@{x:.2}"),
            Kill::CaughtUp(ms) => write!(f, "caught-up+{ms}ms"),
            Kill::Cutover(ms) => write!(f, "cutover-request+{ms}ms"),
            Kill::Contract(ms) => write!(f, "complete-request+{ms}ms"),
        }
    }
}

/// Where the driver is: which request it has made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Expand and catch-up: nothing requested yet.
    Expand,
    /// `migrate cutover` requested; the old writers are paused.
    Cutover,
    /// `migrate complete` requested; the writers play the new version.
    Contract,
}

#[derive(Debug, Clone)]
struct MigrationPlan {
    number: usize,
    writers: bool,
    page_size: Option<u32>,
    kills: Vec<Kill>,
}

/// One SIGKILL and what the table looked like after it.
#[derive(Debug, Clone)]
struct KillRecord {
    migration: usize,
    run: usize,
    planned: String,
    phase: String,
    after_ms: u128,
    writers: bool,
}

#[derive(Debug, Default)]
struct MigrationOutcome {
    kills: Vec<KillRecord>,
    runs: usize,
    problems: Vec<String>,
    /// Runs that stopped themselves having lost the lock.
    self_aborts: Vec<String>,
    acked: u64,
    lease_waits: Duration,
    elapsed: Duration,
    final_line: String,
}

struct Ctx {
    client: Client,
    endpoint: String,
    dir: PathBuf,
    items: usize,
    pace: Duration,
    seed: u64,
    /// How long a backfill took (from its step line to `caught up`), as
    /// measured so far: the scale of `Kill::Backfill`.
    backfill: std::sync::Mutex<Duration>,
}

/// What a run of the apply ended with.
enum Ended {
    Killed { after: Duration },
    Exited { code: Option<i32> },
}

/// The phase the killed apply was in, from the table (its online state,
/// the recorded design) and its log.
async fn observed_phase(ctx: &Ctx, table: &str, new: &TableDesign, log: &str, stage: Stage) -> String {
    let phase = singletable_migrate::online::phase(&ctx.client, table, "pk", "sk").await.unwrap();
    let recorded_new = read_recorded_design(&ctx.client, table, "pk", "sk").await.unwrap().as_ref() == Some(new);
    let p = match phase {
        None if recorded_new => "contract: done, state cleared (lock or exit left)",
        None if log.contains("turn the table's stream on") => "expand: turning the stream on (no state yet)",
        None => "expand: starting (no state yet)",
        Some(Phase::Expand) if recorded_new => "cut-over: design recorded, phase not saved yet",
        Some(Phase::Expand) if stage == Stage::Cutover && log.contains("caught up") => "cut-over: requested, draining/verifying",
        Some(Phase::Expand) if stage == Stage::Cutover => "cut-over: requested, resuming expand first",
        Some(Phase::Expand) if log.contains("caught up") => "catch-up: caught up, waiting for cut-over",
        Some(Phase::Expand) if log.contains("copy every item") => "expand: backfill + replay",
        Some(Phase::Expand) => "expand: resuming",
        Some(Phase::CutOver) if stage == Stage::Contract && log.contains("delete old forms") => "contract: deleting old forms, verifying",
        Some(Phase::CutOver) if stage == Stage::Contract => "contract: requested, starting",
        Some(Phase::CutOver) => "cut-over: done, waiting for complete",
        Some(Phase::Contract) if log.contains("delete old forms") => "contract: deleting old forms, verifying",
        Some(Phase::Contract) => "contract: phase saved, waiting for migrating tables to see it",
    };
    p.to_string()
}

/// Writers held still (no operation in flight): the old ones paused;
/// new-version ones switched back to the (paused) old version, then
/// waited for until their counters stop moving. Returns whether anything
/// was changed (so `release` puts it back).
async fn hold_writers(h: &Harness, stage: Stage, switched: bool) -> bool {
    if stage == Stage::Cutover && !switched {
        return false; // paused already, for the cut-over
    }
    if switched {
        for k in 0..h.writers() {
            h.switch_to_old(k);
        }
    }
    h.pause_old().await;
    if switched {
        // An operation of the new version in flight finishes and lands in
        // the ledger within a few ms; wait until nothing moves.
        let moves = |l: &Ledger| {
            let s = &l.stats;
            s.total_acked() + s.condition_failed + s.read_found_nothing + s.unknown_outcomes + s.refused + s.read_errors
        };
        let mut last = moves(&h.ledger());
        let mut still = 0;
        while still < 2 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = moves(&h.ledger());
            still = if now == last { still + 1 } else { 0 };
            last = now;
        }
    }
    true
}

async fn release_writers(h: &Harness, held: bool, switched: bool) {
    if !held {
        return;
    }
    if switched {
        for k in 0..h.writers() {
            h.switch_to_new(k).await;
        }
    }
    h.resume_old();
}

async fn request(ctx: &Ctx, table: &str, what: &str) {
    let (code, out) = support::run_to_end(&ctx.endpoint, &["migrate", what, "--table", table]).await;
    assert_eq!(code, Some(0), "`migrate {what} --table {table}`:\n{out}");
}

/// Sleeps `d` unless the apply exits or (when given) says `unless` first;
/// returns whether the full time passed.
async fn sleep_unless(apply: &mut Apply, d: Duration, unless: Option<&str>) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if apply.exited().is_some() || unless.is_some_and(|u| apply.said(u)) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5).min(until.saturating_duration_since(Instant::now()))).await;
    }
    true
}

/// One online migration of a fresh table with its kills.
async fn online_migration(ctx: &Ctx, m: &MigrationPlan, deadline: &Deadline) -> MigrationOutcome {
    let t0 = Instant::now();
    let mut out = MigrationOutcome::default();
    let tag = format!("migration {}", m.number);
    let client = &ctx.client;

    // A seeded table in the old design, the old design recorded.
    let name = singletable_tests::unique_table_name("crash-online");
    let old_design = TableDesign::new(&name).entity::<v1::User>().build().unwrap();
    let new_design = TableDesign::new(&name).entity::<key_move::User>().build().unwrap();
    Table::new(client.clone(), old_design.clone()).create_table().await.unwrap();
    let config = Config {
        seed_items: ctx.items,
        writers: 3,
        orgs: 40,
        max_writing: BUDGET_ONLINE,
        pace: ctx.pace,
        rename: Rename::Name,
        rng_seed: ctx.seed ^ (m.number as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    };
    let seeded = harness::seed_users(&config);
    let users: Vec<v1::User> = seeded.iter().flatten().map(|((org, id), s)| v1::User::build(org, id, s)).collect();
    Table::new(client.clone(), old_design.clone()).batch_write().put_all(&users).send().await.unwrap();
    record_design(client, &old_design, &name).await.unwrap();

    // The plan, saved as a user saves it.
    let design_file = ctx.dir.join(format!("{name}-new-design.json"));
    let plan_file = ctx.dir.join(format!("{name}-plan.json"));
    std::fs::write(&design_file, new_design.to_json()).unwrap();
    support::save_plan(&ctx.endpoint, &design_file, &plan_file).await;
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).expect("the saved plan parses");

    let h = Arc::new(Harness::new(client.clone(), old_design, new_design.clone(), plan, config, seeded));
    let writers: Vec<_> = if m.writers {
        (0..h.writers()).map(|k| tokio::spawn(harness::writer::<v1::User, key_move::User>(h.clone(), k))).collect()
    } else {
        Vec::new()
    };
    if m.writers {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut args: Vec<String> =
        ["migrate", "apply", path(&plan_file), "--online", "--lease-seconds", LEASE_SECONDS].iter().map(|s| s.to_string()).collect();
    if let Some(n) = m.page_size {
        args.extend(["--page-size".to_string(), n.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let mut kills: VecDeque<Kill> = m.kills.iter().copied().collect();
    let mut stage = Stage::Expand;
    let mut switched = false;
    let mut runs = 0;
    loop {
        runs += 1;
        if runs > m.kills.len() + 6 {
            out.problems.push(format!("{tag}: no apply completed in {} runs", runs - 1));
            break;
        }
        deadline.check(&format!("{tag}, run {runs}"));
        let log = ctx.dir.join(format!("{name}-run{runs}.log"));
        let mut apply = Apply::spawn(&ctx.endpoint, &args, &log);
        let mut planned = String::new();

        // Drive this run through the stages until it is killed or exits.
        let ended = 'run: loop {
            match stage {
                Stage::Expand => {
                    let kill = kills.front().copied().filter(|k| k.stage() == Stage::Expand);
                    match kill {
                        Some(k @ Kill::StreamOn(ms)) => {
                            if let Seen::Exited(code) = apply.wait_for("turn the table's stream on", PHASE_LIMIT, deadline).await {
                                break 'run Ended::Exited { code };
                            }
                            sleep_unless(&mut apply, Duration::from_millis(ms), None).await;
                            kills.pop_front();
                            planned = k.to_string();
                        }
                        Some(k @ Kill::Backfill(share)) => {
                            if let Seen::Exited(code) = apply.wait_for("copy every item", PHASE_LIMIT, deadline).await {
                                break 'run Ended::Exited { code };
                            }
                            let d = ctx.backfill.lock().unwrap().mul_f64(share);
                            // `caught up` first: the kill falls there.
                            sleep_unless(&mut apply, d, Some("caught up")).await;
                            kills.pop_front();
                            planned = k.to_string();
                        }
                        Some(k @ Kill::CaughtUp(ms)) => {
                            if let Seen::Exited(code) = apply.wait_for("caught up", PHASE_LIMIT, deadline).await {
                                break 'run Ended::Exited { code };
                            }
                            sleep_unless(&mut apply, Duration::from_millis(ms), None).await;
                            kills.pop_front();
                            planned = k.to_string();
                        }
                        _ => {
                            // When the backfill starts in front of us, its
                            // length is measured (the scale of later kills).
                            let copy_started = if apply.said("copy every item") {
                                None
                            } else {
                                match apply.wait_for("copy every item", PHASE_LIMIT, deadline).await {
                                    Seen::Said => Some(Instant::now()),
                                    Seen::Exited(code) => break 'run Ended::Exited { code },
                                }
                            };
                            if let Seen::Exited(code) = apply.wait_for("caught up", PHASE_LIMIT, deadline).await {
                                break 'run Ended::Exited { code };
                            }
                            if let (Some(t), 1) = (copy_started, runs) {
                                *ctx.backfill.lock().unwrap() = t.elapsed();
                            }
                            // The user's cut-over: stop the old version, ask.
                            if m.writers {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                h.pause_old().await;
                            }
                            request(ctx, &name, "cutover").await;
                            stage = Stage::Cutover;
                            continue 'run;
                        }
                    }
                    break 'run Ended::Killed { after: apply.started.elapsed() };
                }
                Stage::Cutover => {
                    if let Some(k @ Kill::Cutover(ms)) = kills.front().copied() {
                        sleep_unless(&mut apply, Duration::from_millis(ms), None).await;
                        kills.pop_front();
                        planned = k.to_string();
                        break 'run Ended::Killed { after: apply.started.elapsed() };
                    }
                    // Cut over once the online state says so.
                    let waited = Instant::now();
                    loop {
                        if singletable_migrate::online::phase(client, &name, "pk", "sk").await.unwrap() == Some(Phase::CutOver) {
                            break;
                        }
                        if let Some(code) = apply.exited() {
                            break 'run Ended::Exited { code };
                        }
                        assert!(waited.elapsed() < PHASE_LIMIT, "{tag}: no cut-over within {PHASE_LIMIT:?}; log:\n{}", apply.text());
                        deadline.check(&format!("{tag}: waiting for the cut-over"));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if apply.said("caught up") {
                        // This run made the cut-over: it says so.
                        if let Seen::Exited(code) = apply.wait_for("Cut over in", PHASE_LIMIT, deadline).await {
                            break 'run Ended::Exited { code };
                        }
                    }
                    // The new version deploys, writes a while, then the
                    // user asks to complete.
                    if m.writers {
                        h.roll_to_new(Duration::ZERO).await;
                        h.resume_old();
                        tokio::time::sleep(Duration::from_millis(400)).await;
                    }
                    switched = true;
                    request(ctx, &name, "complete").await;
                    stage = Stage::Contract;
                }
                Stage::Contract => {
                    if let Some(k @ Kill::Contract(ms)) = kills.front().copied() {
                        sleep_unless(&mut apply, Duration::from_millis(ms), None).await;
                        kills.pop_front();
                        planned = k.to_string();
                        break 'run Ended::Killed { after: apply.started.elapsed() };
                    }
                    break 'run Ended::Exited { code: apply.wait_exit(PHASE_LIMIT, deadline).await };
                }
            }
        };

        match ended {
            Ended::Killed { after } => {
                if !apply.kill_9().await {
                    // It ended before the kill: treat as an exit.
                    let code = apply.wait_exit(PHASE_LIMIT, deadline).await;
                    eprintln!("{tag}: run {runs} exited {code:?} before its kill ({planned})");
                    if code == Some(0) && stage == Stage::Contract {
                        break;
                    }
                    if !apply.said(LOCK_LOST) {
                        out.problems.push(format!("{tag}: run {runs} exited {code:?}:\n{}", apply.text()));
                    }
                    out.lease_waits += support::wait_for_lease(client, &name).await;
                    continue;
                }
                // Requests the process had in flight still land.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let log_text = apply.text();
                let phase = observed_phase(ctx, &name, &new_design, &log_text, stage).await;
                let held = hold_writers(&h, stage, switched).await;
                let items = scan_all(client, &name).await;
                let ledger = h.ledger();
                let truth = if switched { "TENANT" } else { "ORG" };
                let mut checks = vec![(truth, check_form(&items, &ledger, truth))];
                let cut_over = singletable_migrate::online::phase(client, &name, "pk", "sk").await.unwrap() == Some(Phase::CutOver);
                if !switched && cut_over {
                    // Cut over, the new version not writing yet: both forms.
                    checks.push(("TENANT", check_form(&items, &ledger, "TENANT")));
                }
                release_writers(&h, held, switched).await;
                let old_forms = items.iter().filter(|i| text(i, "pk").starts_with("ORG#")).count();
                let new_forms = items.iter().filter(|i| text(i, "pk").starts_with("TENANT#")).count();
                eprintln!(
                    "{tag}: run {runs} SIGKILLed after {:>5} ms ({planned}) in [{phase}]; old forms {old_forms}, new forms {new_forms}, acked writes {}; truth {}",
                    after.as_millis(),
                    ledger.stats.total_acked(),
                    checks.iter().map(|(f, c)| format!("{f}: {}", if c.failures() == 0 { "ok".into() } else { counts(c) })).collect::<Vec<_>>().join("; ")
                );
                for (form, c) in &checks {
                    if c.failures() > 0 {
                        out.problems.push(format!(
                            "{tag}: after the kill of run {runs} ({planned}, [{phase}]), the {form} form is not the ledger: {}\n{}",
                            counts(c),
                            c.examples.join("\n")
                        ));
                    }
                }
                out.kills.push(KillRecord { migration: m.number, run: runs, planned: planned.clone(), phase, after_ms: after.as_millis(), writers: m.writers });
                out.lease_waits += support::wait_for_lease(client, &name).await;
            }
            Ended::Exited { code: Some(0) } if stage == Stage::Contract => {
                eprintln!("{tag}: run {runs} completed (exit 0) in {} ms", apply.started.elapsed().as_millis());
                break;
            }
            Ended::Exited { code } if apply.said(LOCK_LOST) => {
                // With a 2 s lease, a DynamoDB Local too busy to answer a
                // renewal for a whole lease makes the apply stop itself
                // (safe: the lock may have passed to another apply). The
                // same saved plan goes on.
                let last = apply.text().lines().rev().find(|l| l.starts_with("Error:")).unwrap_or("").to_string();
                eprintln!("{tag}: run {runs} stopped itself (exit {code:?}) in stage {stage:?}: {last}");
                out.self_aborts.push(format!("{tag} run {runs}: {last}"));
                out.lease_waits += support::wait_for_lease(client, &name).await;
            }
            Ended::Exited { code } => {
                let log_text = apply.text();
                eprintln!("{tag}: run {runs} FAILED (exit {code:?}) in stage {stage:?}:\n{log_text}");
                out.problems.push(format!("{tag}: run {runs} exited {code:?} in stage {stage:?}:\n{log_text}"));
                if out.problems.len() > 3 {
                    break;
                }
                out.lease_waits += support::wait_for_lease(client, &name).await;
            }
        }
    }
    out.runs = runs;

    // The end: writers stop; the new forms are the ledger; nothing else.
    h.stop();
    for w in writers {
        w.await.expect("writer panicked");
    }
    let items = scan_all(client, &name).await;
    let ledger = h.ledger();
    out.acked = ledger.stats.total_acked();
    let user_items: Vec<Raw> = items.iter().filter(|i| !is_reserved(i)).cloned().collect();
    let check = ledger::check(&user_items, &ledger, &KeyMove, true);
    out.final_line = format!(
        "{} users ({} present, {} deleted, {} unknown outcome), {} stored; {}; writes acked {} ({}), writer errors {:?}",
        check.logical_users,
        check.expected_present,
        check.expected_deleted,
        check.unknown_outcomes,
        check.stored_items,
        counts(&check),
        ledger.stats.total_acked(),
        harness::acked_line(&ledger.stats),
        ledger.stats.errors
    );
    if check.failures() > 0 {
        out.problems.push(format!("{tag}: at the end: {}\n{}", counts(&check), check.examples.join("\n")));
    }
    if ledger.stats.refused > 0 {
        out.problems.push(format!("{tag}: the library refused writes of the harness: {:?}", ledger.stats.errors));
    }
    let reserved = reserved_sks(&items);
    if reserved != [DESIGN_SK] {
        out.problems.push(format!("{tag}: reserved items left at the end: {reserved:?} (only {DESIGN_SK} may stay)"));
    }
    if read_recorded_design(client, &name, "pk", "sk").await.unwrap().as_ref() != Some(&new_design) {
        out.problems.push(format!("{tag}: the new design is not recorded"));
    }
    let (code, status) = support::run_to_end(&ctx.endpoint, &["migrate", "status", "--table", &name]).await;
    if code != Some(0) || !status.contains("no online apply in progress") {
        out.problems.push(format!("{tag}: `migrate status` at the end: exit {code:?}: {status}"));
    }
    out.elapsed = t0.elapsed();
    if out.problems.is_empty() {
        singletable_tests::delete_table(client, &name).await;
    } else {
        eprintln!("{tag}: table {name} kept for inspection; logs in {}", ctx.dir.display());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_apply_survives_kill_9_in_every_phase_with_writers() {
    let _one = one_at_a_time();
    let deadline = Deadline::new("online_apply_survives_kill_9_in_every_phase_with_writers", BUDGET_ONLINE);
    let seed = support::seed_from_env("CRASH_ONLINE_SEED", DEFAULT_SEED);
    let migrations: usize = env_or("CRASH_ONLINE_MIGRATIONS", 1);
    let items: usize = env_or("CRASH_ONLINE_ITEMS", 2_000);
    assert!(items >= 2_000, "CRASH_ONLINE_ITEMS: at least 2,000");
    let ctx = Ctx {
        client: singletable_tests::client().await,
        endpoint: singletable_tests::endpoint().await,
        dir: support::work_dir(),
        items,
        pace: Duration::from_millis(env_or("CRASH_ONLINE_PACE_MS", 10)),
        seed,
        backfill: std::sync::Mutex::new(Duration::from_secs(8)),
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    // One table, killed 10 times in every phase, writers running. A
    // backfill is the slow part (about 30 s for 2,000 items with writers
    // here, and with 1 MB scan pages a kill in it loses all of it), so
    // there is one backfill kill and more in the quick phases. More
    // migrations (CRASH_ONLINE_MIGRATIONS): odd ones without writers and
    // 4 kills. Scan pages are the default (1 MB), as a user runs it.
    let plans: Vec<MigrationPlan> = (0..migrations)
        .map(|number| {
            let writers = number % 2 == 0;
            let kills = if writers {
                vec![
                    Kill::StreamOn(rng.u64(..150)),
                    Kill::Backfill(0.1 + 0.8 * rng.f64()),
                    Kill::CaughtUp(rng.u64(..400)),
                    Kill::CaughtUp(rng.u64(..400)),
                    Kill::Cutover(rng.u64(..1_500)),
                    Kill::Cutover(300 + rng.u64(..2_200)),
                    Kill::Cutover(rng.u64(..2_500)),
                    // The contract deletes about 700 old forms a second
                    // here; each kill leaves fewer, and a kill planned
                    // past the end never lands.
                    Kill::Contract(100 + rng.u64(..700)),
                    Kill::Contract(rng.u64(..700)),
                    Kill::Contract(rng.u64(..500)),
                ]
            } else {
                vec![
                    Kill::Backfill(0.1 + 0.8 * rng.f64()),
                    Kill::CaughtUp(rng.u64(..400)),
                    Kill::Cutover(rng.u64(..1_500)),
                    Kill::Contract(100 + rng.u64(..1_100)),
                ]
            };
            MigrationPlan { number, writers, page_size: None, kills }
        })
        .collect();
    eprintln!(
        "crash_online: seed {seed:#x} (CRASH_ONLINE_SEED to replay), {migrations} online migrations of {items} users, kills planned: {:?}",
        plans.iter().map(|p| p.kills.iter().map(ToString::to_string).collect::<Vec<_>>()).collect::<Vec<_>>()
    );

    let mut outcomes = Vec::new();
    for p in &plans {
        let o = online_migration(&ctx, p, &deadline).await;
        eprintln!(
            "migration {}: {} kills, {} runs ({} stopped themselves, lock lost), {:.1} s ({:.1} s waiting for leases), writers {}: {}",
            p.number,
            o.kills.len(),
            o.runs,
            o.self_aborts.len(),
            o.elapsed.as_secs_f64(),
            o.lease_waits.as_secs_f64(),
            p.writers,
            o.final_line
        );
        outcomes.push(o);
    }

    let kills: Vec<&KillRecord> = outcomes.iter().flat_map(|o| o.kills.iter()).collect();
    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &kills {
        *phases.entry(k.phase.as_str()).or_default() += 1;
    }
    let with_writers = kills.iter().filter(|k| k.writers).count();
    eprintln!(
        "crash_online: {} SIGKILLs ({with_writers} with writers) in {} migrations, {:.1} s in all; by phase: {phases:#?}",
        kills.len(),
        outcomes.len(),
        deadline.elapsed().as_secs_f64()
    );
    for k in &kills {
        eprintln!("  migration {} run {}: {} -> [{}] at {} ms", k.migration, k.run, k.planned, k.phase, k.after_ms);
    }
    for a in outcomes.iter().flat_map(|o| o.self_aborts.iter()) {
        eprintln!("  stopped itself (lock lost), the saved plan run again: {a}");
    }
    let problems: Vec<String> = outcomes.iter().flat_map(|o| o.problems.iter().cloned()).collect();
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    assert!(kills.len() >= 10, "only {} SIGKILLs landed; 10 wanted", kills.len());
    assert!(with_writers * 2 >= kills.len(), "writers ran in {with_writers} of {} kill trials; half wanted", kills.len());
    deadline.check("the end");
}

// ---------------------------------------------------------------------
// Test 2: a saved plan that creates an index and moves items
// ---------------------------------------------------------------------

mod idx {
    pub mod v1 {
        #[derive(singletable::Item, Debug, Clone, PartialEq)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
        pub struct User {
            pub org: String,
            pub id: String,
            pub n: u64,
        }
    }

    pub mod v2 {
        #[derive(singletable::Item, Debug, Clone, PartialEq)]
        #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
        #[item(index(name = "gsi1", pk = "N#{org}", sk = "USER#{id}"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub n: u64,
        }
    }
}

/// Where a run of test 2 is killed.
#[derive(Debug, Clone, Copy)]
enum IdxKill {
    /// This long after index `gsi1` shows in DescribeTable.
    IndexCreated(u64),
    /// This share of the backfill's estimated duration after its step
    /// line (`rewrite items` offline, `copy every item` online).
    Backfill(f64),
    /// This long after the log says `marker`.
    After(&'static str, u64),
}

impl std::fmt::Display for IdxKill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdxKill::IndexCreated(ms) => write!(f, "index-created+{ms}ms"),
            IdxKill::Backfill(x) => write!(f, "backfill@{x:.2}"),
            IdxKill::After(m, ms) => write!(f, "{m:?}+{ms}ms"),
        }
    }
}

/// Each user, in both forms: (org, id) -> n.
type Users = BTreeMap<(String, String), u64>;

/// What test 2's table holds, against the originals: forms of each user.
struct IdxState {
    old: usize,
    new: usize,
    reserved: Vec<String>,
    problems: Vec<String>,
}

async fn idx_inspect(client: &Client, table: &str, users: &Users, last: bool) -> IdxState {
    let items = scan_all(client, table).await;
    let mut seen: HashMap<(String, String), (usize, usize)> = HashMap::new();
    let mut problems = Vec::new();
    for item in items.iter().filter(|i| !is_reserved(i)) {
        let (pk, sk) = (text(item, "pk"), text(item, "sk"));
        let (org, id) = (text(item, "org"), text(item, "id"));
        let n = item.get("n").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
        let Some(want) = users.get(&(org.clone(), id.clone())) else {
            problems.push(format!("unexpected item ({pk}, {sk})"));
            continue;
        };
        if n != Some(*want) || sk != format!("USER#{id}") {
            problems.push(format!("({pk}, {sk}) altered: n {n:?}, want {want}"));
        }
        let e = seen.entry((org.clone(), id.clone())).or_default();
        if pk == format!("TENANT#{org}") {
            e.1 += 1;
            let (g1pk, g1sk) = (text(item, "gsi1pk"), text(item, "gsi1sk"));
            if g1pk != format!("N#{org}") || g1sk != format!("USER#{id}") {
                problems.push(format!("({pk}, {sk}): index keys ({g1pk:?}, {g1sk:?}), want (N#{org}, USER#{id})"));
            }
        } else if pk == format!("ORG#{org}") {
            e.0 += 1;
        } else {
            problems.push(format!("({pk}, {sk}) is neither form"));
        }
    }
    let (mut old, mut new) = (0, 0);
    for key in users.keys() {
        let (o, n) = seen.get(key).copied().unwrap_or_default();
        old += o;
        new += n;
        let bad = if last { o != 0 || n != 1 } else { o + n == 0 || o > 1 || n > 1 };
        if bad && problems.len() < 20 {
            problems.push(format!("{key:?}: old form {o}, new form {n}"));
        }
    }
    IdxState { old, new, reserved: reserved_sks(&items), problems }
}

/// Applies the saved plan with `mode_args`, killing runs as `kills` says,
/// re-running the same plan file until a run exits 0. Returns the kills
/// that landed (with the state they left) and the problems.
#[allow(clippy::too_many_arguments)]
async fn saved_plan_with_kills(
    client: &Client,
    endpoint: &str,
    dir: &std::path::Path,
    mode: &str,
    mode_args: &[&str],
    backfill_line: &str,
    backfill_est: Duration,
    kills: &[IdxKill],
    deadline: &Deadline,
) -> SavedPlanOutcome {
    let t0 = Instant::now();
    let name = singletable_tests::unique_table_name("crash-saved");
    let old = TableDesign::new(&name).entity::<idx::v1::User>().build().unwrap();
    let new = TableDesign::new(&name).entity::<idx::v2::User>().build().unwrap();
    Table::new(client.clone(), old.clone()).create_table().await.unwrap();
    let mut rng = fastrand::Rng::with_seed(name.len() as u64);
    let originals: Vec<idx::v1::User> =
        (0..2_000).map(|i| idx::v1::User { org: format!("org{}", i % 37), id: format!("u{i:05}"), n: rng.u64(..1_000_000) }).collect();
    Table::new(client.clone(), old.clone()).batch_write().put_all(&originals).send().await.unwrap();
    record_design(client, &old, &name).await.unwrap();
    let users: Users = originals.iter().map(|u| ((u.org.clone(), u.id.clone()), u.n)).collect();

    let design_file = dir.join(format!("{name}-new-design.json"));
    let plan_file = dir.join(format!("{name}-plan.json"));
    std::fs::write(&design_file, new.to_json()).unwrap();
    let planned = support::save_plan(endpoint, &design_file, &plan_file).await;
    assert!(planned.contains("gsi1"), "the plan creates gsi1:\n{planned}");
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert!(plan.changes.iter().any(|c| matches!(c, singletable_migrate::Change::CreateIndex { .. })), "{plan:?}");

    let mut args = vec!["migrate", "apply", path(&plan_file)];
    args.extend_from_slice(mode_args);
    args.extend(["--lease-seconds", LEASE_SECONDS]);
    if mode == "offline" {
        // Checkpoints every 100 items, so kills meet half-done segments.
        // (Online, the default pages: with 100-item pages the online
        // backfill here is much slower, 27 s against 17 s unkilled.)
        args.extend(["--page-size", "100"]);
    }

    let mut landed = Vec::new();
    let mut problems = Vec::new();
    let mut queue: VecDeque<IdxKill> = kills.iter().copied().collect();
    let mut backfill_est = backfill_est;
    let mut self_aborts = Vec::new();
    let mut runs = 0;
    loop {
        runs += 1;
        deadline.check(&format!("{mode}: run {runs}"));
        if runs > kills.len() + 6 {
            problems.push(format!("{mode}: no run completed in {} runs", runs - 1));
            break;
        }
        let log = dir.join(format!("{name}-run{runs}.log"));
        let mut apply = Apply::spawn(endpoint, &args, &log);
        let kill = queue.pop_front();
        let reached = match kill {
            None => false,
            Some(IdxKill::IndexCreated(ms)) => {
                let mut exists = false;
                while !exists && apply.exited().is_none() {
                    let live = singletable_migrate::describe(client, &name).await.unwrap();
                    exists = live.indexes.iter().any(|i| i.name == "gsi1");
                    assert!(apply.started.elapsed() < PHASE_LIMIT, "{mode}: no index within {PHASE_LIMIT:?}");
                    deadline.check(&format!("{mode}: waiting for the index"));
                }
                exists && sleep_unless(&mut apply, Duration::from_millis(ms), None).await
            }
            Some(IdxKill::Backfill(share)) => match apply.wait_for(backfill_line, PHASE_LIMIT, deadline).await {
                Seen::Said => sleep_unless(&mut apply, backfill_est.mul_f64(share), None).await,
                Seen::Exited(_) => false,
            },
            Some(IdxKill::After(marker, ms)) => match apply.wait_for(marker, PHASE_LIMIT, deadline).await {
                Seen::Said => sleep_unless(&mut apply, Duration::from_millis(ms), None).await,
                Seen::Exited(_) => false,
            },
        };
        if reached && apply.kill_9().await {
            let after = apply.started.elapsed();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let state = idx_inspect(client, &name, &users, false).await;
            let kill = kill.expect("a kill");
            let line = format!(
                "{mode}: run {runs} SIGKILLed after {} ms ({kill}): old forms {}, new forms {}, reserved {:?}, problems {}",
                after.as_millis(),
                state.old,
                state.new,
                state.reserved,
                state.problems.len()
            );
            eprintln!("{line}");
            landed.push(line);
            problems.extend(state.problems.iter().map(|p| format!("{mode}: after the kill of run {runs} ({kill}): {p}")));
            support::wait_for_lease(client, &name).await;
            continue;
        }
        let code = apply.wait_exit(PHASE_LIMIT, deadline).await;
        let text = apply.text();
        if let Some(k) = kill {
            eprintln!("{mode}: run {runs} ended before its kill ({k})");
        }
        if runs == 1 {
            // An unkilled backfill: its length, for the next kills.
            backfill_est = apply.started.elapsed().mul_f64(0.6);
        }
        if code == Some(0) {
            eprintln!("{mode}: run {runs} completed (exit 0) in {} ms", apply.started.elapsed().as_millis());
            break;
        }
        if text.contains(LOCK_LOST) {
            // See LOCK_LOST: the same saved plan goes on.
            let last = text.lines().rev().find(|l| l.starts_with("Error:")).unwrap_or("").to_string();
            eprintln!("{mode}: run {runs} stopped itself (exit {code:?}): {last}");
            self_aborts.push(format!("{mode} run {runs}: {last}"));
            support::wait_for_lease(client, &name).await;
            continue;
        }
        eprintln!("{mode}: run {runs} FAILED (exit {code:?}):\n{text}");
        problems.push(format!("{mode}: run {runs} of the saved plan exited {code:?}:\n{text}"));
        if problems.len() > 3 {
            break;
        }
        support::wait_for_lease(client, &name).await;
    }

    let state = idx_inspect(client, &name, &users, true).await;
    problems.extend(state.problems.iter().map(|p| format!("{mode}: at the end: {p}")));
    if state.reserved != [DESIGN_SK] {
        problems.push(format!("{mode}: reserved items left at the end: {:?} (only {DESIGN_SK} may stay)", state.reserved));
    }
    if read_recorded_design(client, &name, "pk", "sk").await.unwrap().as_ref() != Some(&new) {
        problems.push(format!("{mode}: the new design is not recorded"));
    }
    let live = singletable_migrate::describe(client, &name).await.unwrap();
    if !live.indexes.iter().any(|i| i.name == "gsi1" && i.status == "ACTIVE") {
        problems.push(format!("{mode}: no ACTIVE index gsi1: {:?}", live.indexes));
    }
    // The index serves the new forms.
    let by_index = Table::new(client.clone(), new.clone());
    let org7 = by_index.query::<idx::v2::User>().index("gsi1").pk(singletable::KeyParts::new().set("org", "org7")).all().await;
    match org7 {
        Ok(found) if found.len() == users.keys().filter(|(o, _)| o == "org7").count() => {}
        Ok(found) => problems.push(format!("{mode}: gsi1 N#org7 holds {} users", found.len())),
        Err(e) => problems.push(format!("{mode}: query gsi1: {e}")),
    }
    let (code, out) = support::run_to_end(endpoint, &["migrate", "plan", "--design", path(&design_file), "--detailed-exitcode"]).await;
    let stream_left_on = code == Some(2)
        && out.contains("update stream: NEW_AND_OLD_IMAGES -> (none)")
        && out.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.");
    if mode == "online" && stream_left_on {
        // The online apply turns the stream on and leaves it on; the
        // design has none, so the next plan turns it off. Reported, not
        // this test's subject.
        eprintln!("{mode}: NOTE: `migrate plan` after the online apply is not `No changes.`: it would turn off the stream the apply left on");
    } else if code != Some(0) || !out.contains("No changes.") {
        problems.push(format!("{mode}: `migrate plan` after apply: exit {code:?}\n{out}"));
    }
    // Observed, not asserted here (see
    // `a_saved_plan_killed_after_it_recorded_the_design_runs_again`): the
    // saved plan run once more, as after a kill that came after the end.
    let (code, out) = support::run_to_end(endpoint, &args).await;
    let rerun = format!("exit {code:?}: {}", out.trim().lines().last().unwrap_or(""));
    eprintln!("{mode}: the saved plan run again after completion: {rerun}");
    if problems.is_empty() {
        singletable_tests::delete_table(client, &name).await;
    } else {
        eprintln!("{mode}: table {name} kept for inspection; logs in {}", dir.display());
    }
    SavedPlanOutcome { landed, problems, self_aborts, rerun, took: t0.elapsed() }
}

struct SavedPlanOutcome {
    /// One line per kill that landed.
    landed: Vec<String>,
    problems: Vec<String>,
    /// Runs that stopped themselves having lost the lock.
    self_aborts: Vec<String>,
    /// What running the saved plan once more after it completed did.
    rerun: String,
    took: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_that_creates_an_index_and_moves_items_resumes_after_kill_9() {
    let _one = one_at_a_time();
    let deadline = Deadline::new("a_saved_plan_that_creates_an_index_and_moves_items_resumes_after_kill_9", BUDGET_SAVED_PLAN);
    let seed = support::seed_from_env("CRASH_ONLINE_SEED", DEFAULT_SEED) ^ 0x2;
    let mut rng = fastrand::Rng::with_seed(seed);
    let client = singletable_tests::client().await;
    let endpoint = singletable_tests::endpoint().await;
    let dir = support::work_dir();

    let offline_kills = vec![
        IdxKill::IndexCreated(rng.u64(..20)),
        IdxKill::Backfill(0.1 + 0.8 * rng.f64()),
        IdxKill::Backfill(0.1 + 0.8 * rng.f64()),
        IdxKill::After("verify every item", rng.u64(..60)),
    ];
    let online_kills = vec![
        IdxKill::IndexCreated(rng.u64(..20)),
        IdxKill::Backfill(0.1 + 0.8 * rng.f64()),
        IdxKill::After("caught up", rng.u64(..300)),
        IdxKill::After("Cut over in", rng.u64(..300)),
    ];
    eprintln!(
        "saved plan: seed {seed:#x}; kills offline {:?}, online {:?}",
        offline_kills.iter().map(ToString::to_string).collect::<Vec<_>>(),
        online_kills.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    let off = saved_plan_with_kills(
        &client,
        &endpoint,
        &dir,
        "offline",
        &["--offline"],
        "rewrite items",
        Duration::from_millis(800),
        &offline_kills,
        &deadline,
    )
    .await;
    let on = saved_plan_with_kills(
        &client,
        &endpoint,
        &dir,
        "online",
        &["--online", "--auto-cutover", "--auto-complete"],
        "copy every item",
        Duration::from_secs(7),
        &online_kills,
        &deadline,
    )
    .await;
    for o in [&off, &on] {
        for a in &o.self_aborts {
            eprintln!("  stopped itself (lock lost), the saved plan run again: {a}");
        }
    }
    eprintln!(
        "saved plan: offline {} kills in {:.1} s (run again after the end: {}), online {} kills in {:.1} s (run again after the end: {}); {:.1} s in all",
        off.landed.len(),
        off.took.as_secs_f64(),
        off.rerun,
        on.landed.len(),
        on.took.as_secs_f64(),
        on.rerun,
        deadline.elapsed().as_secs_f64()
    );
    let problems: Vec<String> = off.problems.iter().chain(&on.problems).cloned().collect();
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    assert!(off.landed.len() >= 3 && on.landed.len() >= 3, "too few kills landed: offline {:#?}, online {:#?}", off.landed, on.landed);
    deadline.check("the end");
}

/// A kill that comes after the apply recorded the new design (while it
/// releases its lock or prints its summary) leaves the user unsure
/// whether it finished: running the same saved plan again must not fail.
/// The kill comes as soon as the design record shows; when the apply
/// exits first, the table is in the same state (finished), and the saved
/// plan is run again all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_killed_after_it_recorded_the_design_runs_again() {
    let _one = one_at_a_time();
    let deadline = Deadline::new("a_saved_plan_killed_after_it_recorded_the_design_runs_again", Duration::from_secs(30));
    let client = singletable_tests::client().await;
    let endpoint = singletable_tests::endpoint().await;
    let dir = support::work_dir();
    let name = singletable_tests::unique_table_name("crash-after-end");
    let old = TableDesign::new(&name).entity::<idx::v1::User>().build().unwrap();
    let new = TableDesign::new(&name).entity::<idx::v2::User>().build().unwrap();
    Table::new(client.clone(), old.clone()).create_table().await.unwrap();
    let originals: Vec<idx::v1::User> = (0..500).map(|i| idx::v1::User { org: format!("org{}", i % 7), id: format!("u{i:05}"), n: i }).collect();
    Table::new(client.clone(), old.clone()).batch_write().put_all(&originals).send().await.unwrap();
    record_design(&client, &old, &name).await.unwrap();
    let design_file = dir.join(format!("{name}-new-design.json"));
    let plan_file = dir.join(format!("{name}-plan.json"));
    std::fs::write(&design_file, new.to_json()).unwrap();
    support::save_plan(&endpoint, &design_file, &plan_file).await;
    let args = ["migrate", "apply", path(&plan_file), "--offline", "--lease-seconds", LEASE_SECONDS];

    // SIGKILL as soon as the new design is recorded (if the apply is still
    // running by then).
    let mut apply = Apply::spawn(&endpoint, &args, &dir.join(format!("{name}-run1.log")));
    loop {
        if read_recorded_design(&client, &name, "pk", "sk").await.unwrap().as_ref() == Some(&new) || apply.exited().is_some() {
            break;
        }
        deadline.check("waiting for the design record");
    }
    let killed = apply.kill_9().await;
    let first = if killed {
        "was SIGKILLed right after it recorded the design".to_string()
    } else {
        format!("finished first (exit {:?})", apply.exited().flatten())
    };
    support::wait_for_lease(&client, &name).await;
    let (code, out) = support::run_to_end(&endpoint, &args).await;
    eprintln!("after-end: run 1 {first}; the same saved plan again: exit {code:?}\n{out}");
    assert_eq!(code, Some(0), "the saved plan, run again after an apply that {first}, failed:\n{out}");
    let (code, out) = support::run_to_end(&endpoint, &["migrate", "plan", "--design", path(&design_file), "--detailed-exitcode"]).await;
    assert!(code == Some(0) && out.contains("No changes."), "`migrate plan` afterwards: exit {code:?}\n{out}");
    singletable_tests::delete_table(&client, &name).await;
}
