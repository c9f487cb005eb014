//! Worker scaling of `singletable migrate apply`: aggregate items/s of 1,
//! 2 and 4 worker processes on one offline rekey, with a fixed latency
//! added to every request by a proxy in front of DynamoDB Local (8 ms by
//! default, like the real service), so throughput is bound by requests in
//! flight rather than by DynamoDB Local's single thread; then the write
//! budget (`--max-wcu`) held by 4 workers together.
//!
//! The first worker is this process (`Migrator::apply`, holding the lock);
//! the others are `singletable migrate apply plan.json --worker` child
//! processes of the release binary next to this one. Each worker has the
//! same requests in flight (`--concurrency`). A warm-up run comes first.
//!
//! Run it with `scripts/bench-scaling.sh [--items N] [--latency-ms L]
//! [--concurrency C] [--max-wcu W]`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use aws_sdk_dynamodb::Client;
use singletable::{Table, TableDesign};
use singletable_migrate::planner::{make_plan, PlanRequest};
use singletable_migrate::reserved::record_design;
use singletable_migrate::{ApplyOptions, Migrator, Plan};
use singletable_tests::faults::{FaultProxy, Faults};

mod v1 {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "Order", pk = "ORG#{org}", sk = "ORDER#{id}")]
    pub struct Order {
        pub org: String,
        pub id: String,
        pub note: String,
    }
}

mod v2 {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "Order", pk = "TENANT#{org}", sk = "ORDER#{id}")]
    pub struct Order {
        pub org: String,
        pub id: String,
        pub note: String,
    }
}

struct Opts {
    items: usize,
    latency_ms: u64,
    concurrency: u32,
    max_wcu: f64,
    segments: u32,
}

