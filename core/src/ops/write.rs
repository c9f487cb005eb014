//! Conditional writes: puts and deletes with conditions, optimistic
//! locking and managed timestamps, and the diagnosis of a failed
//! condition shared by single writes and transactions.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use crate::condition::Condition;
use crate::design::EntityDesign;
use crate::error::Error;
use crate::expr::{and_all, Expr};
use crate::key::PrimaryKey;
use crate::managed::{read_version, Stamp};
use crate::size::{item_size, MAX_ITEM_BYTES};
use crate::table::Table;
use crate::Item;

use super::trace;

/// What one write expects of the stored item, to explain a failed
/// condition from the item DynamoDB returns (`ALL_OLD`).
#[derive(Debug, Clone)]
pub(crate) struct WriteMeta {
    /// `PutItem`, `UpdateItem`, `DeleteItem`, `ConditionCheck`.
    pub(crate) operation: &'static str,
    pub(crate) entity: &'static EntityDesign,
    pub(crate) key: PrimaryKey,
    /// A create: no item may have the key.
    pub(crate) create_only: bool,
    /// An update or move: the item must exist and be of this entity.
    pub(crate) must_exist: bool,
    /// Optimistic locking: (attribute, the version expected).
    pub(crate) version: Option<(String, u64)>,
    /// Values an update relies on (`Update::unchanged`).
    pub(crate) unchanged: Vec<(String, Option<AttributeValue>)>,
    /// Whether the request carries any condition at all.
    pub(crate) conditional: bool,
}

/// Why a conditional write failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    AlreadyExists,
    NotFound,
    WrongEntity(Option<String>),
    VersionConflict { expected: u64, found: Option<u64> },
    Condition(String),
}

impl WriteMeta {
    pub(crate) fn explain(&self, old: Option<&HashMap<String, AttributeValue>>) -> Failure {
        if self.create_only && old.is_some() {
            return Failure::AlreadyExists;
        }
        if self.must_exist {
            let Some(old) = old else { return Failure::NotFound };
            if !self.entity.owns(old) {
                let found = match old.get(self.entity.entity_attr.as_ref()) {
                    Some(AttributeValue::S(s)) => Some(s.clone()),
                    _ => None,
                };
                return Failure::WrongEntity(found);
            }
        }
        if let Some((attr, expected)) = &self.version {
            let found = match old {
                None => None,
                Some(old) => match read_version(&self.entity.entity, attr, old.get(attr)) {
                    Ok(v) => Some(v),
                    Err(e) => return Failure::Condition(e.to_string()),
                },
            };
            if found.unwrap_or(0) != *expected {
                return Failure::VersionConflict { expected: *expected, found };
            }
        }
        for (attr, value) in &self.unchanged {
            let stored = old.and_then(|o| o.get(attr)).filter(|v| !matches!(v, AttributeValue::Null(_)));
            if stored != value.as_ref() {
                return Failure::Condition(format!(
                    "the stored `{attr}` is not the value given to `unchanged`, so the key attributes rendered from it would be wrong"
                ));
            }
        }
        Failure::Condition(match old {
            None => "there is no such item, and the condition needs one".to_string(),
            Some(_) => "the condition did not hold".to_string(),
        })
    }

    pub(crate) fn error(&self, failure: Failure) -> Error {
        let (entity, pk, sk) = (self.entity.entity.to_string(), self.key.pk.clone(), self.key.sk.clone());
        match failure {
            Failure::AlreadyExists => Error::AlreadyExists { entity, pk, sk },
            Failure::NotFound => Error::NotFound { entity, pk, sk },
            Failure::WrongEntity(found) => Error::WrongEntity { expected: entity, found },
            Failure::VersionConflict { expected, found } => Error::VersionConflict { entity, pk, sk, expected, found },
            Failure::Condition(reason) => Error::ConditionFailed { entity, operation: self.operation, pk, sk, reason },
        }
    }

    /// `ALL_OLD` when the request has a condition, so that a failure can
    /// be explained.
    pub(crate) fn return_old(&self) -> Option<ReturnValuesOnConditionCheckFailure> {
        self.conditional.then_some(ReturnValuesOnConditionCheckFailure::AllOld)
    }
}

/// A put, ready to send alone or in a transaction.
#[derive(Debug)]
pub(crate) struct PreparedPut {
    pub(crate) item: HashMap<String, AttributeValue>,
    pub(crate) condition: Option<String>,
    pub(crate) expr: Expr,
    pub(crate) meta: WriteMeta,
    /// The version the item was given (versioned entities).
    pub(crate) given_version: Option<u64>,
}

/// A delete or a condition check, ready to send.
#[derive(Debug)]
pub(crate) struct PreparedKeyed {
    pub(crate) key: HashMap<String, AttributeValue>,
    pub(crate) condition: Option<String>,
    pub(crate) expr: Expr,
    pub(crate) meta: WriteMeta,
}

