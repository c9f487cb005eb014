//! The contract phase: old forms go, once the application writes only the
//! new ones.
//!
//! Each old form is deleted on the condition that it still holds exactly
//! what the scan read (every attribute, compared in the condition), so a
//! write that reached an old form after cut-over (an application instance
//! still on the old version) is never deleted with it: the item is left in
//! place and named in the error, for the user to carry over by hand or to
//! roll back to. Items of removed entities are exported first and deleted
//! the same way. New forms a migrating table wrote lose their write token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::apply::backfill::scan_page;
use crate::apply::write::Budget;
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
    /// Old forms written after cut-over, left in place.
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
pub(crate) async fn run(client: &Client, plan: &Plan, rules: &Rules<'_>, segments: u32, budget: &Budget) -> Result<Contracted, MigrateError> {
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
                    stream::iter(doomed.into_iter().map(Ok::<_, MigrateError>))
                        .try_for_each_concurrent(None, |(key, item)| async move {
                            if delete_unchanged(client, &plan.table, pk, key, &item, budget).await? {
                                deleted.fetch_add(1, Ordering::Relaxed);
                            } else {
                                let sk = &plan.to.sk_attr;
                                let part = |a: &str| item.get(a).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                                changed.lock().expect("contract").push(format!("({}, {})", part(pk), part(sk)));
                            }
                            Ok(())
                        })
                        .await?;
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

/// Deletes `key` if the item still is `item`; `false` when it changed.
/// An item already gone counts as deleted: the SDK sends a request again
/// when its answer is lost, and the second attempt of a delete whose
/// first one landed fails its condition on no item at all.
async fn delete_unchanged(client: &Client, table: &str, pk: &str, key: RawItem, item: &RawItem, budget: &Budget) -> Result<bool, MigrateError> {
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
    let condition = conditions.join(" AND ");
    let result = retrying(|| async {
        budget.units(1.0).await;
        let _slot = budget.slot().await;
        client
            .delete_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .condition_expression(&condition)
            .set_expression_attribute_names(Some(names.clone()))
            .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
            .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
    })
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(c)) => Ok(c.item().is_none()),
            _ => Err(MigrateError::dynamo("DeleteItem (contract)", table, e)),
        },
    }
}
