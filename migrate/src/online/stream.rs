//! The stream reader of the online apply: turns the table's DynamoDB
//! stream on (with new images), and tails every shard of it in lineage
//! order (a child shard only after its parent is read to its end), with
//! resumable per-shard positions.
//!
//! Order: records come back in stream order within a shard, and a shard's
//! children are read only once the shard is done, so the changes to one
//! item arrive in the order they happened. Across shards nothing is
//! ordered.
//!
//! DynamoDB Local differs from the service in ways handled here: a shard
//! iterator on a brand-new stream can raise TrimmedDataAccessException
//! (retried after a short sleep), and GetRecords sometimes answers an open
//! shard without a NextShardIterator (the shard stays open and a new
//! iterator is taken after the last sequence read on the next round; only
//! a shard DescribeStream reports closed, with an EndingSequenceNumber, is
//! ever done).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, StreamSpecification, StreamViewType, TableStatus};
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::types::{
    AttributeValue as StreamValue, OperationType, ShardIteratorType, StreamStatus,
    StreamViewType as StreamsViewType,
};
use futures::StreamExt;

use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::retry::retrying;

/// How long [`enable`] waits for the table and its new stream.
const ENABLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Records asked for per GetRecords call (the service's maximum).
pub(crate) const GET_RECORDS_LIMIT: usize = 1000;
const RECORDS_PER_CALL: i32 = GET_RECORDS_LIMIT as i32;
/// Shards read at once.
const MAX_IN_FLIGHT: usize = 8;
/// Tries of a shard read refused as trimmed (a brand-new stream on
/// DynamoDB Local) before it is an error; the sleeps between add up to
/// about 3 s.
const TRIMMED_TRIES: u32 = 6;
/// DescribeStream runs when a shard may have ended (a read came back
/// without a next iterator), at most this often...
const DESCRIBE_AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// ... and at least this often, to find shards no read could announce.
/// Not every round: it lists every shard, and on DynamoDB Local it is a
/// query over every stream record the server holds (of deleted tables
/// too), run on the thread that serves every request; called each round
/// it stalled the whole server for minutes once a few test tables had
/// streamed (seen in thread dumps of DynamoDB Local).
const DESCRIBE_AT_LEAST_EVERY: Duration = Duration::from_secs(30);

/// Turns the stream of `table` on with new and old images if it is off,
/// and returns its ARN once DynamoDB Streams says it is ENABLED. A stream
/// already on with new images (NEW_IMAGE or NEW_AND_OLD_IMAGES) is kept;
/// one without them (KEYS_ONLY, OLD_IMAGE) is an error, since changing it
/// would cut off its current readers: the user must change it.
///
/// Only changes made after the stream is on are captured.
pub(crate) async fn enable(
    client: &aws_sdk_dynamodb::Client,
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
) -> Result<String, MigrateError> {
    let deadline = Instant::now() + ENABLE_TIMEOUT;
    let mut updated = false;
    let mut attempt = 0;
    loop {
        let desc = retrying(|| client.describe_table().table_name(table).send())
            .await
            .map_err(|e| MigrateError::dynamo("DescribeTable", table, e))?
            .table
            .ok_or_else(|| MigrateError::Other(format!("DescribeTable on table `{table}` returned no table")))?;
        let spec = desc.stream_specification();
        let on = spec.is_some_and(|s| s.stream_enabled());
        if on {
            match spec.and_then(|s| s.stream_view_type()) {
                Some(StreamViewType::NewImage | StreamViewType::NewAndOldImages) => {}
                other => {
                    let view = other.map_or("unknown", |v| v.as_str());
                    return Err(MigrateError::Other(format!(
                        "table `{table}` has a DynamoDB stream with view {view}; the online apply reads new \
                         images and needs NEW_AND_OLD_IMAGES (or NEW_IMAGE): change the table's stream \
                         (it has other readers, so the tool will not), or apply offline"
                    )));
                }
            }
            let active = desc.table_status() == Some(&TableStatus::Active);
            if let (true, Some(arn)) = (active, desc.latest_stream_arn()) {
                let status = retrying(|| streams.describe_stream().stream_arn(arn).limit(1).send())
                    .await
                    .map_err(|e| MigrateError::dynamo("DescribeStream", table, e))?
                    .stream_description
                    .and_then(|d| d.stream_status);
                if status == Some(StreamStatus::Enabled) {
                    return Ok(arn.to_string());
                }
            }
        } else if !updated {
            let spec = StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(|e| MigrateError::Other(format!("table `{table}`: stream specification: {e}")))?;
            let sent = retrying(|| client.update_table().table_name(table).stream_specification(spec.clone()).send()).await;
            match sent {
                Ok(_) => {
                    updated = true;
                    continue;
                }
                // Another process turned it on, or the table is busy (an
                // index being built): look again after a pause.
                Err(e) if e.as_service_error().is_some_and(|s| {
                    matches!(aws_sdk_dynamodb::error::ProvideErrorMetadata::code(s), Some("ValidationException" | "ResourceInUseException"))
                }) && Instant::now() < deadline => {}
                Err(e) => return Err(MigrateError::dynamo("UpdateTable", table, e)),
            }
        }
        if Instant::now() >= deadline {
            return Err(MigrateError::Other(format!(
                "table `{table}`: its stream was not ENABLED within {} s",
                ENABLE_TIMEOUT.as_secs()
            )));
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis((50u64 << attempt.min(5)).min(1_000))).await;
    }
}

/// Turns the table's stream off again (the online apply turned it on and
/// the design has none).
pub(crate) async fn disable(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), MigrateError> {
    let spec = StreamSpecification::builder()
        .stream_enabled(false)
        .build()
        .map_err(|e| MigrateError::Other(format!("table `{table}`: stream specification: {e}")))?;
    retrying(|| client.update_table().table_name(table).stream_specification(spec.clone()).send())
        .await
        .map_err(|e| MigrateError::dynamo("UpdateTable (stream off)", table, e))?;
    Ok(())
}

/// What a stream record records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    Insert,
    Modify,
    Remove,
}

