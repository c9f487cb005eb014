//! Scans of one entity's items, whole or in parallel segments.

use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};

use crate::error::Error;
use crate::ops::page::{Op, Page, Request};
use crate::table::Table;
use crate::Item;


/// A scan of one entity's items; see [`Table::scan`].
#[derive(Debug, Clone)]
#[must_use = "a scan does nothing until it is run"]
pub struct Scan<'t, T> {
    table: &'t Table,
    index: Option<String>,
    limit: Option<usize>,
    page_size: Option<usize>,
    consistent: bool,
    segment: Option<(u32, u32)>,
    filter: Option<crate::Condition<T>>,
    _entity: PhantomData<fn() -> T>,
}

impl Table {
    /// Starts a scan of the table (or a GSI) for the items of entity `T`
    /// (filtered on the entity-type attribute; other items are read but
    /// not returned).
    ///
    /// ```no_run
    /// # use singletable::{Item, Table};
    /// # #[derive(Item)] #[item(pk = "ORG#{org}", sk = "U#{id}")] struct User { org: String, id: String }
    /// # async fn demo(table: Table) -> Result<(), singletable::Error> {
    /// let everyone: Vec<User> = table.scan::<User>().all().await?;
    /// let first_page = table.scan::<User>().page_size(50).page(None).await?;
    /// # Ok(()) }
    /// ```
    pub fn scan<T: Item>(&self) -> Scan<'_, T> {
        Scan { table: self, index: None, limit: None, page_size: None, consistent: false, segment: None, filter: None, _entity: PhantomData }
    }
}

impl<'t, T: Item + 't> Scan<'t, T> {
    /// Scans a global secondary index instead of the table.
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = Some(name.into());
        self
    }

    /// At most `n` items in all.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Items read per request, and the size of a page from [`Scan::page`].
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Strongly consistent reads (the table only).
    pub fn consistent(mut self, yes: bool) -> Self {
        self.consistent = yes;
        self
    }

    /// One segment of a parallel scan: `segment` of `total` (0-based).
    pub fn segment(mut self, segment: u32, total: u32) -> Self {
        self.segment = Some((segment, total));
        self
    }

    /// Keeps only the items for which `condition` holds (a filter
    /// expression: the others are still read); several are combined with
    /// AND. See [`Query::filter`](crate::Query::filter).
    pub fn filter(mut self, condition: crate::Condition<T>) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(c) => c.and(condition),
            None => condition,
        });
        self
    }

    fn request(&self) -> Result<Request<'t>, Error> {
        let entity = self.table.entity::<T>()?;
        let d = self.table.design();
        let mut key_attrs = vec![d.pk_attr.clone(), d.sk_attr.clone()];
        if let Some(name) = &self.index {
            let index = d.index(name).ok_or_else(|| Error::invalid_argument("index", format!("table `{}` has no index `{name}`", d.table)))?;
            key_attrs.push(index.pk_attr.clone());
            key_attrs.extend(index.sk_attr.clone());
        }
        if let Some((s, t)) = self.segment {
            if t == 0 || s >= t || t > 1_000_000 {
                return Err(Error::invalid_argument("segment", format!("scan segment {s} of {t}: need 0 <= segment < total <= 1000000")));
            }
        }
        let mut expr = crate::expr::Expr::new();
        let mut filter = format!(
            "{} = {}",
            expr.name(&entity.entity_attr),
            expr.value(AttributeValue::S(entity.entity.to_string()))
        );
        if let Some(c) = &self.filter {
            filter = format!("({filter}) AND ({})", c.render(&mut expr, &entity.entity)?);
        }
        let (names, values) = expr.into_maps();
        Ok(Request {
            table: self.table,
            op: Op::Scan,
            index: self.index.clone(),
            key_condition: None,
            filter: Some(filter),
            names: names.unwrap_or_default(),
            values: values.unwrap_or_default(),
            exclude: None,
            forward: true,
            consistent: self.consistent,
            limit: self.limit,
            page_size: self.page_size,
            segment: self.segment.map(|(s, t)| (s as i32, t as i32)),
            key_attrs,
            partition: None,
        })
    }

    /// The items as a stream; see [`Query::stream`](crate::Query::stream).
    pub fn stream(self) -> impl Stream<Item = Result<T, Error>> + Unpin + 't {
        match self.request() {
            Ok(request) => request.raw_stream().map(|r| r.and_then(T::from_item)).left_stream(),
            Err(e) => stream::iter(std::iter::once(Err(e))).right_stream(),
        }
    }

    /// One page; see [`Query::page`](crate::Query::page).
    pub async fn page(self, cursor: Option<&str>) -> Result<Page<T>, Error> {
        let request = self.request()?;
        let (items, cursor) = request.raw_page(cursor).await?;
        Ok(Page { items: items.into_iter().map(T::from_item).collect::<Result<_, _>>()?, cursor })
    }

    /// Every item.
    pub async fn all(self) -> Result<Vec<T>, Error> {
        self.stream().try_collect().await
    }
}
