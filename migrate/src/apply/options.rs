//! What an apply takes and gives: its options, the events it reports as
//! it goes, and its report (with the verification's). The bottom of
//! `apply`: every other file of it may use these.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::plan::Defaults;

/// Items per scan page (and checkpoint) unless [`ApplyOptions::page_size`]
/// says otherwise: a crash redoes at most this many items per segment.
pub const DEFAULT_PAGE_ITEMS: i32 = 2_000;

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Parallel scan segments (a resumed apply keeps the count it started
    /// with).
    pub segments: u32,
    /// Requests in flight at once (scan pages, batch writes, updates), over
    /// all segments together; `None`: one per segment. The writes of a page
    /// spread over every free slot, so a segment holding most of the table
    /// (segments split by partition key, and single-table designs often
    /// have a few big partitions) does not leave the other slots idle.
    pub concurrency: Option<u32>,
    /// Write budget in write capacity units per second (`None`: as fast as
    /// the table takes it).
    pub max_wcu: Option<f64>,
    /// Allow destructive changes (index deletion, entity removal).
    pub allow_destroy: bool,
    /// Where exports of destroyed items go.
    pub export_dir: PathBuf,
    /// Values for attributes old items lack.
    pub defaults: Defaults,
    /// How long the lock lasts without a heartbeat.
    pub lease: Duration,
    /// Who holds the lock (shown to a second apply).
    pub owner: String,
    /// Items per scan page, and so per checkpoint; `None`: at most
    /// [`DEFAULT_PAGE_ITEMS`], fewer when DynamoDB's 1 MB page fills first.
    /// The bound is what a `kill -9` can cost: a resumed apply redoes at
    /// most one page per segment. Large pages are cheaper: while a
    /// segment's scan creeps along page by page, the items it writes in
    /// their new form land ahead of it and are read again (and kept), and
    /// every page costs a Scan call and a checkpoint. Memory grows with
    /// it: a segment holds its page's new items and the next page, about
    /// 15 MB per segment for 1 MB pages of ~300-byte items.
    pub page_size: Option<i32>,
    /// Set to stop at the next page boundary (Ctrl-C); the apply returns
    /// [`MigrateError::Interrupted`](crate::MigrateError::Interrupted) with its
    /// checkpoints saved.
    pub cancel: Arc<AtomicBool>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            segments: 4,
            concurrency: None,
            max_wcu: None,
            allow_destroy: false,
            export_dir: PathBuf::from("."),
            defaults: Defaults::new(),
            lease: Duration::from_secs(30),
            owner: format!("apply pid {}", std::process::id()),
            page_size: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl ApplyOptions {
    /// Requests in flight at once: [`concurrency`](Self::concurrency), or
    /// one per segment.
    pub fn in_flight(&self) -> u32 {
        self.concurrency.unwrap_or(self.segments).max(1)
    }
}

/// What an apply reports as it goes. The library never prints; the CLI
/// turns these into a progress bar or log lines.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A step of the plan begins.
    Step { number: usize, total: usize, text: String },
    /// Backfill progress: items scanned so far of about `total`.
    Progress { scanned: u64, written: u64, total: Option<u64> },
    /// Verification progress: items checked so far of about `total`.
    Verified { checked: u64, total: Option<u64> },
    /// Something the user should know that does not stop the apply.
    Warning(String),
}

/// Receives [`Event`]s.
pub trait Observer: Send + Sync {
    /// Called from any task of the apply.
    fn event(&self, event: Event);
}

/// Logs every event through `tracing` at debug level (the observer is
/// what shows them to a user; the CLI prints them), then hands it on: what
/// every apply's observer is wrapped in, so `RUST_LOG=singletable_migrate=debug`
/// shows the phases on the log's timeline whatever the observer does.
pub(crate) struct Traced {
    pub table: String,
    pub inner: std::sync::Arc<dyn Observer>,
}

impl Traced {
    pub(crate) fn wrap(table: &str, inner: std::sync::Arc<dyn Observer>) -> std::sync::Arc<dyn Observer> {
        std::sync::Arc::new(Traced { table: table.to_string(), inner })
    }
}

impl Observer for Traced {
    fn event(&self, event: Event) {
        let table = self.table.as_str();
        match &event {
            Event::Step { number, total, text } => tracing::debug!(table, step = *number, of = *total, "{text}"),
            Event::Progress { scanned, written, total } => tracing::debug!(table, scanned, written, total, "progress"),
            Event::Verified { checked, total } => tracing::debug!(table, checked, total, "verified"),
            Event::Warning(text) => tracing::debug!(table, warning = true, "{text}"),
        }
        self.inner.event(event);
    }
}

/// Ignores every event.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: Event) {}
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// Items read by the backfill scan.
    pub scanned: u64,
    /// Items moved to a new table key.
    pub moved: u64,
    /// Items whose index keys were updated in place.
    pub updated: u64,
    /// Items deleted (entities removed from the design).
    pub deleted: u64,
    /// Items of no known entity, left untouched.
    pub unknown: u64,
    /// Whether the backfill resumed from checkpoints.
    pub resumed: bool,
    /// Export files written before destructive steps.
    pub exports: Vec<PathBuf>,
    /// The verification pass.
    pub verification: Option<VerifyReport>,
    /// Steps to switch the application over (copy to a new table).
    pub cutover: Vec<String>,
    /// Warnings (also sent as events).
    pub warnings: Vec<String>,
}

/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Items per entity after apply.
    pub counts: BTreeMap<String, u64>,
    /// Items of no entity of the new design.
    pub unknown: u64,
    /// Anything wrong; empty when the table conforms.
    pub problems: Vec<String>,
}