/// One change of one item, as the stream carries it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamRecord {
    /// The shard it was read from.
    pub shard: String,
    /// Its sequence number: orders the records of one shard (compare as
    /// numbers, not strings, if at all; they come back in order).
    pub sequence: String,
    pub kind: RecordKind,
    /// The item's primary key.
    pub keys: RawItem,
    /// The item after the change (none for a Remove).
    pub new_image: Option<RawItem>,
    /// The item before the change (none for an Insert, or when the
    /// stream's view is NEW_IMAGE).
    pub old_image: Option<RawItem>,
    /// ApproximateCreationDateTime in epoch seconds: rounded down to the
    /// second, so it never orders two changes of one item.
    pub created_at: Option<f64>,
}

/// Where reading a shard resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ShardPosition {
    /// After this sequence number.
    After(String),
    /// The shard is closed and was read to its end.
    Done,
}

/// The records one GetRecords call returned for one shard.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShardBatch {
    pub shard: String,
    /// In stream order.
    pub records: Vec<StreamRecord>,
    /// Where to resume after this batch: the last record's sequence, or
    /// Done when the shard was read to its end.
    pub position: ShardPosition,
}

/// What the reader knows of one shard.
#[derive(Debug, Default)]
struct Shard {
    parent: Option<String>,
    /// DescribeStream reports an EndingSequenceNumber.
    closed: bool,
    /// Listed by the last DescribeStream.
    listed: bool,
    /// The last sequence read (or the starting position given).
    last: Option<String>,
    done: bool,
    /// The next iterator, when GetRecords gave one.
    iterator: Option<String>,
}

/// The outcome of one shard's read in a round.
struct ShardRead {
    records: Vec<StreamRecord>,
    next: Option<String>,
}

/// Reads every shard of one stream, a round at a time.
pub(crate) struct StreamTail {
    client: aws_sdk_dynamodbstreams::Client,
    table: String,
    stream_arn: String,
    shards: BTreeMap<String, Shard>,
    caught_up: bool,
    /// When DescribeStream last ran (never: `None`).
    described_at: Option<Instant>,
    /// A read since then came back without a next iterator: the shard may
    /// have closed, and its children need listing.
    shard_may_have_ended: bool,
    /// The shards this reader holds the leases of (`shards`): only those
    /// are read. `None`: every shard.
    held: Option<HashSet<String>>,
}

impl StreamTail {
    /// A reader of `stream_arn` (of `table`, for messages) starting at
    /// `start`; shards absent from it are read from TRIM_HORIZON.
    pub(crate) fn new(
        client: aws_sdk_dynamodbstreams::Client,
        table: String,
        stream_arn: String,
        start: HashMap<String, ShardPosition>,
    ) -> Self {
        let shards = start
            .into_iter()
            .map(|(id, pos)| {
                let shard = match pos {
                    ShardPosition::After(seq) => Shard { last: Some(seq), ..Shard::default() },
                    ShardPosition::Done => Shard { done: true, ..Shard::default() },
                };
                (id, shard)
            })
            .collect();
        StreamTail { client, table, stream_arn, shards, caught_up: false, described_at: None, shard_may_have_ended: false, held: None }
    }

    /// Whether the last round returned no record from any open shard (and
    /// no shard was left unread behind its parent).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// A read came back without a next iterator and DescribeStream has
    /// not run since: a shard may have closed, and its children may not be
    /// known yet, so the tail cannot say it read everything.
    pub(crate) fn discovery_pending(&self) -> bool {
        self.shard_may_have_ended
    }

    /// Reads only the shards [`hold`](Self::hold) gives it from now on
    /// (none yet).
    pub(crate) fn held_only(&mut self) {
        self.held = Some(HashSet::new());
    }

