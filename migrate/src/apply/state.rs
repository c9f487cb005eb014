//! State an apply keeps in the table itself, under the reserved partition:
//! the lock (a lease with heartbeat and expiry) and per-segment
//! checkpoints, so a crashed or interrupted apply resumes where it stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::retry::retrying;
use crate::reserved::{reserved_key, CHECKPOINT_PREFIX, LAYOUT_MARK, LOCK_SK, RESERVED_PK};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Where reserved items live: the table and its key attribute names.
#[derive(Debug, Clone)]
pub(crate) struct Reserved {
    pub client: Client,
    pub table: String,
    pub pk_attr: String,
    pub sk_attr: String,
}

impl Reserved {
    pub(crate) fn key(&self, sk: &str) -> RawItem {
        reserved_key(&self.pk_attr, &self.sk_attr, sk)
    }

    /// Every reserved item whose sort key starts with `prefix`.
    pub async fn query_prefix(&self, prefix: &str) -> Result<Vec<RawItem>, MigrateError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", &self.pk_attr)
                .expression_attribute_names("#sk", &self.sk_attr)
                .expression_attribute_values(":pk", s(RESERVED_PK))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| MigrateError::dynamo("Query (checkpoints)", &self.table, e))?;
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            out.extend(page.items.unwrap_or_default());
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}

