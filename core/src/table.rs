//! The typed table handle.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use crate::design::{EntityDesign, KeyDesign, PrimaryKey, TableDesign};
use crate::error::Error;
use crate::size::{item_size, MAX_ITEM_BYTES};
use crate::template::{KeyKind, KeyPart};
use crate::Item;

/// A typed handle on one table, over an injected `aws_sdk_dynamodb::Client`.
///
/// Cloning is cheap. Every operation checks its input (keys, sizes,
/// values) before a request is sent.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    design: Arc<TableDesign>,
}

impl Table {
    /// A handle on the table `design.table`.
    pub fn new(client: Client, design: TableDesign) -> Self {
        Table { client, design: Arc::new(design) }
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.design.table
    }

    /// The design the handle was built with.
    pub fn design(&self) -> &TableDesign {
        &self.design
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn entity<T: Item>(&self) -> Result<&'static EntityDesign, Error> {
        let design = T::DESIGN;
        match self.design.entity(&design.entity) {
            Some(registered) if registered == design => Ok(design),
            Some(_) => Err(Error::Design(format!(
                "entity `{}` differs from the one table `{}` was designed with",
                design.entity, self.design.table
            ))),
            None => Err(Error::Design(format!(
                "entity `{}` is not part of the design of table `{}`",
                design.entity, self.design.table
            ))),
        }
    }

    /// Creates the table from the design: key schema, attribute
    /// definitions, every GSI (on-demand capacity, projection ALL) and the
    /// stream; waits until it is ACTIVE, then turns on time to live and
    /// point-in-time recovery as the design's settings ask. Where the
    /// endpoint lacks an API (DynamoDB Local has no point-in-time
    /// recovery) the report carries a warning instead. See also
    /// [`Table::ensure`].
    pub async fn create_table(&self) -> Result<crate::provision::ProvisionReport, Error> {
        let d = &*self.design;
        let mut attrs: Vec<&str> = vec![&d.pk_attr, &d.sk_attr];
        for i in &d.indexes {
            attrs.push(&i.pk_attr);
            attrs.extend(i.sk_attr.as_deref());
        }
        attrs.dedup();
        let mut seen = std::collections::HashSet::new();
        attrs.retain(|a| seen.insert(*a));
        let mut req = self
            .client
            .create_table()
            .table_name(&d.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key_element(&d.pk_attr, KeyType::Hash)?)
            .key_schema(key_element(&d.sk_attr, KeyType::Range)?);
        for a in attrs {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(a)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| Error::Design(e.to_string()))?,
            );
        }
        for i in &d.indexes {
            let mut gsi = GlobalSecondaryIndex::builder()
                .index_name(&i.name)
                .key_schema(key_element(&i.pk_attr, KeyType::Hash)?)
                .projection(Projection::builder().projection_type(ProjectionType::All).build());
            if let Some(sk) = &i.sk_attr {
                gsi = gsi.key_schema(key_element(sk, KeyType::Range)?);
            }
            req = req.global_secondary_indexes(gsi.build().map_err(|e| Error::Design(e.to_string()))?);
        }
        if let Some(view) = d.settings.stream {
            req = req.stream_specification(crate::provision::stream_spec(Some(view))?);
        }
        req.send().await.map_err(|e| Error::dynamo("CreateTable", &d.table, e))?;
        self.wait_active().await?;
        self.after_create().await
    }

    pub(crate) async fn wait_active(&self) -> Result<(), Error> {
        let mut delay = Duration::from_millis(20);
        loop {
            let out = self
                .client
                .describe_table()
                .table_name(self.name())
                .send()
                .await
                .map_err(|e| Error::dynamo("DescribeTable", self.name(), e))?;
            let table = out.table();
            let ready = table.and_then(|t| t.table_status()) == Some(&TableStatus::Active)
                && table.map_or(true, |t| {
                    t.global_secondary_indexes()
                        .iter()
                        .all(|g| g.index_status() == Some(&aws_sdk_dynamodb::types::IndexStatus::Active))
                });
            if ready {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Deletes the table.
    pub async fn delete_table(&self) -> Result<(), Error> {
        self.client
            .delete_table()
            .table_name(self.name())
            .send()
            .await
            .map_err(|e| Error::dynamo("DeleteTable", self.name(), e))?;
        Ok(())
    }

    pub(crate) fn encode<T: Item>(&self, item: &T) -> Result<(&'static EntityDesign, HashMap<String, AttributeValue>), Error> {
        let design = self.entity::<T>()?;
        let encoded = item.to_item()?;
        let size = item_size(&encoded);
        if size > MAX_ITEM_BYTES {
            return Err(Error::ItemTooLarge { entity: design.entity.to_string(), size, max: MAX_ITEM_BYTES });
        }
        Ok((design, encoded))
    }

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

    pub(crate) fn key_map(&self, key: PrimaryKey) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (self.design.pk_attr.clone(), AttributeValue::S(key.pk)),
            (self.design.sk_attr.clone(), AttributeValue::S(key.sk)),
        ])
    }

    /// Reads one item by its typed key (a strongly consistent read).
    /// `Ok(None)` when there is none.
    pub async fn get<T: Item>(&self, key: &T::Key) -> Result<Option<T>, Error> {
        self.entity::<T>()?;
        let key = T::key_of(key)?;
        let out = self
            .client
            .get_item()
            .table_name(self.name())
            .set_key(Some(self.key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::dynamo("GetItem", self.name(), e))?;
        out.item.map(T::from_item).transpose()
    }

    /// Deletes one item by its typed key; deleting an absent item is not an
    /// error.
    pub async fn delete<T: Item>(&self, key: &T::Key) -> Result<(), Error> {
        self.entity::<T>()?;
        let key = T::key_of(key)?;
        self.client
            .delete_item()
            .table_name(self.name())
            .set_key(Some(self.key_map(key)))
            .send()
            .await
            .map_err(|e| Error::dynamo("DeleteItem", self.name(), e))?;
        Ok(())
    }

    /// Starts a query of entity `T`, on the table or (with
    /// [`Query::index`]) on a GSI.
    pub fn query<T: Item>(&self) -> Query<'_, T> {
        Query {
            table: self,
            index: None,
            pk: KeyParts::new(),
            sk: SortCondition::Any,
            limit: None,
            page_size: None,
            forward: true,
            filter: None,
            _entity: PhantomData,
        }
    }
}