    /// Reads `id` from `position` (its start when `None`) from the next
    /// round on: its lease was taken, and whatever this reader knew of it
    /// before may be behind the owner it came from.
    pub(crate) fn hold(&mut self, id: &str, position: Option<&ShardPosition>) {
        let s = self.shards.entry(id.to_string()).or_default();
        s.iterator = None;
        s.last = None;
        s.done = false;
        match position {
            Some(ShardPosition::After(seq)) => s.last = Some(seq.clone()),
            Some(ShardPosition::Done) => s.done = true,
            None => {}
        }
        if let Some(held) = self.held.as_mut() {
            held.insert(id.to_string());
        }
    }

    /// Stops reading `id`: its lease went to another worker, or was given
    /// back.
    pub(crate) fn unhold(&mut self, id: &str) {
        if let Some(held) = self.held.as_mut() {
            held.remove(id);
        }
        if let Some(s) = self.shards.get_mut(id) {
            s.iterator = None;
        }
    }

    /// Every shard the last DescribeStream listed, with its parent.
    pub(crate) fn listed(&self) -> Vec<(String, Option<String>)> {
        self.shards.iter().filter(|(_, s)| s.listed).map(|(id, s)| (id.clone(), s.parent.clone())).collect()
    }

    /// Where each shard resumes, for a checkpoint; shards not read from
    /// yet are absent (they start at TRIM_HORIZON). (The replay saves
    /// each batch's position instead; the tests use this.)
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn positions(&self) -> HashMap<String, ShardPosition> {
        self.shards
            .iter()
            .filter_map(|(id, s)| {
                let pos = if s.done {
                    ShardPosition::Done
                } else {
                    ShardPosition::After(s.last.clone()?)
                };
                Some((id.clone(), pos))
            })
            .collect()
    }

    /// One round: discovers new shards, then reads once from every shard
    /// whose parent is done (at most [`MAX_IN_FLIGHT`] at a time). Returns
    /// a batch for each shard that gave records or was read to its end.
    /// On an error, no record of the round is lost: the next round reads
    /// again after the last sequence returned.
    pub(crate) async fn poll(&mut self) -> Result<Vec<ShardBatch>, MigrateError> {
        let describe = match self.described_at {
            None => true,
            Some(at) => {
                let since = at.elapsed();
                since >= DESCRIBE_AT_LEAST_EVERY || (self.shard_may_have_ended && since >= DESCRIBE_AT_MOST_EVERY)
            }
        };
        if describe {
            self.describe().await?;
            self.described_at = Some(Instant::now());
            self.shard_may_have_ended = false;
        }

        // Readable: open, listed, and its parent (if known) is done. A
        // reader of some shards only reads those; a parent it does not
        // hold was finished by its owner before the child's lease was
        // taken (the lease rules of `shards` see to that).
        let mine = |id: &str| self.held.as_ref().map_or(true, |h| h.contains(id));
        let readable: Vec<String> = self
            .shards
            .iter()
            .filter(|(id, s)| !s.done && s.listed && mine(id))
            .filter(|(_, s)| match s.parent.as_deref().and_then(|p| self.shards.get(p).map(|s| (p, s))) {
                // A parent no longer listed is past retention: nothing to wait for.
                Some((id, parent)) => parent.done || !parent.listed || !mine(id),
                None => true,
            })
            .map(|(id, _)| id.clone())
            .collect();
        let blocked = self.shards.iter().filter(|(id, s)| !s.done && s.listed && mine(id)).count() > readable.len();

        // Owned arguments, collected first: a spawned caller needs the
        // reads' futures to borrow nothing from this round.
        let reads: Vec<_> = readable
            .iter()
            .map(|id| {
                let s = &self.shards[id];
                read_shard(
                    self.client.clone(),
                    self.table.clone(),
                    self.stream_arn.clone(),
                    id.clone(),
                    s.iterator.clone(),
                    s.last.clone(),
                )
            })
            .collect();
        let results: Vec<(String, Result<ShardRead, MigrateError>)> = futures::stream::iter(reads)
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect()
            .await;

        if let Some(err) = results.iter().position(|(_, r)| r.is_err()) {
            // Drop the round: every read shard takes a fresh iterator after
            // its last sequence next time.
            for id in &readable {
                if let Some(s) = self.shards.get_mut(id) {
                    s.iterator = None;
                }
            }
            self.caught_up = false;
            let (_, r) = results.into_iter().nth(err).expect("the failed read");
            return Err(r.err().expect("an error"));
        }

        let mut batches = Vec::new();
        let mut any = false;
        for (id, result) in results {
            let read = result.expect("errors handled above");
            let s = self.shards.get_mut(&id).expect("a known shard");
            if let Some(last) = read.records.last() {
                s.last = Some(last.sequence.clone());
                any = true;
            }
            s.iterator = read.next;
            // No next iterator: the shard ended (its children need listing)
            // or, on DynamoDB Local, an open shard answered without one.
            if s.iterator.is_none() {
                self.shard_may_have_ended = true;
            }
            let finished = s.iterator.is_none() && s.closed;
            if finished {
                s.done = true;
            }
            if read.records.is_empty() && !finished {
                continue;
            }
            let position = if s.done {
                ShardPosition::Done
            } else {
                ShardPosition::After(s.last.clone().expect("records were read"))
            };
            batches.push(ShardBatch { shard: id, records: read.records, position });
        }
        // Lineage order in the output: a parent's batch before its child's.
        batches.sort_by_key(|b| self.depth(&b.shard));
        // A shard behind its parent was not read: not caught up (that also
        // covers the children of a shard finished this round).
        self.caught_up = !any && !blocked;
        Ok(batches)
    }

