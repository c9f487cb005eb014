//! Typed updates that keep every key attribute true.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::condition::{Condition, Node};
use crate::design::{EntityDesign, KeyDesign};
use crate::key::PrimaryKey;
use crate::error::Error;
use crate::expr::{and_all, Expr};
use crate::field::{set_value, Computable, Field, IntoValue, ListField, Numeric, SetField, Settable};
use crate::managed::Stamp;
use crate::table::Table;
use crate::template::{check_len, MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES};
use crate::ops::write::{exists_clause, version_clause, WriteMeta};
use crate::{AttrValue, Item};

#[derive(Debug, Clone)]
enum Action {
    /// A known new value; `None` removes the attribute.
    Set(&'static str, Option<AttributeValue>),
    IfNotExists(&'static str, AttributeValue),
    Add { attr: &'static str, delta: AttributeValue, subtract: bool },
    Append { attr: &'static str, list: AttributeValue, prepend: bool },
    AddToSet(&'static str, AttributeValue),
    DeleteFromSet(&'static str, AttributeValue),
}

impl Action {
    fn attr(&self) -> &'static str {
        match self {
            Action::Set(a, _) | Action::IfNotExists(a, _) | Action::AddToSet(a, _) | Action::DeleteFromSet(a, _) => a,
            Action::Add { attr, .. } | Action::Append { attr, .. } => attr,
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Action::Set(_, Some(_)) => "set",
            Action::Set(_, None) => "remove",
            Action::IfNotExists(..) => "set_if_not_exists",
            Action::Add { subtract: false, .. } => "add",
            Action::Add { subtract: true, .. } => "subtract",
            Action::Append { prepend: false, .. } => "append",
            Action::Append { prepend: true, .. } => "prepend",
            Action::AddToSet(..) => "add_to_set",
            Action::DeleteFromSet(..) => "delete_from_set",
        }
    }
}

/// An update of one item of entity `T`; see [`Table::update`].
///
/// Every change names its field with a typed handle (`T::fields()`), so
/// the value's type is checked at compile time, and so is what the key
/// design allows: table key fields cannot change in place, and fields of
/// index keys can only be `set` or `remove`d (DynamoDB cannot compute a
/// key). Setting a field an index key is rendered from rewrites that key
/// attribute in the same request; if the template needs a field the update
/// neither sets nor is given with [`unchanged`](Update::unchanged), the
/// update is refused with [`Error::StaleKey`] before anything is sent.
///
/// The update applies only to an existing item of this entity
/// ([`Error::NotFound`] otherwise), bumps the `#[item(version)]` and sets
/// `updated_at`. `send` returns the item as stored after the update.
#[must_use = "an update does nothing until `.send().await`"]
pub struct Update<'t, T> {
    table: &'t Table,
    key: Result<PrimaryKey, Error>,
    actions: Vec<Action>,
    unchanged: Vec<(&'static str, Option<AttributeValue>)>,
    condition: Option<Condition<T>>,
    version: Option<u64>,
    error: Option<Error>,
    _entity: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Update<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Update")
            .field("table", &self.table.name())
            .field("key", &self.key)
            .field("actions", &self.actions)
            .field("unchanged", &self.unchanged)
            .field("condition", &self.condition)
            .field("version", &self.version)
            .finish()
    }
}

impl Table {
    /// Starts an update of the item with typed key `key`.
    ///
    /// ```no_run
    /// # use singletable::{Item, Table};
    /// #[derive(Item, Debug)]
    /// #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    /// #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
    /// struct User { org: String, id: String, email: String, logins: u32, tags: Vec<String> }
    ///
    /// # async fn demo(table: &Table) -> Result<(), singletable::Error> {
    /// let f = User::fields();
    /// let user: User = table
    ///     .update::<User>(&("acme".into(), "ann".into()))
    ///     .set(f.email, "ann@new.test") // also rewrites gsi1pk
    ///     .add(f.logins, 1)
    ///     .append(f.tags, ["vip".to_string()])
    ///     .condition(f.logins.lt(1000))
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn update<T: Item>(&self, key: &T::Key) -> Update<'_, T> {
        Update {
            table: self,
            key: T::key_of(key),
            actions: Vec::new(),
            unchanged: Vec::new(),
            condition: None,
            version: None,
            error: None,
            _entity: PhantomData,
        }
    }
}

impl<'t, T: Item> Update<'t, T> {
    fn fail(mut self, e: Error) -> Self {
        self.error.get_or_insert(e);
        self
    }

    fn encode<V, K>(&mut self, field: &Field<T, V, K>, value: &V) -> Option<Option<AttributeValue>> {
        match field.encode(value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error.get_or_insert(e.encoding(&T::DESIGN.entity));
                None
            }
        }
    }

    fn push(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }

    /// Sets a field to a value. For an `Option` field, `None` removes the
    /// attribute. A field of an index key template rewrites that key (or,
    /// for a sparse index, removes the item from the index when an
    /// optional field becomes `None`).
    pub fn set<V, K: Settable>(mut self, field: Field<T, V, K>, value: impl IntoValue<V>) -> Self {
        match self.encode(&field, &value.into_value()) {
            Some(v) => self.push(Action::Set(field.attr(), v)),
            None => self,
        }
    }

    /// Removes an optional field (stored as absent, read back as `None`).
    pub fn remove<V, K: Settable>(self, field: Field<T, Option<V>, K>) -> Self {
        self.push(Action::Set(field.attr(), None))
    }

    /// Sets a field only if the item lacks it.
    pub fn set_if_not_exists<V, K: Computable>(mut self, field: Field<T, V, K>, value: impl IntoValue<V>) -> Self {
        match self.encode(&field, &value.into_value()) {
            Some(Some(v)) => self.push(Action::IfNotExists(field.attr(), v)),
            Some(None) => self,
            None => self,
        }
    }

    fn arithmetic<V: Numeric, K>(self, field: Field<T, V, K>, by: V::Num, subtract: bool) -> Self {
        match by.to_attr() {
            Ok(delta) => self.push(Action::Add { attr: field.attr(), delta, subtract }),
            Err(e) => {
                let e = e.in_field(field.attr()).encoding(&T::DESIGN.entity);
                self.fail(e)
            }
        }
    }

    /// Adds to a number field, atomically (an absent attribute counts as
    /// 0). The result must still fit the field's type when read back.
    pub fn add<V: Numeric, K: Computable>(self, field: Field<T, V, K>, by: impl IntoValue<V::Num>) -> Self {
        self.arithmetic(field, by.into_value(), false)
    }

    /// Subtracts from a number field, atomically (an absent attribute
    /// counts as 0). An unsigned field must not go below zero: guard it
    /// with a condition such as `field.ge(n)`.
    pub fn subtract<V: Numeric, K: Computable>(self, field: Field<T, V, K>, by: impl IntoValue<V::Num>) -> Self {
        self.arithmetic(field, by.into_value(), true)
    }

    fn list<V: ListField, K>(self, field: Field<T, V, K>, items: impl IntoIterator<Item = V::Elem>, prepend: bool) -> Self {
        let mut list = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match item.to_attr() {
                Ok(v) => list.push(v),
                Err(e) => {
                    let e = e.at_index(i).in_field(field.attr()).encoding(&T::DESIGN.entity);
                    return self.fail(e);
                }
            }
        }
        self.push(Action::Append { attr: field.attr(), list: AttributeValue::L(list), prepend })
    }

    /// Appends elements to a list field (an absent list counts as empty).
    pub fn append<V: ListField, K: Computable>(self, field: Field<T, V, K>, items: impl IntoIterator<Item = V::Elem>) -> Self {
        self.list(field, items, false)
    }

    /// Puts elements in front of a list field.
    pub fn prepend<V: ListField, K: Computable>(self, field: Field<T, V, K>, items: impl IntoIterator<Item = V::Elem>) -> Self {
        self.list(field, items, true)
    }

    fn set_op<V: SetField, K, I: IntoValue<V::Elem>>(
        self,
        field: Field<T, V, K>,
        items: impl IntoIterator<Item = I>,
        add: bool,
    ) -> Self {
        match set_value(items.into_iter().map(IntoValue::into_value)) {
            // Nothing to add or delete: DynamoDB has no empty set.
            Ok(None) => self,
            Ok(Some(set)) if add => self.push(Action::AddToSet(field.attr(), set)),
            Ok(Some(set)) => self.push(Action::DeleteFromSet(field.attr(), set)),
            Err(e) => {
                let e = e.in_field(field.attr()).encoding(&T::DESIGN.entity);
                self.fail(e)
            }
        }
    }

    /// Adds elements to a set field (creating it if absent). No elements:
    /// nothing to do.
    pub fn add_to_set<V: SetField, K: Computable, I: IntoValue<V::Elem>>(
        self,
        field: Field<T, V, K>,
        items: impl IntoIterator<Item = I>,
    ) -> Self {
        self.set_op(field, items, true)
    }

    /// Deletes elements from a set field. DynamoDB removes a set that
    /// becomes empty, so declare the field `Option<...>` or
    /// `#[item(default)]` if that can happen.
    pub fn delete_from_set<V: SetField, K: Computable, I: IntoValue<V::Elem>>(
        self,
        field: Field<T, V, K>,
        items: impl IntoIterator<Item = I>,
    ) -> Self {
        self.set_op(field, items, false)
    }

    /// The current value of a field this update does not change but a key
    /// it rewrites is rendered from. The update is conditional on the
    /// stored value being exactly this one (else [`Error::ConditionFailed`]
    /// and nothing is written), so the rewritten key is true.
    pub fn unchanged<V, K>(mut self, field: Field<T, V, K>, value: impl IntoValue<V>) -> Self {
        match self.encode(&field, &value.into_value()) {
            Some(v) => {
                self.unchanged.push((field.attr(), v));
                self
            }
            None => self,
        }
    }

    /// A condition the stored item must meet; several are combined with
    /// AND. Otherwise [`Error::ConditionFailed`] and nothing is written.
    pub fn condition(mut self, condition: Condition<T>) -> Self {
        self.condition = Some(match self.condition.take() {
            Some(c) => c.and(condition),
            None => condition,
        });
        self
    }

    /// Optimistic locking: the stored item must be at `version` (its
    /// `#[item(version)]` field), else [`Error::VersionConflict`]. Without
    /// it the update is not conditional on the version (but bumps it).
    pub fn if_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }

