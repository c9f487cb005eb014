//! Collection queries: one partition read into a `#[derive(Collection)]` enum.

use std::collections::HashMap;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};

use crate::collection::{distinct_entities, member_of, Collection};
use crate::error::Error;
use crate::ops::page::{Op, Request};
use crate::table::{KeyParts, Table};

/// Items of a collection and the stored items of other entity types found
/// beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionPage<C> {
    /// The members' items, in key order.
    pub items: Vec<C>,
    /// Items whose entity type is not a member, as stored.
    pub unknown: Vec<HashMap<String, AttributeValue>>,
    /// The next page's cursor ([`CollectionQuery::page`] only).
    pub cursor: Option<String>,
}

/// A query of one partition (an item collection) into `C`; see
/// [`Table::collection`].
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is run"]
pub struct CollectionQuery<'t, C> {
    table: &'t Table,
    index: Option<String>,
    pk: KeyParts,
    sk_prefix: Option<String>,
    limit: Option<usize>,
    page_size: Option<usize>,
    forward: bool,
    consistent: bool,
    _collection: PhantomData<fn() -> C>,
}

impl Table {
    /// Starts a query of one partition into the collection enum `C`: every
    /// item in it, whatever its entity. Items of entities that are not
    /// variants of `C` are reported ([`CollectionPage::unknown`], or an
    /// [`Error::UnknownEntity`] item of [`CollectionQuery::stream`]).
    ///
    /// ```no_run
    /// # use singletable::{Collection, Item, KeyParts, Table};
    /// # #[derive(Item)] #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")] struct User { org: String, id: String }
    /// # #[derive(Item)] #[item(entity = "Project", pk = "ORG#{org}", sk = "PROJECT#{id}")] struct Project { org: String, id: String }
    /// #[derive(Collection)]
    /// enum Org { User(User), Project(Project) }
    ///
    /// # async fn demo(table: Table) -> Result<(), singletable::Error> {
    /// let org = table.collection::<Org>().pk(KeyParts::new().set("org", "acme")).all().await?;
    /// for member in &org.items {
    ///     match member {
    ///         Org::User(u) => println!("user {}", u.id),
    ///         Org::Project(p) => println!("project {}", p.id),
    ///     }
    /// }
    /// assert!(org.unknown.is_empty(), "items of other entities: {:?}", org.unknown);
    /// # Ok(()) }
    /// ```
    pub fn collection<C: Collection>(&self) -> CollectionQuery<'_, C> {
        CollectionQuery {
            table: self,
            index: None,
            pk: KeyParts::new(),
            sk_prefix: None,
            limit: None,
            page_size: None,
            forward: true,
            consistent: false,
            _collection: PhantomData,
        }
    }
}

