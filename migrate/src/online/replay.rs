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
//!
//! Puts and deletes of new forms hold only while the new form carries the
//! write token the change started from ([`token_condition`]), so that a
//! migrating table's writes, which stamp both forms, are never
//! overwritten by an older change.
//!
//! A round's writes for one shard go in transactions of up to 99 that end
//! with a check of the shard's lease (`shards`): a worker that lost the
//! shard (paused past its lease) writes nothing for it, and would
//! otherwise put back an image older than what the shard's new owner
//! already replayed. One shard's transactions go one at a time (they
//! share the lease item); the shards go side by side.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

use super::stream::{RecordKind, StreamRecord};
use crate::apply::write::{in_place, transact_parts, transaction_chunks_of, write_units, Budget, Settled, TRANSACTION_ACTIONS};
use crate::decide::{ItemAction, Rules};
use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::reserved::WRITE_TOKEN_ATTR;

/// What the replay did so far.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Records read from the stream.
    pub records: AtomicU64,
    /// Writes made to new forms (puts, deletes, in-place updates).
    pub written: AtomicU64,
    /// Changes not carried over because the new form was written after
    /// them (its write token differs from the one they started from).
    pub superseded: AtomicU64,
}

/// The condition under which a change is carried over to the new form:
/// the new form still holds the write token the change started from (the
/// token of the record's old image; none when the old image has none or
/// there is no old image). A put may also create the new form when there
/// is none.
///
/// A migrating table (`singletable::MigratingTable`) writes both forms in
/// one transaction with a fresh token, so after its write no older change
/// matches, and its own change (whose old image holds the token before
/// it) does not match either: it is never replayed over itself nor over
/// anything newer. Without migrating tables no item holds a token and
/// every change is carried over, in the stream's per-item order.
///
/// A round carries an item's last change only, standing for all of its
/// changes in the round (`started`: the tokens each of them started
/// from). Applied one by one, each change after the first starts from the
/// token the one before it left, so the last one lands exactly when the
/// new form holds any of them: the condition accepts every one. (With
/// only the last one's token, a new form behind by a change of the round,
/// such as a copy of an older scan, would wrongly count as superseded.)
fn token_condition(pk_attr: &str, started: &Tokens, put: bool) -> (String, HashMap<String, String>, Option<HashMap<String, AttributeValue>>) {
    let mut names = HashMap::from([("#w".to_string(), WRITE_TOKEN_ATTR.to_string())]);
    let mut clauses = Vec::new();
    if started.none {
        clauses.push("attribute_not_exists(#w)".to_string());
    }
    let values: HashMap<String, AttributeValue> = started.some.iter().enumerate().map(|(i, t)| (format!(":w{i}"), t.clone())).collect();
    if !values.is_empty() {
        let list: Vec<String> = (0..values.len()).map(|i| format!(":w{i}")).collect();
        clauses.push(format!("#w IN ({})", list.join(", ")));
    }
    let token_clause = clauses.join(" OR ");
    let values = (!values.is_empty()).then_some(values);
    if !put {
        return (token_clause, names, values);
    }
    names.insert("#pk".into(), pk_attr.to_string());
    (format!("attribute_not_exists(#pk) OR {token_clause}"), names, values)
}

/// The write tokens an item's changes in a round started from.
#[derive(Debug, Default, Clone)]
struct Tokens {
    /// Some change started from no token.
    none: bool,
    /// The distinct tokens, in the order met.
    some: Vec<AttributeValue>,
}

/// DynamoDB's limit on the operands of `IN`.
const MAX_IN: usize = 100;

impl Tokens {
    fn of(record: &StreamRecord) -> Tokens {
        let mut t = Tokens::default();
        t.add(record);
        t
    }

    fn add(&mut self, record: &StreamRecord) {
        match record.old_image.as_ref().and_then(|i| i.get(WRITE_TOKEN_ATTR)) {
            Some(token) if !self.some.contains(token) => self.some.push(token.clone()),
            Some(_) => {}
            None => self.none = true,
        }
    }
}