/// The smallest string greater than every string that starts with
/// `prefix`, in UTF-8 byte order (which is code point order); `None` when
/// there is none (empty, or all U+10FFFF).
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            c => char::from_u32(c + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn key_element(attr: &str, kind: KeyType) -> Result<KeySchemaElement, Error> {
    KeySchemaElement::builder()
        .attribute_name(attr)
        .key_type(kind)
        .build()
        .map_err(|e| Error::Design(e.to_string()))
}

/// Field values that fill (part of) a key template, named by Rust field.
///
/// ```
/// let parts = singletable::KeyParts::new().set("org_id", "acme").set("year", 2026);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyParts {
    values: Vec<(String, AttributeValue)>,
}

impl KeyParts {
    /// No values.
    pub fn new() -> Self {
        KeyParts::default()
    }

    /// Adds a field's value.
    pub fn set<V: KeyPart>(mut self, field: impl Into<String>, value: V) -> Self {
        let mut text = String::new();
        // Padding is the template's business; without it writing cannot fail.
        let _ = value.write_key(&mut text, None);
        let value = match V::KIND {
            KeyKind::Str => AttributeValue::S(text),
            KeyKind::Int => AttributeValue::N(text),
            KeyKind::Bool => AttributeValue::Bool(text == "true"),
        };
        self.values.push((field.into(), value));
        self
    }

    fn get(&self, field: &crate::template::FieldRef) -> Option<&AttributeValue> {
        self.values.iter().find(|(name, _)| *name == field.field || *name == field.attr).map(|(_, v)| v)
    }

    fn check_known(&self, entity: &EntityDesign, key: &KeyDesign) -> Result<(), Error> {
        for (name, _) in &self.values {
            if !key.template.fields().any(|f| f.field == *name || f.attr == *name) {
                return Err(Error::Design(format!(
                    "{}: `{name}` is not a field of `{}`'s template `{}`",
                    entity.entity, key.attr, key.template.source
                )));
            }
        }
        Ok(())
    }