    /// The number of known ancestors of a shard.
    fn depth(&self, id: &str) -> usize {
        let mut seen = HashSet::new();
        let mut at = id;
        while let Some(parent) = self.shards.get(at).and_then(|s| s.parent.as_deref()) {
            if !seen.insert(parent) || !self.shards.contains_key(parent) {
                break;
            }
            at = parent;
        }
        seen.len()
    }

    /// DescribeStream, every page: learns new shards, parents, closings.
    async fn describe(&mut self) -> Result<(), MigrateError> {
        for s in self.shards.values_mut() {
            s.listed = false;
        }
        let mut start: Option<String> = None;
        loop {
            let out = retrying(|| {
                self.client
                    .describe_stream()
                    .stream_arn(&self.stream_arn)
                    .set_exclusive_start_shard_id(start.clone())
                    .send()
            })
            .await
            .map_err(|e| MigrateError::dynamo("DescribeStream", &self.table, e))?;
            let Some(desc) = out.stream_description else { break };
            for shard in desc.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if !self.shards.contains_key(id) {
                    tracing::debug!(table = %self.table, shard = id, parent = shard.parent_shard_id(), "new stream shard");
                }
                let s = self.shards.entry(id.to_string()).or_default();
                s.listed = true;
                s.parent = shard.parent_shard_id().map(str::to_string);
                s.closed = shard.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some();
            }
            match desc.last_evaluated_shard_id {
                Some(last) if start.as_deref() != Some(last.as_str()) => start = Some(last),
                _ => break,
            }
        }
        Ok(())
    }
}

/// Reads once from one shard: takes an iterator if there is none (after
/// `last`, or TRIM_HORIZON), and again after `last` if it expired.
async fn read_shard(
    client: aws_sdk_dynamodbstreams::Client,
    table: String,
    arn: String,
    shard: String,
    iterator: Option<String>,
    last: Option<String>,
) -> (String, Result<ShardRead, MigrateError>) {
    let result = read_shard_inner(&client, &table, &arn, &shard, iterator, last.as_deref()).await;
    (shard, result)
}

async fn read_shard_inner(
    client: &aws_sdk_dynamodbstreams::Client,
    table: &str,
    arn: &str,
    shard: &str,
    mut iterator: Option<String>,
    last: Option<&str>,
) -> Result<ShardRead, MigrateError> {
    let mut trimmed = 0;
    let mut expired = 0;
    loop {
        let it = match iterator.take() {
            Some(it) => it,
            None => {
                let (kind, seq) = match last {
                    Some(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.to_string())),
                    None => (ShardIteratorType::TrimHorizon, None),
                };
                let got = retrying(|| {
                    client
                        .get_shard_iterator()
                        .stream_arn(arn)
                        .shard_id(shard)
                        .shard_iterator_type(kind.clone())
                        .set_sequence_number(seq.clone())
                        .send()
                })
                .await;
                match got {
                    Ok(out) => match out.shard_iterator {
                        Some(it) => it,
                        // No iterator: nothing to read there now.
                        None => return Ok(ShardRead { records: Vec::new(), next: None }),
                    },
                    Err(e) if matches!(e.as_service_error(), Some(GetShardIteratorError::TrimmedDataAccessException(_))) => {
                        trimmed += 1;
                        tracing::debug!(table, shard, trimmed, "GetShardIterator: trimmed data; trying again");
                        if trimmed >= TRIMMED_TRIES {
                            return Err(trimmed_error(table, shard, last, MigrateError::dynamo("GetShardIterator", table, e)));
                        }
                        tokio::time::sleep(Duration::from_millis(100 << trimmed)).await;
                        continue;
                    }
                    Err(e) => return Err(MigrateError::dynamo("GetShardIterator", table, e)),
                }
            }
        };
        let got = retrying(|| client.get_records().shard_iterator(&it).limit(RECORDS_PER_CALL).send()).await;
        match got {
            Ok(out) => {
                let records = out
                    .records
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| convert_record(table, shard, r))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(ShardRead { records, next: out.next_shard_iterator });
            }
            Err(e) => match e.as_service_error() {
                Some(GetRecordsError::ExpiredIteratorException(_)) if expired < 2 => {
                    expired += 1;
                    tracing::debug!(table, shard, "shard iterator expired; taking a new one after the last record read");
                    // Taken again after `last` at the top of the loop.
                }
                Some(GetRecordsError::TrimmedDataAccessException(_)) => {
                    trimmed += 1;
                    if trimmed >= TRIMMED_TRIES {
                        return Err(trimmed_error(table, shard, last, MigrateError::dynamo("GetRecords", table, e)));
                    }
                    tokio::time::sleep(Duration::from_millis(100 << trimmed)).await;
                }
                _ => return Err(MigrateError::dynamo("GetRecords", table, e)),
            },
        }
    }
}