/// A held migration lock; released on [`Lease::release`]. The heartbeat
/// renews it every third of the lease. Work proceeds only while the lock
/// is known to be held for a while yet ([`LeaseWatch::check`]): when
/// renewals answer late (a busy server) the apply pauses until one
/// succeeds, and it stops if another apply took the lock or no renewal
/// succeeded for a whole lease past its expiry, rather than race a second
/// apply.
pub(crate) struct Lease {
    at: Reserved,
    owner: String,
    state: Arc<LeaseState>,
    lease_ms: u64,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// What the heartbeat tells the workers.
#[derive(Debug, Default)]
struct LeaseState {
    /// Until when (ms since the epoch) the lock is surely ours: each value
    /// is taken before the write that sets it, so it never runs ahead of
    /// the expiry DynamoDB holds.
    valid_until: AtomicU64,
    /// Why the lock is lost, once it is.
    lost: OnceLock<String>,
    /// The last failed renewal, for the message if renewals keep failing.
    last_error: Mutex<Option<String>>,
}

impl Lease {
    pub async fn acquire(at: &Reserved, owner: &str, lease: Duration) -> Result<Lease, MigrateError> {
        let now = now_ms();
        let expires = now + lease.as_millis() as u64;
        let mut item = at.key(LOCK_SK);
        item.insert("owner".into(), s(owner));
        item.insert("expires_at_ms".into(), n(expires));
        item.insert("acquired_at_ms".into(), n(now));
        let result = at
            .client
            .put_item()
            .table_name(&at.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #exp < :now OR #owner = :owner")
            .expression_attribute_names("#pk", &at.pk_attr)
            .expression_attribute_names("#exp", "expires_at_ms")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                let held = at
                    .client
                    .get_item()
                    .table_name(&at.table)
                    .set_key(Some(at.key(LOCK_SK)))
                    .consistent_read(true)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.item)
                    .unwrap_or_default();
                let text = |k: &str| match held.get(k) {
                    Some(AttributeValue::S(v)) | Some(AttributeValue::N(v)) => v.clone(),
                    _ => "?".into(),
                };
                let expires_at = text("expires_at_ms")
                    .parse::<u64>()
                    .map(|ms| format!("{:.0} s from now", (ms as f64 - now_ms() as f64) / 1000.0))
                    .unwrap_or_else(|_| "?".into());
                return Err(MigrateError::Locked { table: at.table.clone(), owner: text("owner"), expires_at });
            }
            Err(e) => return Err(MigrateError::dynamo("PutItem (lock)", &at.table, e)),
        }
        let state = Arc::new(LeaseState { valid_until: AtomicU64::new(expires), ..LeaseState::default() });
        let lease_ms = lease.as_millis() as u64;
        let heartbeat = {
            let (at, owner, state) = (at.clone(), owner.to_string(), state.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    let mut attempt = 0u32;
                    loop {
                        let renewed_until = now_ms() + lease_ms;
                        let renewed = at
                            .client
                            .update_item()
                            .table_name(&at.table)
                            .set_key(Some(at.key(LOCK_SK)))
                            .update_expression("SET #exp = :exp")
                            .condition_expression("#owner = :owner")
                            .expression_attribute_names("#exp", "expires_at_ms")
                            .expression_attribute_names("#owner", "owner")
                            .expression_attribute_values(":exp", n(renewed_until))
                            .expression_attribute_values(":owner", s(&owner))
                            .send()
                            .await;
                        match renewed {
                            // Even a late answer proves the lock was still
                            // ours: the condition holds only if no one else
                            // took it meanwhile.
                            Ok(_) => {
                                state.valid_until.fetch_max(renewed_until, Ordering::SeqCst);
                                break;
                            }
                            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                                tracing::error!(table = %at.table, owner = %owner, "the migration lock was taken by another apply");
                                let _ = state.lost.set("another apply holds it now".to_string());
                                return;
                            }
                            Err(e) => {
                                let error = MigrateError::dynamo("UpdateItem (lock)", &at.table, e).to_string();
                                tracing::warn!(table = %at.table, attempt = attempt + 1, %error, "renewing the migration lock failed; trying again");
                                *state.last_error.lock().expect("lease state") = Some(error);
                                attempt += 1;
                                tokio::time::sleep(Duration::from_millis((50 * u64::from(attempt)).min(lease_ms / 6).max(10))).await;
                            }
                        }
                    }
                }
            })
        };
        Ok(Lease { at: at.clone(), owner: owner.to_string(), state, lease_ms, heartbeat })
    }

    /// A handle the workers check between pages.
    pub fn watch(&self) -> LeaseWatch {
        LeaseWatch { table: self.at.table.clone(), state: self.state.clone(), lease_ms: self.lease_ms }
    }

    pub async fn release(self) -> Result<(), MigrateError> {
        self.heartbeat.abort();
        // Retried: a finished apply should not report failure because one
        // delete of its lock met a passing server error.
        let result = retrying(|| {
            self.at
                .client
                .delete_item()
                .table_name(&self.at.table)
                .set_key(Some(self.at.key(LOCK_SK)))
                .condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(&self.owner))
                .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                // No lock: an earlier attempt of this delete removed it
                // and its answer was lost (the SDK sent it again). A lock
                // of someone else's is theirs to release; the work under
                // ours is done either way.
                Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(c)) => {
                    if let Some(held) = c.item() {
                        let owner = held.get("owner").and_then(|v| v.as_s().ok()).map_or("?", String::as_str);
                        tracing::warn!(table = %self.at.table, owner, "the lock to release is held by another apply now; left to it");
                    }
                    Ok(())
                }
                _ => Err(MigrateError::dynamo("DeleteItem (lock)", &self.at.table, e)),
            },
        }
    }

    /// Deletes the lock if it has expired: what an apply killed after its
    /// last step leaves behind, which a later apply with nothing to do
    /// would otherwise never take and release. Returns the dead owner, if
    /// there was one. A live lock is left alone.
    pub async fn clear_expired(at: &Reserved) -> Result<Option<String>, MigrateError> {
        let result = retrying(|| {
            at.client
                .delete_item()
                .table_name(&at.table)
                .set_key(Some(at.key(LOCK_SK)))
                .condition_expression("#exp < :now")
                .expression_attribute_names("#exp", "expires_at_ms")
                .expression_attribute_values(":now", n(now_ms()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
                .send()
        })
        .await;
        match result {
            Ok(out) => Ok(out.attributes.and_then(|mut a| match a.remove("owner") {
                Some(AttributeValue::S(owner)) => Some(owner),
                _ => None,
            })),
            // No lock, or one still held.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(None),
            Err(e) => Err(MigrateError::dynamo("DeleteItem (expired lock)", &at.table, e)),
        }
    }
}

/// Tells whether work may go on under the lease.
pub(crate) struct LeaseWatch {
    table: String,
    state: Arc<LeaseState>,
    lease_ms: u64,
}

impl LeaseWatch {
    /// A watch for a worker that holds no lock (`Migrator::work`): its
    /// segment leases fence its writes instead.
    pub fn unlocked(table: &str) -> Self {
        let state = LeaseState::default();
        state.valid_until.store(u64::MAX / 2, Ordering::SeqCst);
        LeaseWatch { table: table.to_string(), state: Arc::new(state), lease_ms: 0 }
    }

    /// Returns once the lock is held for a sixth of the lease yet (at
    /// once, normally; after the next renewal when renewals answer late).
    /// Fails once the lock is lost, or when no renewal succeeded for a
    /// whole lease past its expiry.
    pub async fn check(&self) -> Result<(), MigrateError> {
        let lost = |why: &str| {
            MigrateError::Other(format!(
                "lost the migration lock of table `{}` ({why}); stopping so two applies never run at once",
                self.table
            ))
        };
        let mut waited = false;
        loop {
            if let Some(why) = self.state.lost.get() {
                return Err(lost(why));
            }
            let (now, until) = (now_ms(), self.state.valid_until.load(Ordering::SeqCst));
            if now + self.lease_ms / 6 < until {
                return Ok(());
            }
            if !waited {
                waited = true;
                tracing::warn!(table = %self.table, held_for_ms = until.saturating_sub(now), "the migration lock is about to run out; work waits for its renewal");
            }
            if now > until + self.lease_ms {
                let last = self.state.last_error.lock().expect("lease state").clone();
                let why = format!(
                    "no renewal succeeded for {:.1} s: {}",
                    (now - until + self.lease_ms) as f64 / 1000.0,
                    last.as_deref().unwrap_or("no answer")
                );
                return Err(lost(&why));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // An apply that fails leaves the lock to expire, but never renews it.
        self.heartbeat.abort();
    }
}

/// Where one scan segment stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SegmentState {
    pub done: bool,
    /// The scan's LastEvaluatedKey after the last page fully written.
    pub resume_from: Option<RawItem>,
}

/// Checkpoints of one migration (identified by `migration`).
#[derive(Debug, Clone)]
pub(crate) struct Checkpoints {
    pub at: Reserved,
    pub migration: String,
}

impl Checkpoints {
    /// Loads saved states; returns the segment count they were made with
    /// (a resume must keep it) or `None` when there are none.
    pub async fn load(&self) -> Result<Option<(u32, Vec<SegmentState>)>, MigrateError> {
        let mut found: Vec<(u32, u32, SegmentState)> = Vec::new();
        for item in self.at.query_prefix(&format!("{CHECKPOINT_PREFIX}{}#", self.migration)).await? {
            let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u32>().ok());
            let (Some(segment), Some(total)) = (num("segment"), num("total_segments")) else { continue };
            let done = matches!(item.get("done"), Some(AttributeValue::Bool(true)));
            let resume_from = item.get("resume_from").and_then(|v| v.as_m().ok()).cloned();
            found.push((segment, total, SegmentState { done, resume_from }));
        }
        let Some(total) = found.first().map(|f| f.1) else { return Ok(None) };
        let mut states = vec![SegmentState::default(); total as usize];
        for (segment, _, state) in found {
            if let Some(slot) = states.get_mut(segment as usize) {
                *slot = state;
            }
        }
        Ok(Some((total, states)))
    }

    /// Deletes every checkpoint in the table, this migration's and those
    /// an abandoned one left: once the table's design changes, they
    /// describe a table that no longer exists, and a later run of that
    /// migration (back from a reverted design) would skip items on their
    /// word.
    pub async fn clear_all(&self) -> Result<(), MigrateError> {
        // Layout marks first: a worker that looks meanwhile waits, and never
        // takes the remaining rows for a layout to complete.
        let mut items = self.at.query_prefix(CHECKPOINT_PREFIX).await?;
        items.sort_by_key(|i| !matches!(i.get(&self.at.sk_attr), Some(AttributeValue::S(sk)) if sk.ends_with(&format!("#{LAYOUT_MARK}"))));
        for item in items {
            let Some(AttributeValue::S(sk)) = item.get(&self.at.sk_attr) else { continue };
            let key = self.at.key(sk);
            retrying(|| self.at.client.delete_item().table_name(&self.at.table).set_key(Some(key.clone())).send())
                .await
                .map_err(|e| MigrateError::dynamo("DeleteItem (checkpoint)", &self.at.table, e))?;
        }
        Ok(())
    }
}
