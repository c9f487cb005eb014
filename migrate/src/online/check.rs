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

use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use singletable::hash::{hash_map, Fnv64};

use crate::apply::backfill::scan_page;
use crate::decide::{ItemAction, Rules};
use crate::error::MigrateError;
use crate::plan::Plan;
use crate::raw::RawItem;
use crate::reserved::is_reserved_in;

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

fn key_text(item: &RawItem, pk: &str, sk: &str) -> String {
    let part = |a: &str| item.get(a).and_then(|v| v.as_s().ok()).cloned().unwrap_or_else(|| "?".into());
    format!("({}, {})", part(pk), part(sk))
}

/// Scans the table and compares (see the module docs). At most 20
/// problems are named; the count is in the last line when there are more.
pub(crate) async fn check(client: &Client, plan: &Plan, rules: &Rules<'_>, segments: u32) -> Result<ContentReport, MigrateError> {
    let (pk, sk) = (plan.to.pk_attr.as_str(), plan.to.sk_attr.as_str());
    // new key -> digest of what the old form renders / of what is stored
    let expected: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    let stored: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
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
                            ItemAction::Move { new_item, .. } => {
                                expected.lock().expect("check").insert(key_text(&new_item, pk, sk), digest(&new_item));
                            }
                            ItemAction::Update { .. } => {
                                problems.lock().expect("check").push(format!(
                                    "{} {}: its index keys are not what its attributes render",
                                    item.get(entity_attr.as_str()).and_then(|v| v.as_s().ok()).map_or("?", |s| s.as_str()),
                                    key_text(&item, pk, sk)
                                ));
                            }
                            ItemAction::Keep => {
                                let entity = item.get(entity_attr.as_str()).and_then(|v| v.as_s().ok());
                                if entity.is_some_and(|e| moved_entities.contains(&e.as_str())) {
                                    stored.lock().expect("check").insert(key_text(&item, pk, sk), digest(&item));
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
    let mut mismatched: Vec<String> = Vec::new();
    for (key, want) in &expected {
        match stored.get(key) {
            Some(got) if got == want => {}
            Some(_) => mismatched.push(format!("{key}: the new form differs from what its old form renders (a lost update)")),
            None => mismatched.push(format!("{key}: the old form has no new form")),
        }
    }
    for key in stored.keys() {
        if !expected.contains_key(key) {
            mismatched.push(format!("{key}: a new form without an old form (a deleted item brought back, or an orphan)"));
        }
    }
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