/// A stable identity of an item key for collapsing records.
fn key_id(keys: &RawItem) -> String {
    let mut parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    parts.sort();
    parts.join("\u{1}")
}

/// One item's write of a round, as a transaction's action.
#[derive(Debug, Clone)]
struct Write {
    action: TransactWriteItem,
    units: f64,
    size: usize,
    /// Refused, it counts as superseded (a put or delete whose token
    /// condition failed); an in-place update refused was overtaken by a
    /// newer change of the item, whose record follows and settles it.
    superseded_if_refused: bool,
}

/// Applies one round of records: the last record of each item, each
/// shard's writes in transactions that check the shard's lease (its fence
/// in `fences`: see `shards`), the shards side by side. Returns the shards
/// whose fence failed: another worker holds them now, and nothing of
/// theirs was written after the failure (the new owner replays from the
/// saved position).
pub(crate) async fn apply_round(
    client: &Client,
    table: &str,
    rules: &Rules<'_>,
    records: Vec<StreamRecord>,
    budget: &Budget,
    counters: &Counters,
    fences: &HashMap<String, ConditionCheck>,
) -> Result<Vec<String>, MigrateError> {
    counters.records.fetch_add(records.len() as u64, Ordering::Relaxed);
    // shard -> item -> its records, in stream order.
    let mut by_shard: HashMap<String, HashMap<String, Vec<StreamRecord>>> = HashMap::new();
    for r in records {
        by_shard.entry(r.shard.clone()).or_default().entry(key_id(&r.keys)).or_default().push(r);
    }
    let shards = by_shard.into_iter().map(|(shard, items)| async move {
        let Some(fence) = fences.get(&shard) else { return Ok(Some(shard)) };
        let lost = apply_shard(client, table, rules, items, budget, counters, fence).await?;
        Ok::<_, MigrateError>(lost.then_some(shard))
    });
    Ok(futures::future::try_join_all(shards).await?.into_iter().flatten().collect())
}

/// One shard's part of a round; `true` when its fence failed.
async fn apply_shard(
    client: &Client,
    table: &str,
    rules: &Rules<'_>,
    items: HashMap<String, Vec<StreamRecord>>,
    budget: &Budget,
    counters: &Counters,
    fence: &ConditionCheck,
) -> Result<bool, MigrateError> {
    // Each item's last change, on the condition that the new form holds a
    // token any of its changes started from; one by one (in order) when
    // they started from more tokens than one condition can list.
    let mut writes = Vec::new();
    let mut one_by_one = Vec::new();
    for mut records in items.into_values() {
        let mut started = Tokens::default();
        for r in &records {
            started.add(r);
        }
        if started.some.len() <= MAX_IN {
            let last = records.pop().expect("an item has a record");
            writes.extend(write_for(table, rules, &last, &started)?);
        } else {
            let mut sequence = Vec::new();
            for r in &records {
                sequence.extend(write_for(table, rules, r, &Tokens::of(r))?);
            }
            one_by_one.push(sequence);
        }
    }
    // The transactions of one shard share its lease item, and
    // transactions sharing an item conflict: one at a time per shard, as
    // large as DynamoDB allows (one action a write, and the fence).
    let mut chunks = transaction_chunks_of(&writes, TRANSACTION_ACTIONS - 1, |w| w.size);
    chunks.extend(one_by_one.into_iter().flatten().map(|w| vec![w]));
    for chunk in chunks {
        let settled = transact_parts(client, table, "replay", chunk, |w| Ok(vec![w.action.clone()]), |w| w.units, budget, Some(fence)).await;
        let settled = match settled {
            Err(MigrateError::SegmentLost { .. }) => return Ok(true),
            other => other?,
        };
        for (write, outcome) in settled {
            match outcome {
                Settled::Written => counters.written.fetch_add(1, Ordering::Relaxed),
                Settled::Refused(_) if write.superseded_if_refused => counters.superseded.fetch_add(1, Ordering::Relaxed),
                Settled::Refused(_) => 0,
            };
        }
    }
    Ok(false)
}