    /// Renders a complete key.
    pub(crate) fn render(&self, entity: &EntityDesign, key: &KeyDesign) -> Result<String, Error> {
        self.check_known(entity, key)?;
        match key.template.render_prefix(|f| self.get(f), &entity.entity, &key.attr)? {
            (text, None) => Ok(text),
            (_, Some(missing)) => Err(Error::MissingKeyField {
                entity: entity.entity.to_string(),
                attribute: key.attr.to_string(),
                field: missing.field.to_string(),
            }),
        }
    }

    /// Renders a prefix: the leading fields given, the rest absent.
    /// Returns the text and whether it is complete.
    fn render_prefix(&self, entity: &EntityDesign, key: &KeyDesign) -> Result<(String, bool), Error> {
        self.check_known(entity, key)?;
        let (text, missing) = key.template.render_prefix(|f| self.get(f), &entity.entity, &key.attr)?;
        if let Some(missing) = missing {
            let after: Vec<&str> = key
                .template
                .fields()
                .skip_while(|f| f.field != missing.field)
                .filter(|f| self.get(f).is_some())
                .map(|f| f.field.as_ref())
                .collect();
            if let Some(given) = after.first() {
                return Err(Error::Design(format!(
                    "{}: `{}` gives `{given}` but not `{}` before it; a key prefix needs the leading fields",
                    entity.entity, key.attr, missing.field
                )));
            }
        }
        Ok((text, missing.is_none()))
    }
}

#[derive(Debug, Clone)]
enum SortCondition {
    Any,
    BeginsWith(KeyParts),
    Between(KeyParts, KeyParts),
}

/// A query of one entity; see [`Table::query`].
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until `.all().await`"]
pub struct Query<'t, T> {
    table: &'t Table,
    index: Option<String>,
    pk: KeyParts,
    sk: SortCondition,
    limit: Option<usize>,
    page_size: Option<usize>,
    forward: bool,
    filter: Option<crate::Condition<T>>,
    _entity: PhantomData<fn() -> T>,
}

