//! The stream replay: every change the application makes to an old-form
//! item, carried over to its new form, in the order of the item's changes.
//!
//! Per-item order comes from the stream: one item's records all sit in
//! one shard lineage, in order, and the tail reads a child shard only
//! after its parent. Within a round only the last record of each item
//! matters (its image is the item's newest state), so a round collapses to
//! one write per item, and the writes of different items go in parallel.
//!
//! What a record means for the new form, from the rules `decide` applies
//! to a scanned item:
//! - an insert or modify of an old-form item: put its new form, as
//!   rendered from the image (unconditionally: until cut-over the old form
//!   is the truth, and a later record of the item will follow if it
//!   changes again);
//! - a remove of an old-form item: delete its new form (the old image
//!   names it);
//! - an item whose index keys change: update them in place on the
//!   condition that the attributes they are rendered from still hold the
//!   image's values (if not, a newer record of the item follows);
//! - a record of a new-form item (the backfill's and the replay's own
//!   writes) or of an item nothing happens to: nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::stream::{RecordKind, StreamRecord};
use crate::apply::write::{update_in_place, write_units, Budget};
use crate::decide::{ItemAction, Rules};
use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::retry::retrying;

/// What the replay did so far.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Records read from the stream.
    pub records: AtomicU64,
    /// Writes made to new forms (puts, deletes, in-place updates).
    pub written: AtomicU64,
}

/// A stable identity of an item key for collapsing records.
fn key_id(keys: &RawItem) -> String {
    let mut parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    parts.sort();
    parts.join("\u{1}")
}

/// Applies one round of records (any shards): the last record of each
/// item, in parallel across items.
pub(crate) async fn apply_round(
    client: &Client,
    table: &str,
    rules: &Rules<'_>,
    records: Vec<StreamRecord>,
    budget: &Budget,
    counters: &Counters,
) -> Result<(), MigrateError> {
    counters.records.fetch_add(records.len() as u64, Ordering::Relaxed);
    let mut last: HashMap<String, StreamRecord> = HashMap::new();
    for r in records {
        last.insert(key_id(&r.keys), r);
    }
    // The budget's slots bound the requests in flight.
    futures::future::try_join_all(last.into_values().map(|record| apply_one(client, table, rules, record, budget, counters))).await?;
    Ok(())
}

async fn apply_one(
    client: &Client,
    table: &str,
    rules: &Rules<'_>,
    record: StreamRecord,
    budget: &Budget,
    counters: &Counters,
) -> Result<(), MigrateError> {
    let blocked = |reason: String| MigrateError::Blocked { table: table.to_string(), errors: vec![reason] };
    match record.kind {
        RecordKind::Insert | RecordKind::Modify => {
            let Some(image) = record.new_image.as_ref() else { return Ok(()) };
            match rules.decide(image).map_err(blocked)? {
                ItemAction::Move { new_item, .. } => {
                    let units = write_units(&new_item);
                    retrying(|| async {
                        budget.units(units).await;
                        let _slot = budget.slot().await;
                        client.put_item().table_name(table).set_item(Some(new_item.clone())).send().await
                    })
                    .await
                    .map_err(|e| MigrateError::dynamo("PutItem (replay)", table, e))?;
                    counters.written.fetch_add(1, Ordering::Relaxed);
                }
                ItemAction::Update { key, set, remove, expect } => {
                    // A conflict means the item changed after this image:
                    // its newer record comes later and settles it.
                    if let crate::apply::write::UpdateOutcome::Done =
                        update_in_place(client, table, key, &set, &remove, &expect, budget).await?
                    {
                        counters.written.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Removed entities are deleted at contract; new forms,
                // current items and foreign items need nothing.
                ItemAction::Delete { .. } | ItemAction::Keep | ItemAction::Unknown => {}
            }
        }
        RecordKind::Remove => {
            let Some(image) = record.old_image.as_ref() else {
                return Err(MigrateError::Other(format!(
                    "table `{table}`: a stream record of a deleted item carries no old image; the online apply needs NEW_AND_OLD_IMAGES"
                )));
            };
            if let ItemAction::Move { new_item, .. } = rules.decide(image).map_err(blocked)? {
                let key: RawItem = [&rules.new.pk_attr, &rules.new.sk_attr]
                    .into_iter()
                    .filter_map(|a| new_item.get(a).map(|v| (a.clone(), v.clone())))
                    .collect::<HashMap<String, AttributeValue>>();
                retrying(|| async {
                    budget.units(1.0).await;
                    let _slot = budget.slot().await;
                    client.delete_item().table_name(table).set_key(Some(key.clone())).send().await
                })
                .await
                .map_err(|e| MigrateError::dynamo("DeleteItem (replay)", table, e))?;
                counters.written.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_ignore_attribute_order() {
        let a: RawItem = [("pk".to_string(), AttributeValue::S("A".into())), ("sk".to_string(), AttributeValue::S("B".into()))].into();
        let b: RawItem = [("sk".to_string(), AttributeValue::S("B".into())), ("pk".to_string(), AttributeValue::S("A".into()))].into();
        assert_eq!(key_id(&a), key_id(&b));
        let c: RawItem = [("pk".to_string(), AttributeValue::S("A".into())), ("sk".to_string(), AttributeValue::S("C".into()))].into();
        assert_ne!(key_id(&a), key_id(&c));
    }
}
