//! The singletable demo: a multi-tenant project tracker in one DynamoDB
//! table, and the migration of its key design from v1 to v2 on live data.
//!
//! 1. Version 1 of the app (`singletable_examples::tracker::v1`): create
//!    the table, seed about 900 items, run the access patterns, and watch
//!    bad writes refused before they reach DynamoDB.
//! 2. Write the design files of v1 and v2, then `singletable migrate plan`
//!    and `singletable migrate apply --online` (the real CLI, embedded with
//!    `singletable_migrate::cli::run`) while the application keeps writing:
//!    version 1 until cut-over, version 2 after it, with a ledger of every
//!    acknowledged write checked at the end.
//! 3. Version 2 of the app on the migrated table: every access pattern
//!    returns what it returned before, and the new index answers the new
//!    pattern.
//!
//! Run it with `scripts/demo.sh`, which starts DynamoDB Local and points
//! `AWS_ENDPOINT_URL_DYNAMODB` at it. Credentials, region and endpoint
//! come from the usual aws-config sources, so the demo also runs against
//! any other endpoint you give it.
//!
//! Usage: `demo [TABLE] [DESIGN_DIR]` (defaults: `tracker-demo`,
//! `target/tracker-demo`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use singletable::{Error, Item, Table, TableDesign};
use singletable_examples::tracker::{self, v1, v2, NewTask, Seed, Summary};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn heading(text: &str) {
    println!("\n{}\n{text}\n{}", "=".repeat(78), "=".repeat(78));
}

fn step(text: &str) {
    println!("\n-- {text}");
}

