//! Queries of one entity: by partition, with sort key conditions, on the
//! table or a GSI; all at once, as a stream, or a page at a time.

use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, Stream, StreamExt};

use crate::design::{EntityDesign, KeyDesign};
use crate::error::Error;
use crate::ops::page::Page;
use crate::table::{KeyParts, Table};
use crate::Item;

impl Table {

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
    pub(crate) fn request(&self) -> Result<crate::ops::page::Request<'t>, Error> {
        self.request_as(self.table.entity::<T>()?)
    }

    /// The request for `entity`'s design of `T` (the old design's, for a
    /// migrating table reading the old form).
    fn request_as(&self, entity: &EntityDesign) -> Result<crate::ops::page::Request<'t>, Error> {
        let table = self.table;
        let (pk_key, sk_key) = match &self.index {
            None => (&entity.pk, Some(&entity.sk)),
            Some(name) => {
                let index = entity.index(name).ok_or_else(|| {
                    Error::invalid_argument("index", format!("entity `{}` has no index `{name}`", entity.entity))
                })?;
                (&index.pk, index.sk.as_ref())
            }
        };
        let pk_value = AttributeValue::S(self.pk.render(entity, pk_key)?);
        let mut expr = crate::expr::Expr::new();
        let mut condition = format!("{} = {}", expr.name(&pk_key.attr), expr.value(pk_value.clone()));
        // A key equal to an open upper bound's successor is past the range.
        let mut exclude_sk: Option<AttributeValue> = None;
        match self.sort_match(entity, sk_key)? {
            SortMatch::Any => {}
            SortMatch::Prefix(prefix) => {
                let sk = sk_key.expect("a sort condition has a sort key");
                let (name, value) = (expr.name(&sk.attr), expr.value(AttributeValue::S(prefix)));
                condition.push_str(&format!(" AND begins_with({name}, {value})"));
            }
            SortMatch::Between { low, high, high_is_prefix } => {
                let sk = sk_key.expect("a sort condition has a sort key");
                let (name, low) = (expr.name(&sk.attr), expr.value(AttributeValue::S(low)));
                if !high_is_prefix {
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
        Ok(crate::ops::page::Request {
            table,
            op: crate::ops::page::Op::Query,
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

/// Which sort keys a query selects, as text (for a migrating table that
/// answers a query from the old form and picks the items out itself).
#[derive(Debug, Clone)]
pub(crate) enum SortMatch {
    Any,
    Prefix(String),
    /// `high_is_prefix`: every key under `high` is in too.
    Between { low: String, high: String, high_is_prefix: bool },
}

impl SortMatch {
    /// Whether `sk` is selected (UTF-8 byte order, DynamoDB's).
    pub(crate) fn matches(&self, sk: &str) -> bool {
        match self {
            SortMatch::Any => true,
            SortMatch::Prefix(p) => sk.starts_with(p.as_str()),
            SortMatch::Between { low, high, high_is_prefix } => {
                sk >= low.as_str() && (sk <= high.as_str() || (*high_is_prefix && sk.starts_with(high.as_str())))
            }
        }
    }
}

/// A query on the old form standing in for a query on the new one (see
/// `MigratingTable::query_all`): every item of the entity in the old
/// partition the new one's fields render; the new partition, sort
/// condition, order and limit are applied to the items it returns.
pub(crate) struct OldFormQuery<'t> {
    pub request: crate::ops::page::Request<'t>,
    pub pk: String,
    pub sk: SortMatch,
    pub limit: Option<usize>,
    pub forward: bool,
}

impl<'t, T: Item + 't> Query<'t, T> {
    /// The sort condition rendered as text, on `sk_key` (the table's or
    /// the index's sort key; `None`: it has none, so only `Any` renders).
    fn sort_match(&self, entity: &EntityDesign, sk_key: Option<&KeyDesign>) -> Result<SortMatch, Error> {
        let sk_key_or_err = || {
            sk_key.ok_or_else(|| Error::invalid_argument("sk_begins_with", format!("index `{}` has no sort key", self.index.as_deref().unwrap_or(""))))
        };
        Ok(match &self.sk {
            SortCondition::Any => SortMatch::Any,
            SortCondition::BeginsWith(parts) => SortMatch::Prefix(parts.render_prefix(entity, sk_key_or_err()?)?.0),
            SortCondition::Between(low, high) => {
                let sk = sk_key_or_err()?;
                let (low, _) = low.render_prefix(entity, sk)?;
                let (high, complete) = high.render_prefix(entity, sk)?;
                SortMatch::Between { low, high, high_is_prefix: !complete }
            }
        })
    }

    /// Whether the query reads a GSI.
    pub(crate) fn on_index(&self) -> bool {
        self.index.is_some()
    }

    /// The same query for the old form, on `old` (the table with the old
    /// design), whose design of the entity is `old_entity`.
    /// `Err(Ok(missing))`: the old partition key needs fields the query
    /// does not give.
    pub(crate) fn for_old_form(self, old: &'t Table, old_entity: &EntityDesign) -> Result<OldFormQuery<'t>, Result<Vec<String>, Error>> {
        let entity = self.table.entity::<T>().map_err(Err)?;
        let pk = self.pk.render(entity, &entity.pk).map_err(Err)?;
        let sk = self.sort_match(entity, Some(&entity.sk)).map_err(Err)?;
        let parts = self.pk.only(&old_entity.pk).map_err(Ok)?;
        let query = Query {
            table: old,
            index: None,
            pk: parts,
            // The entity's literal prefix: all of its items in the partition.
            sk: SortCondition::BeginsWith(KeyParts::new()),
            limit: None,
            page_size: self.page_size,
            forward: true,
            filter: self.filter,
            _entity: PhantomData::<fn() -> T>,
        };
        let request = query.request_as(old_entity).map_err(Err)?;
        Ok(OldFormQuery { request, pk, sk, limit: self.limit, forward: self.forward })
    }
}

impl<'t, T: Item + 't> Query<'t, T> {
    /// The items as a stream, fetched a request at a time as it is
    /// polled (each request asks for at most [`Query::page_size`] items,
    /// within [`Query::limit`]).
    ///
    /// ```no_run
    /// # use singletable::{Item, KeyParts, Table};
    /// # #[derive(Item)] #[item(pk = "ORG#{org}", sk = "U#{id}")] struct User { org: String, id: String }
    /// # async fn demo(table: Table) -> Result<(), singletable::Error> {
    /// use futures::TryStreamExt;
    /// let mut users = std::pin::pin!(table.query::<User>().pk(KeyParts::new().set("org", "acme")).page_size(100).stream());
    /// while let Some(user) = users.try_next().await? {
    ///     println!("{}", user.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream(self) -> impl Stream<Item = Result<T, Error>> + Unpin + 't {
        match self.request() {
            Ok(request) => request.raw_stream().map(|r| r.and_then(T::from_item)).left_stream(),
            Err(e) => stream::iter(std::iter::once(Err(e))).right_stream(),
        }
    }

    /// One page of at most [`Query::page_size`] items (without it, what
    /// one DynamoDB request returns), starting at `cursor` (`None`: the
    /// first page). [`Query::limit`] caps the items over all pages.
    ///
    /// ```no_run
    /// # use singletable::{Item, KeyParts, Table};
    /// # #[derive(Item)] #[item(pk = "ORG#{org}", sk = "U#{id}")] struct User { org: String, id: String }
    /// # async fn demo(table: Table, cursor_from_client: Option<String>) -> Result<(), singletable::Error> {
    /// let page = table
    ///     .query::<User>()
    ///     .pk(KeyParts::new().set("org", "acme"))
    ///     .page_size(20)
    ///     .page(cursor_from_client.as_deref())
    ///     .await?;
    /// // Hand `page.items` and `page.cursor` to the client.
    /// # Ok(()) }
    /// ```
    pub async fn page(self, cursor: Option<&str>) -> Result<Page<T>, Error> {
        let request = self.request()?;
        let (items, cursor) = request.raw_page(cursor).await?;
        Ok(Page { items: items.into_iter().map(T::from_item).collect::<Result<_, _>>()?, cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::{successor, SortMatch};

    #[test]
    fn sort_matches_select_what_the_key_conditions_select() {
        let prefix = SortMatch::Prefix("USER#u1".into());
        assert!(prefix.matches("USER#u1") && prefix.matches("USER#u19") && !prefix.matches("USER#u2"));
        let closed = SortMatch::Between { low: "USER#u04".into(), high: "USER#u13".into(), high_is_prefix: false };
        assert!(closed.matches("USER#u04") && closed.matches("USER#u13") && !closed.matches("USER#u130") && !closed.matches("USER#u03"));
        // A bound with trailing fields left out covers everything under it.
        let open = SortMatch::Between { low: "USER#u04".into(), high: "USER#u1".into(), high_is_prefix: true };
        assert!(open.matches("USER#u1") && open.matches("USER#u1\u{10FFFF}") && !open.matches("USER#u2"));
        assert!(SortMatch::Any.matches(""));
    }

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