fn trimmed_error(table: &str, shard: &str, last: Option<&str>, cause: MigrateError) -> MigrateError {
    let at = last.map_or_else(|| "TRIM_HORIZON".to_string(), |s| format!("after sequence {s}"));
    MigrateError::Other(format!(
        "table `{table}`: the stream's shard {shard} refuses reads at {at} as trimmed \
         (records older than 24 h are gone, so changes may have been missed): {cause}"
    ))
}

fn convert_record(
    table: &str,
    shard: &str,
    record: aws_sdk_dynamodbstreams::types::Record,
) -> Result<StreamRecord, MigrateError> {
    let bad = |what: &str| MigrateError::Other(format!("table `{table}`: a stream record of shard {shard} {what}"));
    let kind = match record.event_name {
        Some(OperationType::Insert) => RecordKind::Insert,
        Some(OperationType::Modify) => RecordKind::Modify,
        Some(OperationType::Remove) => RecordKind::Remove,
        Some(other) => return Err(bad(&format!("has an unknown event name {}", other.as_str()))),
        None => return Err(bad("has no event name")),
    };
    let change = record.dynamodb.ok_or_else(|| bad("has no change"))?;
    let sequence = change.sequence_number.ok_or_else(|| bad("has no sequence number"))?;
    let keys = change.keys.ok_or_else(|| bad(&format!("(sequence {sequence}) has no keys")))?;
    let keys = convert_item(&keys).map_err(|path| bad(&format!("(sequence {sequence}) key attribute `{path}`: unknown type")))?;
    let image = |image: &Option<HashMap<String, StreamValue>>| match image {
        Some(image) => convert_item(image)
            .map(Some)
            .map_err(|path| bad(&format!("(sequence {sequence}) attribute `{path}`: unknown type"))),
        None => Ok(None),
    };
    let new_image = image(&change.new_image)?;
    let old_image = image(&change.old_image)?;
    if matches!(change.stream_view_type, Some(StreamsViewType::KeysOnly | StreamsViewType::OldImage))
        && kind != RecordKind::Remove
    {
        return Err(bad(&format!("(sequence {sequence}) carries no new image: the stream's view type must include new images")));
    }
    Ok(StreamRecord {
        shard: shard.to_string(),
        sequence,
        kind,
        keys,
        new_image,
        old_image,
        created_at: change.approximate_creation_date_time.map(|t| t.as_secs_f64()),
    })
}

/// A stream image as the DynamoDB crate holds items; an unknown value
/// type is an error carrying the attribute's path (`a.b[2]`).
pub(crate) fn convert_item(image: &HashMap<String, StreamValue>) -> Result<RawItem, String> {
    image
        .iter()
        .map(|(name, v)| Ok((name.clone(), convert_value(v).map_err(|p| join_path(name, &p))?)))
        .collect()
}

fn join_path(name: &str, inner: &str) -> String {
    if inner.is_empty() {
        name.to_string()
    } else if inner.starts_with('[') {
        format!("{name}{inner}")
    } else {
        format!("{name}.{inner}")
    }
}

/// One value; `Err` holds the path below it to the unknown value.
fn convert_value(v: &StreamValue) -> Result<AttributeValue, String> {
    Ok(match v {
        StreamValue::S(s) => AttributeValue::S(s.clone()),
        StreamValue::N(n) => AttributeValue::N(n.clone()),
        StreamValue::B(b) => AttributeValue::B(b.clone()),
        StreamValue::Bool(b) => AttributeValue::Bool(*b),
        StreamValue::Null(b) => AttributeValue::Null(*b),
        StreamValue::Ss(v) => AttributeValue::Ss(v.clone()),
        StreamValue::Ns(v) => AttributeValue::Ns(v.clone()),
        StreamValue::Bs(v) => AttributeValue::Bs(v.clone()),
        StreamValue::L(items) => AttributeValue::L(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| convert_value(v).map_err(|p| join_path(&format!("[{i}]"), &p)))
                .collect::<Result<_, _>>()?,
        ),
        StreamValue::M(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), convert_value(v).map_err(|p| join_path(k, &p))?)))
                .collect::<Result<_, String>>()?,
        ),
        _ => return Err(String::new()),
    })
}

#[cfg(test)]
mod tests {
    //! Against DynamoDB Local (`scripts/test.sh` points
    //! `AWS_ENDPOINT_URL_DYNAMODB` at one; otherwise the harness starts
    //! one for the test process).

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    use aws_sdk_dynamodb::Client;
    use aws_smithy_types::Blob;

    use super::*;