fn run() -> Result<()> {
    let started = Instant::now();
    let mut args = std::env::args().skip(1);
    let table_name = args.next().unwrap_or_else(|| "tracker-demo".to_string());
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/tracker-demo".to_string()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let v1_file = dir.join("tracker-v1.json");
    let v2_file = dir.join("tracker-v2.json");
    let v1_design = v1::design(&table_name)?;
    let v2_design = v2::design(&table_name)?;

    // The embedded CLI runs its own async runtime, so the demo's async
    // parts run on this one, one after the other, and the CLI in between.
    let rt = tokio::runtime::Runtime::new()?;
    let client = rt.block_on(async { Client::new(&aws_config::defaults(BehaviorVersion::latest()).load().await) });

    heading("1. The tracker, version 1: an organization's partitions are ORG#{org_id}");
    std::fs::write(&v1_file, v1_design.to_json())?;
    cli(&["design", "show", "--design", path(&v1_file)], &v1_design)?;
    let before = rt.block_on(part1(&client, &table_name))?;

    heading("2. Migrating the live table to version 2");
    println!("Version 2 prefixes every partition of a tenant with TENANT#{{org_id}} (so that an");
    println!("IAM policy's dynamodb:LeadingKeys can confine a tenant to its own items) and adds");
    println!("gsi3, an organization's tasks by due date. The application code does not change.");
    std::fs::write(&v2_file, v2_design.to_json())?;
    println!("\nDesign files (TableDesign::to_json): {} and {}", v1_file.display(), v2_file.display());
    cli(&["design", "show", "--design", path(&v2_file)], &v2_design)?;
    // The table was created by the app, never migrated: it records no
    // design yet, so the first plan says which design it has (--from).
    cli(&["migrate", "plan", "--design", path(&v2_file), "--from", path(&v1_file)], &v2_design)?;
    // The application keeps writing while the table moves: writers update
    // the tasks of a tenant of their own through version 1, then (after
    // cut-over) through version 2, keeping a ledger of every acknowledged
    // write. A coordinator plays the operator: once the new forms have
    // caught up it stops version 1's writes and runs `migrate cutover`,
    // starts version 2, and runs `migrate complete`.
    let writers = rt.block_on(live::start(&client, &table_name));
    let operator = rt.spawn(live::operate(client.clone(), table_name.clone(), writers.clone()));
    cli(&["migrate", "apply", "--design", path(&v2_file), "--from", path(&v1_file), "--auto-approve", "--online"], &v2_design)?;
    let pause = rt.block_on(operator).context("the operator task")??;
    let report = rt.block_on(live::check(&client, &table_name, &writers))?;
    step(&format!(
        "Ledger check: {} writes acknowledged while the table moved ({} through version 1, {} through version 2; \
         write pause at cut-over {:.1}s): {} lost, {} tasks checked",
        report.acknowledged, report.by_v1, report.by_v2, pause, report.lost, report.checked
    ));
    ensure!(report.lost == 0, "the migration lost {} acknowledged writes", report.lost);
    // The table now records v2: planning again finds nothing to do.
    cli(&["migrate", "plan", "--design", path(&v2_file)], &v2_design)?;

    heading("3. The tracker, version 2, on the migrated table");
    rt.block_on(part3(&client, &table_name, &before))?;

    println!("\nDone in {:.1}s.", started.elapsed().as_secs_f64());
    Ok(())
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Runs `singletable ARGS` through the embedded CLI, showing the command.
fn cli(args: &[&str], embedded: &TableDesign) -> Result<()> {
    println!("\n$ singletable {}", args.join(" "));
    let code = singletable_migrate::cli::run(std::iter::once("singletable").chain(args.iter().copied()), Some(embedded.clone()));
    ensure!(code == ExitCode::SUCCESS, "`singletable {}` failed", args.join(" "));
    Ok(())
}

/// What part 1 saw, for part 3 to compare with.
struct Before {
    patterns: Vec<(&'static str, Vec<Summary>)>,
    counts: BTreeMap<String, usize>,
}

async fn part1(client: &Client, name: &str) -> Result<Before> {
    let table = v1::create_table(client, name, true).await?;
    step(&format!("Created table `{name}` (Table::create_table: key schema, gsi1, gsi2, time to live on `expires_at`)"));

    let t = Instant::now();
    let seeded = v1::seed(&table, &Seed::DEMO).await?;
    let total: usize = seeded.iter().map(|(_, n)| n).sum();
    let list: Vec<String> = seeded.iter().map(|(e, n)| format!("{n} {e}")).collect();
    step(&format!("Seeded {total} items in {:.1}s: {}", t.elapsed().as_secs_f64(), list.join(", ")));
    println!("   (projects with create_project, their first 3 tasks with create_task, the rest with batch_write)");
    show_keys::<v1::Task>("Task acme/apollo #12 is stored with", &table, &("acme".into(), "apollo".into(), 12)).await?;

    let now = SystemTime::now();
    step("Read access patterns for organization `acme` (examples/README.md lists them all)");
    print_summaries(&v1::read_patterns(&table, "acme", now).await?);

    step("Write access patterns");
    // P6: accept an invitation (transaction: delete the unexpired invitation, create the user).
    let gus = v1::accept_invitation(&table, "acme", "gus@example.com", "gus", "Gus", now).await?;
    println!("   P6  accept gus's invitation: {}", gus.map_or("no pending invitation".into(), |u| format!("user {}/{} created as {}, invitation deleted, in one transaction", u.org_id, u.user_id, u.role)));
    let hal = v1::accept_invitation(&table, "acme", "hal@example.com", "hal", "Hal", now).await?;
    println!("       accept hal's invitation (expired yesterday, TTL has not deleted it yet): {}", if hal.is_none() { "refused, no pending invitation" } else { "accepted?!" });
    ensure!(hal.is_none(), "an expired invitation was accepted");

    // P10: create a task (transaction: bump the project's counter, create the task).
    let task = v1::create_task(
        &table,
        "acme",
        "apollo",
        NewTask { title: "Plan the moon landing".into(), assignee: Some("ann".into()), due: Some("2026-03-02".into()), ..NewTask::default() },
    )
    .await?;
    let apollo = table.get::<v1::Project>(&("acme".into(), "apollo".into())).await?.context("apollo")?;
    println!("   P10 create task: #{} {:?}, with apollo's task_count now {} (version {}), in one transaction", task.number, task.title, apollo.task_count, apollo.version);

    // P8: optimistic locking. Ann opens apollo's settings; meanwhile Bob
    // creates a task, which bumps the project's version.
    let mut anns_copy = apollo.clone();
    anns_copy.description = "To the moon, safely.".into();
    v1::create_task(&table, "acme", "apollo", NewTask { title: "Pick a landing site".into(), ..NewTask::default() }).await?;
    match v1::save_project(&table, &mut anns_copy).await {
        Err(e @ Error::VersionConflict { .. }) => println!("   P8  Ann saves apollo read at version {}: refused, {e}", apollo.version),
        other => bail!("expected a version conflict, got {other:?}"),
    }
    let (saved, attempts) = v1::edit_project(&table, "acme", "apollo", 3, |p| p.description = "To the moon, safely.".into()).await?;
    println!("       edit_project re-reads and re-applies her edit: saved at version {} ({attempts} attempt), task_count {} kept", saved.version, saved.task_count);

    // P15: assign and unassign (the update rewrites or removes the gsi2 key).
    let before = v1::tasks_assigned_to(&table, "acme", "bob").await?.len();
    let t = v1::assign_task(&table, "acme", "apollo", 5, Some("bob")).await?;
    let during = v1::tasks_assigned_to(&table, "acme", "bob").await?.len();
    v1::assign_task(&table, "acme", "apollo", 5, None).await?;
    let after = v1::tasks_assigned_to(&table, "acme", "bob").await?.len();
    v1::set_task_status(&table, "acme", "apollo", 5, "doing").await?;
    ensure!((during, after) == (before + 1, before), "gsi2 did not follow the assignment");
    println!("   P15 assign apollo #{} {:?} (unassigned) to bob: bob's tasks in gsi2 {before} -> {during}; unassign it: {after}; status -> doing", t.number, t.title);

    refusals(&table).await?;

    // What every read pattern returns now, for every organization: part 3
    // compares it with what v2 returns from the migrated table.
    let now = SystemTime::now();
    let mut patterns = Vec::new();
    for o in tracker::ORGS {
        patterns.push((o.id, v1::read_patterns(&table, o.id, now).await?));
    }
    live::prepare(&table).await?;
    let counts = count_entities(client, name).await?;
    step(&format!("The table holds {}", describe_counts(&counts)));
    Ok(Before { patterns, counts })
}

/// Writes that never reach DynamoDB.
async fn refusals(table: &Table) -> Result<()> {
    step("Bad writes are refused before any request is sent");
    let before = count_items(table).await?;
    let ann = table.get::<v1::User>(&("acme".into(), "ann".into())).await?.context("ann")?;
    match table.put(&v1::User { user_id: String::new(), ..ann }).await {
        Err(e @ Error::EmptyKey { .. }) => println!("   a user with an empty user_id:\n     {e}"),
        other => bail!("expected EmptyKey, got {other:?}"),
    }
    let task = table.get::<v1::Task>(&("acme".into(), "apollo".into(), 1)).await?.context("task 1")?;
    let clash = v1::Task { project_id: "apollo#2".into(), assignee: Some("ann".into()), ..task.clone() };
    match table.put(&clash).await {
        Err(e @ Error::KeyDelimiter { .. }) => println!("   a task whose project id holds the delimiter:\n     {e}"),
        other => bail!("expected KeyDelimiter, got {other:?}"),
    }
    let nan = v1::Task { estimate_hours: Some(f64::NAN), ..task };
    match table.put(&nan).await {
        Err(e @ Error::InvalidValue { .. }) => println!("   a task with a NaN estimate:\n     {e}"),
        other => bail!("expected InvalidValue, got {other:?}"),
    }
    let after = count_items(table).await?;
    println!("   items in the table before and after: {before} and {after}");
    ensure!(before == after, "a refused write changed the table");
    Ok(())
}

async fn part3(client: &Client, name: &str, before: &Before) -> Result<()> {
    // The same table, now through v2's design and types.
    let table = Table::new(client.clone(), v2::design(name)?);
    show_keys::<v2::Task>("Task acme/apollo #12 is now stored with", &table, &("acme".into(), "apollo".into(), 12)).await?;

    let counts = count_entities(client, name).await?;
    step(&format!("Items per entity: {}", describe_counts(&counts)));
    ensure!(counts == before.counts, "the migration changed the item counts: before {:?}, after {:?}", before.counts, counts);
    println!("   the same as before the migration");

    step("The read access patterns, now from v2's keys, for every organization");
    let now = SystemTime::now();
    for (org, old) in &before.patterns {
        let new = v2::read_patterns(&table, org, now).await?;
        let same = old.len() == new.len() && old.iter().zip(&new).all(|(a, b)| a == b);
        if !same {
            for (a, b) in old.iter().zip(&new) {
                if a != b {
                    println!("   {org} {}: v1 {:?}\n   {org} {}: v2 {:?}", a.id, a.line, b.id, b.line);
                }
            }
            bail!("organization {org}: v2 reads differ from v1's");
        }
        let ids: Vec<&str> = new.iter().map(|s| s.id).collect();
        println!("   {org:<8} {} : identical results, item for item", ids.join(" "));
    }

    step("P16 (new in v2): acme's tasks due 2026-03-01..2026-03-07, across projects (gsi3)");
    let due = v2::tasks_due(&table, "acme", "2026-03-01", "2026-03-07").await?;
    for t in due.iter().take(8) {
        println!("   {} {:<8} #{:<3} {:<28} {}", t.due.as_deref().unwrap_or(""), t.project_id, t.number, t.title, t.assignee.as_deref().unwrap_or("(unassigned)"));
    }
    if due.len() > 8 {
        println!("   ... {} tasks in all", due.len());
    }
    ensure!(!due.is_empty() && due.windows(2).all(|w| w[0].due <= w[1].due), "gsi3 did not return tasks in due-date order");

    step("New writes go straight into v2's keys");
    let task = v2::create_task(
        &table,
        "acme",
        "gemini",
        NewTask { title: "Dock two capsules".into(), due: Some("2026-03-01".into()), ..NewTask::default() },
    )
    .await?;
    let due = v2::tasks_due(&table, "acme", "2026-03-01", "2026-03-01").await?;
    println!(
        "   P10 created gemini #{} due 2026-03-01 (unassigned); P16 for that day: {}",
        task.number,
        due.iter().map(|t| format!("{} #{}", t.project_id, t.number)).collect::<Vec<_>>().join(", ")
    );
    ensure!(due.contains(&task), "the new task is not in gsi3");
    Ok(())
}

/// Prints the stored key attributes of one item, as DynamoDB holds it.
async fn show_keys<T: Item>(label: &str, table: &Table, key: &T::Key) -> Result<()> {
    let key = T::key_of(key)?;
    let raw = table
        .client()
        .get_item()
        .table_name(table.name())
        .key(&table.design().pk_attr, AttributeValue::S(key.pk))
        .key(&table.design().sk_attr, AttributeValue::S(key.sk))
        .send()
        .await?
        .item
        .context("no such item")?;
    let mut keys: Vec<String> = raw
        .iter()
        .filter(|(k, _)| k.ends_with("pk") || k.ends_with("sk") || *k == "_et")
        .map(|(k, v)| format!("{k}={}", v.as_s().map(String::as_str).unwrap_or("?")))
        .collect();
    keys.sort();
    step(&format!("{label}:"));
    println!("   {}", keys.join(", "));
    Ok(())
}

fn print_summaries(summaries: &[Summary]) {
    for s in summaries {
        println!("   {:<4}{:<36} {}", s.id, s.pattern, s.line);
    }
}

async fn count_items(table: &Table) -> Result<usize> {
    Ok(count_entities(table.client(), table.name()).await?.values().sum())
}

/// Items per entity type (the `_et` attribute), by a scan.
async fn count_entities(client: &Client, table: &str) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .projection_expression("#et")
            .expression_attribute_names("#et", "_et")
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items() {
            // The migration's own record of the design has no entity type.
            if let Some(Ok(e)) = item.get("_et").map(AttributeValue::as_s) {
                *counts.entry(e.clone()).or_insert(0) += 1;
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(counts);
        }
    }
}

fn describe_counts(counts: &BTreeMap<String, usize>) -> String {
    let total: usize = counts.values().sum();
    let parts: Vec<String> = counts.iter().map(|(e, n)| format!("{n} {e}")).collect();
    format!("{total} items: {}", parts.join(", "))
}

/// The demo's live application: two writers that keep changing the tasks
/// of a tenant of their own (so the read patterns compared before and
/// after are untouched) while the table migrates, and the ledger of what
/// DynamoDB acknowledged.
mod live {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use anyhow::{ensure, Context, Result};
    use aws_sdk_dynamodb::Client;
    use singletable::Table;
    use singletable_examples::tracker::{v1, v2, NewTask};

    const ORG: &str = "umbrella";
    const PROJECT: &str = "live";
    const TASKS: u32 = 40;
    const STATUSES: [&str; 3] = ["todo", "doing", "done"];

    /// What the writers share with the operator and the check.
    #[derive(Default)]
    pub struct Writers {
        /// 1 or 2: the application version writing; 0: paused.
        version: AtomicU32,
        stop: AtomicBool,
        /// Writes in flight (the operator waits for none at cut-over).
        in_flight: AtomicU32,
        by_v1: AtomicU64,
        by_v2: AtomicU64,
        /// Task number -> (status, assignee) last acknowledged.
        ledger: Mutex<BTreeMap<u32, (String, Option<String>)>>,
        tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    }

    pub struct Report {
        pub acknowledged: u64,
        pub by_v1: u64,
        pub by_v2: u64,
        pub lost: usize,
        pub checked: usize,
    }

    /// The tenant's project and tasks, created before the counts are taken.
    pub async fn prepare(table: &Table) -> Result<()> {
        v1::create_project(table, ORG, PROJECT, "Live", "written to throughout the migration").await?;
        for n in 0..TASKS {
            v1::create_task(table, ORG, PROJECT, NewTask { title: format!("live task {n}"), ..NewTask::default() }).await?;
        }
        Ok(())
    }

    /// Starts two writers on version 1, each owning half of the tasks.
    pub async fn start(client: &Client, name: &str) -> Arc<Writers> {
        let w = Arc::new(Writers::default());
        w.version.store(1, Ordering::SeqCst);
        for writer in 0..2u32 {
            let (w2, v1t, v2t) = (w.clone(), v1_table(client, name), v2_table(client, name));
            let handle = tokio::spawn(async move {
                let mut step = writer;
                while !w2.stop.load(Ordering::SeqCst) {
                    step += 2;
                    let version = w2.version.load(Ordering::SeqCst);
                    if version == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    w2.in_flight.fetch_add(1, Ordering::SeqCst);
                    // Paused between the check and here: let it go.
                    if w2.version.load(Ordering::SeqCst) != version {
                        w2.in_flight.fetch_sub(1, Ordering::SeqCst);
                        continue;
                    }
                    let number = 1 + (step % TASKS);
                    let status = STATUSES[(step as usize / 3) % 3];
                    let assignee = (step % 5 != 0).then(|| ["ann", "bob", "cat"][step as usize % 3].to_string());
                    let written = match version {
                        1 => write(&v1t, number, status, assignee.as_deref(), true).await,
                        _ => write(&v2t, number, status, assignee.as_deref(), false).await,
                    };
                    if written.is_ok() {
                        w2.ledger.lock().expect("ledger").insert(number, (status.to_string(), assignee));
                        if version == 1 { &w2.by_v1 } else { &w2.by_v2 }.fetch_add(1, Ordering::SeqCst);
                    }
                    w2.in_flight.fetch_sub(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(4)).await;
                }
            });
            w.tasks.lock().expect("tasks").push(handle);
        }
        w
    }

    fn v1_table(client: &Client, name: &str) -> Table {
        Table::new(client.clone(), v1::design(name).expect("v1 design"))
    }

    fn v2_table(client: &Client, name: &str) -> Table {
        Table::new(client.clone(), v2::design(name).expect("v2 design"))
    }

    /// Status and assignee in one update (`tasks` of either version).
    async fn write(table: &Table, number: u32, status: &str, assignee: Option<&str>, old: bool) -> Result<(), singletable::Error> {
        if old {
            v1::set_task_status(table, ORG, PROJECT, number, status).await?;
            v1::assign_task(table, ORG, PROJECT, number, assignee).await?;
        } else {
            v2::set_task_status(table, ORG, PROJECT, number, status).await?;
            v2::assign_task(table, ORG, PROJECT, number, assignee).await?;
        }
        Ok(())
    }

    /// The operator: once the online apply is under way and has had time
    /// to catch up, pauses version 1 and asks for cut-over; once cut over,
    /// lets version 2 write and asks for completion; stops the writers when
    /// the apply is done. Returns the write pause in seconds.
    pub async fn operate(client: Client, name: String, w: Arc<Writers>) -> Result<f64> {
        let phase = |client: Client, name: String| async move { singletable_migrate::online::phase(&client, &name, "pk", "sk").await };
        let deadline = Instant::now() + Duration::from_secs(120);
        while phase(client.clone(), name.clone()).await?.is_none() {
            ensure!(Instant::now() < deadline, "the online apply did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The backfill of ~950 items takes a second or two here; the CLI
        // cuts over only once the new forms have caught up anyway.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let paused = Instant::now();
        w.version.store(0, Ordering::SeqCst);
        while w.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        singletable_migrate::online::request(&client, &name, "pk", "sk", "cutover").await.context("migrate cutover")?;
        while phase(client.clone(), name.clone()).await? != Some(singletable_migrate::Phase::CutOver) {
            ensure!(Instant::now() < deadline, "cut-over did not happen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        w.version.store(2, Ordering::SeqCst);
        let pause = paused.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(1)).await;
        singletable_migrate::online::request(&client, &name, "pk", "sk", "complete").await.context("migrate complete")?;
        while phase(client.clone(), name.clone()).await?.is_some() {
            ensure!(Instant::now() < deadline, "the apply did not complete");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        w.stop.store(true, Ordering::SeqCst);
        let tasks: Vec<_> = w.tasks.lock().expect("tasks").drain(..).collect();
        for t in tasks {
            t.await?;
        }
        Ok(pause)
    }

    /// Compares every task of the tenant, read through version 2, with the
    /// ledger.
    pub async fn check(client: &Client, name: &str, w: &Writers) -> Result<Report> {
        let table = v2_table(client, name);
        let ledger = w.ledger.lock().expect("ledger").clone();
        let mut lost = 0;
        for (number, (status, assignee)) in &ledger {
            let task = table.get::<v2::Task>(&(ORG.into(), PROJECT.into(), *number)).await?;
            match task {
                Some(t) if t.status == *status && t.assignee == *assignee => {}
                other => {
                    lost += 1;
                    println!("   lost: task {number}: ledger ({status}, {assignee:?}), table {:?}", other.map(|t| (t.status, t.assignee)));
                }
            }
        }
        let (by_v1, by_v2) = (w.by_v1.load(Ordering::SeqCst), w.by_v2.load(Ordering::SeqCst));
        Ok(Report { acknowledged: by_v1 + by_v2, by_v1, by_v2, lost, checked: ledger.len() })
    }
}