    /// Builds the request; every refusal happens here, before sending.
    pub(crate) fn prepare(self) -> Result<PreparedUpdate, Error> {
        let design = self.table.entity::<T>()?;
        let key = self.key?;
        if let Some(e) = self.error {
            return Err(e);
        }
        let managed_now = managed_now::<T>(design)?;
        build(design, key, self.actions, self.unchanged, self.condition.map(|c| c.node), self.version, managed_now)
    }

    /// The key this update addresses (`None`: it could not be rendered,
    /// and preparing or sending the update says why).
    pub(crate) fn key(&self) -> Option<&PrimaryKey> {
        self.key.as_ref().ok()
    }

    /// Builds the request twice: for this table's design of the entity,
    /// and for `other` (another design of the same entity, the old form
    /// during a migration) at `other_key`. Both or neither. Both also set
    /// `stamp` (a migrating table's write token), which no field may be.
    pub(crate) fn prepare_pair(
        mut self,
        other: &'static EntityDesign,
        other_key: PrimaryKey,
        stamp: (&'static str, AttributeValue),
    ) -> Result<(PreparedUpdate, PreparedUpdate), Error> {
        let design = self.table.entity::<T>()?;
        let key = self.key?;
        if let Some(e) = self.error {
            return Err(e);
        }
        self.actions.push(Action::Set(stamp.0, Some(stamp.1)));
        let managed_now = managed_now::<T>(design)?;
        let condition = self.condition.map(|c| c.node);
        let mine = build(design, key, self.actions.clone(), self.unchanged.clone(), condition.clone(), self.version, managed_now.clone())?;
        let theirs = build(other, other_key, self.actions, self.unchanged, condition, self.version, managed_now)?;
        Ok((mine, theirs))
    }

    /// Sends the update and returns the item as stored after it.
    pub async fn send(self) -> Result<T, Error> {
        let table = self.table;
        let update = self.prepare()?;
        let (names, values) = update.expr.into_maps();
        let (started, entity) = (std::time::Instant::now(), Some(T::DESIGN.entity.as_ref()));
        let result = table
            .client()
            .update_item()
            .table_name(table.name())
            .set_key(Some(update.key))
            .update_expression(update.update)
            .set_condition_expression(update.condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::AllNew)
            .set_return_values_on_condition_check_failure(update.meta.return_old())
            .return_consumed_capacity(super::trace::CAPACITY)
            .send()
            .await;
        match result {
            Ok(out) => {
                super::trace::sent("UpdateItem", table.name(), entity, started, super::trace::units(out.consumed_capacity()), 1);
                T::from_item(out.attributes.unwrap_or_default())
            }
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Err(update.meta.error(update.meta.explain(c.item())))
                }
                _ => {
                    super::trace::failed("UpdateItem", table.name(), entity, started, &e);
                    Err(Error::dynamo("UpdateItem", table.name(), e))
                }
            },
        }
    }
}