fn parse() -> Result<Opts> {
    let mut o = Opts { items: 12_000, latency_ms: 8, concurrency: 2, max_wcu: 600.0, segments: 16 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--items" => o.items = value()?.parse()?,
            "--latency-ms" => o.latency_ms = value()?.parse()?,
            "--concurrency" => o.concurrency = value()?.parse()?,
            "--max-wcu" => o.max_wcu = value()?.parse()?,
            "--segments" => o.segments = value()?.parse()?,
            "--help" | "-h" => {
                println!("bench-scaling [--items N] [--latency-ms L] [--concurrency C] [--max-wcu W] [--segments S]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

async fn client(endpoint: &str) -> Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(endpoint).load().await;
    Client::new(&conf)
}

/// A seeded table (written straight to DynamoDB Local) and its plan file.
async fn seed(direct: &Client, n: usize, dir: &std::path::Path) -> Result<(String, Plan, PathBuf)> {
    let name = format!("scaling-{}-{}", std::process::id(), fastrand::u32(..));
    let old = TableDesign::new(&name).entity::<v1::Order>().build()?;
    let new = TableDesign::new(&name).entity::<v2::Order>().build()?;
    let table = Table::new(direct.clone(), old.clone());
    table.create_table().await?;
    let orders: Vec<v1::Order> = (0..n).map(|i| v1::Order { org: format!("o{}", i % 97), id: format!("{i:08}"), note: "x".repeat(200) }).collect();
    table.batch_write().put_all(&orders).send().await?;
    record_design(direct, &old, &name).await?;
    let plan = make_plan(direct, &PlanRequest::new(new).table(&name)).await?.plan;
    let file = dir.join(format!("{name}-plan.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&plan)?)?;
    Ok((name, plan, file))
}

/// One run: `workers` workers (this process + children) on a fresh table;
/// returns the seconds from start to the end of the apply.
async fn run(direct: &Client, proxied: &Client, proxy_url: &str, o: &Opts, workers: usize, max_wcu: Option<f64>) -> Result<(f64, f64, usize)> {
    let dir = std::env::temp_dir();
    let (name, plan, file) = seed(direct, o.items, &dir).await?;
    let bin = std::env::current_exe()?.with_file_name("singletable");
    ensure!(bin.exists(), "{} is missing: build it with `cargo build --release -p singletable-migrate`", bin.display());
    let opts = ApplyOptions {
        segments: o.segments,
        concurrency: Some(o.concurrency),
        max_wcu,
        page_size: Some(100),
        lease: Duration::from_secs(6),
        ..ApplyOptions::default()
    };
    let started = Instant::now();
    let mut children = Vec::new();
    for _ in 1..workers {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args(["migrate", "apply"])
            .arg(&file)
            .args(["--worker", "--concurrency", &o.concurrency.to_string(), "--page-size", "100", "--lease-seconds", "6"])
            .env("AWS_ENDPOINT_URL_DYNAMODB", proxy_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(w) = max_wcu {
            cmd.args(["--max-wcu", &w.to_string()]);
        }
        children.push(cmd.spawn()?);
    }
    let steps = Arc::new(Steps::default());
    let report = Migrator::new(proxied.clone()).apply(&plan, &opts, steps.clone()).await?;
    let backfill = steps.backfill().context("the apply announced no rewrite and verify steps")?;
    // Every item moved, by whichever worker.
    let moved = o.items;
    let secs = started.elapsed().as_secs_f64();
    for mut c in children {
        let status = tokio::time::timeout(Duration::from_secs(60), c.wait()).await??;
        ensure!(status.success(), "a worker failed: {status}");
    }
    ensure!(report.verification.as_ref().is_some_and(|v| v.problems.is_empty()), "verification failed");
    direct.delete_table().table_name(&name).send().await?;
    Ok((secs, backfill, moved))
}

/// When the apply began rewriting and began verifying: the backfill, the
/// part the workers share.
#[derive(Default)]
struct Steps(std::sync::Mutex<(Option<Instant>, Option<Instant>)>);

impl Steps {
    fn backfill(&self) -> Option<f64> {
        let (a, b) = *self.0.lock().unwrap();
        Some(b?.duration_since(a?).as_secs_f64())
    }
}

impl singletable_migrate::Observer for Steps {
    fn event(&self, event: singletable_migrate::Event) {
        if let singletable_migrate::Event::Step { text, .. } = event {
            let mut t = self.0.lock().unwrap();
            if text.starts_with("rewrite") {
                t.0 = Some(Instant::now());
            } else if text.starts_with("verify") {
                t.1 = Some(Instant::now());
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = parse()?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").context("AWS_ENDPOINT_URL_DYNAMODB (scripts/bench-scaling.sh sets it)")?;
    let proxy = FaultProxy::start_to(&endpoint, 7).await;
    proxy.set(Faults::none().latency(o.latency_ms, o.latency_ms, 0.0, 0, 0));
    let direct = client(&endpoint).await;
    let proxied = client(proxy.url()).await;
    println!(
        "bench-scaling: offline rekey of {} items (~240 bytes), {} segments, {} requests in flight per worker, {} ms added to every request by a proxy",
        o.items, o.segments, o.concurrency, o.latency_ms
    );
    run(&direct, &proxied, proxy.url(), &Opts { items: o.items / 4, ..o }, 1, None).await?;
    println!("warm-up done");
    let mut base = 0.0;
    for workers in [1usize, 2, 4] {
        let (secs, backfill, moved) = run(&direct, &proxied, proxy.url(), &o, workers, None).await?;
        let rate = moved as f64 / backfill;
        if workers == 1 {
            base = rate;
        }
        println!(
            "{workers} worker(s): backfill {backfill:6.2} s = {rate:6.0} items/s, {:.2}x one worker = {:.2} of linear (whole apply {secs:.2} s with lock, verification, record)",
            rate / base,
            rate / base / workers as f64
        );
    }
    // The budget: every item moved is a put and a delete of one unit each.
    let (_, backfill, moved) = run(&direct, &proxied, proxy.url(), &o, 4, Some(o.max_wcu)).await?;
    let spent = 2.0 * moved as f64 / backfill;
    println!(
        "4 workers under --max-wcu {:.0}: {spent:.0} write units/s over the backfill ({:+.1}% of the budget), {backfill:.2} s",
        o.max_wcu,
        (spent / o.max_wcu - 1.0) * 100.0
    );
    Ok(())
}
