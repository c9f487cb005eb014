//! Batch-write benchmark: `Table::batch_write` against a hand-written
//! BatchWriteItem loop with the same concurrency, side by side on one
//! DynamoDB endpoint (DynamoDB Local).
//!
//! ```text
//! export AWS_ENDPOINT_URL_DYNAMODB=$(scripts/dynamodb-local.sh start)
//! cargo run --release -p singletable-examples --bin bench-batch [ITEMS [ROUNDS [CONCURRENCY]]]
//! scripts/dynamodb-local.sh stop
//! ```
//!
//! Defaults: 20 000 items, 5 rounds, concurrency 8. A plain program, not
//! a timed test: it prints a table and never fails on a number.
//!
//! Method: one table, created fresh. A warm-up pass of each writer (2 000
//! items), then ROUNDS rounds; in each round both writers write ITEMS new
//! items (their own key range, so neither overwrites the other), in an
//! order that alternates from round to round so that drift in the
//! server's state is shared. Both writers do the same work per item: the
//! derive's `to_item`, chunks of 25, at most CONCURRENCY calls in flight,
//! and resubmission of `UnprocessedItems` (none come back from Local).
//! `Table` adds what it always does: the item size check, duplicate-key
//! detection across the batch, and bookkeeping of every request's key so
//! that a failure can list it. The figure per round is items/s of the
//! whole write, and the client's CPU time per item (the bench process's
//! user + system time, from /proc; DynamoDB Local is another process);
//! the summary gives the medians over rounds and the ratio.

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt};
use singletable::{Item, Table, TableDesign};

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Order", pk = "CUST#{customer}", sk = "ORDER#{seq:010}")]
#[item(index(name = "gsi1", pk = "STATUS#{status}", sk = "ORDER#{seq:010}"))]
struct Order {
    customer: String,
    seq: u64,
    status: String,
    total_cents: u64,
    note: String,
    lines: Vec<String>,
}

fn orders(run: &str, n: usize) -> Vec<Order> {
    (0..n)
        .map(|i| Order {
            customer: format!("{run}-c{}", i % 500),
            seq: i as u64,
            status: ["open", "paid", "shipped"][i % 3].to_string(),
            total_cents: 1000 + (i as u64 * 37) % 100_000,
            note: "leave at the door, ring twice".into(),
            lines: vec!["sku-1 x2".into(), "sku-7 x1".into()],
        })
        .collect()
}

/// The baseline: what a careful hand-written loop does.
async fn hand_written(client: &Client, table: &str, items: &[Order], concurrency: usize) -> anyhow::Result<()> {
    let mut requests = Vec::with_capacity(items.len());
    for item in items {
        let put = PutRequest::builder().set_item(Some(item.to_item()?)).build()?;
        requests.push(WriteRequest::builder().put_request(put).build());
    }
    let mut chunks: Vec<Vec<WriteRequest>> = Vec::new();
    let mut it = requests.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(25).collect());
    }
    let results: Vec<anyhow::Result<()>> = stream::iter(chunks)
        .map(|chunk| async move {
            let mut pending = chunk;
            let mut attempt = 0u32;
            loop {
                let out = client.batch_write_item().request_items(table, pending).send().await?;
                let left = out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default();
                if left.is_empty() {
                    return Ok(());
                }
                attempt += 1;
                anyhow::ensure!(attempt < 8, "{} items still unprocessed", left.len());
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
                pending = left;
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn through_table(table: &Table, items: &[Order], concurrency: usize) -> anyhow::Result<()> {
    table.batch_write().put_all(items).concurrency(concurrency).send().await?;
    Ok(())
}

/// CPU time (user + system) of this process so far, from /proc (Linux;
/// 0 elsewhere). DynamoDB Local runs in another process, so this is the
/// client's own cost: a load-independent cross-check of the throughput.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: usize| -> anyhow::Result<usize> {
        Ok(match args.get(i) {
            Some(a) => a.parse()?,
            None => default,
        })
    };
    let (n, rounds, concurrency) = (arg(0, 20_000)?, arg(1, 5)?.max(1), arg(2, 8)?.max(1));

    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") else {
        eprintln!("bench-batch: set AWS_ENDPOINT_URL_DYNAMODB (e.g. $(scripts/dynamodb-local.sh start))");
        std::process::exit(2);
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).endpoint_url(&endpoint).region(Region::new("us-east-1"));
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        loader = loader.credentials_provider(Credentials::new("local", "local", None, None, "bench-batch"));
    }
    let client = Client::new(&loader.load().await);
    let name = format!("bench-batch-{}", std::process::id());
    let table = Table::new(client.clone(), TableDesign::new(&name).entity::<Order>().build()?);
    table.create_table().await?;
    println!("bench-batch: {n} items per write, {rounds} rounds, concurrency {concurrency}, endpoint {endpoint}, table {name}");

    // Warm-up: connections, JIT, table pages.
    hand_written(&client, &name, &orders("warm-hand", 2_000), concurrency).await?;
    through_table(&table, &orders("warm-table", 2_000), concurrency).await?;

    let (mut hand, mut tab) = (Vec::new(), Vec::new());
    let (mut hand_cpu, mut tab_cpu) = (Vec::new(), Vec::new());
    println!("\nround  order         hand-written items/s   Table items/s   ratio   client CPU us/item (hand, Table)");
    for round in 0..rounds {
        let hand_items = orders(&format!("r{round}-hand"), n);
        let table_items = orders(&format!("r{round}-table"), n);
        let table_first = round % 2 == 1;
        let (mut h, mut t, mut hc, mut tc) = (0.0, 0.0, 0.0, 0.0);
        for step in 0..2 {
            let run_table = (step == 0) == table_first;
            let started = Instant::now();
            let cpu = cpu_seconds();
            if run_table {
                through_table(&table, &table_items, concurrency).await?;
                t = n as f64 / started.elapsed().as_secs_f64();
                tc = (cpu_seconds() - cpu) * 1e6 / n as f64;
            } else {
                hand_written(&client, &name, &hand_items, concurrency).await?;
                h = n as f64 / started.elapsed().as_secs_f64();
                hc = (cpu_seconds() - cpu) * 1e6 / n as f64;
            }
        }
        println!(
            "{round:>5}  {:<12}  {h:>20.0}   {t:>13.0}   {:.3}   {hc:.1}, {tc:.1}",
            if table_first { "Table first" } else { "hand first" },
            t / h
        );
        hand.push(h);
        tab.push(t);
        hand_cpu.push(hc);
        tab_cpu.push(tc);
    }
    let (mh, mt) = (median(&mut hand), median(&mut tab));
    println!("\nmedian  hand-written {mh:.0} items/s, Table {mt:.0} items/s: Table / hand-written = {:.3}", mt / mh);

    let (mhc, mtc) = (median(&mut hand_cpu), median(&mut tab_cpu));
    println!("median client CPU per item  hand-written {mhc:.1} us, Table {mtc:.1} us (Table adds {:.1} us)", mtc - mhc);

    // Everything written: 2 warm-ups + 2 writers x rounds. (DynamoDB
    // Local's ItemCount is exact at once; the real service's lags.)
    let desc = client.describe_table().table_name(&name).send().await?;
    let count = desc.table().and_then(|t| t.item_count()).unwrap_or(-1);
    println!("items in the table: {count} (expected {})", 4_000 + 2 * n * rounds);
    table.delete_table().await?;
    Ok(())
}
