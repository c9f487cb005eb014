//! One more worker of an apply running elsewhere (`migrate apply
//! --worker`): a share of the scan segments, and during an online apply a
//! share of the stream's shards, all through their leases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::shards::ShardLeases;
use super::stream::StreamTail;
use super::{replay_loop, state, Phase, Replay, Role, Shared};
use crate::apply::backfill::{self, Mode};
use crate::apply::migration_id;
use crate::apply::state::{Checkpoints, LeaseWatch, Reserved};
use crate::apply::workers::worker_name;
use crate::apply::{ApplyOptions, ApplyReport, Event, Migrator, Observer, Traced};
use crate::error::MigrateError;
use crate::plan::Plan;
use crate::reserved::read_recorded_design;

impl Migrator {
    /// Joins the apply of `plan` running elsewhere (started by
    /// [`apply`](Self::apply) or [`start_online`](Self::start_online) in
    /// another process, which holds the lock) as one more worker: takes a
    /// share of its scan segments through their leases (see the `workers`
    /// notes in ARCHITECTURE.md) and rewrites them; during an online apply
    /// it also takes a share of the stream's shards and replays them (with
    /// a DynamoDB Streams client, [`with_streams`](Self::with_streams))
    /// until the coordinator drains them at cut-over. Returns once both
    /// are over. It changes no schema, verifies nothing and records
    /// nothing: the apply that holds the lock does. Waits up to `wait` for
    /// that apply to lay out its segments.
    pub async fn work(&self, plan: &Plan, opts: &ApplyOptions, observer: Arc<dyn Observer>, wait: Duration) -> Result<ApplyReport, MigrateError> {
        let observer = Traced::wrap(&plan.table, observer);
        let mut defaults = plan.defaults()?;
        defaults.extend(opts.defaults.clone());
        let opts = ApplyOptions { defaults, ..opts.clone() };
        let at = Reserved { client: self.client.clone(), table: plan.table.clone(), pk_attr: plan.to.pk_attr.clone(), sk_attr: plan.to.sk_attr.clone() };
        let checkpoints = Checkpoints { at: at.clone(), migration: migration_id(plan, &opts.defaults) };
        let deadline = std::time::Instant::now() + wait;
        loop {
            if checkpoints.laid_out().await? {
                break;
            }
            if read_recorded_design(&self.client, &plan.table, &plan.to.pk_attr, &plan.to.sk_attr).await?.as_ref() == Some(&plan.to) {
                let warning = format!("table `{}` already records this plan's design: the apply is done; nothing to do", plan.table);
                observer.event(Event::Warning(warning.clone()));
                return Ok(ApplyReport { warnings: vec![warning], ..ApplyReport::default() });
            }
            if std::time::Instant::now() > deadline {
                return Err(MigrateError::Other(format!(
                    "table `{}`: no apply of this plan has laid out its segments within {:.0} s; start `migrate apply` first",
                    plan.table,
                    wait.as_secs_f64()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // An online apply's workers copy with conditions and replay the
        // stream; a quiet one's batch-write.
        let online = state::load(&at).await?.filter(|s| s.migration == checkpoints.migration);
        let mode = if online.is_some() { Mode::Online } else { Mode::Quiet };
        let shared = Arc::new(Shared::default());
        let replay = async {
            let Some(online) = online.as_ref().filter(|s| s.phase == Phase::Expand && !s.draining) else { return Ok(()) };
            let Some(streams) = self.streams.clone() else {
                tracing::warn!(table = %plan.table, "no DynamoDB Streams client (Migrator::with_streams): this worker takes no stream shards");
                return Ok(());
            };
            let tail = StreamTail::new(streams, plan.table.clone(), online.stream_arn.clone(), HashMap::new());
            let shards = ShardLeases::new(at.clone(), checkpoints.migration.clone(), worker_name(&opts.owner), opts.lease);
            let replay = Replay {
                client: self.client.clone(),
                plan: Arc::new(plan.clone()),
                opts: opts.clone(),
                at: at.clone(),
                migration: checkpoints.migration.clone(),
                shared: shared.clone(),
                lease: LeaseWatch::unlocked(&plan.table),
                role: Role::Worker,
            };
            replay_loop(replay, tail, shards).await
        };
        let mut report = ApplyReport::default();
        let throttle = online.is_some().then_some(&shared.behind);
        let unlocked = LeaseWatch::unlocked(&plan.table);
        let backfill = backfill::run(&self.client, plan, &opts, &checkpoints, &unlocked, observer, &mut report, mode, throttle, false);
        let (copied, replayed) = futures::join!(backfill, replay);
        copied?;
        replayed?;
        Ok(report)
    }
}
