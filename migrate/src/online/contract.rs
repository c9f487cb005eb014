//! The contract phase: old forms go, once the application writes only the
//! new ones.
//!
//! Each old form is deleted on the condition that it still holds exactly
//! what the scan read (every attribute, compared in the condition), so a
//! write that reached an old form after the scan read it is never deleted
//! with it: the item is left in place and named in the error. Old forms
//! written alone after cut-over before that (an application instance still
//! on the old version) are found in the stream ([`super::guard`]) and
//! spared. Items of removed entities are exported first and deleted
//! the same way. New forms a migrating table wrote lose their write token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::apply::backfill::scan_page;
use super::guard::Stragglers;
use crate::apply::write::{transact_parts, transaction_chunks, Budget, Settled};
use crate::decide::{ItemAction, Rules};
use crate::error::MigrateError;
use crate::plan::Plan;
use crate::raw::RawItem;
use crate::reserved::{is_reserved_in, WRITE_TOKEN_ATTR};
use crate::retry::retrying;

/// Beyond this many attributes the condition would outgrow DynamoDB's
/// 4 KB expression limit; such items are deleted on `attribute_exists`
/// only (documented in the README).
const MAX_COMPARED_ATTRIBUTES: usize = 60;

/// What contract did.
#[derive(Debug, Default)]
pub(crate) struct Contracted {
    pub deleted: u64,
    /// Old forms written after the scan read them, left in place.
    pub changed: Vec<String>,
    /// New forms whose write token was removed.
    pub untokened: u64,
}

/// Removes the write token a migrating table stamped on a new form
/// (`singletable::reserved::WRITE_TOKEN_ATTR`), on the condition that it
/// still holds that token; a later write already replaced it otherwise.
async fn remove_token(client: &Client, table: &str, key: RawItem, token: AttributeValue, budget: &Budget) -> Result<(), MigrateError> {
    let result = retrying(|| async {
        budget.units(1.0).await;
        let _slot = budget.slot().await;
        client
            .update_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .update_expression("REMOVE #w")
            .condition_expression("#w = :w")
            .expression_attribute_names("#w", WRITE_TOKEN_ATTR)
            .expression_attribute_values(":w", token.clone())
            .send()
            .await
    })
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
        Err(e) => Err(MigrateError::dynamo("UpdateItem (remove write token)", table, e)),
    }
}

/// Deletes every old form (and item of a removed entity).
///
/// Old forms of `spared` items (written alone after cut-over) are left.
pub(crate) async fn run(
    client: &Client,
    plan: &Plan,
    rules: &Rules<'_>,
    segments: u32,
    budget: &Budget,
    spared: &Stragglers,
) -> Result<Contracted, MigrateError> {
    let pk = plan.to.pk_attr.as_str();
    let deleted = AtomicU64::new(0);
    let untokened = AtomicU64::new(0);
    let changed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let segments = segments.max(1);
    stream::iter(0..segments)
        .map(Ok::<u32, MigrateError>)
        .try_for_each_concurrent(None, |segment| {
            let (deleted, changed, untokened) = (&deleted, &changed, &untokened);
            async move {
                let mut start = None;
                loop {
                    let (items, next) = {
                        let _slot = budget.slot().await;
                        scan_page(client, &plan.table, segment, segments, start, None, None).await?
                    };
                    let mut tokened: Vec<(RawItem, AttributeValue)> = Vec::new();
                    let doomed: Vec<(RawItem, RawItem)> = items
                        .into_iter()
                        .filter(|i| !is_reserved_in(i, pk))
                        .filter_map(|item| match rules.decide(&item) {
                            Ok(ItemAction::Move { old_key, .. }) if spared.by_key.contains_key(&rules.key_text(&old_key)) => None,
                            Ok(ItemAction::Move { old_key, .. }) => Some(Ok((old_key, item))),
                            Ok(ItemAction::Delete { key }) => Some(Ok((key, item))),
                            Ok(_) => {
                                if let Some(token) = item.get(WRITE_TOKEN_ATTR) {
                                    tokened.push((rules.key_of(&item), token.clone()));
                                }
                                None
                            }
                            Err(r) => Some(Err(MigrateError::Blocked { table: plan.table.clone(), errors: vec![r] })),
                        })
                        .collect::<Result<_, _>>()?;
                    stream::iter(tokened.into_iter().map(Ok::<_, MigrateError>))
                        .try_for_each_concurrent(None, |(key, token)| async move {
                            remove_token(client, &plan.table, key, token, budget).await?;
                            untokened.fetch_add(1, Ordering::Relaxed);
                            Ok(())
                        })
                        .await?;
                    // A delete's condition carries the whole item.
                    let chunks = transaction_chunks(&doomed, |(key, item)| singletable::item_size(key) + singletable::item_size(item))
                        .into_iter()
                        .map(|chunk| delete_unchanged(client, &plan.table, pk, chunk, budget));
                    for (item, gone) in futures::future::try_join_all(chunks).await?.into_iter().flatten() {
                        if gone {
                            deleted.fetch_add(1, Ordering::Relaxed);
                        } else {
                            changed.lock().expect("contract").push(rules.key_text(&item));
                        }
                    }
                    match next {
                        Some(k) => start = Some(k),
                        None => return Ok(()),
                    }
                }
            }
        })
        .await?;
    let mut changed = changed.into_inner().expect("contract");
    changed.sort();
    Ok(Contracted { deleted: deleted.into_inner(), changed, untokened: untokened.into_inner() })
}

