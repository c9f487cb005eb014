//! Transactions: typed puts, updates, deletes and condition checks that
//! all happen or none does.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem, Update as TxUpdate};

use crate::condition::Condition;
use crate::error::{CancelKind, CancelReason, Error};
use crate::ops::update::Update;
use crate::ops::write::{Failure, WriteMeta};
use crate::size::item_size;
use crate::table::Table;
use crate::Item;

/// DynamoDB's largest transaction: 100 actions.
pub const MAX_TRANSACTION_ACTIONS: usize = 100;
/// The longest idempotency token DynamoDB takes.
const MAX_TOKEN_CHARS: usize = 36;
/// DynamoDB's largest transaction: 4 MB.
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;


struct Action {
    item: TransactWriteItem,
    meta: WriteMeta,
    /// Request bytes, roughly, for the 4 MB limit.
    size: usize,
}

/// A transaction being built; see [`Table::transaction`].
///
/// Actions keep their order: the `n`-th added is action `n` (from 0) in a
/// [`CancelReason`]. Everything [`Table::put`], [`Table::update`] ...
/// check before sending is checked here too, plus DynamoDB's transaction
/// rules (at most 100 actions, 4 MB, one action per item), so an error
/// from `send` before the request means nothing was sent.
#[must_use = "a transaction does nothing until `.send().await`"]
pub struct Transaction<'t> {
    table: &'t Table,
    actions: Vec<Action>,
    error: Option<Error>,
    token: Option<String>,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("table", &self.table.name())
            .field("actions", &self.actions.iter().map(|a| (a.meta.operation, &a.meta.key)).collect::<Vec<_>>())
            .field("error", &self.error)
            .field("token", &self.token)
            .finish()
    }
}

impl Table {
    /// Starts a transaction (`TransactWriteItems`) on this table.
    ///
    /// ```no_run
    /// # use singletable::{Item, Table};
    /// # #[derive(Item)]
    /// # #[item(pk = "ACCOUNT#{id}", sk = "ACCOUNT")]
    /// # struct Account { id: String, balance: i64 }
    /// # #[derive(Item)]
    /// # #[item(pk = "ACCOUNT#{account}", sk = "TRANSFER#{id}")]
    /// # struct Transfer { account: String, id: String, amount: i64 }
    /// # async fn demo(table: &Table) -> Result<(), singletable::Error> {
    /// let a = Account::fields();
    /// table
    ///     .transaction()
    ///     .update(table.update::<Account>(&("alice".into(),)).subtract(a.balance, 10).condition(a.balance.ge(10)))
    ///     .update(table.update::<Account>(&("bob".into(),)).add(a.balance, 10))
    ///     .create(&Transfer { account: "alice".into(), id: "t1".into(), amount: 10 })
    ///     .idempotency_token("transfer-t1")
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction { table: self, actions: Vec::new(), error: None, token: None }
    }

    /// Moves an item to a new key — the explicit way to change a field of
    /// the table's `pk`/`sk` templates: in one transaction, the item at
    /// `from` is deleted (it must exist, be of this entity and, for a
    /// versioned entity, be at `to`'s version) and `to` is created (no
    /// item may have its key). Either both happen or neither.
    pub async fn move_item<T: Item>(&self, from: &T::Key, to: &T) -> Result<(), Error> {
        let old = T::key_of(from)?;
        let new = to.primary_key()?;
        let put = self.prepare_put(to, true, None)?;
        if old == new {
            return Err(Error::InvalidUpdate {
                entity: T::DESIGN.entity.to_string(),
                pk: old.pk,
                sk: old.sk,
                reason: "a move needs a new key; this item already has it (use `put` or `update`)".into(),
            });
        }
        let version = put.given_version;
        let delete = self.prepare_keyed::<T>("Delete", from, true, version, None)?;
        let mut tx = self.transaction();
        tx.push_delete(delete);
        tx.push_put(put);
        tx.send().await
    }
}

