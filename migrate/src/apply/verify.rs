//! The verification pass after apply: counts per entity, every item
//! conforms to the new templates, no old-form leftovers.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use singletable::{EntityDesign, TableDesign};

use super::backfill::{scan_page, Projection};
use super::options::{Event, Observer, VerifyReport};
use crate::error::MigrateError;
use crate::plan::{Change, Plan};
use crate::raw::RawItem;
use crate::reserved::is_reserved_in;

/// Why `item` does not conform to `design`, if it does not: its key
/// attributes must be exactly what the templates render from it, and it
/// may hold no index key of an index it is not (or no longer) in.
pub fn nonconformance(design: &EntityDesign, table: &TableDesign, old: Option<&TableDesign>, item: &RawItem) -> Option<String> {
    let rendered = match design.render_keys(item) {
        Ok(keys) => keys,
        Err(e) => return Some(e.to_string()),
    };
    for (attr, value) in &rendered {
        match item.get(attr) {
            Some(AttributeValue::S(v)) if v == value => {}
            other => return Some(format!("`{attr}` is {other:?}, the template renders {value:?}")),
        }
    }
    let index_attrs = old
        .into_iter()
        .chain(std::iter::once(table))
        .flat_map(|d| d.indexes.iter())
        .flat_map(|i| std::iter::once(&i.pk_attr).chain(i.sk_attr.as_ref()));
    for attr in index_attrs {
        if item.contains_key(attr) && !rendered.iter().any(|(a, _)| a == attr) {
            return Some(format!("holds `{attr}`, a key of an index the entity is not in"));
        }
    }
    None
}

/// What verification reads of each item: the key attributes of the table
/// and of every index (old or new), the entity attributes, and every
/// attribute a template of the new design reads. Payloads are not needed,
/// and leaving them out makes the scan cheaper (on DynamoDB Local a
/// quarter faster for ~300-byte items). `None` (whole items) when the list
/// would be unwieldy.
fn projection(plan: &Plan) -> Option<Projection> {
    let designs = || plan.from.iter().chain(std::iter::once(&plan.to));
    let table_keys = designs().flat_map(|d| [d.pk_attr.as_str(), d.sk_attr.as_str()]);
    let index_keys = designs().flat_map(|d| d.indexes.iter()).flat_map(|i| std::iter::once(i.pk_attr.as_str()).chain(i.sk_attr.as_deref()));
    let entity_attrs = designs().flat_map(|d| d.entities.iter()).map(|e| e.entity_attr.as_ref());
    let template_fields = plan.to.entities.iter().flat_map(|e| e.key_designs()).flat_map(|k| k.template.fields()).map(|f| f.attr.as_ref());
    let projection = Projection::new(table_keys.chain(index_keys).chain(entity_attrs).chain(template_fields));
    (projection.len() <= 100).then_some(projection)
}

/// Scans the whole table and checks it against `plan.to`, with at most
/// `in_flight` segments scanned at once.
/// `plan_counts`: compare each entity's count with the plan's scan (a
/// quiet apply, where nobody else creates or deletes); an online apply
/// reconciles content at cut-over instead, since the application's own
/// creates and deletes move the counts.
/// [`Event::Verified`] goes to `observer` after each page.
pub(crate) async fn verify(
    client: &Client,
    plan: &Plan,
    segments: u32,
    in_flight: u32,
    plan_counts: bool,
    observer: &dyn Observer,
) -> Result<VerifyReport, MigrateError> {
    let total = Some(plan.entities.iter().map(|e| e.items).sum::<u64>()).filter(|n| *n > 0);
    let checked = std::sync::atomic::AtomicU64::new(0);
    let segments = segments.max(1);
    let design = &plan.to;
    let entity_attr = design.entities.first().map(|e| e.entity_attr.to_string()).unwrap_or_else(|| "_et".into());
    let removed: Vec<&str> = plan
        .changes
        .iter()
        .filter_map(|c| if let Change::RemoveEntity { entity } = c { Some(entity.as_str()) } else { None })
        .collect();
    let projection = projection(plan);
    let found = Mutex::new((HashMap::<String, u64>::new(), 0u64, Vec::<String>::new()));
    let tasks = (0..segments).map(|segment| {
        let (found, entity_attr, removed, projection, checked) = (&found, &entity_attr, &removed, projection.as_ref(), &checked);
        async move {
            let mut start = None;
            loop {
                let (items, next) = scan_page(client, &plan.table, segment, segments, start, None, projection).await?;
                let own = items.iter().filter(|i| !is_reserved_in(i, &design.pk_attr)).count() as u64;
                let n = checked.fetch_add(own, std::sync::atomic::Ordering::Relaxed) + own;
                observer.event(Event::Verified { checked: n, total });
                for item in items {
                    if is_reserved_in(&item, &design.pk_attr) {
                        continue;
                    }
                    let entity = match item.get(entity_attr) {
                        Some(AttributeValue::S(e)) => e.clone(),
                        _ => String::new(),
                    };
                    let problem = match design.entity(&entity) {
                        Some(e) => nonconformance(e, design, plan.from.as_ref(), &item),
                        None if removed.contains(&entity.as_str()) => Some("left over from a removed entity".to_string()),
                        None => None,
                    };
                    let mut found = found.lock().expect("verify state");
                    match design.entity(&entity) {
                        Some(_) => *found.0.entry(entity.clone()).or_default() += 1,
                        None => found.1 += 1,
                    }
                    if let Some(p) = problem {
                        if found.2.len() < 20 {
                            let key = (item.get(&design.pk_attr), item.get(&design.sk_attr));
                            found.2.push(format!("{entity} item {key:?}: {p}"));
                        }
                    }
                }
                match next {
                    Some(k) => start = Some(k),
                    None => return Ok::<(), MigrateError>(()),
                }
            }
        }
    });
    stream::iter(tasks).buffer_unordered(in_flight.max(1) as usize).try_collect::<()>().await?;
    let (counts, unknown, mut problems) = found.into_inner().expect("verify state");
    // Counts from the plan's scan: no item may have gone missing.
    for report in plan.entities.iter().filter(|_| plan_counts) {
        if removed.contains(&report.entity.as_str()) || design.entity(&report.entity).is_none() {
            continue;
        }
        let now = counts.get(&report.entity).copied().unwrap_or(0);
        if now < report.items {
            problems.push(format!("{}: {} items before apply, {now} after", report.entity, report.items));
        }
    }
    Ok(VerifyReport { counts: counts.into_iter().collect(), unknown, problems })
}
