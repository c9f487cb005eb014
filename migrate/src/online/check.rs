//! Content verification at cut-over: every new form holds exactly what its
//! old form renders to, and no new form lacks an old form.
//!
//! At cut-over the old form is the truth (every write went to it, and the
//! replay has drained), so the check is: for every old-form item, the item
//! `decide` renders from it equals, attribute for attribute, the item
//! stored at its new key; every new-form item of a moved entity has an old
//! form (else it was resurrected, or orphaned); every item whose index keys
//! change in place carries the keys its attributes render. Items are
//! compared by a stable hash of their canonical bytes, so memory grows
//! with 16 bytes plus the key per item, never with item size.

use std::collections::HashMap;
use std::sync::Mutex;

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, Get, TransactGetItem};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use singletable::hash::{hash_map, Fnv64};

use crate::apply::backfill::scan_page;
use crate::decide::{ItemAction, Rules};
use crate::error::MigrateError;
use crate::plan::Plan;
use crate::raw::RawItem;
use crate::reserved::is_reserved_in;
use crate::retry::retrying;

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContentReport {
    /// Old-form items whose new form was compared.
    pub compared: u64,
    /// Items whose index keys were checked in place.
    pub in_place: u64,
    /// What is wrong, naming the items; empty when all is well.
    pub problems: Vec<String>,
}

fn digest(item: &RawItem) -> u64 {
    let mut h = Fnv64::new();
    hash_map(&mut h, item, |_| true);
    h.finish()
}

/// A stored new form: its digest, its key, its old form's key.
type Stored = (u64, RawItem, Option<RawItem>);

/// The old form's key of a new-form item, rendered with the old design.
fn old_key_of(plan: &Plan, entity: &str, item: &RawItem) -> Option<RawItem> {
    let old = plan.from.as_ref()?;
    let design = old.entity(entity)?;
    let pk = design.pk.template.render_item(item, &design.entity, &design.pk.attr).ok()?;
    let sk = design.sk.template.render_item(item, &design.entity, &design.sk.attr).ok()?;
    Some(HashMap::from([(old.pk_attr.clone(), AttributeValue::S(pk)), (old.sk_attr.clone(), AttributeValue::S(sk))]))
}

/// Reads both forms of one suspect item at once and says what is wrong
/// with them, if anything. A transaction in flight on either cancels the
/// read; it is read again (bounded).
async fn recheck(
    client: &Client,
    plan: &Plan,
    rules: &Rules<'_>,
    key: &str,
    old_key: Option<RawItem>,
    new_key: Option<RawItem>,
) -> Result<Option<String>, MigrateError> {
    let keys: Vec<RawItem> = old_key.iter().chain(new_key.iter()).cloned().collect();
    let mut attempt = 0;
    let items = loop {
        attempt += 1;
        let gets = keys
            .iter()
            .map(|k| {
                let get = Get::builder().table_name(&plan.table).set_key(Some(k.clone())).build().map_err(|e| MigrateError::Other(e.to_string()))?;
                Ok(TransactGetItem::builder().get(get).build())
            })
            .collect::<Result<Vec<_>, MigrateError>>()?;
        match retrying(|| client.transact_get_items().set_transact_items(Some(gets.clone())).send()).await {
            Ok(out) => break out.responses.unwrap_or_default().into_iter().map(|r| r.item).collect::<Vec<_>>(),
            Err(e) if attempt < 8 && e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
            }
            Err(e) => return Err(MigrateError::dynamo("TransactGetItems (content check)", &plan.table, e)),
        }
    };
    let mut it = items.into_iter();
    let old = if old_key.is_some() { it.next().flatten() } else { None };
    let new = if new_key.is_some() { it.next().flatten() } else { None };
    let rendered = match &old {
        Some(old) => match rules.decide(old).map_err(|r| MigrateError::Blocked { table: plan.table.clone(), errors: vec![r] })? {
            ItemAction::Move { new_item, .. } => Some(new_item),
            _ => None,
        },
        None => None,
    };
    // An old form found only now (written after the scan passed it) has a
    // new form to compare with only if the key was read.
    let new = match (&rendered, new, &new_key) {
        (Some(r), None, None) => {
            let k = rules.key_of(r);
            let out = retrying(|| client.get_item().table_name(&plan.table).set_key(Some(k.clone())).consistent_read(true).send())
                .await
                .map_err(|e| MigrateError::dynamo("GetItem (content check)", &plan.table, e))?;
            out.item
        }
        (_, new, _) => new,
    };
    Ok(match (rendered, new) {
        (None, None) => None,
        (Some(r), Some(n)) if digest(&r) == digest(&n) => None,
        (Some(_), Some(_)) => Some(format!("{key}: the new form differs from what its old form renders (a lost update)")),
        (Some(_), None) => Some(format!("{key}: the old form has no new form")),
        (None, Some(_)) => Some(format!("{key}: a new form without an old form (a deleted item brought back, or an orphan)")),
    })
}

