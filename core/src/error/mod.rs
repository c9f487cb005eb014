//! The crate's one error type, and the parts of it that ops build (batch
//! failures, transaction cancel reasons, per-value problems).

mod attr;
mod batch;
mod transact;

pub use attr::{AttrError, AttrProblem, PathSegment};
pub use batch::{BatchFailure, BatchOp};
pub(crate) use batch::describe_failures;
pub use transact::{CancelKind, CancelReason};
pub(crate) use transact::describe_reasons;


/// Everything that can go wrong in `singletable`.
///
/// Variants that concern one entity name it first, so a log line reads
/// from the general to the particular: `User: key attribute pk: ...`.
/// Most variants are raised *before* a request is sent, so nothing is
/// written when one is returned. A few are DynamoDB's refusal of a
/// conditional write — [`Error::AlreadyExists`],
/// [`Error::ConditionFailed`], [`Error::VersionConflict`],
/// [`Error::NotFound`], [`Error::TransactionCanceled`] — and mean nothing
/// was written either. (A put the SDK had to send more than once whose
/// condition then fails on an item equal to the one it sent succeeds
/// instead: that item is its own earlier attempt's, whose answer was
/// lost.) [`Error::Dynamo`]
/// is a failed request, and
/// [`Error::BatchIncomplete`] lists exactly what a batch left undone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are named for what they hold
pub enum Error {
    /// A key attribute (table or index) would contain an empty part.
    #[error("{entity}: key attribute `{attribute}` would be empty where field `{field}` goes; DynamoDB refuses empty key values")]
    EmptyKey { entity: String, attribute: String, field: String },

    /// A key field's value contains the delimiter that follows its
    /// placeholder, so the key could not be parsed back unambiguously.
    #[error("{entity}: key attribute `{attribute}`: field `{field}` contains {delimiter:?}, the delimiter that follows it in the template; two different values could render the same key")]
    KeyDelimiter { entity: String, attribute: String, field: String, delimiter: char },

    /// A key field's value cannot be rendered in the template's format
    /// (a negative or too wide number for a zero-padded placeholder).
    #[error("{entity}: key attribute `{attribute}`: field `{field}`: {reason}")]
    KeyFormat { entity: String, attribute: String, field: String, reason: String },

    /// A rendered key exceeds DynamoDB's length limit.
    #[error("{entity}: key attribute `{attribute}` is {len} bytes; DynamoDB allows at most {max}")]
    KeyTooLong { entity: String, attribute: String, len: usize, max: usize },

    /// A key needs a field the caller did not supply (queries, typed keys,
    /// raw items given to the template evaluator).
    #[error("{entity}: key attribute `{attribute}` needs field `{field}`, which was not given")]
    MissingKeyField { entity: String, attribute: String, field: String },

    /// A stored key does not match its template.
    #[error("{entity}: key attribute `{attribute}` = {key:?} does not match template `{template}`: {reason}")]
    KeyMismatch { entity: String, attribute: String, key: String, template: String, reason: String },

    /// A value DynamoDB cannot store (NaN, an empty set, a number out of
    /// range) was found while encoding.
    #[error("{entity}: attribute `{path}`: {problem}")]
    InvalidValue { entity: String, path: String, problem: String },

    /// A stored item could not be decoded: an attribute is missing or has
    /// the wrong type.
    #[error("{entity}: attribute `{path}`: {problem}")]
    Decode { entity: String, path: String, problem: String },

    /// An item of another entity type was given to this entity's decoder.
    #[error("expected an item of entity `{expected}`, found {}", found.as_deref().map(|f| format!("entity `{f}`")).unwrap_or_else(|| "an item without an entity-type attribute".to_string()))]
    WrongEntity { expected: String, found: Option<String> },

    /// The encoded item exceeds DynamoDB's 400 KB item size.
    #[error("{entity}: item is {size} bytes; DynamoDB allows at most {max}")]
    ItemTooLarge { entity: String, size: usize, max: usize },

    /// A key template in a design could not be parsed.
    #[error("key template `{template}` (at byte {offset}): {message}")]
    Template { template: String, offset: usize, message: String },

    /// A design is inconsistent (two entities disagree on an index's
    /// attributes, an unknown entity, an unknown index ...).
    #[error("design: {0}")]
    Design(String),