fn key_of_item(design: &EntityDesign, item: &HashMap<String, AttributeValue>) -> PrimaryKey {
    let text = |attr: &str| item.get(attr).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    PrimaryKey { pk: text(&design.pk.attr), sk: text(&design.sk.attr) }
}

impl Table {
    /// Encodes a put: managed fields stamped, the version condition, the
    /// create-only condition and the caller's condition.
    pub(crate) fn prepare_put<T: Item>(
        &self,
        item: &T,
        create_only: bool,
        condition: Option<&Condition<T>>,
    ) -> Result<PreparedPut, Error> {
        let (design, mut encoded) = self.encode(item)?;
        let stamped = stamp_put::<T>(design, &mut encoded)?;
        if !design.managed.is_empty() {
            let size = item_size(&encoded);
            if size > MAX_ITEM_BYTES {
                return Err(Error::ItemTooLarge { entity: design.entity.to_string(), size, max: MAX_ITEM_BYTES });
            }
        }
        let mut expr = Expr::new();
        let mut clauses = Vec::new();
        if create_only {
            clauses.push(format!("attribute_not_exists({})", expr.name(&design.pk.attr)));
        }
        let version = match (stamped.expected_version, &design.managed.version) {
            // A create needs no version check: there is no item.
            (Some(expected), Some(attr)) if !create_only => {
                clauses.push(version_clause(&mut expr, attr, expected));
                Some((attr.to_string(), expected))
            }
            _ => None,
        };
        if let Some(c) = condition {
            clauses.push(c.render(&mut expr, &design.entity)?);
        }
        let meta = WriteMeta {
            operation: "PutItem",
            entity: design,
            key: key_of_item(design, &encoded),
            create_only,
            must_exist: false,
            version,
            unchanged: Vec::new(),
            conditional: !clauses.is_empty(),
        };
        Ok(PreparedPut { item: encoded, condition: and_all(&clauses), expr, meta, given_version: stamped.expected_version })
    }