/// What a record means for the new form, as a write (none: nothing to
/// do).
fn write_for(table: &str, rules: &Rules<'_>, record: &StreamRecord, started: &Tokens) -> Result<Option<Write>, MigrateError> {
    let blocked = |reason: String| MigrateError::Blocked { table: table.to_string(), errors: vec![reason] };
    let built = |e: aws_sdk_dynamodb::error::BuildError| MigrateError::Other(format!("table `{table}`: {e}"));
    match record.kind {
        RecordKind::Insert | RecordKind::Modify => {
            let Some(image) = record.new_image.as_ref() else { return Ok(None) };
            match rules.decide(image).map_err(blocked)? {
                ItemAction::Move { new_item, .. } => {
                    let (units, size) = (2.0 * write_units(&new_item), singletable::item_size(&new_item));
                    let (condition, names, values) = token_condition(&rules.new.pk_attr, started, true);
                    let put = Put::builder()
                        .table_name(table)
                        .set_item(Some(new_item))
                        .condition_expression(condition)
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(values)
                        .build()
                        .map_err(built)?;
                    Ok(Some(Write { action: TransactWriteItem::builder().put(put).build(), units, size, superseded_if_refused: true }))
                }
                ItemAction::Update { key, set, remove, expect } => {
                    let size = singletable::item_size(&key) + set.iter().map(|(a, v)| singletable::item_size(&RawItem::from([(a.clone(), v.clone())]))).sum::<usize>();
                    let parts = in_place(&key, &set, &remove, &expect);
                    let update = Update::builder()
                        .table_name(table)
                        .set_key(Some(key))
                        .update_expression(parts.update)
                        .condition_expression(parts.condition)
                        .set_expression_attribute_names(Some(parts.names))
                        .set_expression_attribute_values((!parts.values.is_empty()).then_some(parts.values))
                        .build()
                        .map_err(built)?;
                    Ok(Some(Write { action: TransactWriteItem::builder().update(update).build(), units: 2.0, size, superseded_if_refused: false }))
                }
                // Removed entities are deleted at contract; new forms,
                // current items and foreign items need nothing.
                ItemAction::Delete { .. } | ItemAction::Keep | ItemAction::Unknown => Ok(None),
            }
        }
        RecordKind::Remove => {
            let Some(image) = record.old_image.as_ref() else {
                return Err(MigrateError::Other(format!(
                    "table `{table}`: a stream record of a deleted item carries no old image; the online apply needs NEW_AND_OLD_IMAGES"
                )));
            };
            let ItemAction::Move { new_item, .. } = rules.decide(image).map_err(blocked)? else { return Ok(None) };
            let key = rules.key_of(&new_item);
            let size = singletable::item_size(&key);
            let (condition, names, values) = token_condition(&rules.new.pk_attr, started, false);
            let delete = Delete::builder()
                .table_name(table)
                .set_key(Some(key))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(values)
                .build()
                .map_err(built)?;
            Ok(Some(Write { action: TransactWriteItem::builder().delete(delete).build(), units: 2.0, size, superseded_if_refused: true }))
        }
    }
}

#[cfg(test)]
mod tests {
    use singletable::{Item, Table, TableDesign};

    use super::*;
    use crate::apply::state::Reserved;
    use crate::apply::workers::{take_lease, Seen};
    use crate::live::LiveTable;
    use crate::plan::Plan;

    mod v1 {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
        pub struct User {
            pub org: String,
            pub id: String,
            pub n: u64,
        }
    }
    mod v2 {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
        pub struct User {
            pub org: String,
            pub id: String,
            pub n: u64,
        }
    }

    /// The old form of user `id` holding `n`, stamped with `token` as a
    /// migrating table stamps it.
    fn old_form(id: &str, n: u64, token: Option<&str>) -> RawItem {
        let mut item = v1::User { org: "acme".into(), id: id.into(), n }.to_item().unwrap();
        if let Some(t) = token {
            item.insert(WRITE_TOKEN_ATTR.into(), AttributeValue::S(t.into()));
        }
        item
    }

