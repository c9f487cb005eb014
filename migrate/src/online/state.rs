//! What an online apply keeps in the table: which phase it is in (so a
//! killed apply resumes in its phase). Where the replay stands in each
//! stream shard is in the shard leases (`shards`).

use aws_sdk_dynamodb::types::AttributeValue;

use crate::apply::state::Reserved;
use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::reserved::{reserved_key, ONLINE_SK, PHASE_ATTR};
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
    /// Cut-over began: the coordinator drains the stream alone, and the
    /// workers give their shards back and stop (see `shards`). Cleared by
    /// every [`save`] (the next phase, or a resume).
    pub draining: bool,
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
        draining: matches!(item.get("draining"), Some(AttributeValue::Bool(true))),
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
    if state.draining {
        item.insert("draining".into(), AttributeValue::Bool(true));
    }
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

/// Marks the online state draining (cut-over began): workers stop
/// replaying and give their shards back.
pub(crate) async fn set_draining(at: &Reserved) -> Result<(), MigrateError> {
    retrying(|| {
        at.client
            .update_item()
            .table_name(&at.table)
            .set_key(Some(reserved_key(&at.pk_attr, &at.sk_attr, ONLINE_SK)))
            .update_expression("SET #d = :d")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#d", "draining")
            .expression_attribute_names("#pk", &at.pk_attr)
            .expression_attribute_values(":d", AttributeValue::Bool(true))
            .send()
    })
    .await
    .map_err(|e| MigrateError::dynamo("UpdateItem (online state)", &at.table, e))?;
    Ok(())
}

/// The condition that the online apply of `migration` is in expand and not
/// draining: a worker takes a stream shard only under it (in the same
/// transaction), so that none takes one once cut-over began.
pub(crate) fn expanding(at: &Reserved, migration: &str) -> Result<aws_sdk_dynamodb::types::ConditionCheck, MigrateError> {
    aws_sdk_dynamodb::types::ConditionCheck::builder()
        .table_name(&at.table)
        .set_key(Some(reserved_key(&at.pk_attr, &at.sk_attr, ONLINE_SK)))
        .condition_expression("#m = :m AND #ph = :expand AND (attribute_not_exists(#dr) OR #dr = :false)")
        .expression_attribute_names("#m", "migration")
        .expression_attribute_names("#ph", PHASE_ATTR)
        .expression_attribute_names("#dr", "draining")
        .expression_attribute_values(":m", s(migration))
        .expression_attribute_values(":expand", s(Phase::Expand.as_str()))
        .expression_attribute_values(":false", AttributeValue::Bool(false))
        .build()
        .map_err(|e| MigrateError::Other(format!("table `{}`: {e}", at.table)))
}