    async fn clients() -> (Client, aws_sdk_dynamodbstreams::Client) {
        let ddb = singletable_tests::client().await;
        let endpoint = singletable_tests::endpoint().await;
        let config = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new(
                "local", "local", None, None, "singletable-tests",
            ))
            .build();
        (ddb, aws_sdk_dynamodbstreams::Client::from_conf(config))
    }

    async fn create_table(client: &Client, prefix: &str, view: Option<StreamViewType>) -> String {
        let name = singletable_tests::unique_table_name(prefix);
        let mut req = client
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap());
        if let Some(view) = view {
            req = req.stream_specification(
                StreamSpecification::builder().stream_enabled(true).stream_view_type(view).build().unwrap(),
            );
        }
        req.send().await.unwrap();
        name
    }

    fn key(i: usize) -> RawItem {
        HashMap::from([("pk".to_string(), AttributeValue::S(format!("k{i:04}")))])
    }

    async fn put(client: &Client, table: &str, i: usize, v: u32) {
        let mut item = key(i);
        item.insert("v".into(), AttributeValue::N(v.to_string()));
        item.insert("body".into(), AttributeValue::M(HashMap::from([("i".into(), AttributeValue::N(i.to_string()))])));
        client.put_item().table_name(table).set_item(Some(item)).send().await.unwrap();
    }

    async fn update(client: &Client, table: &str, i: usize, v: u32) {
        client
            .update_item()
            .table_name(table)
            .set_key(Some(key(i)))
            .update_expression("SET #v = :v")
            .expression_attribute_names("#v", "v")
            .expression_attribute_values(":v", AttributeValue::N(v.to_string()))
            .send()
            .await
            .unwrap();
    }

    async fn delete(client: &Client, table: &str, i: usize) {
        client.delete_item().table_name(table).set_key(Some(key(i))).send().await.unwrap();
    }

    /// Key, kind and counter of a record.
    fn summary(r: &StreamRecord) -> (String, RecordKind, Option<u32>) {
        let pk = match r.keys.get("pk") {
            Some(AttributeValue::S(s)) => s.clone(),
            other => panic!("record without a string pk: {other:?}"),
        };
        let v = r.new_image.as_ref().map(|img| match img.get("v") {
            Some(AttributeValue::N(n)) => n.parse().unwrap(),
            other => panic!("image without v: {other:?}"),
        });
        (pk, r.kind, v)
    }

    /// Sequence numbers are decimal strings: by length, then text.
    fn seq_key(s: &str) -> (usize, &str) {
        (s.len(), s)
    }

    /// Checks the batches of one round (positions and in-shard order) and
    /// appends their records.
    fn take(batches: Vec<ShardBatch>, last: &mut HashMap<String, String>, into: &mut Vec<StreamRecord>) {
        for b in batches {
            for r in &b.records {
                assert_eq!(r.shard, b.shard);
                if let Some(prev) = last.get(&b.shard) {
                    assert!(seq_key(prev) < seq_key(&r.sequence), "shard {} out of order: {prev} then {}", b.shard, r.sequence);
                }
                last.insert(b.shard.clone(), r.sequence.clone());
            }
            match &b.position {
                ShardPosition::After(seq) => assert_eq!(Some(seq), last.get(&b.shard)),
                ShardPosition::Done => {}
            }
            into.extend(b.records);
        }
    }

    /// Polls until `ready()` held before a round and the round found the
    /// tail caught up; returns the records and the rounds taken.
    async fn drain(
        tail: &mut StreamTail,
        ready: impl Fn() -> bool,
        within: Duration,
        into: &mut Vec<StreamRecord>,
    ) -> usize {
        let deadline = Instant::now() + within;
        let mut last = HashMap::new();
        let mut rounds = 0;
        loop {
            let was_ready = ready();
            let batches = tail.poll().await.unwrap();
            rounds += 1;
            let empty = batches.iter().all(|b| b.records.is_empty());
            take(batches, &mut last, into);
            if was_ready && tail.caught_up() {
                return rounds;
            }
            assert!(Instant::now() < deadline, "not caught up within {within:?} ({} records so far)", into.len());
            if empty {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    fn expected(i: usize) -> Vec<(String, RecordKind, Option<u32>)> {
        let pk = format!("k{i:04}");
        let mut e = vec![(pk.clone(), RecordKind::Insert, Some(1))];
        if i % 3 == 0 {
            e.push((pk.clone(), RecordKind::Modify, Some(2)));
        }
        if i % 6 == 0 {
            e.push((pk, RecordKind::Remove, None));
        }
        e
    }

    /// 300 puts, 100 updates and 50 deletes from two writers; records per
    /// key (grouped from the stream in the order read).
    fn per_key(records: &[StreamRecord]) -> BTreeMap<String, Vec<(String, RecordKind, Option<u32>)>> {
        let mut by_key: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for r in records {
            let s = summary(r);
            by_key.entry(s.0.clone()).or_default().push(s);
        }
        by_key
    }

    async fn write_range(client: Client, table: String, range: std::ops::Range<usize>) {
        for i in range.clone() {
            put(&client, &table, i, 1).await;
        }
        for i in range.clone().filter(|i| i % 3 == 0) {
            update(&client, &table, i, 2).await;
        }
        for i in range.filter(|i| i % 6 == 0) {
            delete(&client, &table, i).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tail_reads_every_change_in_order_while_writers_run() {
        let started = Instant::now();
        let (ddb, streams) = clients().await;
        let table = create_table(&ddb, "stream-tail", None).await;
        let arn = enable(&ddb, &streams, &table).await.unwrap();
        let enabled_after = started.elapsed();
        let mut tail = StreamTail::new(streams, table.clone(), arn, HashMap::new());

        let done = Arc::new(AtomicBool::new(false));
        let writers = {
            let (ddb, table, done) = (ddb.clone(), table.clone(), done.clone());
            tokio::spawn(async move {
                let a = tokio::spawn(write_range(ddb.clone(), table.clone(), 0..150));
                let b = tokio::spawn(write_range(ddb, table, 150..300));
                a.await.unwrap();
                b.await.unwrap();
                done.store(true, Ordering::SeqCst);
            })
        };
        let mut records = Vec::new();
        let rounds = drain(&mut tail, || done.load(Ordering::SeqCst), Duration::from_secs(30), &mut records).await;
        writers.await.unwrap();

        assert_eq!(records.len(), 300 + 100 + 50);
        let mut seqs: Vec<&str> = records.iter().map(|r| r.sequence.as_str()).collect();
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), records.len(), "a record was returned twice");
        let by_key = per_key(&records);
        assert_eq!(by_key.len(), 300);
        for i in 0..300 {
            assert_eq!(by_key[&format!("k{i:04}")], expected(i), "key {i}");
        }
        assert!(records.iter().all(|r| r.created_at.is_some_and(|t| t > 1.0e9)));
        // Old images: none for an insert, the previous counter otherwise.
        for r in &records {
            let old_v = r.old_image.as_ref().map(|img| img.get("v").cloned());
            let want = match r.kind {
                RecordKind::Insert => None,
                RecordKind::Modify => Some(Some(AttributeValue::N("1".into()))),
                RecordKind::Remove => Some(Some(AttributeValue::N("2".into()))),
            };
            assert_eq!(old_v, want, "{r:?}");
        }
        let nested = records.iter().find(|r| r.kind == RecordKind::Insert).unwrap();
        assert!(matches!(nested.new_image.as_ref().unwrap().get("body"), Some(AttributeValue::M(_))));

        // A finished tail stays caught up and returns nothing more.
        assert!(tail.poll().await.unwrap().iter().all(|b| b.records.is_empty()));
        assert!(tail.caught_up());
        let positions = tail.positions();
        assert!(!positions.is_empty());
        eprintln!(
            "stream tail: enabled in {enabled_after:?}, {} records in {rounds} rounds from {} shard(s), {:?} in all",
            records.len(),
            positions.len(),
            started.elapsed()
        );
        singletable_tests::delete_table(&ddb, &table).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tail_resumed_from_a_checkpoint_loses_nothing_and_rereads_only_what_followed() {
        let (ddb, streams) = clients().await;
        let table = create_table(&ddb, "stream-resume", Some(StreamViewType::NewAndOldImages)).await;
        let arn = enable(&ddb, &streams, &table).await.unwrap();
        let always = || true;

        // Phase 1, read and checkpointed.
        for i in 0..100 {
            put(&ddb, &table, i, 1).await;
        }
        let mut first = StreamTail::new(streams.clone(), table.clone(), arn.clone(), HashMap::new());
        let mut phase1 = Vec::new();
        drain(&mut first, always, Duration::from_secs(20), &mut phase1).await;
        assert_eq!(phase1.len(), 100);
        let checkpoint = first.positions();
        assert!(checkpoint.values().all(|p| matches!(p, ShardPosition::After(_))));

        // Phase 2, read by the first tail after the checkpoint (then it
        // "crashes" without saving), phase 3 never read by it.
        for i in 0..100 {
            update(&ddb, &table, i, 2).await;
        }
        let mut phase2 = Vec::new();
        drain(&mut first, always, Duration::from_secs(20), &mut phase2).await;
        assert_eq!(phase2.len(), 100);
        drop(first);
        for i in 100..150 {
            put(&ddb, &table, i, 1).await;
        }
        for i in 0..20 {
            delete(&ddb, &table, i).await;
        }

        let mut second = StreamTail::new(streams.clone(), table.clone(), arn.clone(), checkpoint);
        let mut resumed = Vec::new();
        drain(&mut second, always, Duration::from_secs(20), &mut resumed).await;
        // Exactly phase 2 again, then phase 3: nothing lost, nothing from
        // before the checkpoint.
        assert_eq!(resumed.len(), 100 + 50 + 20);
        assert_eq!(resumed[..100], phase2[..]);
        let phase1_seqs: HashSet<&str> = phase1.iter().map(|r| r.sequence.as_str()).collect();
        assert!(resumed.iter().all(|r| !phase1_seqs.contains(r.sequence.as_str())));
        let rest: Vec<_> = resumed[100..].iter().map(summary).collect();
        let mut want: Vec<_> = (100..150).map(|i| (format!("k{i:04}"), RecordKind::Insert, Some(1))).collect();
        want.extend((0..20).map(|i| (format!("k{i:04}"), RecordKind::Remove, None)));
        assert_eq!(rest, want);

        // Resuming from the second tail's own positions reads nothing.
        let mut third = StreamTail::new(streams, table.clone(), arn, second.positions());
        let batches = third.poll().await.unwrap();
        assert!(batches.iter().all(|b| b.records.is_empty()), "{batches:?}");
        assert!(third.caught_up());
        singletable_tests::delete_table(&ddb, &table).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enable_keeps_a_stream_with_new_images_and_refuses_one_without() {
        let (ddb, streams) = clients().await;

        for view in [StreamViewType::NewAndOldImages, StreamViewType::NewImage] {
            let table = create_table(&ddb, "stream-has", Some(view.clone())).await;
            let desc = ddb.describe_table().table_name(&table).send().await.unwrap().table.unwrap();
            let existing = desc.latest_stream_arn().unwrap().to_string();
            assert_eq!(enable(&ddb, &streams, &table).await.unwrap(), existing, "{view:?}");
            singletable_tests::delete_table(&ddb, &table).await;
        }

        for view in [StreamViewType::KeysOnly, StreamViewType::OldImage] {
            let table = create_table(&ddb, "stream-bad", Some(view.clone())).await;
            let err = enable(&ddb, &streams, &table).await.unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, MigrateError::Other(_)), "{err:?}");
            assert!(text.contains(view.as_str()) && text.contains("NEW_AND_OLD_IMAGES"), "{text}");
            assert!(text.contains(&table), "{text}");
            // Left as it was.
            let desc = ddb.describe_table().table_name(&table).send().await.unwrap().table.unwrap();
            assert_eq!(desc.stream_specification().unwrap().stream_view_type(), Some(&view));
            singletable_tests::delete_table(&ddb, &table).await;
        }

        // Turned on once; a second call finds it.
        let table = create_table(&ddb, "stream-twice", None).await;
        let arn = enable(&ddb, &streams, &table).await.unwrap();
        let desc = ddb.describe_table().table_name(&table).send().await.unwrap().table.unwrap();
        assert_eq!(desc.stream_specification().unwrap().stream_view_type(), Some(&StreamViewType::NewAndOldImages));
        assert_eq!(enable(&ddb, &streams, &table).await.unwrap(), arn);
        singletable_tests::delete_table(&ddb, &table).await;

        // A missing table is a DynamoDB error naming the operation.
        let err = enable(&ddb, &streams, "no-such-table-stream").await.unwrap_err();
        assert!(matches!(err, MigrateError::Dynamo { operation: "DescribeTable", .. }), "{err:?}");
    }

    #[test]
    fn every_value_type_converts() {
        let image = HashMap::from([
            ("s".to_string(), StreamValue::S("x".into())),
            ("n".to_string(), StreamValue::N("1.5".into())),
            ("b".to_string(), StreamValue::B(Blob::new(vec![1, 2]))),
            ("t".to_string(), StreamValue::Bool(true)),
            ("z".to_string(), StreamValue::Null(true)),
            ("ss".to_string(), StreamValue::Ss(vec!["a".into(), "b".into()])),
            ("ns".to_string(), StreamValue::Ns(vec!["1".into()])),
            ("bs".to_string(), StreamValue::Bs(vec![Blob::new(vec![3])])),
            (
                "m".to_string(),
                StreamValue::M(HashMap::from([(
                    "l".to_string(),
                    StreamValue::L(vec![StreamValue::N("2".into()), StreamValue::M(HashMap::new())]),
                )])),
            ),
        ]);
        let got = convert_item(&image).unwrap();
        let want = HashMap::from([
            ("s".to_string(), AttributeValue::S("x".into())),
            ("n".to_string(), AttributeValue::N("1.5".into())),
            ("b".to_string(), AttributeValue::B(Blob::new(vec![1, 2]))),
            ("t".to_string(), AttributeValue::Bool(true)),
            ("z".to_string(), AttributeValue::Null(true)),
            ("ss".to_string(), AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ("ns".to_string(), AttributeValue::Ns(vec!["1".into()])),
            ("bs".to_string(), AttributeValue::Bs(vec![Blob::new(vec![3])])),
            (
                "m".to_string(),
                AttributeValue::M(HashMap::from([(
                    "l".to_string(),
                    AttributeValue::L(vec![AttributeValue::N("2".into()), AttributeValue::M(HashMap::new())]),
                )])),
            ),
        ]);
        assert_eq!(got, want);
        assert_eq!(join_path("m", &join_path("[1]", &join_path("x", ""))), "m[1].x");
    }
}
