//! Where a migration of a table stands, read from the toolkit's own items
//! (one query of the reserved partition): the lock, the online phase, the
//! backfill's segments and the replay's shards. What `migrate status`
//! prints; any process can read it while an apply runs elsewhere.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::apply::state::Reserved;
use crate::error::MigrateError;
use crate::online::Phase;
use crate::raw::RawItem;
use crate::reserved::{CHECKPOINT_PREFIX, LAYOUT_MARK, LOCK_SK, ONLINE_SK};

/// Everything `migrate status` knows about a table.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MigrationStatus {
    /// The apply lock, if one is held (or left behind, expired).
    pub lock: Option<LockStatus>,
    /// The online apply in progress, if any.
    pub online: Option<OnlineStatus>,
    /// The backfill of each migration with checkpoints in the table.
    pub backfills: Vec<BackfillStatus>,
}

/// The apply lock.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LockStatus {
    pub owner: String,
    /// Seconds until it expires unless renewed (negative: expired).
    pub expires_in_s: f64,
}

/// The online apply in progress.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OnlineStatus {
    pub migration: String,
    pub phase: Phase,
    /// A `migrate cutover` / `migrate complete` not yet acted on.
    pub requested: Option<String>,
    /// Where the stream replay stands in each shard it has read from.
    pub shards: Vec<ShardStatus>,
}

/// The replay's position in one stream shard.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ShardStatus {
    pub shard: String,
    /// Read to its end (a closed shard).
    pub done: bool,
    /// The worker holding its lease (absent: free, or done).
    pub owner: Option<String>,
    /// Seconds since its owner last renewed the lease or saved.
    pub heartbeat_ago_s: Option<f64>,
    /// Seconds since the replay last saved its position here.
    pub saved_ago_s: Option<f64>,
    /// How old the newest record of the last replayed round was when it
    /// was replayed: the replay lag then, from the records'
    /// ApproximateCreationDateTime (whole seconds on the service).
    pub lag_s: Option<f64>,
}

/// One migration's backfill scan.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackfillStatus {
    pub migration: String,
    pub segments: u32,
    pub segments_done: u32,
    /// Seconds since a segment last saved its progress.
    pub saved_ago_s: Option<f64>,
    /// The workers holding segments not done: (worker, segments held,
    /// seconds since its last heartbeat on any of them).
    pub workers: Vec<(String, u32, Option<f64>)>,
}

fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as f64).unwrap_or(0.0)
}

fn text<'a>(item: &'a RawItem, attr: &str) -> Option<&'a str> {
    match item.get(attr) {
        Some(AttributeValue::S(s)) | Some(AttributeValue::N(s)) => Some(s),
        _ => None,
    }
}

fn number(item: &RawItem, attr: &str) -> Option<f64> {
    text(item, attr).and_then(|v| v.parse().ok())
}

