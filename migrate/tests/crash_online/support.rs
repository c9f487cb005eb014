//! What both crash tests of the online apply share: the `singletable`
//! binary run as a user runs it (its log watched, killed with SIGKILL), a
//! time budget that fails the test clearly, the lease wait after a kill,
//! and the table's reserved items.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use singletable_migrate::reserved::{reserved_key, LOCK_SK, RESERVED_PK};

pub type Raw = HashMap<String, AttributeValue>;

/// A test's time budget: every wait is bounded by it, and running out
/// fails the test saying where.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    budget: Duration,
    test: &'static str,
}

impl Deadline {
    pub fn new(test: &'static str, budget: Duration) -> Deadline {
        Deadline { started: Instant::now(), budget, test }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Fails the test when the budget is spent.
    pub fn check(&self, at: &str) {
        if self.started.elapsed() > self.budget {
            panic!(
                "{}: over its time budget of {} s (after {:.1} s), at: {at}",
                self.test,
                self.budget.as_secs(),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// How a `singletable` process is started: the DynamoDB Local endpoint and
/// static local credentials, nothing from the developer's environment.
pub fn command(endpoint: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_singletable"));
    c.stdin(Stdio::null())
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB_STREAMS")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .kill_on_drop(true);
    c
}

/// Runs `singletable ARGS` to its end; returns (exit code, stdout + stderr).
pub async fn run_to_end(endpoint: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), command(endpoint).args(args).output())
        .await
        .unwrap_or_else(|_| panic!("`singletable {}` did not finish within 60 s", args.join(" ")))
        .expect("the singletable binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// A running `singletable migrate apply`, its stdout and stderr in one log
/// file.
pub struct Apply {
    pub child: tokio::process::Child,
    pub log: PathBuf,
    pub started: Instant,
}

/// What a wait on a running apply saw.
#[derive(Debug)]
pub enum Seen {
    /// The log says it.
    Said,
    /// The process ended first (exit code).
    Exited(Option<i32>),
}

impl Apply {
    pub fn spawn(endpoint: &str, args: &[&str], log: &Path) -> Apply {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command(endpoint).args(args).stdout(out).stderr(err).spawn().expect("the singletable binary runs");
        Apply { child, log: log.to_path_buf(), started: Instant::now() }
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn said(&self, what: &str) -> bool {
        self.text().contains(what)
    }

    pub fn exited(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().unwrap().map(|s| s.code())
    }

    /// Waits until the log says `what` or the process exits; fails the
    /// test after `limit` or when the deadline passes.
    pub async fn wait_for(&mut self, what: &str, limit: Duration, deadline: &Deadline) -> Seen {
        let started = Instant::now();
        loop {
            if self.said(what) {
                return Seen::Said;
            }
            if let Some(code) = self.exited() {
                // The log may have been written just before the exit.
                return if self.said(what) { Seen::Said } else { Seen::Exited(code) };
            }
            if started.elapsed() > limit {
                panic!("the apply did not say {what:?} within {} s; its log ({}):\n{}", limit.as_secs(), self.log.display(), self.text());
            }
            deadline.check(&format!("waiting for {what:?} in {}", self.log.display()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits up to `d` for the process to exit; `None` if it still runs.
    pub async fn wait_at_most(&mut self, d: Duration) -> Option<Option<i32>> {
        match tokio::time::timeout(d, self.child.wait()).await {
            Ok(status) => Some(status.unwrap().code()),
            Err(_) => None,
        }
    }

    /// Waits for the process to exit, within `limit`.
    pub async fn wait_exit(&mut self, limit: Duration, deadline: &Deadline) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(code) = self.wait_at_most(Duration::from_millis(100)).await {
                return code;
            }
            if started.elapsed() > limit {
                panic!("the apply did not exit within {} s; its log ({}):\n{}", limit.as_secs(), self.log.display(), self.text());
            }
            deadline.check(&format!("waiting for the apply logging to {} to exit", self.log.display()));
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix); `false` when the process
    /// had exited already.
    pub async fn kill_9(&mut self) -> bool {
        if self.exited().is_some() {
            return false;
        }
        self.child.kill().await.unwrap();
        true
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Waits until a killed apply's lock has expired; returns how long.
pub async fn wait_for_lease(client: &Client, table: &str) -> Duration {
    let started = Instant::now();
    let lock = client.get_item().table_name(table).set_key(Some(reserved_key("pk", "sk", LOCK_SK))).consistent_read(true).send().await.unwrap();
    if let Some(expires) = lock.item.as_ref().and_then(|i| i.get("expires_at_ms")).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok()) {
        // Free once `expires_at_ms < now`.
        tokio::time::sleep(Duration::from_millis(expires.saturating_sub(now_ms()) + 100)).await;
    }
    started.elapsed()
}

pub fn text(item: &Raw, attr: &str) -> String {
    item.get(attr).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

pub fn is_reserved(item: &Raw) -> bool {
    text(item, "pk") == RESERVED_PK
}

/// The sort keys of the toolkit's own items in `items`.
pub fn reserved_sks(items: &[Raw]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().filter(|i| is_reserved(i)).map(|i| text(i, "sk")).collect();
    v.sort();
    v
}

/// Every item, consistent scans over 4 segments.
pub async fn scan_all(client: &Client, table: &str) -> Vec<Raw> {
    let parts = futures::future::join_all((0..4).map(|segment| async move {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .segment(segment)
                .total_segments(4)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return out;
            }
        }
    }))
    .await;
    parts.into_iter().flatten().collect()
}

/// Where logs and plan files go.
pub fn work_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crash-online");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `singletable migrate plan --design DESIGN --out PLAN` (the table is
/// the design's); fails the test unless the plan was saved.
pub async fn save_plan(endpoint: &str, design_file: &Path, plan_file: &Path) -> String {
    let (code, out) = run_to_end(endpoint, &["migrate", "plan", "--design", path(design_file), "--out", path(plan_file)]).await;
    assert_eq!(code, Some(0), "`migrate plan --out` failed:\n{out}");
    assert!(plan_file.exists(), "no plan saved:\n{out}");
    out
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn seed_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.strip_prefix("0x").map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok()))
        .unwrap_or(default)
}
