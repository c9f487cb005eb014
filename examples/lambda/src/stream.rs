//! The stream handler: task assignments become inbox notifications.

use singletable::aws_lambda_events::event::dynamodb::{Event, EventRecord};
use singletable::aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use singletable::{Change, ChangeKind, Table};

use crate::{Notification, TrackerItem};

/// The notification a change causes, if any: a task that gets an assignee
/// it did not have (a new assigned task, or an assignment or
/// reassignment). The change's sequence number becomes the notification's
/// key, so a change without one (one built with [`Change::from_parts`]
/// and no sequence number set) causes none.
pub fn notification(change: &Change<TrackerItem>) -> Option<Notification> {
    let seq = change.sequence_number.as_deref()?;
    let Some(TrackerItem::Task(task)) = &change.new else { return None };
    let assignee = task.assignee.as_ref()?;
    let previous_assignee = match (&change.kind, &change.old) {
        (ChangeKind::Modify, Some(TrackerItem::Task(old))) => old.assignee.clone(),
        _ => None,
    };
    if previous_assignee.as_ref() == Some(assignee) {
        return None;
    }
    Some(Notification {
        org_id: task.org_id.clone(),
        user_id: assignee.clone(),
        seq: format!("{seq:0>40}"),
        project_id: task.project_id.clone(),
        number: task.number,
        title: task.title.clone(),
        previous_assignee,
    })
}

/// What one invocation did.
#[derive(Debug, Default)]
pub struct StreamReport {
    /// The changes handled, in stream order.
    pub handled: Vec<Change<TrackerItem>>,
    /// The notifications written.
    pub notified: Vec<Notification>,
    /// The record the invocation stopped at; it and every record after it
    /// come again in the next invocation.
    pub failed: Option<RecordFailure>,
}

/// A record that could not be handled.
#[derive(Debug)]
pub struct RecordFailure {
    /// The record's sequence number: its batch item failure.
    pub sequence_number: String,
    /// The record's `eventID`.
    pub event_id: String,
    /// Why: it did not decode, or the notification could not be written.
    pub error: singletable::Error,
}

impl StreamReport {
    /// The function's response: no batch item failures, or the record the
    /// invocation stopped at. (Needs `ReportBatchItemFailures` in the event
    /// source mapping's function response types; without it Lambda reads
    /// this as success.)
    pub fn response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        if let Some(failed) = &self.failed {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(failed.sequence_number.clone());
            response.batch_item_failures.push(failure);
        }
        response
    }
}

/// Why a whole batch failed (Lambda retries all of it).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A record without a sequence number can be neither reported alone
    /// nor written idempotently. Lambda always sends one; a hand-made or
    /// truncated event may not.
    #[error("stream record `{event_id}` has no sequence number: it cannot be reported as a batch item failure")]
    NoSequenceNumber { event_id: String },
}

impl From<StreamError> for lambda_runtime::Diagnostic {
    fn from(e: StreamError) -> Self {
        lambda_runtime::Diagnostic { error_type: "StreamError".into(), error_message: e.to_string() }
    }
}

/// Handles a batch of stream records in order, and stops at the first one
/// it cannot handle: Lambda resumes a stream from the lowest sequence
/// number reported, so every record after it comes again anyway, and
/// stopping keeps the notifications in stream order. A record that never
/// decodes comes back until the event source mapping's retry limit or
/// record age discards it (to its on-failure destination, if set).
pub async fn handle(table: &Table, event: Event) -> Result<StreamReport, StreamError> {
    let mut report = StreamReport::default();
    for record in event.records {
        let Some(sequence_number) = record.change.sequence_number.clone() else {
            return Err(StreamError::NoSequenceNumber { event_id: record.event_id });
        };
        let event_id = record.event_id.clone();
        if let Err(error) = handle_record(table, record, &mut report).await {
            report.failed = Some(RecordFailure { sequence_number, event_id, error });
            break;
        }
    }
    Ok(report)
}

async fn handle_record(table: &Table, record: EventRecord, report: &mut StreamReport) -> Result<(), singletable::Error> {
    let change = Change::<TrackerItem>::from_lambda(record)?;
    if let Some(note) = notification(&change) {
        table.put(&note).await?;
        report.notified.push(note);
    }
    report.handled.push(change);
    Ok(())
}
