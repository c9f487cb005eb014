//! # singletable
//!
//! DynamoDB single-table design for Rust. Declare each entity once, with
//! the key templates that place it in the table; `singletable` renders and
//! parses its keys, refuses bad keys before they reach the network, and
//! runs typed operations over an injected `aws_sdk_dynamodb::Client`.
//!
//! ```
//! use singletable::Item;
//!
//! #[derive(Item, Debug, Clone, PartialEq)]
//! #[item(entity = "User", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
//! #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
//! struct User {
//!     org_id: String,
//!     user_id: String,
//!     email: String,
//!     name: String,
//! }
//!
//! let ann = User { org_id: "acme".into(), user_id: "ann".into(), email: "ann@acme.test".into(), name: "Ann".into() };
//! let item = ann.to_item().unwrap();
//! assert_eq!(item["pk"].as_s().unwrap(), "ORG#acme");
//! assert_eq!(item["sk"].as_s().unwrap(), "USER#ann");
//! assert_eq!(item["gsi1pk"].as_s().unwrap(), "EMAIL#ann@acme.test");
//! assert_eq!(item["_et"].as_s().unwrap(), "User");
//! assert_eq!(User::from_item(item).unwrap(), ann);
//!
//! // Empty key parts never reach DynamoDB.
//! let nobody = User { org_id: String::new(), ..ann.clone() };
//! assert!(matches!(nobody.to_item(), Err(singletable::Error::EmptyKey { .. })));
//! ```
//!
//! ## `#[derive(Item)]`
//!
//! Container attributes, in one or several `#[item(...)]`:
//!
//! | attribute | meaning |
//! | --- | --- |
//! | `entity = "User"` | the entity name, stored in every item's entity-type attribute (default: the struct name) |
//! | `pk = "ORG#{org_id}"` | partition key template (required) |
//! | `sk = "USER#{user_id}"` | sort key template (required) |
//! | `index(name = "gsi1", pk = "...", sk = "...")` | a GSI this entity writes keys for; `sk` optional; attributes default to `gsi1pk`/`gsi1sk`, or set `pk_attr`/`sk_attr` |
//! | `pk_attr = "pk"`, `sk_attr = "sk"` | physical table key attribute names |
//! | `entity_attr = "_et"` | the entity-type attribute name |
//!
//! Field attributes:
//!
//! | attribute | meaning |
//! | --- | --- |
//! | `rename = "name"` | the stored attribute name |
//! | `default` | a missing attribute decodes as `Default::default()` |
//! | `skip` | not stored; `Default` on read |
//! | `serde` | encode through `serde_dynamo`: the escape hatch for types without an [`AttrValue`] implementation |
//! | `version` | optimistic locking: an unsigned integer ([`VersionNumber`]); every write stores it plus one, on condition that the stored item is at the version written from (0: new) |
//! | `ttl` | the expiry DynamoDB's time to live reads, stored as whole epoch seconds: `SystemTime` (rounded up), `u64`/`i64` seconds, or an `Option` of one ([`TtlValue`]); [`TableDesignBuilder::build`] makes it the table's TTL attribute |
//! | `created_at` | set to now by the first write ([`Timestamp`]: `SystemTime` stored as epoch seconds with the fraction, or `Option<SystemTime>`, which is what lets a put tell a new item) |
//! | `updated_at` | set to now by every write |
//!
//! An entity has at most one field of each of the last four; they cannot
//! be `skip` or `serde` fields, nor key parts.
//!
//! Templates are literal text with `{field}` placeholders; `{n:08}`
//! zero-pads an integer to eight digits so numbers sort in order. Key
//! fields may be strings, integers or `bool` (or your type implementing
//! [`KeyPart`]); index templates may use `Option` fields, which makes the
//! index sparse: an item whose field is `None` is left out of it. See
//! [`template`] for the rule that keeps keys injective.
//!
//! Nested structs stored as maps derive [`Document`].
//!
//! The attributes not shown elsewhere on this page, in one entity:
//!
//! ```
//! use singletable::{AttributeValue, Document, Item};
//!
//! /// A map inside the item.
//! #[derive(Document, Debug, Clone, PartialEq)]
//! struct Address { city: String, zip: String }
//!
//! /// Any `Serialize + Deserialize` type, stored through `serde_dynamo`.
//! #[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
//! enum Tier { Free, Pro { seats: u32 } }
//!
//! #[derive(Item, Debug, Clone, PartialEq)]
//! #[item(entity = "Customer", pk = "CUSTOMER#{id:08}", sk = "PROFILE")]
//! #[item(pk_attr = "PK", sk_attr = "SK", entity_attr = "type")]
//! #[item(index(name = "by_zip", pk = "ZIP#{zip}", sk = "CUSTOMER#{id:08}", pk_attr = "zip_pk", sk_attr = "zip_sk"))]
//! struct Customer {
//!     id: u64,
//!     zip: String,
//!     #[item(rename = "addr")]
//!     address: Address,
//!     #[item(serde)]
//!     tier: Tier,
//!     #[item(default)]
//!     newsletter: bool,
//!     #[item(skip)]
//!     score: Option<f32>,
//! }
//!
//! let c = Customer {
//!     id: 7,
//!     zip: "10115".into(),
//!     address: Address { city: "Berlin".into(), zip: "10115".into() },
//!     tier: Tier::Pro { seats: 3 },
//!     newsletter: true,
//!     score: Some(0.5),
//! };
//! let mut item = c.to_item()?;
//! let s = |k: &str| item[k].as_s().unwrap().clone();
//! assert_eq!((s("PK"), s("SK"), s("type")), ("CUSTOMER#00000007".into(), "PROFILE".into(), "Customer".into()));
//! assert_eq!((s("zip_pk"), s("zip_sk")), ("ZIP#10115".into(), "CUSTOMER#00000007".into()));
//! assert_eq!(item["addr"].as_m().unwrap()["city"], AttributeValue::S("Berlin".into()));
//! assert!(item["tier"].as_m().is_ok()); // {"Pro": {"seats": 3}}
//! assert!(!item.contains_key("score"));
//!
//! // `default`: an item written before `newsletter` existed still decodes.
//! item.remove("newsletter");
//! let read = Customer::from_item(item)?;
//! assert_eq!(read, Customer { newsletter: false, score: None, ..c });
//! # Ok::<(), singletable::Error>(())
//! ```
//!
//! ## Operations
//!
//! [`Table`] wraps a client and a [`TableDesign`]: `create_table` and
//! `ensure` (provisioning), `put`, `create` (create-only), `get`, `delete`
//! and `query` (partition, sort key `begins_with`/`between` on the table or
//! a GSI), `scan`, `batch_write`/`batch_get`, `collection` (a partition of
//! several entities), all typed; sections below show each.
//!
//! Every request logs one `tracing` event at debug level (target
//! `singletable`): the operation, table, entity where there is one, time
//! taken, the capacity DynamoDB reports it consumed (each request asks for
//! `ReturnConsumedCapacity::TOTAL`), and the items it carried; batch calls
//! also log what DynamoDB left unprocessed. The crate installs no
//! subscriber: `RUST_LOG=singletable=debug` with `tracing-subscriber` in
//! your application shows them.
//!
//! A typed key ([`Item::Key`]) is the tuple of the fields of the `pk` and
//! `sk` templates, in order of first appearance. Queries name the fields
//! of the key they address with [`KeyParts`]; a sort key condition given
//! the leading fields of the template matches everything under them.
//!
//! ```no_run
//! use singletable::{Error, Item, KeyParts, Table, TableDesign};
//!
//! #[derive(Item, Debug, Clone, PartialEq)]
//! #[item(entity = "Order", pk = "CUSTOMER#{customer}", sk = "ORDER#{year}#{n:06}")]
//! #[item(index(name = "gsi1", pk = "STATUS#{status}", sk = "ORDER#{year}#{n:06}"))]
//! struct Order { customer: String, year: u16, n: u32, status: String }
//!
//! # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), Error> {
//! let table = Table::new(client, TableDesign::new("shop").entity::<Order>().build()?);
//! table.create_table().await?; // key schema and gsi1, from the design
//!
//! let order = Order { customer: "ann".into(), year: 2026, n: 1, status: "open".into() };
//! table.put(&order).await?; // replaces an item with the same key
//! match table.create(&order).await {
//!     // create-only: nothing is overwritten
//!     Err(Error::AlreadyExists { pk, sk, .. }) => println!("({pk}, {sk}) exists"),
//!     other => other?,
//! }
//! let key = ("ann".to_string(), 2026, 1); // <Order as Item>::Key: (customer, year, n)
//! assert_eq!(table.get::<Order>(&key).await?, Some(order.clone()));
//!
//! let ann = || KeyParts::new().set("customer", "ann");
//! let this_year: Vec<Order> = table.query::<Order>().pk(ann()).sk_begins_with(KeyParts::new().set("year", 2026)).all().await?;
//! let first_ten: Vec<Order> = table
//!     .query::<Order>()
//!     .pk(ann())
//!     .sk_between(KeyParts::new().set("year", 2026).set("n", 1), KeyParts::new().set("year", 2026).set("n", 10))
//!     .all()
//!     .await?;
//! let latest_open: Vec<Order> =
//!     table.query::<Order>().index("gsi1").pk(KeyParts::new().set("status", "open")).reverse().limit(5).all().await?;
//!
//! // A field of the table key changes by moving the item (one transaction).
//! table.move_item::<Order>(&key, &Order { n: 2, ..order }).await?;
//! table.delete::<Order>(&("ann".into(), 2026, 2)).await?; // absent is fine
//! table.delete_table().await?;
//! # Ok(()) }
//! ```
//!
//! ## Typed fields
//!
//! The derive gives every entity `T::fields()` (a method of [`Item`]): one
//! [`Field`] handle per stored field, named as the Rust field and typed by
//! it. Conditions and updates take these handles, so a value of the wrong
//! type, a field of another entity, or a change the key design forbids is a
//! compile error. Each handle also has a [kind](field): fields of the
//! table's `pk`/`sk` templates cannot be updated in place, fields of index
//! templates can only be set to a known value, managed fields are written
//! by the toolkit. The handles' type is defined inside the derive's
//! anonymous block, so the derive adds no name to your module (name it
//! `<T as Item>::Fields`).
//!
//! ```
//! use singletable::{Field, Item};
//! use singletable::field::{Attr, IndexKey, TableKey};
//!
//! #[derive(Item)]
//! #[item(pk = "ORG#{org}", sk = "USER#{id}")]
//! #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
//! struct User { org: String, id: String, email: String, #[item(rename = "n")] name: String }
//!
//! let f = User::fields();
//! let _: Field<User, String, TableKey> = f.id;
//! let _: Field<User, String, IndexKey> = f.email;
//! let _: Field<User, String, Attr> = f.name;
//! assert_eq!((f.name.name(), f.name.attr()), ("name", "n"));
//! ```
//!
//! ## Conditions
//!
//! A [`Condition<T>`](Condition) is built from field handles —
//! `exists`/`not_exists`, `eq`/`ne`/`lt`/`le`/`gt`/`ge`, `between`,
//! `is_in`, `begins_with`, `contains`, `size()`, comparisons between two
//! fields — and combined with `&`, `|` and `!`. It applies to
//! [`Table::put_if`], [`Table::delete_if`], [`Update::condition`], the
//! actions of a [`Transaction`], [`Query::filter`] and [`Scan::filter`].
//! Attribute names
//! always go through `#placeholders` (DynamoDB reserves 573 words, `name`,
//! `status`, `data` and `ttl` among them) and values through
//! `:placeholders`: nothing is ever spliced into expression text. A failed
//! condition is [`Error::ConditionFailed`], and nothing is written.
//!
//! ```no_run
//! # use singletable::{Item, Table};
//! #[derive(Item)]
//! #[item(pk = "QUEUE#{queue}", sk = "TICKET#{id}")]
//! struct Ticket { queue: String, id: String, status: String, labels: Vec<String>, note: Option<String> }
//!
//! # async fn demo(table: &Table, ticket: &Ticket) -> Result<(), singletable::Error> {
//! let f = Ticket::fields();
//! table.put_if(ticket, f.status.eq("open") & !f.labels.contains("frozen")).await?;
//! table.delete_if::<Ticket>(&("q1".into(), "t1".into()), f.note.eq(None) | f.labels.size().gt(3)).await?;
//! let urgent = table
//!     .query::<Ticket>()
//!     .pk(singletable::KeyParts::new().set("queue", "q1"))
//!     .filter(f.labels.contains("urgent"))
//!     .all()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! ## Updates that keep every key true
//!
//! [`Table::update`] starts an [`Update`]: `set`, `remove` (of an `Option`
//! field), `add`/`subtract` (numbers), `append`/`prepend` (lists),
//! `add_to_set`/`delete_from_set`, `set_if_not_exists`, plus conditions.
//! When the update sets a field an index key is rendered from, it rewrites
//! that key attribute in the same request from the new value and the ones
//! it knows: the table key's fields, the other fields it sets, and fields
//! given with [`Update::unchanged`] (which the update is then conditional
//! on, so the rewritten key cannot be wrong). A sparse index whose optional
//! field becomes `None` has its key attributes removed. A key it cannot
//! render is refused with [`Error::StaleKey`] before anything is sent; a
//! table key field cannot be set at all (see [`Table::move_item`]). The
//! update applies only to an existing item of the entity
//! ([`Error::NotFound`]) and returns the item as stored.
//!
//! ```
//! # use singletable::{Error, Item, Table, TableDesign};
//! #[derive(Item, Debug)]
//! #[item(pk = "SHOP#{shop}", sk = "PRODUCT#{sku}")]
//! #[item(index(name = "gsi1", pk = "CAT#{category}", sk = "PRICE#{price:08}#{title}"))]
//! struct Product { shop: String, sku: String, category: String, price: u32, title: String, stock: i32 }
//!
//! # let config = aws_sdk_dynamodb::Config::builder()
//! #     .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
//! #     .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
//! #     .build();
//! # let client = aws_sdk_dynamodb::Client::from_conf(config);
//! let table = Table::new(client, TableDesign::new("shop").entity::<Product>().build()?);
//! let f = Product::fields();
//! let key = ("s1".to_string(), "lamp".to_string());
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // gsi1sk needs the title too: refused before sending.
//! let err = table.update::<Product>(&key).set(f.price, 999).send().await.unwrap_err();
//! assert!(matches!(err, Error::StaleKey { ref missing, .. } if missing == "title"));
//! # });
//! # async fn more(table: &Table, key: (String, String), f: <Product as Item>::Fields) -> Result<(), Error> {
//! // With the current title (checked by the update), gsi1sk is rewritten.
//! let p = table.update::<Product>(&key).set(f.price, 999).unchanged(f.title, "Lamp").add(f.stock, -1).send().await?;
//! # Ok(()) }
//! # Ok::<(), Error>(())
//! ```
//!
//! ## Optimistic locking, TTL, timestamps
//!
//! For an entity with an `#[item(version)]` field, [`Table::put`] (and a
//! put in a transaction) succeeds only if the stored item is at the
//! item's version — or absent, for version 0 — and stores version + 1;
//! otherwise [`Error::VersionConflict`] and nothing is written.
//! [`Table::save`] does the same and copies the new version and
//! timestamps back into the value; updates bump the version and check it
//! with [`Update::if_version`]; [`Table::delete_version`] deletes only at
//! a given version.
//!
//! ```no_run
//! # use singletable::{Error, Item, Table};
//! # use std::time::{Duration, SystemTime};
//! #[derive(Item, Clone)]
//! #[item(pk = "DOC#{id}", sk = "DOC")]
//! struct Doc {
//!     id: String,
//!     body: String,
//!     #[item(version)]
//!     version: u64,
//!     #[item(ttl)]
//!     expires: Option<SystemTime>,
//!     #[item(created_at)]
//!     created: Option<SystemTime>,
//!     #[item(updated_at)]
//!     updated: Option<SystemTime>,
//! }
//!
//! # async fn demo(table: &Table) -> Result<(), Error> {
//! let mut doc = table.get::<Doc>(&("d1".into(),)).await?.expect("exists");
//! doc.body = "edited".into();
//! doc.expires = Some(SystemTime::now() + Duration::from_secs(86_400));
//! match table.save(&mut doc).await {
//!     Ok(()) => {} // doc.version, doc.updated are the stored ones
//!     Err(Error::VersionConflict { found, .. }) => { /* someone else saved version `found`: re-read, merge, retry */ }
//!     Err(e) => return Err(e),
//! }
//! let f = Doc::fields();
//! // An update at a known version (it bumps the version too).
//! let doc = table.update::<Doc>(&("d1".into(),)).set(f.body, "again").if_version(doc.version).send().await?;
//! // A delete at a known version.
//! table.delete_version::<Doc>(&("d1".into(),), doc.version).await?;
//! # Ok(()) }
//! ```
//!
//! ## Transactions
//!
//! [`Table::transaction`] builds a `TransactWriteItems` of typed puts,
//! creates, updates (the same [`Update`] builder, key rewriting included),
//! deletes and condition checks, with an optional idempotency token.
//! DynamoDB's rules are checked before sending (at most 100 actions, 4 MB,
//! one action per item). A cancellation is [`Error::TransactionCanceled`],
//! whose [`CancelReason`]s say which action failed and why (condition,
//! version conflict, missing item, existing key ...). [`Table::move_item`]
//! changes a table key field as one transaction: delete the old item,
//! create the new one.
//!
//! ```no_run
//! # use singletable::{CancelKind, Error, Item, Table};
//! # #[derive(Item)]
//! # #[item(pk = "ACCOUNT#{id}", sk = "ACCOUNT")]
//! # struct Account { id: String, balance: i64 }
//! # async fn demo(table: &Table) -> Result<(), Error> {
//! let a = Account::fields();
//! let result = table
//!     .transaction()
//!     .update(table.update::<Account>(&("alice".into(),)).subtract(a.balance, 10).condition(a.balance.ge(10)))
//!     .update(table.update::<Account>(&("bob".into(),)).add(a.balance, 10))
//!     .send()
//!     .await;
//! if let Err(Error::TransactionCanceled { reasons, .. }) = &result {
//!     for r in reasons {
//!         // e.g. "action 0 (Update Account (ACCOUNT#alice, ACCOUNT)): condition failed: ..."
//!         eprintln!("{r}");
//!         if matches!(r.kind, CancelKind::NotFound) { /* ... */ }
//!     }
//! }
//!
//! // Every kind of action; the token makes a retried send idempotent.
//! # #[derive(Item)]
//! # #[item(pk = "ACCOUNT#{account}", sk = "TRANSFER#{id}")]
//! # struct Transfer { account: String, id: String, amount: i64 }
//! let t = Transfer { account: "alice".into(), id: "t42".into(), amount: 10 };
//! table
//!     .transaction()
//!     .create(&t)
//!     .check::<Account>(&("alice".into(),), a.balance.ge(0))
//!     .put_if(&Account { id: "carol".into(), balance: 0 }, a.balance.not_exists())
//!     .put(&Account { id: "dave".into(), balance: 5 })
//!     .delete_if::<Account>(&("erin".into(),), a.balance.eq(0))
//!     .delete::<Transfer>(&("alice".into(), "t41".into()))
//!     .idempotency_token("transfer-t42")
//!     .send()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! ## Batches
//!
//! [`Table::batch_write`] puts and deletes any number of items of any
//! entities of the table; [`Table::batch_get`] reads any number of typed
//! keys. They are split into DynamoDB-sized calls (25 writes, 100 keys),
//! sent with bounded concurrency ([`DEFAULT_CONCURRENCY`] calls in flight
//! unless told otherwise), and whatever DynamoDB returns as
//! `UnprocessedItems`/`UnprocessedKeys` is resubmitted with exponential
//! backoff and jitter ([`RetryPolicy`]). Every item is encoded and checked
//! (keys, size) before the first call, and a key given twice is refused
//! ([`Error::DuplicateKey`]): nothing is sent then. What is still not done
//! after the bound, or after a failed call, comes back as
//! [`Error::BatchIncomplete`], which lists every such request (position,
//! entity, key) — never a silent loss.
//!
//! ```no_run
//! # use singletable::{Item, Table};
//! # #[derive(Item, Clone)] #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")] struct User { org: String, id: String }
//! # #[derive(Item)] #[item(entity = "Note", pk = "ORG#{org}", sk = "NOTE#{n}")] struct Note { org: String, n: u32 }
//! # async fn demo(table: &Table, users: Vec<User>, note: Note) -> Result<(), singletable::Error> {
//! use singletable::{Error, RetryPolicy};
//!
//! let summary = table
//!     .batch_write()
//!     .put_all(&users)
//!     .put(&note)
//!     .delete::<Note>(&("acme".into(), 1))
//!     .concurrency(8)
//!     .retry(RetryPolicy { max_attempts: 10, ..RetryPolicy::default() })
//!     .send()
//!     .await;
//! if let Err(Error::BatchIncomplete { failed, .. }) = &summary {
//!     for f in failed {
//!         eprintln!("not written: {f}"); // "#7 put User (ORG#acme, USER#u7)"
//!     }
//! }
//!
//! let keys = [("acme".to_string(), "ann".to_string()), ("acme".to_string(), "bob".to_string())];
//! let found: Vec<Option<User>> = table.batch_get::<User>(&keys).consistent(true).send().await?;
//! # Ok(()) }
//! ```
//!
//! ## Pagination
//!
//! A [`Query`] (or a [`Scan`] of one entity, [`Table::scan`]) runs as a
//! `futures::Stream` of typed items, fetched a request at a time as it is
//! polled, or a page at a time with an opaque cursor for an HTTP API.
//! `page_size` sets the items per request and per page, `limit` the total
//! (kept across pages: the cursor carries it). A cursor is the
//! `LastEvaluatedKey` as typed JSON, tagged with a fingerprint of the query
//! and a checksum, in base64url: one that was altered, truncated or issued
//! for another query (table, index, partition, condition, order) is
//! refused with [`Error::Cursor`]. It is checked, not signed: do not put
//! anything secret in a key.
//!
//! ```no_run
//! # use singletable::{Item, KeyParts, Table};
//! # #[derive(Item)] #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")] struct User { org: String, id: String }
//! # async fn demo(table: &Table, cursor_from_request: Option<String>) -> Result<(), singletable::Error> {
//! use futures::TryStreamExt;
//!
//! let acme = || table.query::<User>().pk(KeyParts::new().set("org", "acme"));
//! let mut users = acme().page_size(100).stream();
//! while let Some(user) = users.try_next().await? {
//!     println!("{}", user.id);
//! }
//!
//! let page = acme().page_size(20).page(cursor_from_request.as_deref()).await?;
//! // respond with page.items and page.cursor (None on the last page)
//!
//! let everyone: Vec<User> = table.scan::<User>().segment(0, 4).all().await?;
//! # Ok(()) }
//! ```
//!
//! ## Collections
//!
//! An item collection (one partition holding several entity types) reads
//! into an enum with `#[derive(Collection)]`, one variant per entity, each
//! wrapping its [`Item`] type; items are dispatched on the entity-type
//! attribute. [`Table::collection`] queries a partition (or a GSI
//! partition) into it: [`CollectionQuery::all`] and
//! [`CollectionQuery::page`] return the items of other entity types in
//! [`CollectionPage::unknown`], and [`CollectionQuery::stream`] yields them
//! as [`Error::UnknownEntity`] items and goes on. Nothing is dropped.
//!
//! ```no_run
//! # use singletable::{Collection, Item, KeyParts, Table};
//! # #[derive(Item)] #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")] struct User { org: String, id: String }
//! # #[derive(Item)] #[item(entity = "Project", pk = "ORG#{org}", sk = "PROJECT#{id}")] struct Project { org: String, id: String }
//! #[derive(Collection)]
//! enum Org {
//!     User(User),
//!     Project(Project),
//! }
//!
//! # async fn demo(table: &Table) -> Result<(), singletable::Error> {
//! let org = table.collection::<Org>().pk(KeyParts::new().set("org", "acme")).all().await?;
//! for member in &org.items {
//!     match member {
//!         Org::User(u) => println!("user {}", u.id),
//!         Org::Project(p) => println!("project {}", p.id),
//!     }
//! }
//! println!("{} items of other entities", org.unknown.len());
//! # Ok(()) }
//! ```
//!
//! ## Provisioning
//!
//! [`Table::create_table`] creates the table from its [`TableDesign`]:
//! attribute definitions, key schema, every GSI, the stream, time to live
//! and point-in-time recovery ([`TableSettings`]). [`Table::ensure`] is
//! idempotent: it creates a missing table, turns on missing settings, and
//! returns as [`Drift`] what it leaves alone (a key schema never changes;
//! a new index needs the backfill `singletable migrate` does; a stream or
//! TTL that is on but differs). Both return a [`ProvisionReport`]; where
//! the endpoint lacks an API (DynamoDB Local has no point-in-time
//! recovery) it carries a warning. The library never prints.
//!
//! ```no_run
//! # use singletable::{Item, StreamView, Table, TableDesign};
//! # #[derive(Item)] #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")] struct User { org: String, id: String }
//! # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), singletable::Error> {
//! let design = TableDesign::new("app").entity::<User>().stream(StreamView::NewAndOldImages).point_in_time_recovery(true).build()?;
//! let table = Table::new(client, design);
//! let report = table.ensure().await?;
//! println!("{report}"); // "table `app`:\n  + created the table\n  + turned on the stream ..."
//! assert!(report.in_sync(), "{report}");
//! # Ok(()) }
//! ```
//!
//! ## Streams
//!
//! [`Change<C>`](Change) decodes a DynamoDB stream record into the same
//! collection enum: its [`ChangeKind`] (insert, modify, remove), table key,
//! and old and new images as typed entities. [`Change::from_parts`] takes
//! the record's parts as `aws_sdk_dynamodb` maps; with the `lambda`
//! feature, `Change::from_event` takes the
//! `aws_lambda_events::event::dynamodb::Event` a Rust Lambda receives
//! (re-exported as `singletable::aws_lambda_events`) and returns one result
//! per record, so a handler can report the records it could not decode.
//! Each change keeps its record's `sequence_number`: the identifier a
//! handler returns in `aws_lambda_events::streams::DynamoDbEventResponse`'s
//! batch item failures, and a key for side effects that must not repeat
//! when Lambda delivers the record again. `examples/lambda` is a complete
//! stream handler and API handler, with tests against DynamoDB Local.
//!
//! ```
//! # use singletable::{Change, ChangeKind, Collection, Item};
//! # #[derive(Item, Debug, Clone, PartialEq)] #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")] struct User { org: String, id: String }
//! # #[derive(Collection, Debug, Clone, PartialEq)] enum Org { User(User) }
//! let ann = User { org: "acme".into(), id: "ann".into() };
//! let keys = ann.to_item()?.into_iter().filter(|(k, _)| k == "pk" || k == "sk").collect();
//! let change = Change::<Org>::from_parts("event-1", "REMOVE", &keys, Some(ann.to_item()?), None)?;
//! assert_eq!((change.kind, change.old, change.new), (ChangeKind::Remove, Some(Org::User(ann)), None));
//! # Ok::<(), singletable::Error>(())
//! ```
//!
//! ## Migrate-on-read: the new version during an online migration
//!
//! When `singletable migrate apply --online` moves items to new keys, the
//! new version of the application can run before cut-over, next to the old
//! one, with [`Table::migrating_from`]: a [`MigratingTable`] reads the
//! migration's phase from the table and reads the form that is the truth
//! in that phase, writes both forms in one transaction until contract (the
//! old version keeps working, and rolling back loses nothing), and stamps
//! them with a write token the migration's stream replay respects, so the
//! replay never writes over it. Cut-over then needs no write pause. See
//! [`MigratingTable`] for each phase, and `singletable::reserved` for the
//! names it reads and writes.
//!
//! ```no_run
//! # use singletable::{Item, Table, TableDesign};
//! # #[derive(Item)] #[item(entity = "User", pk = "TENANT#{org}#USER#{id}", sk = "PROFILE")] struct User { org: String, id: String, logins: u32 }
//! # async fn demo(client: aws_sdk_dynamodb::Client, old: TableDesign) -> Result<(), singletable::Error> {
//! let table = Table::new(client, TableDesign::new("app").entity::<User>().build()?).migrating_from(old)?;
//! let key = ("acme".to_string(), "ann".to_string());
//! if let Some(ann) = table.get::<User>(&key).await? {
//!     table.put(&User { logins: ann.logins + 1, ..ann }).await?;
//! }
//! let f = User::fields();
//! table.update(table.table().update::<User>(&key).add(f.logins, 1)).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