    /// The SDK refused to build a part of a request (a required member
    /// missing); nothing was sent. A bug in singletable if it ever shows.
    #[error("could not build the {what} of a request: {source}")]
    Build {
        what: &'static str,
        #[source]
        source: aws_sdk_dynamodb::error::BuildError,
    },

    /// An argument of a call that cannot work with this table's design
    /// (an index the entity does not use, a scan segment out of range, key
    /// parts that are not fields of the template ...); nothing was sent.
    #[error("invalid argument `{argument}`: {reason}")]
    InvalidArgument { argument: &'static str, reason: String },

    /// A design file could not be read as JSON.
    #[error("design file: {source}")]
    DesignFile {
        #[source]
        source: serde_json::Error,
    },

    /// A create-only put found an item with the same key.
    #[error("{entity}: an item with key ({pk}, {sk}) already exists")]
    AlreadyExists { entity: String, pk: String, sk: String },

    /// A conditional write found the stored item did not meet its
    /// condition; nothing was written.
    #[error("{entity}: {operation} of ({pk}, {sk}) not done: {reason}")]
    ConditionFailed { entity: String, operation: &'static str, pk: String, sk: String, reason: String },

    /// Optimistic locking (`#[item(version)]`): the stored item is not at
    /// the version the write was based on, because another writer got
    /// there first. Nothing was written; read the item again and retry.
    #[error("{entity}: ({pk}, {sk}) is at version {}, not {expected}: another writer changed it first; read it again and retry", found.map_or_else(|| "none (no such item)".to_string(), |v| v.to_string()))]
    VersionConflict { entity: String, pk: String, sk: String, expected: u64, found: Option<u64> },

    /// An update (or move) of an item that does not exist; nothing was
    /// written.
    #[error("{entity}: no item with key ({pk}, {sk})")]
    NotFound { entity: String, pk: String, sk: String },

    /// An update changes a field of a key template without a value for
    /// every other field that template needs, so the key attribute could
    /// not be rewritten; nothing was sent.
    #[error("{entity}: updating `{field}` changes key attribute `{attribute}` (template `{template}`), which also needs `{missing}`: set it too, or give its current value with `.unchanged(...)`")]
    StaleKey { entity: String, attribute: String, template: String, field: String, missing: String },

    /// An update that cannot be sent as written (a field changed twice,
    /// nothing to change ...); nothing was sent.
    #[error("{entity}: update of ({pk}, {sk}): {reason}")]
    InvalidUpdate { entity: String, pk: String, sk: String, reason: String },

    /// A transaction with more actions than DynamoDB allows; nothing was
    /// sent.
    #[error("TransactWriteItems on table `{table}`: {count} actions; DynamoDB allows at most {max}")]
    TooManyActions { table: String, count: usize, max: usize },

    /// Two actions of one transaction address the same item, which
    /// DynamoDB refuses; nothing was sent.
    #[error("TransactWriteItems on table `{table}`: actions {first} and {second} both address {entity} ({pk}, {sk}); a transaction may touch an item only once")]
    DuplicateAction { table: String, entity: String, pk: String, sk: String, first: usize, second: usize },

    /// A transaction larger than DynamoDB's 4 MB; nothing was sent.
    #[error("TransactWriteItems on table `{table}`: about {size} bytes; DynamoDB allows at most {max}")]
    TransactionTooLarge { table: String, size: usize, max: usize },

    /// A transaction's idempotency token is not 1 to 36 characters long;
    /// nothing was sent.
    #[error("TransactWriteItems on table `{table}`: an idempotency token has 1 to 36 characters; this one has {len}")]
    InvalidToken { table: String, len: usize },

    /// DynamoDB cancelled a transaction: nothing of it was written.
    /// `reasons` lists every action that failed, with its position.
    #[error("TransactWriteItems on table `{table}` cancelled, nothing written: {}", describe_reasons(reasons))]
    TransactionCanceled { table: String, reasons: Vec<CancelReason> },

    /// A request to DynamoDB failed.
    #[error("{operation} on table `{table}` failed: {message}")]
    Dynamo {
        operation: &'static str,
        table: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// Two requests of one batch address the same item; nothing was sent.
    #[error("{operation} on table `{table}`: requests {first} and {second} both address {entity} ({}, {}); DynamoDB refuses one key twice in a batch", key.pk, key.sk)]
    DuplicateKey { operation: &'static str, table: String, entity: String, key: Box<crate::key::PrimaryKey>, first: usize, second: usize },

    /// One request of a batch is invalid (an empty key, an item too
    /// large ...); nothing was sent.
    #[error("{operation} on table `{table}`: request {index}: {source}")]
    BatchRequest {
        operation: &'static str,
        table: String,
        index: usize,
        #[source]
        source: Box<Error>,
    },

    /// Some requests of a batch were still unprocessed after the retry
    /// bound, or failed; `failed` lists every one of them (the rest were
    /// done).
    #[error("{operation} on table `{table}`: {} of {total} requests not done ({reason}): {}", failed.len(), describe_failures(failed))]
    BatchIncomplete {
        operation: &'static str,
        table: String,
        total: usize,
        failed: Vec<BatchFailure>,
        reason: String,
        #[source]
        source: Option<Box<Error>>,
    },

    /// A page cursor could not be decoded, or was issued for another
    /// query.
    #[error("table `{table}`: invalid cursor: {reason}")]
    Cursor { table: String, reason: String },

    /// An item's entity type is not one of a collection's entities.
    #[error("collection `{collection}`: {} at ({}, {}) is not one of its entities ({expected})", found.as_deref().map(|f| format!("entity `{f}`")).unwrap_or_else(|| "an item without an entity-type attribute".to_string()), pk.as_deref().unwrap_or("?"), sk.as_deref().unwrap_or("?"))]
    UnknownEntity { collection: &'static str, found: Option<String>, expected: String, pk: Option<String>, sk: Option<String> },

    /// A migrating table (see [`MigratingTable`](crate::MigratingTable))
    /// reads an item's old form by a key rendered from the new key's
    /// fields; this entity's old key needs fields its new key does not
    /// hold, so there is no way to find the old form from a new key.
    #[error("{entity}: a migrating table cannot find the old form of an item from its new key: the old key template needs {}, which the new key does not hold; migrate this entity without migrate-on-read (stop writers at cut-over)", missing.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "))]
    OldKeyNotDerivable { entity: String, missing: Vec<String> },

    /// Before cut-over a migrating table answers a query from the old
    /// form's partition, and the old partition key needs fields the
    /// query's partition does not give.
    #[error("{entity}: before cut-over a migrating table reads a query's items from the old partition, whose key needs {}, which the query's partition does not give; query an index, read by key, or query after cut-over", missing.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "))]
    OldPartitionNotDerivable { entity: String, missing: Vec<String> },

    /// The migration state a migrating table reads from the table is not
    /// one it understands (a newer toolkit wrote it?).
    #[error("table `{table}`: migration state: {reason}")]
    MigrationState { table: String, reason: String },

    /// A stream record could not be decoded.
    #[error("stream record `{event_id}`: {problem}")]
    StreamRecord {
        event_id: String,
        problem: String,
        #[source]
        source: Option<Box<Error>>,
    },
}

impl Error {
    pub(crate) fn build(what: &'static str, source: aws_sdk_dynamodb::error::BuildError) -> Self {
        Error::Build { what, source }
    }

    pub(crate) fn invalid_argument(argument: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { argument, reason: reason.into() }
    }

    pub(crate) fn dynamo<E>(operation: &'static str, table: &str, err: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        // The SDK's Display is terse ("service error"); the debug chain of
        // `DisplayErrorContext` carries DynamoDB's own message.
        let message = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
        Error::Dynamo { operation, table: table.to_string(), message, source: Some(Box::new(err)) }
    }
}

// With the error, not in attr.rs, so that attr.rs imports nothing from here.
impl AttrError {
    /// The error seen from an entity, for encoding.
    pub fn encoding(self, entity: &str) -> Error {
        Error::InvalidValue { entity: entity.to_string(), path: self.path(), problem: self.problem.to_string() }
    }

    /// The error seen from an entity, for decoding.
    pub fn decoding(self, entity: &str) -> Error {
        Error::Decode { entity: entity.to_string(), path: self.path(), problem: self.problem.to_string() }
    }
}
