//! Why a transaction was cancelled.

use std::fmt;

/// Why one action of a cancelled transaction failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CancelReason {
    /// The action's position in the transaction, from 0.
    pub action: usize,
    /// `Put`, `Update`, `Delete` or `ConditionCheck`.
    pub operation: &'static str,
    /// The entity of the item it addressed.
    pub entity: String,
    /// The item's partition key.
    pub pk: String,
    /// The item's sort key.
    pub sk: String,
    /// What went wrong, as far as the toolkit can tell.
    pub kind: CancelKind,
    /// DynamoDB's code (`ConditionalCheckFailed`, `TransactionConflict`,
    /// `ValidationError` ...).
    pub code: String,
    /// DynamoDB's message.
    pub message: Option<String>,
}

/// What went wrong with one action of a cancelled transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelKind {
    /// The action's condition did not hold.
    ConditionFailed {
        /// In words.
        reason: String,
    },
    /// Optimistic locking: the stored version is not the expected one.
    VersionConflict {
        /// The version the action was based on.
        expected: u64,
        /// The stored version (`None`: no item).
        found: Option<u64>,
    },
    /// An update, move or versioned delete of an item that does not exist.
    NotFound,
    /// A create of an item that exists.
    AlreadyExists,
    /// The item at the key is of another entity.
    WrongEntity {
        /// Its entity, if it has one.
        found: Option<String>,
    },
    /// Another transaction was writing the item at the same time; retry.
    Conflict,
    /// Anything else (see `code` and `message`).
    Other,
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "action {} ({} {} ({}, {})): ", self.action, self.operation, self.entity, self.pk, self.sk)?;
        match &self.kind {
            CancelKind::ConditionFailed { reason } => write!(f, "condition failed: {reason}"),
            CancelKind::VersionConflict { expected, found } => match found {
                Some(v) => write!(f, "version conflict: stored version {v}, expected {expected}"),
                None => write!(f, "version conflict: no item, expected version {expected}"),
            },
            CancelKind::NotFound => f.write_str("no such item"),
            CancelKind::AlreadyExists => f.write_str("an item with this key already exists"),
            CancelKind::WrongEntity { found } => match found {
                Some(e) => write!(f, "the item is a `{e}`"),
                None => f.write_str("the item has no entity type"),
            },
            CancelKind::Conflict => f.write_str("another transaction is writing the item; retry"),
            CancelKind::Other => write!(f, "{}: {}", self.code, self.message.as_deref().unwrap_or("")),
        }
    }
}

pub(crate) fn describe_reasons(reasons: &[CancelReason]) -> String {
    if reasons.is_empty() {
        return "DynamoDB gave no reason".to_string();
    }
    reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