// Layers, bottom first (ARCHITECTURE.md; `scripts/check-layers.py` checks
// that no file imports from a layer above its own):
// 0 error, key, expr, hash, reserved, size · 1 attr, template · 2 design ·
// 3 item, field, condition, managed, collection, stream · 4 table · 5 ops ·
// 6 migrating
mod error;
mod expr;
pub mod hash;
mod key;
pub mod reserved;
mod size;

mod attr;
pub mod template;

mod design;

mod collection;
mod condition;
pub mod field;
mod item;
mod managed;
mod stream;

mod table;

mod ops;

mod migrating;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

// Values, keys and designs
pub use attr::{serde_from_attr, serde_to_attr, type_name, AttrType, AttrValue, SetElement};
pub use aws_sdk_dynamodb::types::AttributeValue;
pub use design::{
    AttributeDesign, EntityDesign, IndexDesign, KeyDesign, ManagedAttrs, StreamView, TableDesign, TableDesignBuilder,
    TableIndex, TableSettings,
};
pub use key::PrimaryKey;
pub use size::{item_size, MAX_ITEM_BYTES};
pub use template::{KeyKind, KeyPart, Template};

// Errors
pub use error::{AttrError, AttrProblem, BatchFailure, BatchOp, CancelKind, CancelReason, Error, PathSegment};

