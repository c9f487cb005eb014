//! Applying a plan offline: the [`Migrator`].
//!
//! Apply is locked (a lease item with heartbeat, so a second apply on the
//! same table fails fast; workers pause while the lease is unconfirmed and
//! stop if another apply took it), checkpointed per scan segment (a crash, `kill
//! -9` or Ctrl-C resumes where it stopped), idempotent (an item already in
//! its new form is left alone, so re-running a finished apply changes
//! nothing), parallel (scan segments, and a pool of requests in flight
//! shared by all of them), rate-limited (a write-capacity budget) and
//! verified (counts and template conformance per entity).
//!
//! The table ends clean: a finished apply removes every checkpoint (an
//! abandoned migration's too, so they never speak for a table whose design
//! moved on) and its lock, and an apply with nothing to do removes an
//! expired lock left by one killed after its last step.
//!
//! A key move writes the new item before deleting the old one, so at no
//! instant does an item exist in neither form. Index-only changes update
//! in place, on the condition that the attributes the keys were rendered
//! from did not change meanwhile.
//!
//! This is the **offline** apply, for a maintenance window: it assumes
//! nobody writes the table while it runs. A write to an old-form item after
//! it was read is not carried over, and a delete may be undone. On a table
//! that serves traffic use the online apply
//! ([`Migrator::start_online`](crate::online)), which keeps every
//! acknowledged write.

pub(crate) mod backfill;
mod options;
pub(crate) mod schema;
pub(crate) mod state;
pub(crate) mod verify;
pub(crate) mod workers;
pub(crate) mod write;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use singletable::TableDesign;

pub use crate::plan::Defaults;
pub use options::{ApplyOptions, ApplyReport, Event, Observer, Quiet, VerifyReport, DEFAULT_PAGE_ITEMS};
pub(crate) use options::Traced;

use crate::error::MigrateError;
use crate::fingerprint::{fingerprint, Fnv64};
use crate::live::describe;
use crate::plan::{Change, Plan};
use crate::reserved::{read_recorded_design, record_design};
use state::{Checkpoints, Lease, Reserved};

/// What [`Migrator::prepare`] found and settled.
pub(crate) struct Prepared {
    pub live: crate::live::LiveTable,
    /// The table records the plan's target design already: an apply of
    /// this plan got at least that far (and verified first); there is
    /// nothing left to move.
    pub already_applied: bool,
    /// The options with the plan's saved defaults under the ones given.
    pub opts: ApplyOptions,
    pub at: Reserved,
    pub checkpoints: Checkpoints,
}

/// Applies plans to tables through an injected client.
#[derive(Debug, Clone)]
pub struct Migrator {
    pub(crate) client: Client,
    /// For the online apply, which reads the table's stream.
    pub(crate) streams: Option<aws_sdk_dynamodbstreams::Client>,
}

/// A stable identifier of the migration from one design to another, so a
/// resumed apply finds its own checkpoints.
pub(crate) fn migration_id(plan: &Plan, defaults: &Defaults) -> String {
    let mut h = Fnv64::new();
    h.write_str(&plan.table);
    h.write_str(&plan.from.as_ref().map(TableDesign::to_json).unwrap_or_default());
    h.write_str(&plan.to.to_json());
    let mut d: Vec<String> = defaults.iter().map(|((e, a), v)| format!("{e}.{a}={v:?}")).collect();
    d.sort();
    for line in d {
        h.write_str(&line);
    }
    format!("{:016x}", h.finish())
}