    /// Sends a prepared put; a failed condition is explained.
    pub(crate) async fn send_put(&self, put: PreparedPut) -> Result<(), Error> {
        let (names, values) = put.expr.into_maps();
        let (started, entity) = (Instant::now(), Some(put.meta.entity.entity.as_ref()));
        // Kept to recognise our own write: the SDK sends a request again
        // when its answer is lost, and the second attempt of a conditional
        // put whose first one landed fails its condition on the item the
        // first one wrote.
        let sent = put.meta.conditional.then(|| put.item.clone());
        let attempts = Attempts::default();
        let result = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(put.item))
            .set_condition_expression(put.condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .set_return_values_on_condition_check_failure(put.meta.return_old())
            .return_consumed_capacity(trace::CAPACITY)
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await;
        match result {
            Ok(out) => {
                trace::sent("PutItem", self.name(), entity, started, trace::units(out.consumed_capacity()), 1);
                Ok(())
            }
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c))
                    if attempts.retried() && c.item().is_some() && c.item() == sent.as_ref() =>
                {
                    // The request was sent more than once and the stored
                    // item is the one it carries, attribute for attribute
                    // (managed stamps and version included): an earlier
                    // attempt of this very request wrote it. (Without a
                    // retry, an equal item is someone else's, and the
                    // condition's verdict stands.)
                    tracing::debug!(target: "singletable", table = self.name(), entity, "PutItem: the condition failed on the item this call wrote (a retried request); done");
                    Ok(())
                }
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    Err(put.meta.error(put.meta.explain(c.item())))
                }
                _ => {
                    trace::failed("PutItem", self.name(), entity, started, &e);
                    Err(Error::dynamo("PutItem", self.name(), e))
                }
            },
        }
    }

    /// A delete (`condition_check == false`) or a condition check of the
    /// item with key `key`.
    pub(crate) fn prepare_keyed<T: Item>(
        &self,
        operation: &'static str,
        key: &T::Key,
        must_exist: bool,
        version: Option<u64>,
        condition: Option<&Condition<T>>,
    ) -> Result<PreparedKeyed, Error> {
        let design = self.entity::<T>()?;
        let key = T::key_of(key)?;
        let mut expr = Expr::new();
        let mut clauses = Vec::new();
        if must_exist {
            clauses.push(exists_clause(&mut expr, design));
        }
        let version = match (version, &design.managed.version) {
            (Some(expected), Some(attr)) => {
                clauses.push(version_clause(&mut expr, attr, expected));
                Some((attr.to_string(), expected))
            }
            (Some(_), None) => {
                return Err(Error::invalid_argument("version", format!("entity `{}` has no `#[item(version)]` field", design.entity)))
            }
            (None, _) => None,
        };
        if let Some(c) = condition {
            clauses.push(c.render(&mut expr, &design.entity)?);
        }
        let meta = WriteMeta {
            operation,
            entity: design,
            key: key.clone(),
            create_only: false,
            must_exist,
            version,
            unchanged: Vec::new(),
            conditional: !clauses.is_empty(),
        };
        Ok(PreparedKeyed { key: self.key_map(key), condition: and_all(&clauses), expr, meta })
    }

    /// Writes an item only if `condition` holds for the stored item (an
    /// absent item fails every condition except `not_exists` ones);
    /// otherwise [`Error::ConditionFailed`] and nothing is written.
    ///
    /// ```no_run
    /// # use singletable::{Item, Table};
    /// # #[derive(Item)]
    /// # #[item(pk = "ORG#{org}", sk = "USER#{id}")]
    /// # struct User { org: String, id: String, status: String }
    /// # async fn demo(table: &Table, user: &User) -> Result<(), singletable::Error> {
    /// let f = User::fields();
    /// // Replace the user unless it was banned in the meantime.
    /// table.put_if(user, f.status.ne("banned")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn put_if<T: Item>(&self, item: &T, condition: Condition<T>) -> Result<(), Error> {
        let put = self.prepare_put(item, false, Some(&condition))?;
        self.send_put(put).await
    }

    /// Writes an item like [`put`](Table::put), then copies what the
    /// write stored for its managed fields back into it: the bumped
    /// `#[item(version)]`, `created_at` and `updated_at`. The next `save`
    /// of the same value then passes the version check.
    pub async fn save<T: Item>(&self, item: &mut T) -> Result<(), Error> {
        let put = self.prepare_put(&*item, false, None)?;
        let managed = &put.meta.entity.managed;
        let written: HashMap<String, AttributeValue> = [&managed.version, &managed.created_at, &managed.updated_at]
            .into_iter()
            .flatten()
            .filter_map(|a| put.item.get(a.as_ref()).map(|v| (a.to_string(), v.clone())))
            .collect();
        self.send_put(put).await?;
        item.__written(&written)
    }

    /// Deletes one item only if `condition` holds for it; otherwise
    /// [`Error::ConditionFailed`] and nothing is deleted.
    pub async fn delete_if<T: Item>(&self, key: &T::Key, condition: Condition<T>) -> Result<(), Error> {
        let delete = self.prepare_keyed::<T>("DeleteItem", key, false, None, Some(&condition))?;
        self.send_delete(delete).await
    }

    /// Deletes one item only if it is at version `version`
    /// (`#[item(version)]`); otherwise [`Error::VersionConflict`] (or
    /// [`Error::NotFound`] when there is no item) and nothing is deleted.
    pub async fn delete_version<T: Item>(&self, key: &T::Key, version: u64) -> Result<(), Error> {
        let delete = self.prepare_keyed::<T>("DeleteItem", key, version > 0, Some(version), None)?;
        self.send_delete(delete).await
    }

    pub(crate) async fn send_delete(&self, delete: PreparedKeyed) -> Result<(), Error> {
        let (names, values) = delete.expr.into_maps();
        let (started, entity) = (Instant::now(), Some(delete.meta.entity.entity.as_ref()));
        let result = self
            .client()
            .delete_item()
            .table_name(self.name())
            .set_key(Some(delete.key))
            .set_condition_expression(delete.condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .set_return_values_on_condition_check_failure(delete.meta.return_old())
            .return_consumed_capacity(trace::CAPACITY)
            .send()
            .await;
        match result {
            Ok(out) => {
                trace::sent("DeleteItem", self.name(), entity, started, trace::units(out.consumed_capacity()), 1);
                Ok(())
            }
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(c)) => {
                    Err(delete.meta.error(delete.meta.explain(c.item())))
                }
                _ => {
                    trace::failed("DeleteItem", self.name(), entity, started, &e);
                    Err(Error::dynamo("DeleteItem", self.name(), e))
                }
            },
        }
    }
}

/// `attribute_exists(pk) AND entity-type = entity`.
pub(crate) fn exists_clause(expr: &mut Expr, design: &EntityDesign) -> String {
    let pk = expr.name(&design.pk.attr);
    let et = expr.name(&design.entity_attr);
    let entity = expr.value(AttributeValue::S(design.entity.to_string()));
    format!("attribute_exists({pk}) AND {et} = {entity}")
}

/// The stored version is `expected` (0: the item has none, or there is no
/// item).
pub(crate) fn version_clause(expr: &mut Expr, attr: &str, expected: u64) -> String {
    let name = expr.name(attr);
    if expected == 0 {
        format!("attribute_not_exists({name})")
    } else {
        let v = expr.value(AttributeValue::N(expected.to_string()));
        format!("{name} = {v}")
    }
}


