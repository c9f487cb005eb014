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
//! Field attributes: `rename = "name"` (stored attribute name),
//! `default` (a missing attribute decodes as `Default::default()`), `skip`
//! (not stored; `Default` on read), `serde` (encode through `serde_dynamo`:
//! the escape hatch for types without an [`AttrValue`] implementation).
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
//! ## Operations
//!
//! [`Table`] wraps a client and a [`TableDesign`]: `create_table`, `put`,
//! `create` (create-only), `get`, `delete` and `query` (partition, sort key
//! `begins_with`/`between` on the table or a GSI), all typed.

#![warn(missing_docs)]

mod attr;
mod condition;
mod expr;
pub mod field;
mod managed;
mod transact;
mod update;
mod write;
mod batch;
mod collection;
mod design;
mod error;
mod item;
mod page;
mod size;
mod table;
pub mod template;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use batch::{BatchFailure, BatchGet, BatchOp, BatchSummary, BatchWrite, RetryPolicy, DEFAULT_CONCURRENCY, MAX_BATCH_GET, MAX_BATCH_WRITE};
pub use attr::{serde_from_attr, serde_to_attr, type_name, AttrType, AttrValue, SetElement};
pub use aws_sdk_dynamodb::types::AttributeValue;
pub use design::{AttributeDesign, EntityDesign, IndexDesign, KeyDesign, PrimaryKey, StreamView, TableDesign, TableDesignBuilder, TableIndex, TableSettings};
pub use error::{AttrError, AttrProblem, Error, PathSegment};
pub use item::Item;
pub use page::{Page, Scan};
pub use collection::{Collection, CollectionPage, CollectionQuery};
pub use condition::{Condition, Size, MAX_IN_VALUES};
pub use field::{Field, IntoValue};
pub use managed::{ManagedAttrs, Timestamp, TtlValue, VersionNumber};
pub use transact::{CancelKind, CancelReason, Transaction, MAX_TRANSACTION_ACTIONS, MAX_TRANSACTION_BYTES};
pub use update::Update;
pub use size::{item_size, MAX_ITEM_BYTES};
pub use table::{KeyParts, Query, Table};
pub use template::{KeyKind, KeyPart, Template};

/// Derives [`Item`]; see the [crate docs](crate).
pub use singletable_derive::Item;
/// Derives [`Collection`] for an enum whose variants each wrap one [`Item`] type.
pub use singletable_derive::Collection;
/// Derives [`AttrValue`] for a struct stored as a map inside an item.
pub use singletable_derive::Document;
