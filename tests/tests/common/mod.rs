//! Helpers shared by `derive_props` and `table_ops`: a table per test,
//! raw scans, and a property-test runner that keeps to at least 256 cases.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use singletable::{Table, TableDesign};

/// The smallest number of cases any property runs, whatever
/// `PROPTEST_CASES` says (it may raise the count, never lower it).
pub const MIN_CASES: u32 = 256;

/// Runs a property over `strategy` for `max(cases, PROPTEST_CASES)` cases
/// and panics with proptest's report (minimal failing input) on failure.
/// Prints how many cases ran and how long they took. `source` is the
/// caller's `file!()`, where proptest keeps failing seeds.
pub fn check<S, F>(source: &'static str, name: &str, cases: u32, strategy: S, test: F)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Result<(), TestCaseError>,
{
    assert!(cases >= MIN_CASES, "{name}: fewer than {MIN_CASES} cases");
    // `Config::default()` reads PROPTEST_* from the environment.
    let defaults = Config::default();
    let config = Config {
        cases: cases.max(defaults.cases),
        source_file: Some(source),
        // Failing seeds go beside the test file (`*.proptest-regressions`).
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        // A failing case is re-run while shrinking; keep that bounded
        // when every run talks to DynamoDB Local.
        max_shrink_iters: defaults.max_shrink_iters.min(2048),
        ..defaults
    };
    let total = config.cases;
    let runs = AtomicUsize::new(0);
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let result = runner.run(&strategy, |value| {
        runs.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    match result {
        Ok(()) => eprintln!(
            "{name}: {total} cases passed ({} runs) in {:.2?}",
            runs.load(Ordering::Relaxed),
            started.elapsed()
        ),
        Err(e) => panic!("{name}: {e}\n{runner}"),
    }
}

/// Turns any displayable error into a failed test case.
pub fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// A fresh table named after `prefix`, created from `entities` with
/// `Table::create_table` (key schema and every GSI).
pub async fn new_table(prefix: &str, entities: Vec<singletable::EntityDesign>) -> Table {
    let name = singletable_tests::unique_table_name(prefix);
    let design = TableDesign::from_entities(name, entities).expect("design");
    let table = Table::new(singletable_tests::client().await, design);
    table.create_table().await.expect("create_table");
    table
}

/// Every item of the table (or of one index), sorted by its table key so
/// that two snapshots compare equal when the table is unchanged.
pub async fn scan(client: &Client, table: &str, index: Option<&str>) -> Vec<HashMap<String, AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_index_name(index.map(str::to_string))
            .consistent_read(index.is_none())
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan {table}: {}", DisplayErrorContext(&e)));
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            break;
        }
    }
    out.sort_by_key(|item| (text(item, "pk"), text(item, "sk")));
    out
}

fn text(item: &HashMap<String, AttributeValue>, attr: &str) -> String {
    item.get(attr).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}
