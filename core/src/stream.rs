//! DynamoDB stream records decoded into a [`Collection`] enum: the event
//! kind and the old and new images as typed entities, for Lambda handlers
//! and stream consumers.
//!
//! [`Change::from_parts`] takes a record's parts as
//! `aws_sdk_dynamodb` maps (what any consumer can build). With the
//! `lambda` feature, [`Change::from_lambda`] and [`Change::from_event`]
//! take the `aws_lambda_events::event::dynamodb` types a Rust Lambda
//! receives (re-exported as `singletable::aws_lambda_events`).

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::collection::Collection;
use crate::key::PrimaryKey;
use crate::error::Error;

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A new item (`INSERT`).
    Insert,
    /// An item was replaced or updated (`MODIFY`).
    Modify,
    /// An item was deleted, or expired by time to live (`REMOVE`).
    Remove,
}

impl ChangeKind {
    /// From a record's `eventName`.
    pub fn parse(event_name: &str) -> Option<ChangeKind> {
        match event_name {
            "INSERT" => Some(ChangeKind::Insert),
            "MODIFY" => Some(ChangeKind::Modify),
            "REMOVE" => Some(ChangeKind::Remove),
            _ => None,
        }
    }

    /// DynamoDB's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "INSERT",
            ChangeKind::Modify => "MODIFY",
            ChangeKind::Remove => "REMOVE",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stream record, decoded.
///
/// ```
/// use singletable::{Change, ChangeKind, Collection, Item};
///
/// #[derive(Item, Debug, Clone, PartialEq)]
/// #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
/// struct User { org: String, id: String, name: String }
///
/// #[derive(Collection, Debug, Clone, PartialEq)]
/// enum Org { User(User) }
///
/// let old = User { org: "acme".into(), id: "ann".into(), name: "Ann".into() };
/// let new = User { name: "Ann B.".into(), ..old.clone() };
/// let keys = [("pk", "ORG#acme"), ("sk", "USER#ann")]
///     .map(|(k, v)| (k.to_string(), singletable::AttributeValue::S(v.into())))
///     .into_iter()
///     .collect();
/// let change = Change::<Org>::from_parts("1", "MODIFY", &keys, Some(old.to_item()?), Some(new.to_item()?))?;
/// assert_eq!(change.kind, ChangeKind::Modify);
/// assert_eq!(change.new, Some(Org::User(new)));
/// assert_eq!(change.key.unwrap().sk, "USER#ann");
/// # Ok::<(), singletable::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Change<C> {
    /// The record's `eventID`.
    pub event_id: String,
    /// The record's `SequenceNumber`: what a Lambda handler reports as a
    /// batch item failure, and a key that stays the same when Lambda
    /// delivers the record again (for idempotent side effects).
    /// [`Change::from_lambda`] sets it from the record; [`Change::from_parts`]
    /// leaves it `None` for the caller to set.
    pub sequence_number: Option<String>,
    /// What happened.
    pub kind: ChangeKind,
    /// The item's table key, from the record's `Keys` (when they are the
    /// collection's string keys).
    pub key: Option<PrimaryKey>,
    /// The item before (streams with `OLD_IMAGE` or `NEW_AND_OLD_IMAGES`;
    /// none for an insert).
    pub old: Option<C>,
    /// The item after (streams with `NEW_IMAGE` or `NEW_AND_OLD_IMAGES`;
    /// none for a remove).
    pub new: Option<C>,
}