impl<'t> Transaction<'t> {
    fn record(&mut self, result: Result<Action, Error>) {
        match result {
            Ok(action) => self.actions.push(action),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    fn push_put(&mut self, put: crate::ops::write::PreparedPut) {
        let size = item_size(&put.item) + put.condition.as_ref().map_or(0, String::len);
        let (names, values) = put.expr.into_maps();
        let built = Put::builder()
            .table_name(self.table.name())
            .set_item(Some(put.item))
            .set_condition_expression(put.condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .set_return_values_on_condition_check_failure(put.meta.return_old())
            .build()
            .map_err(|e| Error::build("Put", e));
        let mut meta = put.meta;
        meta.operation = "Put";
        self.record(built.map(|p| Action { item: TransactWriteItem::builder().put(p).build(), meta, size }));
    }

    fn push_delete(&mut self, delete: crate::ops::write::PreparedKeyed) {
        let size = item_size(&delete.key) + delete.condition.as_ref().map_or(0, String::len);
        let (names, values) = delete.expr.into_maps();
        let built = Delete::builder()
            .table_name(self.table.name())
            .set_key(Some(delete.key))
            .set_condition_expression(delete.condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .set_return_values_on_condition_check_failure(delete.meta.return_old())
            .build()
            .map_err(|e| Error::build("Delete", e));
        let mut meta = delete.meta;
        meta.operation = "Delete";
        self.record(built.map(|d| Action { item: TransactWriteItem::builder().delete(d).build(), meta, size }));
    }

    /// Adds a put (versioned, with managed timestamps, as [`Table::put`]).
    pub fn put<T: Item>(mut self, item: &T) -> Self {
        match self.table.prepare_put(item, false, None) {
            Ok(put) => self.push_put(put),
            Err(e) => self.record(Err(e)),
        }
        self
    }

    /// Adds a put that happens only if `condition` holds.
    pub fn put_if<T: Item>(mut self, item: &T, condition: Condition<T>) -> Self {
        match self.table.prepare_put(item, false, Some(&condition)) {
            Ok(put) => self.push_put(put),
            Err(e) => self.record(Err(e)),
        }
        self
    }

    /// Adds a create: a put that fails if an item has the key.
    pub fn create<T: Item>(mut self, item: &T) -> Self {
        match self.table.prepare_put(item, true, None) {
            Ok(put) => self.push_put(put),
            Err(e) => self.record(Err(e)),
        }
        self
    }

    /// Adds an update built with [`Table::update`] (its conditions, key
    /// rewriting and version handling included).
    pub fn update<T: Item>(mut self, update: Update<'_, T>) -> Self {
        let result = update.prepare().and_then(|u| {
            let size = item_size(&u.key) + u.update.len() + u.condition.as_ref().map_or(0, String::len);
            let (names, values) = u.expr.into_maps();
            let built = TxUpdate::builder()
                .table_name(self.table.name())
                .set_key(Some(u.key))
                .update_expression(u.update)
                .set_condition_expression(u.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .set_return_values_on_condition_check_failure(u.meta.return_old())
                .build()
                .map_err(|e| Error::build("Update", e))?;
            let mut meta = u.meta;
            meta.operation = "Update";
            Ok(Action { item: TransactWriteItem::builder().update(built).build(), meta, size })
        });
        self.record(result);
        self
    }

    /// Adds a delete of the item with key `key` (deleting an absent item
    /// is not an error).
    pub fn delete<T: Item>(mut self, key: &T::Key) -> Self {
        match self.table.prepare_keyed::<T>("Delete", key, false, None, None) {
            Ok(d) => self.push_delete(d),
            Err(e) => self.record(Err(e)),
        }
        self
    }

    /// Adds a delete that happens only if `condition` holds.
    pub fn delete_if<T: Item>(mut self, key: &T::Key, condition: Condition<T>) -> Self {
        match self.table.prepare_keyed::<T>("Delete", key, false, None, Some(&condition)) {
            Ok(d) => self.push_delete(d),
            Err(e) => self.record(Err(e)),
        }
        self
    }

    /// Adds a check that `condition` holds for the item with key `key`,
    /// without writing it.
    pub fn check<T: Item>(mut self, key: &T::Key, condition: Condition<T>) -> Self {
        let result = self.table.prepare_keyed::<T>("ConditionCheck", key, false, None, Some(&condition)).and_then(|c| {
            let size = item_size(&c.key) + c.condition.as_ref().map_or(0, String::len);
            let (names, values) = c.expr.into_maps();
            let built = ConditionCheck::builder()
                .table_name(self.table.name())
                .set_key(Some(c.key))
                .set_condition_expression(c.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .set_return_values_on_condition_check_failure(c.meta.return_old())
                .build()
                .map_err(|e| Error::build("ConditionCheck", e))?;
            Ok(Action { item: TransactWriteItem::builder().condition_check(built).build(), meta: c.meta, size })
        });
        self.record(result);
        self
    }

    /// Makes the transaction idempotent: DynamoDB applies a transaction
    /// with the same token (1 to 36 characters) at most once within 10
    /// minutes; the same token with other actions fails with
    /// `IdempotentParameterMismatch`. Without one, the SDK generates a
    /// token per call, which protects its own retries.
    pub fn idempotency_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The number of actions added so far.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether no action was added.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Checks the transaction against DynamoDB's rules and sends it. A
    /// transaction without actions sends nothing.
    pub async fn send(self) -> Result<(), Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let table = self.table.name().to_string();
        if let Some(token) = &self.token {
            let len = token.chars().count();
            if !(1..=MAX_TOKEN_CHARS).contains(&len) {
                return Err(Error::InvalidToken { table, len });
            }
        }
        if self.actions.is_empty() {
            return Ok(());
        }
        if self.actions.len() > MAX_TRANSACTION_ACTIONS {
            return Err(Error::TooManyActions { table, count: self.actions.len(), max: MAX_TRANSACTION_ACTIONS });
        }
        let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, a) in self.actions.iter().enumerate() {
            if let Some(first) = seen.insert((&a.meta.key.pk, &a.meta.key.sk), i) {
                return Err(Error::DuplicateAction {
                    table,
                    entity: a.meta.entity.entity.to_string(),
                    pk: a.meta.key.pk.clone(),
                    sk: a.meta.key.sk.clone(),
                    first,
                    second: i,
                });
            }
        }
        let size: usize = self.actions.iter().map(|a| a.size).sum();
        if size > MAX_TRANSACTION_BYTES {
            return Err(Error::TransactionTooLarge { table, size, max: MAX_TRANSACTION_BYTES });
        }
        let (items, metas): (Vec<_>, Vec<_>) = self.actions.into_iter().map(|a| (a.item, a.meta)).unzip();
        let (started, count) = (std::time::Instant::now(), items.len());
        let result = self
            .table
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .set_client_request_token(self.token)
            .return_consumed_capacity(super::trace::CAPACITY)
            .send()
            .await;
        if let Err(e) = &result {
            super::trace::failed("TransactWriteItems", &table, None, started, e);
        }
        match result {
            Ok(out) => {
                super::trace::sent("TransactWriteItems", &table, None, started, super::trace::units(out.consumed_capacity()), count);
                Ok(())
            }
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    let reasons = c
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code().is_some_and(|code| code != "None"))
                        .filter_map(|(i, r)| Some(cancel_reason(i, metas.get(i)?, r)))
                        .collect();
                    Err(Error::TransactionCanceled { table, reasons })
                }
                _ => Err(Error::dynamo("TransactWriteItems", &table, e)),
            },
        }
    }
}

pub(crate) fn cancel_reason(action: usize, meta: &WriteMeta, r: &aws_sdk_dynamodb::types::CancellationReason) -> CancelReason {
    let code = r.code().unwrap_or_default().to_string();
    let kind = match code.as_str() {
        "ConditionalCheckFailed" => match meta.explain(r.item()) {
            Failure::AlreadyExists => CancelKind::AlreadyExists,
            Failure::NotFound => CancelKind::NotFound,
            Failure::WrongEntity(found) => CancelKind::WrongEntity { found },
            Failure::VersionConflict { expected, found } => CancelKind::VersionConflict { expected, found },
            Failure::Condition(reason) => CancelKind::ConditionFailed { reason },
        },
        "TransactionConflict" => CancelKind::Conflict,
        _ => CancelKind::Other,
    };
    CancelReason {
        action,
        operation: meta.operation,
        entity: meta.entity.entity.to_string(),
        pk: meta.key.pk.clone(),
        sk: meta.key.sk.clone(),
        kind,
        code,
        message: r.message().map(str::to_string),
    }
}