impl<'t, T: Item + 't> Query<'t, T> {
    /// Queries a global secondary index instead of the table.
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = Some(name.into());
        self
    }

    /// The partition: every field of the partition key template.
    pub fn pk(mut self, parts: KeyParts) -> Self {
        self.pk = parts;
        self
    }

    /// Sort keys that begin with the template rendered from the leading
    /// fields given (none: the template's literal prefix, which selects all
    /// items of this entity in the partition).
    pub fn sk_begins_with(mut self, parts: KeyParts) -> Self {
        self.sk = SortCondition::BeginsWith(parts);
        self
    }

    /// Sort keys between two (inclusive). A bound with trailing fields left
    /// out covers everything under its prefix.
    pub fn sk_between(mut self, low: KeyParts, high: KeyParts) -> Self {
        self.sk = SortCondition::Between(low, high);
        self
    }

    /// At most `n` items.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Keeps only the items for which `condition` holds (DynamoDB's
    /// filter expression: items are read, then dropped, so they still
    /// count towards the read capacity and [`page_size`](Query::page_size)).
    /// Several filters are combined with AND.
    pub fn filter(mut self, condition: crate::Condition<T>) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(c) => c.and(condition),
            None => condition,
        });
        self
    }

    /// Descending sort-key order.
    pub fn reverse(mut self) -> Self {
        self.forward = false;
        self
    }

    /// Items read per request (DynamoDB's `Limit`), and the size of a page
    /// from [`Query::page`].
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Runs the query through every page and decodes the items.
    pub async fn all(self) -> Result<Vec<T>, Error> {
        use futures::TryStreamExt;
        self.stream().try_collect().await
    }

    /// The request the query sends: key condition, entity filter, limits.
    pub(crate) fn request(&self) -> Result<crate::page::Request<'t>, Error> {
        let table = self.table;
        let entity = table.entity::<T>()?;
        let (pk_key, sk_key) = match &self.index {
            None => (&entity.pk, Some(&entity.sk)),
            Some(name) => {
                let index = entity.index(name).ok_or_else(|| {
                    Error::Design(format!("entity `{}` has no index `{name}`", entity.entity))
                })?;
                (&index.pk, index.sk.as_ref())
            }
        };
        let pk_value = AttributeValue::S(self.pk.render(entity, pk_key)?);
        let mut expr = crate::expr::Expr::new();
        let mut condition = format!("{} = {}", expr.name(&pk_key.attr), expr.value(pk_value.clone()));
        // A key equal to an open upper bound's successor is past the range.
        let mut exclude_sk: Option<AttributeValue> = None;
        let sk_key_or_err = || {
            sk_key.ok_or_else(|| Error::Design(format!("index `{}` has no sort key", self.index.as_deref().unwrap_or(""))))
        };
        match &self.sk {
            SortCondition::Any => {}
            SortCondition::BeginsWith(parts) => {
                let sk = sk_key_or_err()?;
                let (prefix, _) = parts.render_prefix(entity, sk)?;
                let (name, value) = (expr.name(&sk.attr), expr.value(AttributeValue::S(prefix)));
                condition.push_str(&format!(" AND begins_with({name}, {value})"));
            }
            SortCondition::Between(low, high) => {
                let sk = sk_key_or_err()?;
                let (low, _) = low.render_prefix(entity, sk)?;
                let (high, complete) = high.render_prefix(entity, sk)?;
                let (name, low) = (expr.name(&sk.attr), expr.value(AttributeValue::S(low)));
                if complete {
                    let high = expr.value(AttributeValue::S(high));
                    condition.push_str(&format!(" AND {name} BETWEEN {low} AND {high}"));
                } else {
                    // Every key under the prefix sorts below the prefix's
                    // successor. A key condition allows one comparison on
                    // the sort key, so BETWEEN runs up to the successor and
                    // a key equal to it is dropped here.
                    match successor(&high) {
                        Some(next) => {
                            let next = AttributeValue::S(next);
                            let high = expr.value(next.clone());
                            condition.push_str(&format!(" AND {name} BETWEEN {low} AND {high}"));
                            exclude_sk = Some(next);
                        }
                        None => condition.push_str(&format!(" AND {name} >= {low}")),
                    }
                }
            }
        }
        let mut filter = format!(
            "{} = {}",
            expr.name(&entity.entity_attr),
            expr.value(AttributeValue::S(entity.entity.to_string()))
        );
        if let Some(c) = &self.filter {
            filter = format!("({filter}) AND ({})", c.render(&mut expr, &entity.entity)?);
        }
        let (names, values) = expr.into_maps();
        let (names, values) = (names.unwrap_or_default(), values.unwrap_or_default());
        let d = table.design();
        let mut key_attrs = vec![d.pk_attr.clone(), d.sk_attr.clone()];
        if self.index.is_some() {
            key_attrs.push(pk_key.attr.to_string());
            key_attrs.extend(sk_key.map(|k| k.attr.to_string()));
        }
        let partition = Some((pk_key.attr.to_string(), pk_value));
        Ok(crate::page::Request {
            table,
            op: crate::page::Op::Query,
            index: self.index.clone(),
            key_condition: Some(condition),
            filter: Some(filter),
            names,
            values,
            // A key equal to an open upper bound's successor is past the range.
            exclude: exclude_sk.and_then(|v| Some((sk_key?.attr.to_string(), v))),
            forward: self.forward,
            consistent: false,
            limit: self.limit,
            page_size: self.page_size,
            segment: None,
            key_attrs,
            partition,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn successor_is_past_every_key_under_the_prefix() {
        assert_eq!(successor("USER#").as_deref(), Some("USER$"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(successor(""), None);
        assert_eq!(successor("\u{10FFFF}"), None);
        let p = "TASK#p1#";
        let next = successor(p).unwrap();
        for key in ["TASK#p1#", "TASK#p1#\u{10FFFF}z", "TASK#p1#\u{10FFFF}\u{10FFFF}"] {
            assert!(key.as_bytes() < next.as_bytes(), "{key:?}");
        }
    }
}
