//! Old-form writes after cut-over: found in the stream, never deleted.
//!
//! After cut-over the new form is the truth and contract deletes the old
//! forms. An old-form write since then comes either from a migrating
//! table (`singletable::MigratingTable`), which writes both forms in one
//! transaction, or from an application instance still on the old version,
//! which writes the old form alone: deleting that old form would lose an
//! acknowledged write. The replay stopped at the cut-over drain's
//! position, so every such write is in the stream after it. Contract reads
//! the stream from there to its end before it deletes anything, and again
//! after its last delete:
//! - the first read names the items to leave alone;
//! - the second read finds writes that landed while contract ran; one
//!   whose old form contract deleted after reading it is put back (its
//!   newest image, only where no item is). Contract's deletes are
//!   conditional on what it read, so the write it deleted is that one.
//!
//! A migrating table's write is told apart by its write token: it stamps
//! a fresh one on both forms (puts and updates), so the old form's image
//! after the write holds a token the image before it did not. Another
//! writer leaves the token as it was (or drops it).
//!
//! Not caught: a delete of an old form alone after cut-over (the new form
//! stays; it cannot be told from contract's own deletes), and writes to
//! items of removed entities (exported at the start of contract).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;

use super::stream::{self, RecordKind, StreamRecord, StreamTail};
use crate::decide::{ItemAction, Rules};
use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::reserved::{is_reserved_in, WRITE_TOKEN_ATTR};
use crate::retry::retrying;

/// Old forms written alone after cut-over: the old key's text
/// ([`Rules::key_text`]) → (the old key, the newest image written).
#[derive(Debug, Default)]
pub(crate) struct Stragglers {
    pub by_key: HashMap<String, (RawItem, RawItem)>,
}


/// Whether a migrating table made this change of an old form: the image
/// after it holds a write token the image before it did not.
fn by_migrating_table(record: &StreamRecord) -> bool {
    let token = |image: Option<&RawItem>| image.and_then(|i| i.get(WRITE_TOKEN_ATTR)).cloned();
    let after = token(record.new_image.as_ref());
    after.is_some() && after != token(record.old_image.as_ref())
}

/// Reads `tail` to the end of every shard (two rounds that find every
/// shard read to its end, over at least a second, so records on their way
/// into the stream are in), adding every old-form write that no migrating
/// table made to `into`. Returns how many records it read.
pub(crate) async fn read_to_end(tail: &mut StreamTail, rules: &Rules<'_>, into: &mut Stragglers) -> Result<u64, MigrateError> {
    let pk = rules.new.pk_attr.as_str();
    let started = Instant::now();
    let (mut at_end, mut read) = (0u32, 0u64);
    loop {
        let batches = tail.poll().await?;
        let end = batches.iter().all(|b| b.records.len() < stream::GET_RECORDS_LIMIT) && !tail.discovery_pending();
        for record in batches.into_iter().flat_map(|b| b.records) {
            read += 1;
            if is_reserved_in(&record.keys, pk) || record.kind == RecordKind::Remove || by_migrating_table(&record) {
                continue;
            }
            let Some(image) = record.new_image else { continue };
            if let Ok(ItemAction::Move { old_key, .. }) = rules.decide(&image) {
                into.by_key.insert(rules.key_text(&old_key), (old_key, image));
            }
        }
        at_end = if end { at_end + 1 } else { 0 };
        if at_end >= 2 && started.elapsed() >= Duration::from_secs(1) {
            return Ok(read);
        }
        if end {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Puts a straggler's newest image back where contract deleted it (only
/// where no item is: one that is there was left alone). Returns whether it
/// put one back.
pub(crate) async fn put_back(client: &Client, table: &str, pk: &str, image: &RawItem) -> Result<bool, MigrateError> {
    let result = retrying(|| {
        client
            .put_item()
            .table_name(table)
            .set_item(Some(image.clone()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", pk)
            .send()
    })
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
        Err(e) => Err(MigrateError::dynamo("PutItem (old form written after cut-over)", table, e)),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    fn image(n: &str, token: Option<&str>) -> RawItem {
        let mut i = RawItem::from([("pk".to_string(), AttributeValue::S("ORG#a".into())), ("n".to_string(), AttributeValue::N(n.into()))]);
        if let Some(t) = token {
            i.insert(WRITE_TOKEN_ATTR.into(), AttributeValue::S(t.into()));
        }
        i
    }

    fn record(kind: RecordKind, before: Option<RawItem>, after: Option<RawItem>) -> StreamRecord {
        StreamRecord { shard: "s".into(), sequence: "1".into(), kind, keys: RawItem::new(), new_image: after, old_image: before, created_at: None }
    }

    #[test]
    fn a_migrating_tables_write_is_told_by_a_fresh_token() {
        // Put or update through a migrating table: a fresh token.
        assert!(by_migrating_table(&record(RecordKind::Modify, Some(image("1", None)), Some(image("2", Some("t1"))))));
        assert!(by_migrating_table(&record(RecordKind::Modify, Some(image("1", Some("t1"))), Some(image("2", Some("t2"))))));
        assert!(by_migrating_table(&record(RecordKind::Insert, None, Some(image("2", Some("t1"))))));
        // The old version: the token as it was, dropped, or none at all.
        assert!(!by_migrating_table(&record(RecordKind::Modify, Some(image("1", Some("t1"))), Some(image("2", Some("t1"))))));
        assert!(!by_migrating_table(&record(RecordKind::Modify, Some(image("1", Some("t1"))), Some(image("2", None)))));
        assert!(!by_migrating_table(&record(RecordKind::Modify, Some(image("1", None)), Some(image("2", None)))));
        assert!(!by_migrating_table(&record(RecordKind::Insert, None, Some(image("2", None)))));
    }
}