impl Table {

    /// Writes an item, replacing any item with the same key.
    ///
    /// For an entity with an `#[item(version)]` field the write is
    /// conditional: the stored item must be at the item's version (or
    /// absent, for version 0), else [`Error::VersionConflict`]; the item
    /// is stored at its version plus one. `updated_at` is set to now, and
    /// `created_at` too when the item has none.
    pub async fn put<T: Item>(&self, item: &T) -> Result<(), Error> {
        let put = self.prepare_put(item, false, None)?;
        self.send_put(put).await
    }

    /// Writes an item only if no item has its key; otherwise
    /// [`Error::AlreadyExists`].
    pub async fn create<T: Item>(&self, item: &T) -> Result<(), Error> {
        let put = self.prepare_put(item, true, None)?;
        self.send_put(put).await
    }

    /// Reads one item by its typed key (a strongly consistent read).
    /// `Ok(None)` when there is none.
    pub async fn get<T: Item>(&self, key: &T::Key) -> Result<Option<T>, Error> {
        self.entity::<T>()?;
        let key = T::key_of(key)?;
        let started = Instant::now();
        let out = self
            .client
            .get_item()
            .table_name(self.name())
            .set_key(Some(self.key_map(key)))
            .consistent_read(true)
            .return_consumed_capacity(trace::CAPACITY)
            .send()
            .await
            .map_err(|e| {
                trace::failed("GetItem", self.name(), Some(T::DESIGN.entity.as_ref()), started, &e);
                Error::dynamo("GetItem", self.name(), e)
            })?;
        trace::sent("GetItem", self.name(), Some(T::DESIGN.entity.as_ref()), started, trace::units(out.consumed_capacity()), usize::from(out.item.is_some()));
        out.item.map(T::from_item).transpose()
    }

    /// Deletes one item by its typed key; deleting an absent item is not an
    /// error.
    pub async fn delete<T: Item>(&self, key: &T::Key) -> Result<(), Error> {
        self.entity::<T>()?;
        let key = T::key_of(key)?;
        let started = Instant::now();
        let out = self
            .client
            .delete_item()
            .table_name(self.name())
            .set_key(Some(self.key_map(key)))
            .return_consumed_capacity(trace::CAPACITY)
            .send()
            .await
            .map_err(|e| {
                trace::failed("DeleteItem", self.name(), Some(T::DESIGN.entity.as_ref()), started, &e);
                Error::dynamo("DeleteItem", self.name(), e)
            })?;
        trace::sent("DeleteItem", self.name(), Some(T::DESIGN.entity.as_ref()), started, trace::units(out.consumed_capacity()), 1);
        Ok(())
    }
}

/// Counts the attempts the SDK makes of one request (it sends a request
/// again after a throttle, a server error or a lost answer).
#[derive(Debug, Clone, Default)]
struct Attempts(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Attempts {
    fn retried(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) > 1
    }
}

impl aws_sdk_dynamodb::config::Intercept for Attempts {
    fn name(&self) -> &'static str {
        "singletable::Attempts"
    }

    fn read_before_attempt(
        &self,
        _: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// What a write adds to an encoded item for its managed fields.
pub(crate) struct Stamped {
    /// The version the write expects to find (`Some` for versioned
    /// entities): 0 means "no item, or an item without a version".
    pub(crate) expected_version: Option<u64>,
}

/// Fills an encoded item's managed attributes for a put: the version
/// becomes the one given plus one, `updated_at` now, `created_at` now if
/// the item has none.
pub(crate) fn stamp_put<T: crate::Item>(
    design: &EntityDesign,
    item: &mut HashMap<String, AttributeValue>,
) -> Result<Stamped, Error> {
    let m = &design.managed;
    let mut expected_version = None;
    if let Some(attr) = &m.version {
        let given = read_version(&design.entity, attr, item.get(attr.as_ref()))?;
        let next = given.checked_add(1).ok_or_else(|| Error::InvalidValue {
            entity: design.entity.to_string(),
            path: attr.to_string(),
            problem: "the version cannot grow past u64::MAX".into(),
        })?;
        item.insert(attr.to_string(), AttributeValue::N(next.to_string()));
        expected_version = Some(given);
    }
    // Created first, so that updated_at is never before created_at.
    if let Some(attr) = &m.created_at {
        if !item.contains_key(attr.as_ref()) {
            if let Some(now) = T::__now(Stamp::CreatedAt)? {
                item.insert(attr.to_string(), now);
            }
        }
    }
    if let Some(attr) = &m.updated_at {
        if let Some(now) = T::__now(Stamp::UpdatedAt)? {
            item.insert(attr.to_string(), now);
        }
    }
    Ok(Stamped { expected_version })
}