    fn new_form(id: &str, n: u64, token: Option<&str>) -> RawItem {
        let mut item = v2::User { org: "acme".into(), id: id.into(), n }.to_item().unwrap();
        if let Some(t) = token {
            item.insert(WRITE_TOKEN_ATTR.into(), AttributeValue::S(t.into()));
        }
        item
    }

    fn record(kind: RecordKind, before: Option<RawItem>, after: Option<RawItem>) -> StreamRecord {
        let keys = before.as_ref().or(after.as_ref()).map(|i| i.iter().filter(|(k, _)| *k == "pk" || *k == "sk").map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap();
        StreamRecord { shard: "s".into(), sequence: "1".into(), kind, keys, new_image: after, old_image: before, created_at: None }
    }

    /// The write token decides, item by item, whether an old-form change
    /// reaches the new form: a change that started from the token the new
    /// form holds (or from none, where it holds none) is carried over; a
    /// change older than a migrating table's write (the new form holds a
    /// newer token) is not, put or delete. Without the condition, the
    /// `superseded` items below would be overwritten or deleted.
    #[tokio::test]
    async fn a_change_older_than_a_migrating_tables_write_is_never_replayed_over_it() {
        let client = singletable_tests::client().await;
        let name = singletable_tests::unique_table_name("replay-token");
        let old = TableDesign::new(&name).entity::<v1::User>().build().unwrap();
        let new = TableDesign::new(&name).entity::<v2::User>().build().unwrap();
        Table::new(client.clone(), old.clone()).create_table().await.unwrap();
        let changes = crate::plan::diff(Some(&old), &new, &LiveTable::as_created(&old)).unwrap();
        let plan = Plan { table: name.clone(), from: Some(old), to: new, changes, entities: vec![], fingerprint: String::new(), defaults: vec![] };
        let defaults = Default::default();
        let rules = Rules::new(&plan, &defaults);
        // New forms as they stand when the records are replayed.
        for item in [
            new_form("plain", 1, None),        // no migrating table involved
            new_form("same", 1, Some("t1")),   // the change started from t1, still there
            new_form("newer", 9, Some("t2")),  // a migrating table wrote t2 after the change
            new_form("gone-newer", 9, Some("t2")),
            new_form("untoken", 9, Some("t2")), // the change started from no token
            new_form("gone", 1, Some("t1")),
            new_form("behind", 1, None),        // a copy of an older scan: two changes of the round behind
            new_form("chain-newer", 9, Some("t9")), // a migrating table wrote after the round's changes
        ] {
            client.put_item().table_name(&name).set_item(Some(item)).send().await.unwrap();
        }
        let records = vec![
            record(RecordKind::Modify, Some(old_form("plain", 1, None)), Some(old_form("plain", 2, None))),
            record(RecordKind::Modify, Some(old_form("same", 1, Some("t1"))), Some(old_form("same", 2, Some("t1")))),
            record(RecordKind::Modify, Some(old_form("newer", 1, Some("t1"))), Some(old_form("newer", 2, Some("t1")))),
            record(RecordKind::Remove, Some(old_form("gone-newer", 1, Some("t1"))), None),
            record(RecordKind::Modify, Some(old_form("untoken", 1, None)), Some(old_form("untoken", 2, None))),
            record(RecordKind::Remove, Some(old_form("gone", 1, Some("t1"))), None),
            record(RecordKind::Insert, None, Some(old_form("created", 5, None))),
            // Two changes of one item in one round, each from the token the
            // one before left (a migrating table's updates of the old form
            // alone, while its new form was not copied yet).
            record(RecordKind::Modify, Some(old_form("behind", 1, None)), Some(old_form("behind", 2, Some("t1")))),
            record(RecordKind::Modify, Some(old_form("behind", 2, Some("t1"))), Some(old_form("behind", 3, Some("t2")))),
            record(RecordKind::Modify, Some(old_form("chain-newer", 1, None)), Some(old_form("chain-newer", 2, Some("t1")))),
            record(RecordKind::Modify, Some(old_form("chain-newer", 2, Some("t1"))), Some(old_form("chain-newer", 3, Some("t2")))),
        ];
        let counters = Counters::default();
        // The records' shard, leased by this replay (see `shards`).
        let at = Reserved { client: client.clone(), table: name.clone(), pk_attr: "pk".into(), sk_attr: "sk".into() };
        let sk = "#CHECKPOINT#test#shard#s";
        let mut lease = at.key(sk);
        lease.insert("done".into(), AttributeValue::Bool(false));
        client.put_item().table_name(&name).set_item(Some(lease)).send().await.unwrap();
        let held = take_lease(&at, sk, Seen { counter: 0, epoch: 0 }, "me", "stream shard", None).await.unwrap().unwrap();
        let fences = HashMap::from([("s".to_string(), held.fence(&at).unwrap())]);
        let lost = apply_round(&client, &name, &rules, records, &Budget::new(None, 4), &counters, &fences).await.unwrap();
        assert!(lost.is_empty());

        let n_of = |id: &'static str| {
            let client = client.clone();
            let name = name.clone();
            async move {
                let key = HashMap::from([("pk".to_string(), AttributeValue::S("TENANT#acme".into())), ("sk".to_string(), AttributeValue::S(format!("USER#{id}")))]);
                let item = client.get_item().table_name(&name).set_key(Some(key)).consistent_read(true).send().await.unwrap().item;
                item.map(|i| (i["n"].as_n().unwrap().clone(), i.get(WRITE_TOKEN_ATTR).map(|t| t.as_s().unwrap().clone())))
            }
        };
        assert_eq!(n_of("plain").await, Some(("2".into(), None)), "carried over");
        assert_eq!(n_of("same").await, Some(("2".into(), Some("t1".into()))), "carried over");
        assert_eq!(n_of("created").await, Some(("5".into(), None)), "created");
        assert_eq!(n_of("gone").await, None, "deleted");
        assert_eq!(n_of("newer").await, Some(("9".into(), Some("t2".into()))), "superseded: the migrating table's write stays");
        assert_eq!(n_of("gone-newer").await, Some(("9".into(), Some("t2".into()))), "superseded: not deleted");
        assert_eq!(n_of("untoken").await, Some(("9".into(), Some("t2".into()))), "superseded: not overwritten");
        assert_eq!(n_of("behind").await, Some(("3".into(), Some("t2".into()))), "the round's last change lands on a form behind by two");
        assert_eq!(n_of("chain-newer").await, Some(("9".into(), Some("t9".into()))), "superseded: newer than the whole round");
        assert_eq!(counters.superseded.load(Ordering::Relaxed), 4);
        assert_eq!(counters.written.load(Ordering::Relaxed), 5);

        // Another worker takes the shard: a round under the old lease
        // writes nothing and reports the shard lost.
        take_lease(&at, sk, Seen { counter: 1, epoch: 1 }, "other", "stream shard", None).await.unwrap().expect("taken over");
        let late = vec![record(RecordKind::Modify, Some(old_form("plain", 2, None)), Some(old_form("plain", 3, None)))];
        let lost = apply_round(&client, &name, &rules, late, &Budget::new(None, 4), &counters, &fences).await.unwrap();
        assert_eq!(lost, ["s"]);
        assert_eq!(n_of("plain").await, Some(("2".into(), None)), "fenced off: the new owner replays it");
        singletable_tests::delete_table(&client, &name).await;
    }

    #[test]
    fn key_ids_ignore_attribute_order() {
        let a: RawItem = [("pk".to_string(), AttributeValue::S("A".into())), ("sk".to_string(), AttributeValue::S("B".into()))].into();
        let b: RawItem = [("sk".to_string(), AttributeValue::S("B".into())), ("pk".to_string(), AttributeValue::S("A".into()))].into();
        assert_eq!(key_id(&a), key_id(&b));
        let c: RawItem = [("pk".to_string(), AttributeValue::S("A".into())), ("sk".to_string(), AttributeValue::S("C".into()))].into();
        assert_ne!(key_id(&a), key_id(&c));
    }
}