impl<C: Collection> Change<C> {
    /// Decodes a record from its parts; an absent or empty image is
    /// `None`. An image of an entity that is not in `C`, or that does not
    /// decode, is an [`Error::StreamRecord`] naming the record and image.
    pub fn from_parts(
        event_id: impl Into<String>,
        event_name: &str,
        keys: &HashMap<String, AttributeValue>,
        old: Option<HashMap<String, AttributeValue>>,
        new: Option<HashMap<String, AttributeValue>>,
    ) -> Result<Self, Error> {
        let event_id = event_id.into();
        let kind = ChangeKind::parse(event_name).ok_or_else(|| Error::StreamRecord {
            event_id: event_id.clone(),
            problem: format!("unknown event name {event_name:?} (expected INSERT, MODIFY or REMOVE)"),
            source: None,
        })?;
        let decode = |image: Option<HashMap<String, AttributeValue>>, which: &str| -> Result<Option<C>, Error> {
            match image.filter(|i| !i.is_empty()) {
                None => Ok(None),
                Some(image) => C::from_item(image).map(Some).map_err(|e| Error::StreamRecord {
                    event_id: event_id.clone(),
                    problem: format!("{kind} record, {which} image: {e}"),
                    source: Some(Box::new(e)),
                }),
            }
        };
        let old = decode(old, "old")?;
        let new = decode(new, "new")?;
        let key = C::ENTITIES.first().and_then(|e| match (keys.get(e.pk.attr.as_ref()), keys.get(e.sk.attr.as_ref())) {
            (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => Some(PrimaryKey { pk: pk.clone(), sk: sk.clone() }),
            _ => None,
        });
        Ok(Change { event_id, sequence_number: None, kind, key, old, new })
    }

    /// The entity the record concerns (from the new image, else the old).
    pub fn entity(&self) -> Option<&'static str> {
        self.new.as_ref().or(self.old.as_ref()).map(Collection::entity)
    }
}

#[cfg(feature = "lambda")]
mod lambda {
    use std::collections::HashMap;

    use aws_lambda_events::event::dynamodb::{Event, EventRecord};
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::Change;
    use crate::collection::Collection;
    use crate::error::Error;

    fn map(item: serde_dynamo::Item) -> HashMap<String, AttributeValue> {
        item.into()
    }

    impl<C: Collection> Change<C> {
        /// Decodes one record of a Lambda DynamoDB stream event, keeping
        /// its sequence number. A record that does not decode yields an
        /// error without it: read `record.change.sequence_number` first to
        /// report that record as a batch item failure.
        ///
        /// ```
        /// # use singletable::{Change, ChangeKind, Collection, Item};
        /// # #[derive(Item, Debug, PartialEq)] #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")] struct User { org: String, id: String }
        /// # #[derive(Collection, Debug, PartialEq)] enum Org { User(User) }
        /// use singletable::aws_lambda_events::event::dynamodb::EventRecord;
        ///
        /// let record: EventRecord = serde_json::from_value(serde_json::json!({
        ///     "eventID": "e1", "eventName": "REMOVE", "awsRegion": "eu-west-3",
        ///     "dynamodb": {"Keys": {"pk": {"S": "ORG#acme"}, "sk": {"S": "USER#ann"}}, "SizeBytes": 30,
        ///                  "SequenceNumber": "4421584500000000017450439091", "StreamViewType": "KEYS_ONLY"}
        /// }))?;
        /// let change = Change::<Org>::from_lambda(record)?;
        /// assert_eq!(change.kind, ChangeKind::Remove);
        /// assert_eq!(change.sequence_number.as_deref(), Some("4421584500000000017450439091"));
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn from_lambda(record: EventRecord) -> Result<Self, Error> {
            let change = record.change;
            let keys = map(change.keys);
            let mut decoded =
                Change::from_parts(record.event_id, &record.event_name, &keys, Some(map(change.old_image)), Some(map(change.new_image)))?;
            decoded.sequence_number = change.sequence_number;
            Ok(decoded)
        }

        /// Decodes every record of a Lambda DynamoDB stream event, in
        /// order; one result per record, so a handler can report the
        /// records it could not decode (e.g. as batch item failures) and
        /// go on with the rest.
        ///
        /// ```no_run
        /// # use singletable::{Change, Collection, Item};
        /// # #[derive(Item)] #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")] struct User { org: String, id: String }
        /// # #[derive(Collection)] enum Org { User(User) }
        /// async fn handler(event: singletable::aws_lambda_events::event::dynamodb::Event) -> Result<(), singletable::Error> {
        ///     for change in Change::<Org>::from_event(event) {
        ///         let change = change?;
        ///         if let Some(Org::User(user)) = &change.new {
        ///             println!("{} {}", change.kind, user.id);
        ///         }
        ///     }
        ///     Ok(())
        /// }
        /// ```
        pub fn from_event(event: Event) -> Vec<Result<Self, Error>> {
            event.records.into_iter().map(Change::from_lambda).collect()
        }
    }
}