/// Scans the table and compares (see the module docs). At most 20
/// problems are named; the count is in the last line when there are more.
pub(crate) async fn check(client: &Client, plan: &Plan, rules: &Rules<'_>, segments: u32) -> Result<ContentReport, MigrateError> {
    let pk = plan.to.pk_attr.as_str();
    // new key -> digest of what the old form renders, and the old key
    let expected: Mutex<HashMap<String, (u64, RawItem)>> = Mutex::new(HashMap::new());
    // new key -> digest of what is stored, the new key, the old key
    let stored: Mutex<HashMap<String, Stored>> = Mutex::new(HashMap::new());
    let problems: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let in_place = std::sync::atomic::AtomicU64::new(0);
    let moved_entities: Vec<&str> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            crate::plan::Change::Rewrite(r) if r.table_key.is_some() => Some(r.entity.as_str()),
            _ => None,
        })
        .collect();
    let entity_attr = plan.to.entities.first().map(|e| e.entity_attr.to_string()).unwrap_or_else(|| "_et".into());
    let segments = segments.max(1);
    stream::iter(0..segments)
        .map(Ok::<u32, MigrateError>)
        .try_for_each_concurrent(None, |segment| {
            let (expected, stored, problems, in_place, moved_entities, entity_attr) =
                (&expected, &stored, &problems, &in_place, &moved_entities, &entity_attr);
            async move {
                let mut start = None;
                loop {
                    let (items, next) = scan_page(client, &plan.table, segment, segments, start, None, None).await?;
                    for item in items {
                        if is_reserved_in(&item, pk) {
                            continue;
                        }
                        let action = rules.decide(&item).map_err(|r| MigrateError::Blocked { table: plan.table.clone(), errors: vec![r] })?;
                        match action {
                            ItemAction::Move { new_item, old_key } => {
                                expected.lock().expect("check").insert(rules.key_text(&new_item), (digest(&new_item), old_key));
                            }
                            ItemAction::Update { .. } => {
                                problems.lock().expect("check").push(format!(
                                    "{} {}: its index keys are not what its attributes render",
                                    item.get(entity_attr.as_str()).and_then(|v| v.as_s().ok()).map_or("?", |s| s.as_str()),
                                    rules.key_text(&item)
                                ));
                            }
                            ItemAction::Keep => {
                                let entity = item.get(entity_attr.as_str()).and_then(|v| v.as_s().ok());
                                if let Some(entity) = entity.filter(|e| moved_entities.contains(&e.as_str())) {
                                    let old_key = old_key_of(plan, entity, &item);
                                    let new_key = rules.key_of(&item);
                                    stored.lock().expect("check").insert(rules.key_text(&item), (digest(&item), new_key, old_key));
                                } else {
                                    in_place.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                            ItemAction::Delete { .. } | ItemAction::Unknown => {}
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
    let expected = expected.into_inner().expect("check");
    let stored = stored.into_inner().expect("check");
    let mut problems = problems.into_inner().expect("check");
    // key text -> (old key, new key) of each item found wrong by the scan
    let mut suspects: Vec<(String, Option<RawItem>, Option<RawItem>)> = Vec::new();
    for (key, (want, old_key)) in &expected {
        match stored.get(key) {
            Some((got, _, _)) if got == want => {}
            Some((_, new_key, _)) => suspects.push((key.clone(), Some(old_key.clone()), Some(new_key.clone()))),
            None => suspects.push((key.clone(), Some(old_key.clone()), None)),
        }
    }
    for (key, (_, new_key, old_key)) in &stored {
        if !expected.contains_key(key) {
            suspects.push((key.clone(), old_key.clone(), Some(new_key.clone())));
        }
    }
    // The scan reads the two forms of an item at different times; a
    // migrating table writing both (cut-over without a write pause) can
    // change them in between. Each suspect is read again, both forms in
    // one TransactGetItems (a consistent snapshot of the two).
    let mut mismatched: Vec<String> = stream::iter(suspects)
        .map(|(key, old_key, new_key)| async move { recheck(client, plan, rules, &key, old_key, new_key).await })
        .buffer_unordered(16)
        .try_filter_map(|p| async move { Ok(p) })
        .try_collect()
        .await?;
    mismatched.sort();
    problems.extend(mismatched);
    let total = problems.len();
    if total > 20 {
        problems.truncate(20);
        problems.push(format!("... and {} more", total - 20));
    }
    Ok(ContentReport {
        compared: expected.len() as u64,
        in_place: in_place.into_inner(),
        problems,
    })
}