/// The `created_at` and `updated_at` values an update writes (`None`
/// where the entity has no such field).
type ManagedNow = (Option<AttributeValue>, Option<AttributeValue>);

fn managed_now<T: Item>(design: &EntityDesign) -> Result<ManagedNow, Error> {
    let now = |stamp| T::__now(stamp);
    Ok((
        if design.managed.created_at.is_some() { now(Stamp::CreatedAt)? } else { None },
        if design.managed.updated_at.is_some() { now(Stamp::UpdatedAt)? } else { None },
    ))
}

/// An update, ready to send alone or in a transaction.
#[derive(Debug)]
pub(crate) struct PreparedUpdate {
    pub(crate) key: HashMap<String, AttributeValue>,
    pub(crate) update: String,
    pub(crate) condition: Option<String>,
    pub(crate) expr: Expr,
    pub(crate) meta: WriteMeta,
}

fn invalid(design: &EntityDesign, key: &PrimaryKey, reason: String) -> Error {
    Error::InvalidUpdate { entity: design.entity.to_string(), pk: key.pk.clone(), sk: key.sk.clone(), reason }
}

/// The update request: changes, rewritten key attributes, managed fields
/// and conditions. Pure, so that every refusal is known before sending.
fn build(
    design: &'static EntityDesign,
    key: PrimaryKey,
    actions: Vec<Action>,
    unchanged: Vec<(&'static str, Option<AttributeValue>)>,
    condition: Option<Node>,
    version: Option<u64>,
    (created_now, updated_now): ManagedNow,
) -> Result<PreparedUpdate, Error> {
    let entity = design.entity.as_ref();
    // Values of the fields the update knows: the table key's (parsed back
    // from the key), those it sets, those given as unchanged. `None`: the
    // attribute is (or becomes) absent.
    let mut known: HashMap<&str, Option<AttributeValue>> = HashMap::new();
    let mut table_key_fields: HashSet<&str> = HashSet::new();
    for (k, text) in [(&design.pk, &key.pk), (&design.sk, &key.sk)] {
        for (f, v) in k.template.parse_key(text, entity, &k.attr)? {
            table_key_fields.insert(f.attr.as_ref());
            known.insert(f.attr.as_ref(), Some(v));
        }
    }
    let managed: Vec<&str> =
        [&design.managed.version, &design.managed.created_at, &design.managed.updated_at].into_iter().flatten().map(|a| a.as_ref()).collect();

    let mut changed: HashMap<&str, Option<AttributeValue>> = HashMap::new();
    let mut computed: Vec<&Action> = Vec::new();
    let mut touched: HashSet<&str> = HashSet::new();
    for action in &actions {
        let attr = action.attr();
        if !touched.insert(attr) {
            return Err(invalid(design, &key, format!("`{attr}` is changed twice in one update; DynamoDB refuses overlapping changes")));
        }
        if table_key_fields.contains(attr) {
            return Err(invalid(
                design,
                &key,
                format!("`{attr}` is part of the table key and cannot change in place; use `Table::move_item`"),
            ));
        }
        if managed.contains(&attr) {
            return Err(invalid(design, &key, format!("`{attr}` is written by the toolkit on every write")));
        }
        match action {
            Action::Set(_, value) => {
                changed.insert(attr, value.clone());
            }
            other => computed.push(other),
        }
    }
    let index_fields = |attr: &str| {
        design.indexes.iter().flat_map(|i| i.keys()).find(|k| k.template.fields().any(|f| f.attr == attr))
    };
    for action in &computed {
        if let Some(k) = index_fields(action.attr()) {
            return Err(invalid(
                design,
                &key,
                format!(
                    "`{}` changes `{}`, which key attribute `{}` is rendered from; DynamoDB would compute the new value, so the key could not be rewritten: use `set` with the new value",
                    action.verb(),
                    action.attr(),
                    k.attr
                ),
            ));
        }
    }
    for (attr, value) in &unchanged {
        if touched.contains(attr) {
            return Err(invalid(design, &key, format!("`{attr}` is both changed and given as unchanged")));
        }
        known.entry(attr).or_insert_with(|| value.clone());
    }
    for (attr, value) in &changed {
        known.insert(attr, value.clone());
    }

    // Index keys rendered from a changed field.
    let mut key_sets: Vec<(&str, AttributeValue)> = Vec::new();
    let mut key_removes: Vec<&str> = Vec::new();
    for index in design.indexes.iter() {
        let changes = |k: &KeyDesign| k.template.fields().find(|f| changed.contains_key(f.attr.as_ref())).map(|f| f.field.clone());
        let Some(trigger) = index.keys().find_map(changes) else { continue };
        let optional_changed =
            index.keys().flat_map(|k| k.template.fields()).any(|f| f.optional && changed.contains_key(f.attr.as_ref()));
        // A sparse index whose membership may change is rewritten whole.
        let render: Vec<&KeyDesign> =
            if optional_changed { index.keys().collect() } else { index.keys().filter(|k| changes(k).is_some()).collect() };
        let needed = render
            .iter()
            .flat_map(|k| k.template.fields().map(move |f| (*k, f)))
            .chain(index.keys().flat_map(|k| k.template.fields().filter(|f| f.optional).map(move |f| (k, f))));
        for (k, f) in needed {
            if !known.contains_key(f.attr.as_ref()) {
                return Err(Error::StaleKey {
                    entity: entity.to_string(),
                    attribute: k.attr.to_string(),
                    template: k.template.source.to_string(),
                    field: trigger.to_string(),
                    missing: f.field.to_string(),
                });
            }
        }
        let absent = index.keys().flat_map(|k| k.template.fields()).find(|f| matches!(known.get(f.attr.as_ref()), Some(None)));
        match absent {
            Some(f) if f.optional => key_removes.extend(index.keys().map(|k| k.attr.as_ref())),
            Some(f) => {
                return Err(invalid(
                    design,
                    &key,
                    format!("`{}` is removed, but key attribute `{}` needs it", f.field, index.pk.attr),
                ))
            }
            None => {
                let values: HashMap<String, AttributeValue> =
                    known.iter().filter_map(|(a, v)| Some((a.to_string(), v.clone()?))).collect();
                for k in render {
                    let rendered = k.template.render_item(&values, entity, &k.attr)?;
                    let max = if std::ptr::eq(k, &index.pk) { MAX_PARTITION_KEY_BYTES } else { MAX_SORT_KEY_BYTES };
                    check_len(&rendered, max, entity, &k.attr)?;
                    key_sets.push((k.attr.as_ref(), AttributeValue::S(rendered)));
                }
            }
        }
    }

    let mut expr = Expr::new();
    let (mut set, mut remove, mut add, mut delete) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for action in &actions {
        match action {
            Action::Set(attr, Some(v)) => set.push(format!("{} = {}", expr.name(attr), expr.value(v.clone()))),
            Action::Set(attr, None) => remove.push(expr.name(attr)),
            Action::IfNotExists(attr, v) => {
                let n = expr.name(attr);
                set.push(format!("{n} = if_not_exists({n}, {})", expr.value(v.clone())));
            }
            Action::Add { attr, delta, subtract } => {
                let n = expr.name(attr);
                let zero = expr.value(AttributeValue::N("0".into()));
                let op = if *subtract { "-" } else { "+" };
                set.push(format!("{n} = if_not_exists({n}, {zero}) {op} {}", expr.value(delta.clone())));
            }
            Action::Append { attr, list, prepend } => {
                let n = expr.name(attr);
                let empty = expr.value(AttributeValue::L(Vec::new()));
                let list = expr.value(list.clone());
                let current = format!("if_not_exists({n}, {empty})");
                set.push(if *prepend {
                    format!("{n} = list_append({list}, {current})")
                } else {
                    format!("{n} = list_append({current}, {list})")
                });
            }
            Action::AddToSet(attr, v) => add.push(format!("{} {}", expr.name(attr), expr.value(v.clone()))),
            Action::DeleteFromSet(attr, v) => delete.push(format!("{} {}", expr.name(attr), expr.value(v.clone()))),
        }
    }
    for (attr, v) in key_sets {
        set.push(format!("{} = {}", expr.name(attr), expr.value(v)));
    }
    for attr in key_removes {
        remove.push(expr.name(attr));
    }
    if actions.is_empty() {
        return Err(invalid(design, &key, "nothing to change: add `set`, `remove`, `add` ... before `send`".into()));
    }
    if let Some(attr) = &design.managed.version {
        let n = expr.name(attr);
        let zero = expr.value(AttributeValue::N("0".into()));
        let one = expr.value(AttributeValue::N("1".into()));
        set.push(format!("{n} = if_not_exists({n}, {zero}) + {one}"));
    }
    if let (Some(attr), Some(now)) = (&design.managed.updated_at, updated_now) {
        set.push(format!("{} = {}", expr.name(attr), expr.value(now)));
    }
    if let (Some(attr), Some(now)) = (&design.managed.created_at, created_now) {
        let n = expr.name(attr);
        set.push(format!("{n} = if_not_exists({n}, {})", expr.value(now)));
    }
    let mut update = Vec::new();
    for (keyword, parts) in [("SET", set), ("REMOVE", remove), ("ADD", add), ("DELETE", delete)] {
        if !parts.is_empty() {
            update.push(format!("{keyword} {}", parts.join(", ")));
        }
    }

    let mut clauses = vec![exists_clause(&mut expr, design)];
    let version = match (version, &design.managed.version) {
        (Some(expected), Some(attr)) => {
            clauses.push(version_clause(&mut expr, attr, expected));
            Some((attr.to_string(), expected))
        }
        (Some(_), None) => return Err(Error::invalid_argument("version", format!("entity `{entity}` has no `#[item(version)]` field"))),
        (None, _) => None,
    };
    for (attr, value) in &unchanged {
        let n = expr.name(attr);
        clauses.push(match value {
            Some(v) => format!("{n} = {}", expr.value(v.clone())),
            None => format!("attribute_not_exists({n})"),
        });
    }
    if let Some(node) = condition {
        let c: Condition<()> = Condition::from_node(node);
        clauses.push(c.render(&mut expr, entity)?);
    }
    let meta = WriteMeta {
        operation: "UpdateItem",
        entity: design,
        key: key.clone(),
        create_only: false,
        must_exist: true,
        version,
        unchanged: unchanged.iter().map(|(a, v)| (a.to_string(), v.clone())).collect(),
        conditional: true,
    };
    let key_map = HashMap::from([
        (design.pk.attr.to_string(), AttributeValue::S(key.pk)),
        (design.sk.attr.to_string(), AttributeValue::S(key.sk)),
    ]);
    Ok(PreparedUpdate { key: key_map, update: update.join(" "), condition: and_all(&clauses), expr, meta })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::design::IndexDesign;
    use crate::design::ManagedAttrs;
    use crate::template::{KeyKind, Template};

    /// User: pk ORG#{org}, sk USER#{id}; gsi1 EMAIL#{email} / USER;
    /// gsi2 (sparse) ORG#{org} / TEAM#{team}#{id}; gsi3 CAT#{cat} /
    /// {rank:04}#{title}; versioned.
    fn design() -> &'static EntityDesign {
        let t = |src: &str| {
            Template::parse(src, |name| {
                Some(match name {
                    "rank" => (KeyKind::Int, false),
                    "team" => (KeyKind::Str, true),
                    _ => (KeyKind::Str, false),
                })
            })
            .unwrap()
        };
        let key = |attr: &'static str, src: &str| KeyDesign { attr: Cow::Borrowed(attr), template: t(src) };
        Box::leak(Box::new(EntityDesign {
            entity: "User".into(),
            entity_attr: "_et".into(),
            pk: key("pk", "ORG#{org}"),
            sk: key("sk", "USER#{id}"),
            indexes: Cow::Owned(vec![
                IndexDesign { name: "gsi1".into(), pk: key("gsi1pk", "EMAIL#{email}"), sk: Some(key("gsi1sk", "USER")) },
                IndexDesign { name: "gsi2".into(), pk: key("gsi2pk", "ORG#{org}"), sk: Some(key("gsi2sk", "TEAM#{team}#{id}")) },
                IndexDesign { name: "gsi3".into(), pk: key("gsi3pk", "CAT#{cat}"), sk: Some(key("gsi3sk", "{rank:04}#{title}")) },
            ]),
            attributes: Cow::Borrowed(&[]),
            managed: ManagedAttrs { version: Some("v".into()), ..ManagedAttrs::NONE },
        }))
    }

    fn key() -> PrimaryKey {
        PrimaryKey { pk: "ORG#acme".into(), sk: "USER#ann".into() }
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    /// The update with placeholders replaced, for reading.
    fn run(actions: Vec<Action>, unchanged: Vec<(&'static str, Option<AttributeValue>)>, version: Option<u64>) -> Result<(String, String), Error> {
        let u = build(design(), key(), actions, unchanged, None, version, (None, None))?;
        let (names, values) = u.expr.into_maps();
        let (names, values) = (names.unwrap_or_default(), values.unwrap_or_default());
        let readable = |text: &str| {
            let mut out = text.to_string();
            // Longest placeholders first, so `#n1` does not eat `#n10`.
            let mut names: Vec<_> = names.iter().collect();
            names.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
            for (p, n) in names {
                out = out.replace(p.as_str(), n);
            }
            let mut values: Vec<_> = values.iter().collect();
            values.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
            for (p, v) in values {
                let text = match v {
                    AttributeValue::S(s) => format!("'{s}'"),
                    AttributeValue::N(n) => n.clone(),
                    other => format!("{other:?}"),
                };
                out = out.replace(p.as_str(), &text);
            }
            out
        };
        Ok((readable(&u.update), readable(u.condition.as_deref().unwrap_or(""))))
    }

    #[test]
    fn setting_an_index_field_rewrites_only_the_key_it_feeds() {
        let (update, condition) = run(vec![Action::Set("email", Some(s("a@b")))], vec![], None).unwrap();
        assert_eq!(update, "SET email = 'a@b', gsi1pk = 'EMAIL#a@b', v = if_not_exists(v, 0) + 1");
        assert_eq!(condition, "attribute_exists(pk) AND _et = 'User'");
    }

    #[test]
    fn a_sparse_index_follows_its_optional_field() {
        let (update, _) = run(vec![Action::Set("team", None)], vec![], None).unwrap();
        assert_eq!(update, "SET v = if_not_exists(v, 0) + 1 REMOVE team, gsi2pk, gsi2sk");
        let (update, _) = run(vec![Action::Set("team", Some(s("red")))], vec![], None).unwrap();
        assert_eq!(update, "SET team = 'red', gsi2pk = 'ORG#acme', gsi2sk = 'TEAM#red#ann', v = if_not_exists(v, 0) + 1");
    }

    #[test]
    fn missing_template_fields_are_a_stale_key_unless_given_unchanged() {
        let err = run(vec![Action::Set("rank", Some(AttributeValue::N("7".into())))], vec![], None).unwrap_err();
        assert!(
            matches!(&err, Error::StaleKey { attribute, field, missing, .. } if attribute == "gsi3sk" && field == "rank" && missing == "title"),
            "{err:?}"
        );
        let (update, condition) =
            run(vec![Action::Set("rank", Some(AttributeValue::N("7".into())))], vec![("title", Some(s("Boss")))], Some(3)).unwrap();
        assert_eq!(update, "SET rank = 7, gsi3sk = '0007#Boss', v = if_not_exists(v, 0) + 1");
        assert_eq!(condition, "(attribute_exists(pk) AND _et = 'User') AND (v = 3) AND (title = 'Boss')");
        // Version 0 expects no version attribute; an absent unchanged value
        // expects no attribute.
        let (_, condition) = run(vec![Action::Set("cat", Some(s("x")))], vec![("team", None)], Some(0)).unwrap();
        assert_eq!(condition, "(attribute_exists(pk) AND _et = 'User') AND (attribute_not_exists(v)) AND (attribute_not_exists(team))");
    }

    #[test]
    fn computed_changes_of_key_fields_and_table_key_changes_are_refused() {
        let add = Action::Add { attr: "rank", delta: AttributeValue::N("1".into()), subtract: false };
        let err = run(vec![add], vec![], None).unwrap_err();
        assert!(matches!(&err, Error::InvalidUpdate { reason, .. } if reason.contains("`add` changes `rank`")), "{err:?}");
        let err = run(vec![Action::Set("id", Some(s("bob")))], vec![], None).unwrap_err();
        assert!(matches!(&err, Error::InvalidUpdate { reason, .. } if reason.contains("move_item")), "{err:?}");
        let err = run(vec![Action::Set("v", Some(AttributeValue::N("9".into())))], vec![], None).unwrap_err();
        assert!(matches!(&err, Error::InvalidUpdate { reason, .. } if reason.contains("written by the toolkit")), "{err:?}");
    }

    #[test]
    fn every_kind_of_change_goes_to_its_clause() {
        let set = |v: &[&str]| AttributeValue::Ss(v.iter().map(|x| x.to_string()).collect());
        let (update, _) = run(
            vec![
                Action::IfNotExists("a", s("x")),
                Action::Add { attr: "n", delta: AttributeValue::N("2".into()), subtract: true },
                Action::Append { attr: "l", list: AttributeValue::L(vec![s("z")]), prepend: true },
                Action::AddToSet("tags", set(&["p"])),
                Action::DeleteFromSet("old", set(&["q"])),
                Action::Set("gone", None),
            ],
            vec![],
            None,
        )
        .unwrap();
        assert_eq!(
            update,
            "SET a = if_not_exists(a, 'x'), n = if_not_exists(n, 0) - 2, \
             l = list_append(L([S(\"z\")]), if_not_exists(l, L([]))), v = if_not_exists(v, 0) + 1 \
             REMOVE gone ADD tags Ss([\"p\"]) DELETE old Ss([\"q\"])"
        );
    }
}
