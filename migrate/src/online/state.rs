//! What an online apply keeps in the table: which phase it is in (so a
//! killed apply resumes in its phase) and where the replay stands in each
//! stream shard.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::stream::ShardPosition;
use crate::apply::state::Reserved;
use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::reserved::{reserved_key, CHECKPOINT_PREFIX, ONLINE_SK, PHASE_ATTR};
use crate::retry::retrying;

/// The phases of an online apply, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The backfill copies old forms to new ones while the stream replay
    /// carries the application's changes over; the old form is the truth.
    Expand,
    /// The application writes the new form: the replay was drained, the
    /// content verified and the new design recorded. Old forms remain
    /// until [`complete`](super::OnlineMigration::complete).
    CutOver,
    /// [`complete`](super::OnlineMigration::complete) began: migrating
    /// tables write only the new form, and old forms are being deleted.
    Contract,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Expand => "expand",
            Phase::CutOver => "cutover",
            Phase::Contract => "contract",
        }
    }
}

/// The online state item: `#ONLINE` in the reserved partition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OnlineState {
    pub migration: String,
    pub phase: Phase,
    pub stream_arn: String,
    /// Set by `migrate cutover` / `migrate complete` from another process.
    pub requested: Option<String>,
    /// The online apply turned the stream on (it was off).
    pub own_stream: bool,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn text<'a>(item: &'a RawItem, attr: &str) -> Option<&'a str> {
    item.get(attr).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub(crate) async fn load(at: &Reserved) -> Result<Option<OnlineState>, MigrateError> {
    let out = retrying(|| {
        at.client
            .get_item()
            .table_name(&at.table)
            .set_key(Some(reserved_key(&at.pk_attr, &at.sk_attr, ONLINE_SK)))
            .consistent_read(true)
            .send()
    })
    .await
    .map_err(|e| MigrateError::dynamo("GetItem (online state)", &at.table, e))?;
    let Some(item) = out.item else { return Ok(None) };
    let phase = match text(&item, PHASE_ATTR) {
        Some("expand") => Phase::Expand,
        Some("cutover") => Phase::CutOver,
        Some("contract") => Phase::Contract,
        other => return Err(MigrateError::Other(format!("table `{}`: online state in unknown phase {other:?}", at.table))),
    };
    Ok(Some(OnlineState {
        migration: text(&item, "migration").unwrap_or_default().to_string(),
        phase,
        stream_arn: text(&item, "stream_arn").unwrap_or_default().to_string(),
        requested: text(&item, "requested").map(str::to_string),
        own_stream: matches!(item.get("own_stream"), Some(AttributeValue::Bool(true))),
    }))
}

pub(crate) async fn save(at: &Reserved, state: &OnlineState) -> Result<(), MigrateError> {
    let mut item = reserved_key(&at.pk_attr, &at.sk_attr, ONLINE_SK);
    item.insert("migration".into(), s(&state.migration));
    item.insert(PHASE_ATTR.into(), s(state.phase.as_str()));
    item.insert("stream_arn".into(), s(&state.stream_arn));
    if let Some(r) = &state.requested {
        item.insert("requested".into(), s(r));
    }
    item.insert("own_stream".into(), AttributeValue::Bool(state.own_stream));
    retrying(|| at.client.put_item().table_name(&at.table).set_item(Some(item.clone())).send())
        .await
        .map_err(|e| MigrateError::dynamo("PutItem (online state)", &at.table, e))?;
    Ok(())
}

/// Asks the running online apply of `migration` to take its next step
/// (`"cutover"` or `"complete"`); fails when no online apply runs.
pub(crate) async fn request(at: &Reserved, what: &str) -> Result<OnlineState, MigrateError> {
    let out = at
        .client
        .update_item()
        .table_name(&at.table)
        .set_key(Some(reserved_key(&at.pk_attr, &at.sk_attr, ONLINE_SK)))
        .update_expression("SET #r = :r")
        .condition_expression("attribute_exists(#pk)")
        .expression_attribute_names("#r", "requested")
        .expression_attribute_names("#pk", &at.pk_attr)
        .expression_attribute_values(":r", s(what))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
        .send()
        .await;
    match out {
        Ok(_) => load(at).await?.ok_or_else(|| MigrateError::Other(format!("table `{}`: no online apply in progress", at.table))),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
            Err(MigrateError::Other(format!("table `{}`: no online apply in progress", at.table)))
        }
        Err(e) => Err(MigrateError::dynamo("UpdateItem (online state)", &at.table, e)),
    }
}

pub(crate) async fn clear(at: &Reserved) -> Result<(), MigrateError> {
    retrying(|| {
        at.client
            .delete_item()
            .table_name(&at.table)
            .set_key(Some(reserved_key(&at.pk_attr, &at.sk_attr, ONLINE_SK)))
            .send()
    })
    .await
    .map_err(|e| MigrateError::dynamo("DeleteItem (online state)", &at.table, e))?;
    Ok(())
}

fn shard_sk(migration: &str, shard: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{migration}#shard#{shard}")
}

/// Where the replay resumes in each shard (checkpoints are cleared with
/// the segment checkpoints at the end, by `Checkpoints::clear_all`).
pub(crate) async fn load_shards(at: &Reserved, migration: &str) -> Result<HashMap<String, ShardPosition>, MigrateError> {
    let prefix = format!("{CHECKPOINT_PREFIX}{migration}#shard#");
    let mut out = HashMap::new();
    for item in at.query_prefix(&prefix).await? {
        let (Some(shard), Some(pos)) = (text(&item, "shard"), text(&item, "position")) else { continue };
        let pos = match pos.strip_prefix("after:") {
            Some(seq) => ShardPosition::After(seq.to_string()),
            None => ShardPosition::Done,
        };
        out.insert(shard.to_string(), pos);
    }
    Ok(out)
}

/// Saves where the replay stands in `shard`, with the round's replay lag
/// (for `migrate status`).
pub(crate) async fn save_shard(
    at: &Reserved,
    migration: &str,
    shard: &str,
    position: &ShardPosition,
    lag: Option<f64>,
) -> Result<(), MigrateError> {
    let mut item = reserved_key(&at.pk_attr, &at.sk_attr, &shard_sk(migration, shard));
    item.insert("shard".into(), s(shard));
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    item.insert("saved_at_ms".into(), AttributeValue::N(now_ms.to_string()));
    if let Some(lag) = lag {
        item.insert("lag_ms".into(), AttributeValue::N(((lag * 1000.0) as u64).to_string()));
    }
    let pos = match position {
        ShardPosition::After(seq) => format!("after:{seq}"),
        ShardPosition::Done => "done".to_string(),
    };
    item.insert("position".into(), s(&pos));
    retrying(|| at.client.put_item().table_name(&at.table).set_item(Some(item.clone())).send())
        .await
        .map_err(|e| MigrateError::dynamo("PutItem (shard checkpoint)", &at.table, e))?;
    Ok(())
}