impl<'t, C: Collection + 't> CollectionQuery<'t, C> {
    /// Queries a global secondary index instead of the table.
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = Some(name.into());
        self
    }

    /// The partition, by the fields of the members' partition key
    /// templates (every member that can render them must render the same
    /// key).
    pub fn pk(mut self, parts: KeyParts) -> Self {
        self.pk = parts;
        self
    }

    /// Only sort keys that begin with this literal text (e.g. `"PROJECT#"`).
    pub fn sk_begins_with(mut self, prefix: impl Into<String>) -> Self {
        self.sk_prefix = Some(prefix.into());
        self
    }

    /// At most `n` items in all (unknown ones included).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Items per request, and the size of a page from [`CollectionQuery::page`].
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Descending sort-key order.
    pub fn reverse(mut self) -> Self {
        self.forward = false;
        self
    }

    /// Strongly consistent reads (the table only).
    pub fn consistent(mut self, yes: bool) -> Self {
        self.consistent = yes;
        self
    }

    fn request(&self) -> Result<Request<'t>, Error> {
        let table = self.table;
        let d = table.design();
        for member in C::ENTITIES {
            if d.entity(&member.entity) != Some(*member) {
                return Err(Error::Design(format!(
                    "collection `{}`: entity `{}` is not part of the design of table `{}` (or differs from it)",
                    C::NAME,
                    member.entity,
                    d.table
                )));
            }
        }
        if !distinct_entities(C::ENTITIES) {
            return Err(Error::Design(format!("collection `{}` has two members with one entity name", C::NAME)));
        }
        // The partition key each member renders from the parts given.
        let mut rendered: Option<(String, String, &str)> = None;
        let mut first_error = None;
        for member in C::ENTITIES {
            let key = match &self.index {
                None => &member.pk,
                Some(name) => match member.index(name) {
                    Some(index) => &index.pk,
                    None => continue,
                },
            };
            match self.pk.render(member, key) {
                Ok(value) => match &rendered {
                    Some((attr, other, by)) if *attr != key.attr || *other != value => {
                        return Err(Error::invalid_argument(
                            "pk",
                            format!(
                                "collection `{}`: the parts given render partition {}={value:?} for `{}` but {attr}={other:?} for `{by}`",
                                C::NAME,
                                key.attr,
                                member.entity
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => rendered = Some((key.attr.to_string(), value, member.entity.as_ref())),
                },
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some((pk_attr, pk_value, _)) = rendered else {
            return Err(first_error.unwrap_or_else(|| {
                Error::invalid_argument(
                    "index",
                    format!("collection `{}`: no member uses index `{}`", C::NAME, self.index.as_deref().unwrap_or("")),
                )
            }));
        };
        let mut names = HashMap::from([("#pk".to_string(), pk_attr.clone())]);
        let mut values = HashMap::from([(":pk".to_string(), AttributeValue::S(pk_value.clone()))]);
        let mut condition = "#pk = :pk".to_string();
        let mut key_attrs = vec![d.pk_attr.clone(), d.sk_attr.clone()];
        let sk_attr = match &self.index {
            None => Some(d.sk_attr.clone()),
            Some(name) => {
                let index = d.index(name).ok_or_else(|| Error::invalid_argument("index", format!("table `{}` has no index `{name}`", d.table)))?;
                key_attrs.push(index.pk_attr.clone());
                key_attrs.extend(index.sk_attr.clone());
                index.sk_attr.clone()
            }
        };
        if let Some(prefix) = &self.sk_prefix {
            let sk = sk_attr.ok_or_else(|| Error::invalid_argument("sk_begins_with", format!("index `{}` has no sort key", self.index.as_deref().unwrap_or(""))))?;
            names.insert("#sk".into(), sk);
            values.insert(":sk".into(), AttributeValue::S(prefix.clone()));
            condition.push_str(" AND begins_with(#sk, :sk)");
        }
        Ok(Request {
            table,
            op: Op::Query,
            index: self.index.clone(),
            key_condition: Some(condition),
            filter: None,
            names,
            values,
            exclude: None,
            forward: self.forward,
            consistent: self.consistent,
            limit: self.limit,
            page_size: self.page_size,
            segment: None,
            key_attrs,
            partition: Some((pk_attr, AttributeValue::S(pk_value))),
        })
    }

    /// Every item of the partition as a stream: members decoded, an item
    /// of another entity as an [`Error::UnknownEntity`] item (the stream
    /// goes on after it).
    pub fn stream(self) -> impl Stream<Item = Result<C, Error>> + Unpin + 't {
        match self.request() {
            Ok(request) => request.raw_stream().map(|r| r.and_then(C::from_item)).left_stream(),
            Err(e) => stream::iter(std::iter::once(Err(e))).right_stream(),
        }
    }

    /// Every item of the partition; items of other entities are collected
    /// in [`CollectionPage::unknown`].
    pub async fn all(self) -> Result<CollectionPage<C>, Error> {
        let request = self.request()?;
        let mut page = CollectionPage { items: Vec::new(), unknown: Vec::new(), cursor: None };
        let mut raw = request.raw_stream();
        while let Some(item) = raw.try_next().await? {
            sort(&mut page, item)?;
        }
        Ok(page)
    }

    /// One page (see [`Query::page`](crate::Query::page)); items of other
    /// entities are collected in [`CollectionPage::unknown`].
    pub async fn page(self, cursor: Option<&str>) -> Result<CollectionPage<C>, Error> {
        let request = self.request()?;
        let (items, cursor) = request.raw_page(cursor).await?;
        let mut page = CollectionPage { items: Vec::new(), unknown: Vec::new(), cursor };
        for item in items {
            sort(&mut page, item)?;
        }
        Ok(page)
    }
}

fn sort<C: Collection>(page: &mut CollectionPage<C>, item: HashMap<String, AttributeValue>) -> Result<(), Error> {
    if member_of(&item, C::ENTITIES).is_some() {
        page.items.push(C::from_item(item)?);
    } else {
        page.unknown.push(item);
    }
    Ok(())
}