/// Whether the table is as the plan found it, but for what an apply of
/// this same plan did before it was killed: indexes it created or deleted,
/// the design it recorded (its own target). Such a table resumes the plan;
/// any other change makes it stale.
fn own_progress(plan: &Plan, live: &crate::live::LiveTable, recorded: Option<&TableDesign>) -> bool {
    let mut before = live.clone();
    before.indexes.retain(|i| !plan.changes.iter().any(|c| matches!(c, Change::CreateIndex { index, .. } if index.name == i.name && i.matches(index))));
    for c in &plan.changes {
        if let Change::DeleteIndex { index } = c {
            if !before.indexes.iter().any(|i| i.name == index.name) {
                before.indexes.push(crate::live::LiveIndex {
                    name: index.name.clone(),
                    pk_attrs: vec![index.pk_attr.clone()],
                    sk_attrs: index.sk_attr.iter().cloned().collect(),
                    status: "ACTIVE".into(),
                });
            }
        }
    }
    // The design recorded before: the plan's source (recorded, or given
    // with --from for a table never migrated), or none.
    let candidates: Vec<Option<&TableDesign>> = if recorded == Some(&plan.to) { vec![plan.from.as_ref(), None] } else { vec![recorded] };
    candidates.into_iter().any(|r| fingerprint(&before, r) == plan.fingerprint)
}

impl Migrator {
    /// A migrator using `client`.
    pub fn new(client: Client) -> Self {
        Migrator { client, streams: None }
    }

    /// The DynamoDB Streams client the online apply reads the table's
    /// stream with (built from the same `SdkConfig` as the DynamoDB client;
    /// against DynamoDB Local, with the same endpoint).
    pub fn with_streams(mut self, streams: aws_sdk_dynamodbstreams::Client) -> Self {
        self.streams = Some(streams);
        self
    }