/// Deletes each `(key, item)` if the item still is `item`, in one
/// transaction (see [`transact_parts`]; the caller splits with
/// [`transaction_chunks`]): one request per 25 deletes instead
/// of 25, which on the service bounds contract by requests in flight far
/// less (at twice the write units of single deletes), and on DynamoDB
/// Local halves its server time per delete. Returns each item with
/// `true` when it is gone, `false` when it changed. An item already gone
/// counts as deleted: the SDK sends a request again when its answer is
/// lost, and the second attempt of a delete whose first one landed fails
/// its condition on no item at all.
async fn delete_unchanged(client: &Client, table: &str, pk: &str, doomed: Vec<(RawItem, RawItem)>, budget: &Budget) -> Result<Vec<(RawItem, bool)>, MigrateError> {
    let actions = |(key, item): &(RawItem, RawItem)| -> Result<Vec<TransactWriteItem>, MigrateError> {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut values: HashMap<String, AttributeValue> = HashMap::new();
        let mut conditions = vec!["attribute_exists(#pk)".to_string()];
        names.insert("#pk".into(), pk.to_string());
        if item.len() <= MAX_COMPARED_ATTRIBUTES {
            for (i, (name, value)) in item.iter().enumerate() {
                names.insert(format!("#a{i}"), name.clone());
                values.insert(format!(":a{i}"), value.clone());
                conditions.push(format!("#a{i} = :a{i}"));
            }
        }
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(key.clone()))
            .condition_expression(conditions.join(" AND "))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| MigrateError::Other(format!("table `{table}`: {e}")))?;
        Ok(vec![TransactWriteItem::builder().delete(delete).build()])
    };
    // A transactional delete costs two units.
    let settled = transact_parts(client, table, "contract delete", doomed, actions, |_| 2.0, budget, None).await?;
    Ok(settled
        .into_iter()
        .map(|((_, item), settled)| {
            let gone = match settled {
                Settled::Written => true,
                Settled::Refused(reasons) => reasons.iter().all(|r| r.item().is_none()),
            };
            (item, gone)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};

    use super::*;

    fn item(i: usize, v: u32) -> RawItem {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(format!("k{i:03}"))),
            ("v".to_string(), AttributeValue::N(v.to_string())),
            ("s".to_string(), AttributeValue::S("x".repeat(50))),
        ])
    }

    /// 60 old forms in transactions of 25: two changed since the scan read
    /// them fail their conditions and stay (named by the caller), one
    /// already gone counts as deleted, every other is deleted, including
    /// those that shared a transaction with a changed one.
    #[tokio::test]
    async fn transactions_of_deletes_leave_exactly_the_changed_items() {
        let client = singletable_tests::client().await;
        let table = singletable_tests::unique_table_name("contract");
        client
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap())
            .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
            .send()
            .await
            .unwrap();
        for i in 0..60 {
            client.put_item().table_name(&table).set_item(Some(item(i, 0))).send().await.unwrap();
        }
        // What the scan read; then the application changes two and deletes one.
        let read: Vec<(RawItem, RawItem)> = (0..60).map(|i| (HashMap::from([("pk".to_string(), item(i, 0)["pk"].clone())]), item(i, 0))).collect();
        for i in [7, 31] {
            client.put_item().table_name(&table).set_item(Some(item(i, 1))).send().await.unwrap();
        }
        client.delete_item().table_name(&table).set_key(Some(read[50].0.clone())).send().await.unwrap();

        let budget = Budget::new(None, 4);
        let mut outcome = Vec::new();
        for chunk in transaction_chunks(&read, |(k, i)| singletable::item_size(k) + singletable::item_size(i)) {
            assert!(chunk.len() <= 25);
            outcome.extend(delete_unchanged(&client, &table, "pk", chunk, &budget).await.unwrap());
        }
        let mut kept: Vec<String> = outcome.iter().filter(|(_, gone)| !gone).map(|(i, _)| i["pk"].as_s().unwrap().clone()).collect();
        kept.sort();
        assert_eq!(kept, ["k007", "k031"]);
        assert_eq!(outcome.len(), 60);
        let left = client.scan().table_name(&table).consistent_read(true).send().await.unwrap().items.unwrap_or_default();
        let mut left: Vec<(String, String)> = left.iter().map(|i| (i["pk"].as_s().unwrap().clone(), i["v"].as_n().unwrap().clone())).collect();
        left.sort();
        assert_eq!(left, [("k007".to_string(), "1".to_string()), ("k031".to_string(), "1".to_string())], "only the changed items stay, as written");
        singletable_tests::delete_table(&client, &table).await;
    }
}