/// Reads the status of `table` (whose key attributes are `pk_attr` and
/// `sk_attr`).
pub async fn status(client: &Client, table: &str, pk_attr: &str, sk_attr: &str) -> Result<MigrationStatus, MigrateError> {
    let at = Reserved { client: client.clone(), table: table.to_string(), pk_attr: pk_attr.to_string(), sk_attr: sk_attr.to_string() };
    let items = at.query_prefix("#").await?;
    let now = now_ms();
    let mut out = MigrationStatus::default();
    let mut shards: Vec<(String, ShardStatus)> = Vec::new();
    let mut backfills: BTreeMap<String, BackfillStatus> = BTreeMap::new();
    for item in &items {
        let Some(sk) = text(item, sk_attr) else { continue };
        if sk == LOCK_SK {
            out.lock = Some(LockStatus {
                owner: text(item, "owner").unwrap_or("?").to_string(),
                expires_in_s: number(item, "expires_at_ms").map_or(0.0, |ms| (ms - now) / 1000.0),
            });
        } else if sk == ONLINE_SK {
            let phase = match text(item, "phase") {
                Some("cutover") => Phase::CutOver,
                Some("contract") => Phase::Contract,
                _ => Phase::Expand,
            };
            out.online = Some(OnlineStatus {
                migration: text(item, "migration").unwrap_or("?").to_string(),
                phase,
                requested: text(item, "requested").map(str::to_string),
                shards: Vec::new(),
            });
        } else if let Some(rest) = sk.strip_prefix(CHECKPOINT_PREFIX) {
            let saved_ago_s = number(item, "saved_at_ms").map(|ms| (now - ms) / 1000.0);
            if let Some((migration, shard)) = rest.split_once("#shard#") {
                shards.push((
                    migration.to_string(),
                    ShardStatus {
                        shard: shard.to_string(),
                        done: text(item, "position") == Some("done"),
                        owner: text(item, "owner").map(str::to_string),
                        heartbeat_ago_s: number(item, "heartbeat_ms").map(|ms| (now - ms) / 1000.0),
                        saved_ago_s,
                        lag_s: number(item, "lag_ms").map(|ms| ms / 1000.0),
                    },
                ));
            } else if let Some((migration, _)) = rest.rsplit_once('#').filter(|(_, last)| *last != LAYOUT_MARK) {
                let b = backfills.entry(migration.to_string()).or_insert_with(|| BackfillStatus {
                    migration: migration.to_string(),
                    segments: number(item, "total_segments").unwrap_or(0.0) as u32,
                    segments_done: 0,
                    saved_ago_s: None,
                    workers: Vec::new(),
                });
                if matches!(item.get("done"), Some(AttributeValue::Bool(true))) {
                    b.segments_done += 1;
                } else if let Some(owner) = text(item, "owner") {
                    let beat = number(item, "heartbeat_ms").map(|ms| (now - ms) / 1000.0);
                    match b.workers.iter_mut().find(|(o, _, _)| o == owner) {
                        Some(w) => {
                            w.1 += 1;
                            w.2 = match (w.2, beat) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                        }
                        None => b.workers.push((owner.to_string(), 1, beat)),
                    }
                }
                b.saved_ago_s = match (b.saved_ago_s, saved_ago_s) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    if let Some(online) = &mut out.online {
        online.shards = shards.into_iter().filter(|(m, _)| *m == online.migration).map(|(_, s)| s).collect();
        online.shards.sort_by(|a, b| a.shard.cmp(&b.shard));
    }
    out.backfills = backfills.into_values().collect();
    Ok(out)
}

impl std::fmt::Display for MigrationStatus {
    /// What `migrate status` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.lock {
            Some(l) if l.expires_in_s >= 0.0 => writeln!(f, "lock: held by `{}`, {:.0} s left unless renewed", l.owner, l.expires_in_s)?,
            Some(l) => writeln!(f, "lock: left by `{}`, expired {:.0} s ago (the next apply removes it)", l.owner, -l.expires_in_s)?,
            None => writeln!(f, "lock: free")?,
        }
        match &self.online {
            Some(o) => {
                write!(f, "online apply {}: phase {:?}", o.migration, o.phase)?;
                if let Some(r) = &o.requested {
                    write!(f, " ({r} requested)")?;
                }
                writeln!(f)?;
                let done = o.shards.iter().filter(|s| s.done).count();
                writeln!(f, "  stream shards: {} read from, {done} read to their end", o.shards.len())?;
                for s in &o.shards {
                    let ago = s.saved_ago_s.map_or("?".to_string(), |a| format!("{a:.1} s ago"));
                    let lag = s.lag_s.map_or("?".to_string(), |l| format!("{l:.0} s"));
                    let owner = match (&s.owner, s.heartbeat_ago_s) {
                        (Some(o), Some(beat)) if !s.done => format!("held by {o} (heartbeat {beat:.1} s ago), "),
                        (Some(o), None) if !s.done => format!("held by {o}, "),
                        _ if !s.done => "free, ".to_string(),
                        _ => String::new(),
                    };
                    writeln!(f, "    {}: {}{owner}position saved {ago}, replay lag then {lag}", s.shard, if s.done { "done, " } else { "" })?;
                }
            }
            None => writeln!(f, "no online apply in progress")?,
        }
        if self.backfills.is_empty() {
            writeln!(f, "backfill: no checkpoints")?;
        }
        for b in &self.backfills {
            let ago = b.saved_ago_s.map_or(String::new(), |a| format!(", last saved {a:.1} s ago"));
            writeln!(f, "backfill {}: {}/{} segments done{ago}", b.migration, b.segments_done, b.segments)?;
            for (worker, held, beat) in &b.workers {
                let beat = beat.map_or("?".to_string(), |a| format!("{a:.1} s ago"));
                writeln!(f, "  worker `{worker}`: {held} segments, heartbeat {beat}")?;
            }
        }
        Ok(())
    }
}