    /// What every apply checks before it writes anything: the plan is not
    /// stale (unless its own interrupted apply changed the table, or
    /// `resuming` says an online apply of it is under way), nothing blocks
    /// it, destruction is allowed if it destroys, and the defaults name
    /// entities of the new design.
    pub(crate) async fn prepare(
        &self,
        plan: &Plan,
        opts: &ApplyOptions,
        observer: &dyn Observer,
        resuming: Option<bool>,
    ) -> Result<Prepared, MigrateError> {
        let live = describe(&self.client, &plan.table).await?;
        let recorded = if live.exists {
            let (pk, sk) = (live.pk_attr.as_deref().unwrap_or(&plan.to.pk_attr), live.sk_attr.as_deref().unwrap_or(&plan.to.sk_attr));
            read_recorded_design(&self.client, &plan.table, pk, sk).await?
        } else {
            None
        };
        // Defaults saved with the plan, overridden by any given now.
        let mut defaults = plan.defaults()?;
        defaults.extend(opts.defaults.clone());
        let opts = ApplyOptions { defaults, ..opts.clone() };
        let at = Reserved {
            client: self.client.clone(),
            table: plan.table.clone(),
            pk_attr: plan.to.pk_attr.clone(),
            sk_attr: plan.to.sk_attr.clone(),
        };
        let checkpoints = Checkpoints { at: at.clone(), migration: migration_id(plan, &opts.defaults) };
        if !plan.fingerprint.is_empty() {
            let now = fingerprint(&live, recorded.as_ref());
            let own_progress = own_progress(plan, &live, recorded.as_ref());
            if now != plan.fingerprint && !own_progress {
                // The plan's own interrupted apply changed the table (moved
                // items, the lock, checkpoints): resuming it is safe, since
                // every step is idempotent. Anything else is stale.
                let resuming = match resuming {
                    Some(known) => known,
                    None => live.exists && checkpoints.load().await?.is_some(),
                };
                if !resuming {
                    return Err(MigrateError::StalePlan { table: plan.table.clone(), planned: plan.fingerprint.clone(), now });
                }
                observer.event(Event::Warning(format!(
                    "table `{}` changed since planning because an earlier apply of this plan was interrupted; resuming it",
                    plan.table
                )));
            }
        }
        let errors = plan.blocking_errors();
        if !errors.is_empty() {
            return Err(MigrateError::Blocked { table: plan.table.clone(), errors });
        }
        let destroys: Vec<String> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::DeleteIndex { index } => Some(format!("index `{}`", index.name)),
                Change::RemoveEntity { entity } => Some(format!("every `{entity}` item")),
                _ => None,
            })
            .collect();
        if !destroys.is_empty() && !opts.allow_destroy {
            return Err(MigrateError::Destructive { table: plan.table.clone(), what: destroys.join(", ") });
        }
        for (entity, attr) in opts.defaults.keys() {
            if plan.to.entity(entity).is_none() {
                return Err(MigrateError::Other(format!("--default {entity}.{attr}: no entity `{entity}` in the new design")));
            }
        }
        let already_applied = !plan.changes.is_empty() && recorded.as_ref() == Some(&plan.to) && own_progress(plan, &live, recorded.as_ref());
        Ok(Prepared { live, opts, at, checkpoints, already_applied })
    }

    /// Applies `plan`. See the module docs for the guarantees.
    pub async fn apply(&self, plan: &Plan, opts: &ApplyOptions, observer: Arc<dyn Observer>) -> Result<ApplyReport, MigrateError> {
        let observer = options::Traced::wrap(&plan.table, observer);
        let Prepared { live, opts, at, checkpoints, already_applied } = self.prepare(plan, opts, &*observer, None).await?;
        let opts = &opts;
        let mut report = ApplyReport::default();
        if already_applied {
            // Run again after it recorded its design (killed before it let
            // go of the lock, or simply twice): tidy up, do nothing else.
            if let Some(owner) = Lease::clear_expired(&at).await? {
                observer.event(Event::Warning(format!("removed the expired lock of an apply by `{owner}` that stopped after its last step")));
            }
            let warning = format!("table `{}` already records this plan's design: the plan was applied; nothing to do", plan.table);
            observer.event(Event::Warning(warning.clone()));
            report.warnings.push(warning);
            return Ok(report);
        }
        if plan.changes.is_empty() {
            if live.exists {
                if let Some(owner) = Lease::clear_expired(&at).await? {
                    observer.event(Event::Warning(format!(
                        "removed the expired lock of an apply by `{owner}` that stopped after its last step"
                    )));
                }
            }
            return Ok(report);
        }
        if let Some(Change::CopyToNewTable { from, to, .. }) = plan.changes.first() {
            return schema::copy_to_new_table(&self.client, plan, from, to, opts, observer, report).await;
        }
        let creates_table = plan.changes.iter().any(|c| matches!(c, Change::CreateTable { .. }));
        if creates_table {
            observer.event(Event::Step { number: 1, total: quiet_steps(plan), text: format!("create table `{}`", plan.table) });
            schema::create_table(&self.client, &plan.to, &mut report, &*observer).await?;
        }

        let lease = Lease::acquire(&at, &opts.owner, opts.lease).await?;
        let result = self.apply_locked(plan, opts, observer, &checkpoints, &lease, &mut report).await;
        match result {
            Ok(()) => {
                lease.release().await?;
                Ok(report)
            }
            Err(e) => {
                // Let go of the lock so a resume can start at once; the
                // checkpoints stay.
                let _ = lease.release().await;
                Err(e)
            }
        }
    }

    async fn apply_locked(
        &self,
        plan: &Plan,
        opts: &ApplyOptions,
        observer: Arc<dyn Observer>,
        checkpoints: &Checkpoints,
        lease: &Lease,
        report: &mut ApplyReport,
    ) -> Result<(), MigrateError> {
        let migration = &checkpoints.migration;
        let mut backfilled = false;
        let total = quiet_steps(plan);
        // Numbered as announced: the create-table step, if any, was 1.
        let number = std::sync::atomic::AtomicUsize::new(usize::from(plan.changes.iter().any(|c| matches!(c, Change::CreateTable { .. }))));
        let step = |text: String| {
            let n = number.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            observer.event(Event::Step { number: n, total, text })
        };
        for change in &plan.changes {
            match change {
                Change::CreateTable { .. } | Change::AddEntity { .. } => {}
                Change::CopyToNewTable { .. } => unreachable!("handled before locking"),
                Change::UpdateTtl { .. } | Change::UpdateStream { .. } | Change::UpdatePointInTimeRecovery { .. } => {
                    step(format!("update settings of `{}`", plan.table));
                    schema::apply_setting(&self.client, &plan.table, change, report, &*observer).await?;
                }
                Change::DeleteIndex { index } => {
                    step(format!("delete index `{}`", index.name));
                    schema::delete_index(&self.client, &plan.table, &index.name).await?;
                }
                Change::CreateIndex { index, .. } => {
                    step(format!("create index `{}` and wait until ACTIVE", index.name));
                    schema::create_index(&self.client, &plan.table, index).await?;
                }
                Change::Rewrite(_) | Change::RemoveEntity { .. } if !backfilled => {
                    backfilled = true;
                    let removed: HashSet<&str> = plan
                        .changes
                        .iter()
                        .filter_map(|c| if let Change::RemoveEntity { entity } = c { Some(entity.as_str()) } else { None })
                        .collect();
                    if !removed.is_empty() {
                        step(format!("export items of removed entities before deleting them ({})", removed.iter().copied().collect::<Vec<_>>().join(", ")));
                        let path = opts.export_dir.join(format!("{}-{migration}-removed.jsonl", plan.table));
                        backfill::export(&self.client, plan, &removed, &path, opts.segments, opts.in_flight()).await?;
                        report.exports.push(path);
                    }
                    step("rewrite items (parallel scan)".to_string());
                    backfill::run(&self.client, plan, opts, checkpoints, &lease.watch(), observer.clone(), report, backfill::Mode::Quiet, None, true).await?;
                }
                Change::Rewrite(_) | Change::RemoveEntity { .. } => {}
            }
        }
        step("verify every item against the new design, then record the design in the table".to_string());
        let verification = verify::verify(&self.client, plan, opts.segments, opts.in_flight(), true, &*observer).await?;
        let problems = verification.problems.clone();
        report.verification = Some(verification);
        // Checkpoints go before anything else happens, as checkpoints that
        // say "done" make a later run of their migration skip its
        // backfill; all of them, since those of an abandoned migration
        // stop describing the table once its design moves on. Cleared
        // before the design is recorded, no crash leaves them behind a
        // recorded design (a crash in between costs a rescan that finds
        // nothing to do); cleared after a failed verification, the next
        // apply rewrites whatever is still out of form instead of trusting
        // them and failing the same way again.
        checkpoints.clear_all().await?;
        if !problems.is_empty() {
            return Err(MigrateError::Verification { table: plan.table.clone(), problems });
        }
        record_design(&self.client, &plan.to, &plan.table).await?;
        Ok(())
    }

    /// Puts back the items of an export file (JSON lines of typed DynamoDB
    /// JSON) into `table`. Returns how many were written.
    pub async fn restore(&self, table: &str, file: &Path) -> Result<u64, MigrateError> {
        backfill::restore(&self.client, table, file, &Quiet).await
    }

    /// [`restore`](Self::restore), reporting progress to `observer`.
    pub async fn restore_observed(&self, table: &str, file: &Path, observer: &dyn Observer) -> Result<u64, MigrateError> {
        backfill::restore(&self.client, table, file, observer).await
    }
}

/// The steps a quiet apply announces: the create-table step, one per
/// schema or settings change, the export of removed entities, the rewrite
/// (one for all entities) and the verification.
fn quiet_steps(plan: &Plan) -> usize {
    let mut steps = 1; // verify
    let mut rewrite = false;
    for change in &plan.changes {
        match change {
            Change::CreateTable { .. }
            | Change::UpdateTtl { .. }
            | Change::UpdateStream { .. }
            | Change::UpdatePointInTimeRecovery { .. }
            | Change::DeleteIndex { .. }
            | Change::CreateIndex { .. } => steps += 1,
            Change::Rewrite(_) => rewrite = true,
            Change::RemoveEntity { .. } => rewrite = true,
            Change::AddEntity { .. } | Change::CopyToNewTable { .. } => {}
        }
    }
    let exports = plan.changes.iter().any(|c| matches!(c, Change::RemoveEntity { .. }));
    steps + usize::from(rewrite) + usize::from(exports)
}