// Entities and what they are made of
pub use collection::Collection;
pub use condition::{Condition, Size, MAX_IN_VALUES};
pub use field::{Field, IntoValue};
pub use item::Item;
pub use managed::{Timestamp, TtlValue, VersionNumber};
pub use stream::{Change, ChangeKind};
/// The Lambda event types [`Change::from_event`] reads (feature `lambda`).
#[cfg(feature = "lambda")]
pub use aws_lambda_events;

// The table and its operations
pub use ops::batch::{BatchGet, BatchSummary, BatchWrite, RetryPolicy, DEFAULT_CONCURRENCY, MAX_BATCH_GET, MAX_BATCH_WRITE};
pub use ops::collection::{CollectionPage, CollectionQuery};
pub use ops::page::Page;
pub use ops::provision::{Applied, Drift, ProvisionReport};
pub use ops::query::Query;
pub use ops::scan::Scan;
pub use ops::transact::{Transaction, MAX_TRANSACTION_ACTIONS, MAX_TRANSACTION_BYTES};
pub use ops::update::Update;
pub use table::{KeyParts, Table};

// Migrate-on-read
pub use migrating::{MigratingTable, MigrationPhase};

/// Derives [`Item`]; see the [crate docs](crate).
pub use singletable_derive::Item;
/// Derives [`Collection`] for an enum whose variants each wrap one [`Item`] type.
pub use singletable_derive::Collection;
/// Derives [`AttrValue`] for a struct stored as a map inside an item.
pub use singletable_derive::Document;
