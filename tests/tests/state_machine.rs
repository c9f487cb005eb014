//! A property-based state-machine test of `Table` against DynamoDB Local.
//!
//! proptest draws sequences of 20 to 32 operations — put, create,
//! conditional put and delete, typed updates (index fields with their
//! `unchanged` values, an optional field set to `None`, additions),
//! versioned saves, updates and deletes (current or stale versions),
//! batch writes and transactions of 2 to 4 actions — over three entities
//! sharing one table, with value domains so small that keys, index
//! partitions and `None`s collide all the time. Each operation runs
//! against DynamoDB Local and against an in-memory model written
//! independently of the library (it renders keys and stored items by
//! hand). After every step:
//!
//! * the outcome must be the same: `Ok` in both (and, where the library
//!   returns an item, the same item), or the same error kind with the same
//!   key and details (`AlreadyExists`, `ConditionFailed`, `NotFound`,
//!   `VersionConflict` with its versions, `StaleKey` with the missing field,
//!   a batch's duplicate or invalid request, a transaction's duplicate
//!   action or the list of cancelled actions with their reasons);
//! * the table must hold exactly the model's items, attribute for
//!   attribute (a raw consistent scan, so a stale or left-over key
//!   attribute shows), and each GSI exactly the model's members (raw
//!   scans of `gsi1` and of the sparse `gsi2`);
//! * typed scans of every entity return the model's values;
//! * every GSI query over every value of the small domains, and every
//!   table partition, returns the model's items in the model's order
//!   (the task numbers are zero-padded, and the model sorts them as
//!   numbers); the partitions, which users and tasks share, are read in
//!   pages of two items, so some pages hold only the other entity's.
//!
//! One table serves the whole run; it is emptied before each sequence.
//! Failing sequences are kept in `state_machine.proptest-regressions`
//! beside this file and replayed first. `PROPTEST_CASES` may raise the
//! number of sequences (never below [`CASES`]).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::join_all;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use singletable::{CancelKind, Condition, Error, Item, KeyParts, Table, Update};

/// Sequences per run (at least; `PROPTEST_CASES` may ask for more).
const CASES: u32 = 64;
/// Operations per sequence.
const STEPS: std::ops::RangeInclusive<usize> = 20..=32;

// ---------------------------------------------------------------------------
// The entities

/// A user: `gsi1` by email (shared with tasks' assignees), `gsi2` sparse
/// by team, whose sort key also needs the role.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER#{org}#{id}"))]
#[item(index(name = "gsi2", pk = "TEAM#{team}", sk = "ROLE#{role}#{org}#{id}"))]
struct User {
    org: String,
    id: String,
    email: String,
    team: Option<String>,
    role: String,
    name: String,
    logins: u32,
}

/// A task in its org's partition, numbered with a zero-padded key; in
/// `gsi1` under its assignee's email, sorted by `done` then number.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Task", pk = "ORG#{org}", sk = "TASK#{n:04}")]
#[item(index(name = "gsi1", pk = "EMAIL#{assignee}", sk = "TASK#{done}#{n:04}#{org}"))]
struct Task {
    org: String,
    n: u32,
    assignee: String,
    title: String,
    done: bool,
}

/// A versioned document, in `gsi1` under its owner.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Doc", pk = "DOC#{id}", sk = "DOC")]
#[item(index(name = "gsi1", pk = "OWNER#{owner}", sk = "DOC#{id}"))]
struct Doc {
    id: String,
    owner: String,
    body: String,
    #[item(version)]
    version: u64,
}

// ---------------------------------------------------------------------------
// The domains: small, so that operations collide

const ORGS: &[&str] = &["a", "b"];
const USER_IDS: &[&str] = &["u1", "u2", "u3"];
const EMAILS: &[&str] = &["x@t", "y@t", "z@t"];
const TEAMS: &[&str] = &["red", "blue"];
const ROLES: &[&str] = &["dev", "ops"];
const NAMES: &[&str] = &["Ann", "Bob"];
/// 9 < 10 as numbers, "10" < "9" as text: the padding must sort them.
const TASK_NS: &[u32] = &[1, 2, 9, 10, 11];
const TITLES: &[&str] = &["t1", "t2"];
const DOC_IDS: &[&str] = &["d1", "d2"];
const OWNERS: &[&str] = &["x@t", "y@t"];
const BODIES: &[&str] = &["v1", "v2"];

type UKey = (String, String);
type TKey = (String, u32);
/// A table key: (pk, sk).
type Key = (String, String);
type Raw = HashMap<String, AttributeValue>;
/// A raw item with its attributes in order, for comparing and printing.
type Sorted = BTreeMap<String, AttributeValue>;

// ---------------------------------------------------------------------------
// Operations

/// A value an update or a versioned write relies on: the model's current
/// one (resolved just before the step runs), or one drawn from the domain
/// (often stale).
#[derive(Debug, Clone)]
enum Known<T> {
    Current,
    Given(T),
}

impl<T: Debug> Known<T> {
    fn given(&self) -> &T {
        match self {
            Known::Given(v) => v,
            Known::Current => panic!("unresolved Known::Current"),
        }
    }
}

#[derive(Debug, Clone)]
enum Leaf {
    LoginsLt(u32),
    EmailIs(String),
    /// `eq(None)`: the attribute is absent.
    TeamIs(Option<String>),
    /// The docs: an absent attribute counts as different.
    NameNe(String),
    Exists,
    NotExists,
}

#[derive(Debug, Clone)]
enum UserCond {
    Leaf(Leaf),
    Not(Leaf),
    And(Leaf, Leaf),
    Or(Leaf, Leaf),
}

#[derive(Debug, Clone)]
enum UserChange {
    Email(String),
    Name(String),
    AddLogins(u32),
    /// Sets the (sparse) team; `gsi2sk` also needs the role: the second
    /// member is what is given to `unchanged` (`None`: nothing, a stale key).
    Team(Option<String>, Option<Known<String>>),
    /// Sets the role; the sparse `gsi2` also needs the team.
    Role(String, Option<Known<Option<String>>>),
    TeamAndRole(Option<String>, String),
    EmailAndLogins(String, u32),
}

#[derive(Debug, Clone)]
enum TaskChange {
    Assignee(String),
    /// `done` is in `gsi1sk` with the (padded) number.
    Done(bool),
    Title(String),
}

#[derive(Debug, Clone)]
enum DocChange {
    Owner(String),
    Body(String),
}

/// The item an action addresses: a key from the domain, or (most of the
/// time, so that updates and conditional deletes meet items) one of the
/// items the model holds, picked by index when the step runs; the key is
/// the fallback when there is none. In a transaction the pick avoids
/// items earlier actions address, so duplicates come from the fixed keys.
#[derive(Debug, Clone)]
enum Target<K> {
    Key(K),
    Existing(prop::sample::Index, K),
}

impl<K: Debug> Target<K> {
    fn key(&self) -> &K {
        match self {
            Target::Key(k) => k,
            Target::Existing(..) => panic!("unresolved Target::Existing"),
        }
    }
}

/// One write; a step is one of these, or a batch, or a transaction.
#[derive(Debug, Clone)]
enum Action {
    PutUser(User),
    CreateUser(User),
    PutUserIf(User, UserCond),
    DeleteUser(UKey),
    DeleteUserIf(Target<UKey>, UserCond),
    /// Transactions only.
    CheckUser(Target<UKey>, UserCond),
    UpdateUser(Target<UKey>, UserChange, Option<UserCond>),
    PutTask(Task),
    CreateTask(Task),
    DeleteTask(TKey),
    UpdateTask(Target<TKey>, TaskChange),
    /// `Table::save` alone (the new version is copied back), a put in a
    /// transaction; the doc's version is the `Known` one.
    PutDoc(Doc, Known<u64>),
    /// Create-only: no version check, stores the given version plus one.
    CreateDoc(Doc),
    UpdateDoc(Target<String>, DocChange, Option<Known<u64>>),
    DeleteDoc(String),
    /// Alone only.
    DeleteDocVersion(Target<String>, Known<u64>),
}

#[derive(Debug, Clone)]
enum BatchReq {
    PutUser(User),
    PutTask(Task),
    /// Refused: a versioned entity cannot go through BatchWriteItem.
    PutDoc(Doc),
    DeleteUser(UKey),
    DeleteTask(TKey),
    DeleteDoc(String),
}

#[derive(Debug, Clone)]
enum Op {
    One(Action),
    Batch(Vec<BatchReq>),
    Tx(Vec<Action>),
}

// ---------------------------------------------------------------------------
// Strategies

fn pick(xs: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop::sample::select(xs).prop_map(str::to_string)
}

fn team() -> impl Strategy<Value = Option<String>> + Clone {
    option::of(pick(TEAMS))
}

fn known<T: Clone + Debug + 'static>(given: impl Strategy<Value = T> + 'static) -> impl Strategy<Value = Known<T>> {
    prop_oneof![3 => Just(Known::Current), 1 => given.prop_map(Known::Given)]
}

fn user() -> impl Strategy<Value = User> {
    (pick(ORGS), pick(USER_IDS), pick(EMAILS), team(), pick(ROLES), pick(NAMES), 0u32..4).prop_map(
        |(org, id, email, team, role, name, logins)| User { org, id, email, team, role, name, logins },
    )
}

fn ukey() -> impl Strategy<Value = UKey> + Clone {
    (pick(ORGS), pick(USER_IDS))
}

fn target<K: Clone + Debug + 'static>(key: impl Strategy<Value = K> + Clone + 'static) -> impl Strategy<Value = Target<K>> {
    prop_oneof![
        1 => key.clone().prop_map(Target::Key),
        3 => (any::<prop::sample::Index>(), key).prop_map(|(i, k)| Target::Existing(i, k)),
    ]
}

fn task() -> impl Strategy<Value = Task> {
    (pick(ORGS), prop::sample::select(TASK_NS), pick(EMAILS), pick(TITLES), any::<bool>())
        .prop_map(|(org, n, assignee, title, done)| Task { org, n, assignee, title, done })
}

fn tkey() -> impl Strategy<Value = TKey> + Clone {
    (pick(ORGS), prop::sample::select(TASK_NS))
}

fn doc() -> impl Strategy<Value = Doc> {
    (pick(DOC_IDS), pick(OWNERS), pick(BODIES), 0u64..3).prop_map(|(id, owner, body, version)| Doc { id, owner, body, version })
}

fn version() -> impl Strategy<Value = Known<u64>> {
    known(0u64..5)
}

fn leaf() -> impl Strategy<Value = Leaf> {
    prop_oneof![
        (0u32..5).prop_map(Leaf::LoginsLt),
        pick(EMAILS).prop_map(Leaf::EmailIs),
        team().prop_map(Leaf::TeamIs),
        pick(NAMES).prop_map(Leaf::NameNe),
        Just(Leaf::Exists),
        Just(Leaf::NotExists),
    ]
}

fn cond() -> impl Strategy<Value = UserCond> {
    prop_oneof![
        3 => leaf().prop_map(UserCond::Leaf),
        1 => leaf().prop_map(UserCond::Not),
        1 => (leaf(), leaf()).prop_map(|(a, b)| UserCond::And(a, b)),
        1 => (leaf(), leaf()).prop_map(|(a, b)| UserCond::Or(a, b)),
    ]
}

fn user_change() -> impl Strategy<Value = UserChange> {
    prop_oneof![
        2 => pick(EMAILS).prop_map(UserChange::Email),
        1 => pick(NAMES).prop_map(UserChange::Name),
        1 => (1u32..3).prop_map(UserChange::AddLogins),
        3 => (team(), option::weighted(0.85, known(pick(ROLES)))).prop_map(|(t, r)| UserChange::Team(t, r)),
        2 => (pick(ROLES), option::weighted(0.85, known(team()))).prop_map(|(r, t)| UserChange::Role(r, t)),
        1 => (team(), pick(ROLES)).prop_map(|(t, r)| UserChange::TeamAndRole(t, r)),
        1 => (pick(EMAILS), 1u32..3).prop_map(|(e, n)| UserChange::EmailAndLogins(e, n)),
    ]
}

fn task_change() -> impl Strategy<Value = TaskChange> {
    prop_oneof![
        pick(EMAILS).prop_map(TaskChange::Assignee),
        any::<bool>().prop_map(TaskChange::Done),
        pick(TITLES).prop_map(TaskChange::Title),
    ]
}

fn doc_change() -> impl Strategy<Value = DocChange> {
    prop_oneof![pick(OWNERS).prop_map(DocChange::Owner), pick(BODIES).prop_map(DocChange::Body)]
}

fn user_update() -> impl Strategy<Value = Action> {
    (target(ukey()), user_change(), option::weighted(0.3, cond())).prop_map(|(k, ch, c)| Action::UpdateUser(k, ch, c))
}

fn doc_update() -> impl Strategy<Value = Action> {
    (target(pick(DOC_IDS)), doc_change(), option::weighted(0.6, version())).prop_map(|(id, ch, v)| Action::UpdateDoc(id, ch, v))
}

/// Actions alone (`Table::put`, `update`, `save`, `delete_version` ...).
fn single() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => user().prop_map(Action::PutUser),
        2 => user().prop_map(Action::CreateUser),
        2 => (user(), cond()).prop_map(|(u, c)| Action::PutUserIf(u, c)),
        1 => ukey().prop_map(Action::DeleteUser),
        2 => (target(ukey()), cond()).prop_map(|(k, c)| Action::DeleteUserIf(k, c)),
        6 => user_update(),
        2 => task().prop_map(Action::PutTask),
        2 => task().prop_map(Action::CreateTask),
        1 => tkey().prop_map(Action::DeleteTask),
        3 => (target(tkey()), task_change()).prop_map(|(k, ch)| Action::UpdateTask(k, ch)),
        4 => (doc(), version()).prop_map(|(d, v)| Action::PutDoc(d, v)),
        2 => doc().prop_map(Action::CreateDoc),
        3 => doc_update(),
        1 => pick(DOC_IDS).prop_map(Action::DeleteDoc),
        1 => (target(pick(DOC_IDS)), version()).prop_map(|(id, v)| Action::DeleteDocVersion(id, v)),
    ]
}

/// Actions of a transaction.
fn tx_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => user().prop_map(Action::PutUser),
        2 => user().prop_map(Action::CreateUser),
        1 => (user(), cond()).prop_map(|(u, c)| Action::PutUserIf(u, c)),
        1 => ukey().prop_map(Action::DeleteUser),
        1 => (target(ukey()), cond()).prop_map(|(k, c)| Action::DeleteUserIf(k, c)),
        2 => (target(ukey()), cond()).prop_map(|(k, c)| Action::CheckUser(k, c)),
        3 => user_update(),
        1 => task().prop_map(Action::PutTask),
        1 => task().prop_map(Action::CreateTask),
        1 => tkey().prop_map(Action::DeleteTask),
        2 => (target(tkey()), task_change()).prop_map(|(k, ch)| Action::UpdateTask(k, ch)),
        2 => (doc(), version()).prop_map(|(d, v)| Action::PutDoc(d, v)),
        1 => doc().prop_map(Action::CreateDoc),
        2 => doc_update(),
        1 => pick(DOC_IDS).prop_map(Action::DeleteDoc),
    ]
}

fn batch_req() -> impl Strategy<Value = BatchReq> {
    prop_oneof![
        4 => user().prop_map(BatchReq::PutUser),
        4 => task().prop_map(BatchReq::PutTask),
        1 => doc().prop_map(BatchReq::PutDoc),
        2 => ukey().prop_map(BatchReq::DeleteUser),
        2 => tkey().prop_map(BatchReq::DeleteTask),
        1 => pick(DOC_IDS).prop_map(BatchReq::DeleteDoc),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        7 => single().prop_map(Op::One),
        1 => vec(batch_req(), 1..=6).prop_map(Op::Batch),
        2 => vec(tx_action(), 2..=4).prop_map(Op::Tx),
    ]
}

// ---------------------------------------------------------------------------
// The model: written without the library (keys and items rendered by hand)

#[derive(Debug, Clone, PartialEq)]
enum Stored {
    User(User),
    Task(Task),
    Doc(Doc),
}

fn user_key(org: &str, id: &str) -> Key {
    (format!("ORG#{org}"), format!("USER#{id}"))
}

fn task_key(org: &str, n: u32) -> Key {
    (format!("ORG#{org}"), format!("TASK#{n:04}"))
}

fn doc_key(id: &str) -> Key {
    (format!("DOC#{id}"), "DOC".to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Stored {
    fn key(&self) -> Key {
        match self {
            Stored::User(u) => user_key(&u.org, &u.id),
            Stored::Task(t) => task_key(&t.org, t.n),
            Stored::Doc(d) => doc_key(&d.id),
        }
    }

    /// The item as DynamoDB should hold it, attribute for attribute.
    fn raw(&self) -> Raw {
        let (pk, sk) = self.key();
        let mut m: Raw = HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))]);
        let mut put = |k: &str, v: AttributeValue| {
            m.insert(k.to_string(), v);
        };
        match self {
            Stored::User(u) => {
                put("_et", s("User"));
                put("gsi1pk", s(format!("EMAIL#{}", u.email)));
                put("gsi1sk", s(format!("USER#{}#{}", u.org, u.id)));
                if let Some(team) = &u.team {
                    put("gsi2pk", s(format!("TEAM#{team}")));
                    put("gsi2sk", s(format!("ROLE#{}#{}#{}", u.role, u.org, u.id)));
                    put("team", s(team));
                }
                put("org", s(&u.org));
                put("id", s(&u.id));
                put("email", s(&u.email));
                put("role", s(&u.role));
                put("name", s(&u.name));
                put("logins", n(u.logins));
            }
            Stored::Task(t) => {
                put("_et", s("Task"));
                put("gsi1pk", s(format!("EMAIL#{}", t.assignee)));
                put("gsi1sk", s(format!("TASK#{}#{:04}#{}", t.done, t.n, t.org)));
                put("org", s(&t.org));
                put("n", n(t.n));
                put("assignee", s(&t.assignee));
                put("title", s(&t.title));
                put("done", AttributeValue::Bool(t.done));
            }
            Stored::Doc(d) => {
                put("_et", s("Doc"));
                put("gsi1pk", s(format!("OWNER#{}", d.owner)));
                put("gsi1sk", s(format!("DOC#{}", d.id)));
                put("id", s(&d.id));
                put("owner", s(&d.owner));
                put("body", s(&d.body));
                put("version", n(d.version));
            }
        }
        m
    }
}

impl Leaf {
    /// DynamoDB's reading of the condition on the stored user (`None`: no
    /// item, every attribute absent).
    fn holds(&self, u: Option<&User>) -> bool {
        match self {
            Leaf::LoginsLt(x) => u.is_some_and(|u| u.logins < *x),
            Leaf::EmailIs(e) => u.is_some_and(|u| &u.email == e),
            Leaf::TeamIs(t) => u.and_then(|u| u.team.as_ref()) == t.as_ref(),
            Leaf::NameNe(x) => !matches!(u, Some(u) if &u.name == x),
            Leaf::Exists => u.is_some(),
            Leaf::NotExists => u.is_none(),
        }
    }

    fn build(&self) -> Condition<User> {
        let f = User::fields();
        match self {
            Leaf::LoginsLt(x) => f.logins.lt(*x),
            Leaf::EmailIs(e) => f.email.eq(e),
            Leaf::TeamIs(t) => f.team.eq(t.clone()),
            Leaf::NameNe(x) => f.name.ne(x),
            Leaf::Exists => f.email.exists(),
            Leaf::NotExists => f.email.not_exists(),
        }
    }
}

impl UserCond {
    fn holds(&self, u: Option<&User>) -> bool {
        match self {
            UserCond::Leaf(a) => a.holds(u),
            UserCond::Not(a) => !a.holds(u),
            UserCond::And(a, b) => a.holds(u) && b.holds(u),
            UserCond::Or(a, b) => a.holds(u) || b.holds(u),
        }
    }

    fn build(&self) -> Condition<User> {
        match self {
            UserCond::Leaf(a) => a.build(),
            UserCond::Not(a) => !a.build(),
            UserCond::And(a, b) => a.build() & b.build(),
            UserCond::Or(a, b) => a.build() | b.build(),
        }
    }
}

/// What went wrong, as the model and the library's errors both say it.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok,
    AlreadyExists(Key),
    ConditionFailed(Key),
    NotFound(Key),
    VersionConflict { key: Key, expected: u64, found: Option<u64> },
    StaleKey { missing: String },
    DuplicateKey { first: usize, second: usize },
    BatchRequest { index: usize },
    DuplicateAction { first: usize, second: usize },
    /// (action, its key, why), for every action that failed.
    Canceled(Vec<(usize, Key, Cancel)>),
    /// Anything else the library returned (never expected).
    Unexpected(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Cancel {
    Condition,
    VersionConflict { expected: u64, found: Option<u64> },
    NotFound,
    AlreadyExists,
    Other(String),
}

/// Why one action cannot be done.
#[derive(Debug, Clone, PartialEq)]
enum Fail {
    AlreadyExists,
    Condition,
    NotFound,
    Version { expected: u64, found: Option<u64> },
}

impl Fail {
    fn outcome(self, key: Key) -> Outcome {
        match self {
            Fail::AlreadyExists => Outcome::AlreadyExists(key),
            Fail::Condition => Outcome::ConditionFailed(key),
            Fail::NotFound => Outcome::NotFound(key),
            Fail::Version { expected, found } => Outcome::VersionConflict { key, expected, found },
        }
    }

    fn cancel(self) -> Cancel {
        match self {
            Fail::AlreadyExists => Cancel::AlreadyExists,
            Fail::Condition => Cancel::Condition,
            Fail::NotFound => Cancel::NotFound,
            Fail::Version { expected, found } => Cancel::VersionConflict { expected, found },
        }
    }
}

enum Write {
    Put(Stored),
    Delete,
    Nothing,
}

/// What one action does if it succeeds, and the value it returns (an
/// update's new item, a save's value with its new version).
struct Plan {
    key: Key,
    write: Write,
    returns: Option<Stored>,
}

#[derive(Debug, Default, Clone)]
struct Model {
    items: BTreeMap<Key, Stored>,
}

impl Action {
    fn key(&self) -> Key {
        match self {
            Action::PutUser(u) | Action::CreateUser(u) | Action::PutUserIf(u, _) => user_key(&u.org, &u.id),
            Action::DeleteUser(k) => user_key(&k.0, &k.1),
            Action::DeleteUserIf(k, _) | Action::CheckUser(k, _) | Action::UpdateUser(k, _, _) => {
                let (org, id) = k.key();
                user_key(org, id)
            }
            Action::PutTask(t) | Action::CreateTask(t) => task_key(&t.org, t.n),
            Action::DeleteTask(k) => task_key(&k.0, k.1),
            Action::UpdateTask(k, _) => task_key(&k.key().0, k.key().1),
            Action::PutDoc(d, _) | Action::CreateDoc(d) => doc_key(&d.id),
            Action::DeleteDoc(id) => doc_key(id),
            Action::UpdateDoc(id, _, _) | Action::DeleteDocVersion(id, _) => doc_key(id.key()),
        }
    }

    /// Whether the action's item is picked from the model's.
    fn picks(&self) -> bool {
        matches!(
            self,
            Action::DeleteUserIf(Target::Existing(..), _)
                | Action::CheckUser(Target::Existing(..), _)
                | Action::UpdateUser(Target::Existing(..), _, _)
                | Action::UpdateTask(Target::Existing(..), _)
                | Action::UpdateDoc(Target::Existing(..), _, _)
                | Action::DeleteDocVersion(Target::Existing(..), _)
        )
    }

    /// A refusal before anything is sent: an update of an index field
    /// without the other fields its key needs.
    fn refused(&self) -> Option<Outcome> {
        let Action::UpdateUser(_, change, _) = self else { return None };
        let missing = match change {
            UserChange::Team(_, None) => "role",
            UserChange::Role(_, None) => "team",
            _ => return None,
        };
        Some(Outcome::StaleKey { missing: missing.to_string() })
    }
}

impl Model {
    fn user(&self, org: &str, id: &str) -> Option<&User> {
        match self.items.get(&user_key(org, id)) {
            Some(Stored::User(u)) => Some(u),
            _ => None,
        }
    }

    fn task(&self, org: &str, n: u32) -> Option<&Task> {
        match self.items.get(&task_key(org, n)) {
            Some(Stored::Task(t)) => Some(t),
            _ => None,
        }
    }

    fn doc(&self, id: &str) -> Option<&Doc> {
        match self.items.get(&doc_key(id)) {
            Some(Stored::Doc(d)) => Some(d),
            _ => None,
        }
    }

    /// Picks the `Target::Existing` items, avoiding the keys in `used`.
    fn target<K: Clone>(&self, target: &mut Target<K>, used: &HashSet<Key>, key: impl Fn(&Stored) -> Option<K>) {
        if let Target::Existing(index, fallback) = target {
            let candidates: Vec<K> =
                self.items.iter().filter(|(k, _)| !used.contains(*k)).filter_map(|(_, v)| key(v)).collect();
            *target = Target::Key(if candidates.is_empty() { fallback.clone() } else { index.get(&candidates).clone() });
        }
    }

    /// Resolves what the action leaves to the model: `Target::Existing`
    /// (avoiding the keys in `used`), and `Known::Current` values.
    fn resolve(&self, action: &mut Action, used: &HashSet<Key>) {
        let user = |v: &Stored| if let Stored::User(u) = v { Some((u.org.clone(), u.id.clone())) } else { None };
        let task = |v: &Stored| if let Stored::Task(t) = v { Some((t.org.clone(), t.n)) } else { None };
        let doc = |v: &Stored| if let Stored::Doc(d) = v { Some(d.id.clone()) } else { None };
        match action {
            Action::DeleteUserIf(k, _) | Action::CheckUser(k, _) | Action::UpdateUser(k, _, _) => self.target(k, used, user),
            Action::UpdateTask(k, _) => self.target(k, used, task),
            Action::UpdateDoc(k, _, _) | Action::DeleteDocVersion(k, _) => self.target(k, used, doc),
            _ => {}
        }
        let doc_version = |id: &str| self.doc(id).map_or(0, |d| d.version);
        match action {
            Action::UpdateUser(k, change, _) => {
                let (org, id) = k.key();
                let current = self.user(org, id);
                match change {
                    UserChange::Team(_, Some(k @ Known::Current)) => {
                        *k = Known::Given(current.map_or_else(|| ROLES[0].to_string(), |u| u.role.clone()))
                    }
                    UserChange::Role(_, Some(k @ Known::Current)) => *k = Known::Given(current.and_then(|u| u.team.clone())),
                    _ => {}
                }
            }
            Action::PutDoc(d, v) => {
                if matches!(v, Known::Current) {
                    *v = Known::Given(doc_version(&d.id));
                }
            }
            Action::UpdateDoc(id, _, Some(v)) | Action::DeleteDocVersion(id, v) => {
                if matches!(v, Known::Current) {
                    *v = Known::Given(doc_version(id.key()));
                }
            }
            _ => {}
        }
    }

    /// What `action` does on the current state (not applied).
    fn plan(&self, action: &Action) -> Result<Plan, Fail> {
        let key = action.key();
        let exists = self.items.contains_key(&key);
        let put = |v: Stored| Ok(Plan { key: key.clone(), write: Write::Put(v), returns: None });
        match action {
            Action::PutUser(u) => put(Stored::User(u.clone())),
            Action::CreateUser(u) => {
                if exists {
                    return Err(Fail::AlreadyExists);
                }
                put(Stored::User(u.clone()))
            }
            Action::PutUserIf(u, c) => {
                if !c.holds(self.user(&u.org, &u.id)) {
                    return Err(Fail::Condition);
                }
                put(Stored::User(u.clone()))
            }
            Action::DeleteUser(_) | Action::DeleteTask(_) | Action::DeleteDoc(_) => {
                Ok(Plan { key, write: Write::Delete, returns: None })
            }
            Action::DeleteUserIf(k, c) => {
                if !c.holds(self.user(&k.key().0, &k.key().1)) {
                    return Err(Fail::Condition);
                }
                Ok(Plan { key, write: Write::Delete, returns: None })
            }
            Action::CheckUser(k, c) => {
                if !c.holds(self.user(&k.key().0, &k.key().1)) {
                    return Err(Fail::Condition);
                }
                Ok(Plan { key, write: Write::Nothing, returns: None })
            }
            Action::UpdateUser(k, change, c) => {
                let Some(old) = self.user(&k.key().0, &k.key().1) else { return Err(Fail::NotFound) };
                let unchanged_holds = match change {
                    UserChange::Team(_, Some(role)) => role.given() == &old.role,
                    UserChange::Role(_, Some(team)) => team.given() == &old.team,
                    _ => true,
                };
                if !unchanged_holds || !c.iter().all(|c| c.holds(Some(old))) {
                    return Err(Fail::Condition);
                }
                let mut new = old.clone();
                match change {
                    UserChange::Email(e) => new.email = e.clone(),
                    UserChange::Name(x) => new.name = x.clone(),
                    UserChange::AddLogins(x) => new.logins += x,
                    UserChange::Team(t, _) => new.team = t.clone(),
                    UserChange::Role(r, _) => new.role = r.clone(),
                    UserChange::TeamAndRole(t, r) => (new.team, new.role) = (t.clone(), r.clone()),
                    UserChange::EmailAndLogins(e, x) => (new.email, new.logins) = (e.clone(), new.logins + x),
                }
                let new = Stored::User(new);
                Ok(Plan { key, write: Write::Put(new.clone()), returns: Some(new) })
            }
            Action::PutTask(t) => put(Stored::Task(t.clone())),
            Action::CreateTask(t) => {
                if exists {
                    return Err(Fail::AlreadyExists);
                }
                put(Stored::Task(t.clone()))
            }
            Action::UpdateTask(k, change) => {
                let Some(old) = self.task(&k.key().0, k.key().1) else { return Err(Fail::NotFound) };
                let mut new = old.clone();
                match change {
                    TaskChange::Assignee(a) => new.assignee = a.clone(),
                    TaskChange::Done(d) => new.done = *d,
                    TaskChange::Title(t) => new.title = t.clone(),
                }
                let new = Stored::Task(new);
                Ok(Plan { key, write: Write::Put(new.clone()), returns: Some(new) })
            }
            Action::PutDoc(d, v) => {
                let expected = *v.given();
                let found = self.doc(&d.id).map(|d| d.version);
                if found.unwrap_or(0) != expected {
                    return Err(Fail::Version { expected, found });
                }
                let new = Stored::Doc(Doc { version: expected + 1, ..d.clone() });
                Ok(Plan { key, write: Write::Put(new.clone()), returns: Some(new) })
            }
            Action::CreateDoc(d) => {
                if exists {
                    return Err(Fail::AlreadyExists);
                }
                put(Stored::Doc(Doc { version: d.version + 1, ..d.clone() }))
            }
            Action::UpdateDoc(id, change, v) => {
                let Some(old) = self.doc(id.key()) else { return Err(Fail::NotFound) };
                if let Some(v) = v {
                    if *v.given() != old.version {
                        return Err(Fail::Version { expected: *v.given(), found: Some(old.version) });
                    }
                }
                let mut new = Doc { version: old.version + 1, ..old.clone() };
                match change {
                    DocChange::Owner(o) => new.owner = o.clone(),
                    DocChange::Body(b) => new.body = b.clone(),
                }
                let new = Stored::Doc(new);
                Ok(Plan { key, write: Write::Put(new.clone()), returns: Some(new) })
            }
            Action::DeleteDocVersion(id, v) => {
                let expected = *v.given();
                let found = self.doc(id.key()).map(|d| d.version);
                match found {
                    // Version 0 expects no item, and deletes nothing.
                    None if expected > 0 => Err(Fail::NotFound),
                    found if found.unwrap_or(0) != expected => Err(Fail::Version { expected, found }),
                    _ => Ok(Plan { key, write: Write::Delete, returns: None }),
                }
            }
        }
    }

    fn apply(&mut self, plan: Plan) {
        match plan.write {
            Write::Put(v) => {
                self.items.insert(plan.key, v);
            }
            Write::Delete => {
                self.items.remove(&plan.key);
            }
            Write::Nothing => {}
        }
    }

    /// Runs one step on the model: the outcome, and what the library
    /// should return.
    fn step(&mut self, op: &Op) -> (Outcome, Option<Stored>) {
        match op {
            Op::One(action) => {
                if let Some(refused) = action.refused() {
                    return (refused, None);
                }
                match self.plan(action) {
                    Ok(plan) => {
                        let returns = plan.returns.clone();
                        self.apply(plan);
                        (Outcome::Ok, returns)
                    }
                    Err(fail) => (fail.outcome(action.key()), None),
                }
            }
            Op::Batch(requests) => {
                let mut seen: HashMap<Key, usize> = HashMap::new();
                let mut writes = Vec::new();
                for (i, r) in requests.iter().enumerate() {
                    let (key, write) = match r {
                        BatchReq::PutDoc(_) => return (Outcome::BatchRequest { index: i }, None),
                        BatchReq::PutUser(u) => (user_key(&u.org, &u.id), Write::Put(Stored::User(u.clone()))),
                        BatchReq::PutTask(t) => (task_key(&t.org, t.n), Write::Put(Stored::Task(t.clone()))),
                        BatchReq::DeleteUser(k) => (user_key(&k.0, &k.1), Write::Delete),
                        BatchReq::DeleteTask(k) => (task_key(&k.0, k.1), Write::Delete),
                        BatchReq::DeleteDoc(id) => (doc_key(id), Write::Delete),
                    };
                    if let Some(&first) = seen.get(&key) {
                        return (Outcome::DuplicateKey { first, second: i }, None);
                    }
                    seen.insert(key.clone(), i);
                    writes.push(Plan { key, write, returns: None });
                }
                for w in writes {
                    self.apply(w);
                }
                (Outcome::Ok, None)
            }
            Op::Tx(actions) => {
                if let Some(refused) = actions.iter().find_map(Action::refused) {
                    return (refused, None);
                }
                let mut seen: HashMap<Key, usize> = HashMap::new();
                for (i, a) in actions.iter().enumerate() {
                    if let Some(first) = seen.insert(a.key(), i) {
                        return (Outcome::DuplicateAction { first, second: i }, None);
                    }
                }
                let mut plans = Vec::new();
                let mut failed = Vec::new();
                for (i, a) in actions.iter().enumerate() {
                    match self.plan(a) {
                        Ok(p) => plans.push(p),
                        Err(f) => failed.push((i, a.key(), f.cancel())),
                    }
                }
                if !failed.is_empty() {
                    return (Outcome::Canceled(failed), None);
                }
                for p in plans {
                    self.apply(p);
                }
                (Outcome::Ok, None)
            }
        }
    }

    fn users(&self) -> Vec<User> {
        self.items.values().filter_map(|v| if let Stored::User(u) = v { Some(u.clone()) } else { None }).collect()
    }

    fn tasks(&self) -> Vec<Task> {
        self.items.values().filter_map(|v| if let Stored::Task(t) = v { Some(t.clone()) } else { None }).collect()
    }

    fn docs(&self) -> Vec<Doc> {
        self.items.values().filter_map(|v| if let Stored::Doc(d) = v { Some(d.clone()) } else { None }).collect()
    }
}

// ---------------------------------------------------------------------------
// The library's side

fn update_user<'t>(table: &'t Table, key: &Target<UKey>, change: &UserChange, c: &Option<UserCond>) -> Update<'t, User> {
    let f = User::fields();
    let u = table.update::<User>(key.key());
    let mut u = match change {
        UserChange::Email(e) => u.set(f.email, e),
        UserChange::Name(x) => u.set(f.name, x),
        UserChange::AddLogins(x) => u.add(f.logins, *x),
        UserChange::Team(t, role) => {
            let u = u.set(f.team, t.clone());
            match role {
                Some(r) => u.unchanged(f.role, r.given()),
                None => u,
            }
        }
        UserChange::Role(r, team) => {
            let u = u.set(f.role, r);
            match team {
                Some(t) => u.unchanged(f.team, t.given().clone()),
                None => u,
            }
        }
        UserChange::TeamAndRole(t, r) => u.set(f.team, t.clone()).set(f.role, r),
        UserChange::EmailAndLogins(e, x) => u.set(f.email, e).add(f.logins, *x),
    };
    if let Some(c) = c {
        u = u.condition(c.build());
    }
    u
}

fn update_task<'t>(table: &'t Table, key: &Target<TKey>, change: &TaskChange) -> Update<'t, Task> {
    let f = Task::fields();
    let u = table.update::<Task>(key.key());
    match change {
        TaskChange::Assignee(a) => u.set(f.assignee, a),
        TaskChange::Done(d) => u.set(f.done, *d),
        TaskChange::Title(t) => u.set(f.title, t),
    }
}

fn update_doc<'t>(table: &'t Table, id: &Target<String>, change: &DocChange, v: &Option<Known<u64>>) -> Update<'t, Doc> {
    let f = Doc::fields();
    let u = table.update::<Doc>(&(id.key().clone(),));
    let u = match change {
        DocChange::Owner(o) => u.set(f.owner, o),
        DocChange::Body(b) => u.set(f.body, b),
    };
    match v {
        Some(v) => u.if_version(*v.given()),
        None => u,
    }
}

fn cancel_of(kind: &CancelKind) -> Cancel {
    match kind {
        CancelKind::ConditionFailed { .. } => Cancel::Condition,
        CancelKind::VersionConflict { expected, found } => Cancel::VersionConflict { expected: *expected, found: *found },
        CancelKind::NotFound => Cancel::NotFound,
        CancelKind::AlreadyExists => Cancel::AlreadyExists,
        other => Cancel::Other(format!("{other:?}")),
    }
}

fn outcome_of(e: Error) -> Outcome {
    match e {
        Error::AlreadyExists { pk, sk, .. } => Outcome::AlreadyExists((pk, sk)),
        Error::ConditionFailed { pk, sk, .. } => Outcome::ConditionFailed((pk, sk)),
        Error::NotFound { pk, sk, .. } => Outcome::NotFound((pk, sk)),
        Error::VersionConflict { pk, sk, expected, found, .. } => Outcome::VersionConflict { key: (pk, sk), expected, found },
        Error::StaleKey { missing, .. } => Outcome::StaleKey { missing },
        Error::DuplicateKey { first, second, .. } => Outcome::DuplicateKey { first, second },
        Error::BatchRequest { index, .. } => Outcome::BatchRequest { index },
        Error::DuplicateAction { first, second, .. } => Outcome::DuplicateAction { first, second },
        Error::TransactionCanceled { reasons, .. } => {
            Outcome::Canceled(reasons.iter().map(|r| (r.action, (r.pk.clone(), r.sk.clone()), cancel_of(&r.kind))).collect())
        }
        other => Outcome::Unexpected(other.to_string()),
    }
}

/// Runs one action alone through the library.
#[allow(clippy::result_large_err)] // `singletable::Error` as it is
async fn run_one(table: &Table, action: &Action) -> Result<Option<Stored>, Error> {
    let none = |r: Result<(), Error>| r.map(|()| None);
    match action {
        Action::PutUser(u) => none(table.put(u).await),
        Action::CreateUser(u) => none(table.create(u).await),
        Action::PutUserIf(u, c) => none(table.put_if(u, c.build()).await),
        Action::DeleteUser(k) => none(table.delete::<User>(k).await),
        Action::DeleteUserIf(k, c) => none(table.delete_if::<User>(k.key(), c.build()).await),
        Action::CheckUser(..) => unreachable!("condition checks are for transactions"),
        Action::UpdateUser(k, change, c) => update_user(table, k, change, c).send().await.map(|u| Some(Stored::User(u))),
        Action::PutTask(t) => none(table.put(t).await),
        Action::CreateTask(t) => none(table.create(t).await),
        Action::DeleteTask(k) => none(table.delete::<Task>(k).await),
        Action::UpdateTask(k, change) => update_task(table, k, change).send().await.map(|t| Some(Stored::Task(t))),
        Action::PutDoc(d, v) => {
            let mut d = Doc { version: *v.given(), ..d.clone() };
            table.save(&mut d).await.map(|()| Some(Stored::Doc(d)))
        }
        Action::CreateDoc(d) => none(table.create(d).await),
        Action::UpdateDoc(id, change, v) => update_doc(table, id, change, v).send().await.map(|d| Some(Stored::Doc(d))),
        Action::DeleteDoc(id) => none(table.delete::<Doc>(&(id.clone(),)).await),
        Action::DeleteDocVersion(id, v) => none(table.delete_version::<Doc>(&(id.key().clone(),), *v.given()).await),
    }
}

async fn run_step(table: &Table, op: &Op) -> Result<Option<Stored>, Error> {
    match op {
        Op::One(action) => run_one(table, action).await,
        Op::Batch(requests) => {
            let mut b = table.batch_write();
            for r in requests {
                b = match r {
                    BatchReq::PutUser(u) => b.put(u),
                    BatchReq::PutTask(t) => b.put(t),
                    BatchReq::PutDoc(d) => b.put(d),
                    BatchReq::DeleteUser(k) => b.delete::<User>(k),
                    BatchReq::DeleteTask(k) => b.delete::<Task>(k),
                    BatchReq::DeleteDoc(id) => b.delete::<Doc>(&(id.clone(),)),
                };
            }
            b.send().await.map(|_| None)
        }
        Op::Tx(actions) => {
            let mut tx = table.transaction();
            for a in actions {
                tx = match a {
                    Action::PutUser(u) => tx.put(u),
                    Action::CreateUser(u) => tx.create(u),
                    Action::PutUserIf(u, c) => tx.put_if(u, c.build()),
                    Action::DeleteUser(k) => tx.delete::<User>(k),
                    Action::DeleteUserIf(k, c) => tx.delete_if::<User>(k.key(), c.build()),
                    Action::CheckUser(k, c) => tx.check::<User>(k.key(), c.build()),
                    Action::UpdateUser(k, change, c) => tx.update(update_user(table, k, change, c)),
                    Action::PutTask(t) => tx.put(t),
                    Action::CreateTask(t) => tx.create(t),
                    Action::DeleteTask(k) => tx.delete::<Task>(k),
                    Action::UpdateTask(k, change) => tx.update(update_task(table, k, change)),
                    Action::PutDoc(d, v) => tx.put(&Doc { version: *v.given(), ..d.clone() }),
                    Action::CreateDoc(d) => tx.create(d),
                    Action::UpdateDoc(id, change, v) => tx.update(update_doc(table, id, change, v)),
                    Action::DeleteDoc(id) => tx.delete::<Doc>(&(id.clone(),)),
                    Action::DeleteDocVersion(..) => unreachable!("versioned deletes are not transaction actions"),
                };
            }
            tx.send().await.map(|()| None)
        }
    }
}

// ---------------------------------------------------------------------------
// Comparing the observable state

fn same<T: PartialEq + Debug>(what: &str, expected: &[T], found: &[T]) -> Result<(), String> {
    if expected == found {
        return Ok(());
    }
    let mut text = format!("{what}: expected {} items, found {}", expected.len(), found.len());
    for i in 0..expected.len().max(found.len()) {
        let (e, f) = (expected.get(i), found.get(i));
        if e != f {
            text.push_str(&format!("\n  [{i}] expected {e:?}\n  [{i}] found    {f:?}"));
        }
    }
    Err(text)
}

/// Raw items in table key order, each with its attributes in order.
fn sorted(items: impl IntoIterator<Item = Raw>) -> Vec<Sorted> {
    let text = |m: &Sorted, a: &str| m.get(a).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let mut items: Vec<Sorted> = items.into_iter().map(|m| m.into_iter().collect()).collect();
    items.sort_by_key(|m| (text(m, "pk"), text(m, "sk")));
    items
}

type Lookup<T> = (String, Result<Vec<T>, Error>);

/// Queries entity `T` (on the table or an index, in pages of
/// `page_size` items read) for every value of a domain, and compares each
/// result, in order, with `expected(value)`.
async fn queries<T: Item + PartialEq + Debug>(
    table: &Table,
    index: Option<&str>,
    page_size: Option<usize>,
    field: &str,
    values: &[&str],
    expected: impl Fn(&str) -> Vec<T>,
) -> Result<(), String> {
    let runs = values.iter().map(|v| async move {
        let mut q = table.query::<T>().pk(KeyParts::new().set(field, *v));
        if let Some(i) = index {
            q = q.index(i);
        }
        if let Some(n) = page_size {
            q = q.page_size(n);
        }
        let label = format!("query {} {} {field}={v}", T::DESIGN.entity, index.unwrap_or("table"));
        (label, q.all().await)
    });
    let results: Vec<Lookup<T>> = join_all(runs).await;
    for ((label, got), v) in results.into_iter().zip(values) {
        let got = got.map_err(|e| format!("{label}: {e}"))?;
        same(&label, &expected(v), &got)?;
    }
    Ok(())
}

/// Compares everything observable with the model.
async fn observe(table: &Table, model: &Model) -> Result<(), String> {
    let client = table.client();
    let name = table.name();
    let raw = sorted(model.items.values().map(Stored::raw));
    let in_index = |pk: &str, sk: &str| -> Vec<Sorted> {
        raw.iter().filter(|m| m.contains_key(pk) && m.contains_key(sk)).cloned().collect()
    };
    let (gsi1, gsi2) = (in_index("gsi1pk", "gsi1sk"), in_index("gsi2pk", "gsi2sk"));

    let users = model.users();
    let tasks = model.tasks();
    let docs = model.docs();

    let raw_scans = async {
        let (t, g1, g2) = tokio::join!(
            common::scan(client, name, None),
            common::scan(client, name, Some("gsi1")),
            common::scan(client, name, Some("gsi2")),
        );
        same("raw table scan", &raw, &sorted(t))?;
        same("raw gsi1 scan", &gsi1, &sorted(g1))?;
        same("raw gsi2 scan", &gsi2, &sorted(g2))
    };
    let typed_scans = async {
        let (u, t, d) = tokio::join!(
            table.scan::<User>().consistent(true).all(),
            table.scan::<Task>().consistent(true).all(),
            table.scan::<Doc>().consistent(true).all(),
        );
        let mut u = u.map_err(|e| format!("scan User: {e}"))?;
        let mut t = t.map_err(|e| format!("scan Task: {e}"))?;
        let mut d = d.map_err(|e| format!("scan Doc: {e}"))?;
        u.sort_by(|a, b| (&a.org, &a.id).cmp(&(&b.org, &b.id)));
        t.sort_by(|a, b| (&a.org, a.n).cmp(&(&b.org, b.n)));
        d.sort_by(|a, b| a.id.cmp(&b.id));
        same("typed scan User", &users, &u)?;
        same("typed scan Task", &tasks, &t)?;
        same("typed scan Doc", &docs, &d)
    };
    // GSI queries for every value of the domains, in the model's order.
    let by_email = |e: &str| {
        let mut v: Vec<User> = users.iter().filter(|u| u.email == e).cloned().collect();
        v.sort_by(|a, b| (&a.org, &a.id).cmp(&(&b.org, &b.id)));
        v
    };
    let by_team = |team: &str| {
        let mut v: Vec<User> = users.iter().filter(|u| u.team.as_deref() == Some(team)).cloned().collect();
        v.sort_by(|a, b| (&a.role, &a.org, &a.id).cmp(&(&b.role, &b.org, &b.id)));
        v
    };
    let users_in = |org: &str| users.iter().filter(|u| u.org == org).cloned().collect::<Vec<_>>();
    let by_assignee = |e: &str| {
        let mut v: Vec<Task> = tasks.iter().filter(|t| t.assignee == e).cloned().collect();
        // "false" < "true", then the number as a number, then the org.
        v.sort_by(|a, b| (a.done, a.n, &a.org).cmp(&(b.done, b.n, &b.org)));
        v
    };
    let tasks_in = |org: &str| {
        let mut v: Vec<Task> = tasks.iter().filter(|t| t.org == org).cloned().collect();
        v.sort_by_key(|t| t.n);
        v
    };
    let by_owner = |o: &str| docs.iter().filter(|d| d.owner == o).cloned().collect::<Vec<_>>();
    let (a, b, c, d, e, f, g, h) = tokio::join!(
        raw_scans,
        typed_scans,
        queries::<User>(table, Some("gsi1"), None, "email", EMAILS, by_email),
        queries::<User>(table, Some("gsi2"), None, "team", TEAMS, by_team),
        // Users and tasks share the org partitions: pages of 2 items read
        // hold items of both, or only of the other entity.
        queries::<User>(table, None, Some(2), "org", ORGS, users_in),
        queries::<Task>(table, Some("gsi1"), None, "assignee", EMAILS, by_assignee),
        queries::<Task>(table, None, Some(2), "org", ORGS, tasks_in),
        queries::<Doc>(table, Some("gsi1"), None, "owner", OWNERS, by_owner),
    );
    a.and(b).and(c).and(d).and(e).and(f).and(g).and(h)
}

/// Deletes every item of the table.
async fn clear(table: &Table) {
    let items = common::scan(table.client(), table.name(), None).await;
    let deletes = items.into_iter().map(|item| {
        let key: Raw = item.into_iter().filter(|(k, _)| k == "pk" || k == "sk").collect();
        table.client().delete_item().table_name(table.name()).set_key(Some(key)).send()
    });
    for r in join_all(deletes).await {
        r.expect("clearing the table");
    }
}

/// Outcomes seen, by kind, over the whole run.
#[derive(Default)]
struct Stats {
    steps: usize,
    /// Time spent in the operations, and in comparing the state.
    in_ops: Duration,
    in_checks: Duration,
    kinds: BTreeMap<String, usize>,
}

impl Stats {
    fn record(&mut self, op: &Op, outcome: &Outcome) {
        self.steps += 1;
        let what = match op {
            Op::One(a) => format!("{a:?}").split(['(', ' ']).next().unwrap_or("").to_string(),
            Op::Batch(_) => "Batch".to_string(),
            Op::Tx(_) => "Tx".to_string(),
        };
        let how = match outcome {
            Outcome::Canceled(r) => format!("Canceled[{}]", r.iter().map(|(_, _, c)| format!("{c:?}").split([' ', '{']).next().unwrap_or("").to_string()).collect::<Vec<_>>().join(",")),
            other => format!("{other:?}").split(['(', ' ', '{']).next().unwrap_or("").to_string(),
        };
        *self.kinds.entry(format!("{what} -> {how}")).or_default() += 1;
    }
}

/// Runs one sequence on an emptied table and on a fresh model.
async fn run_sequence(table: &Table, ops: Vec<Op>, stats: &Mutex<Stats>) -> Result<(), String> {
    clear(table).await;
    let mut model = Model::default();
    for (i, mut op) in ops.into_iter().enumerate() {
        match &mut op {
            Op::One(a) => model.resolve(a, &HashSet::new()),
            Op::Tx(actions) => {
                // Fixed keys first, so that picks avoid them too.
                let mut used: HashSet<Key> = actions.iter().filter(|a| !a.picks()).map(Action::key).collect();
                for a in actions.iter_mut() {
                    let picks = a.picks();
                    model.resolve(a, &used);
                    if picks {
                        used.insert(a.key());
                    }
                }
            }
            Op::Batch(_) => {}
        }
        let (expected, returns) = model.step(&op);
        let started = Instant::now();
        let found = run_step(table, &op).await;
        let in_op = started.elapsed();
        let (found, returned) = match found {
            Ok(v) => (Outcome::Ok, v),
            Err(e) => (outcome_of(e), None),
        };
        stats.lock().unwrap().record(&op, &expected);
        if found != expected {
            return Err(format!("step {i}: {op:?}\n  model:   {expected:?}\n  library: {found:?}"));
        }
        if returned != returns {
            return Err(format!("step {i}: {op:?}\n  returned {returned:?}\n  model    {returns:?}"));
        }
        let started = Instant::now();
        let seen = observe(table, &model).await;
        {
            let mut stats = stats.lock().unwrap();
            stats.in_ops += in_op;
            stats.in_checks += started.elapsed();
        }
        seen.map_err(|e| format!("after step {i}: {op:?}\n{e}"))?;
    }
    Ok(())
}

#[test]
fn random_operations_match_the_model_after_every_step() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let table = rt.block_on(common::new_table(
        "state_machine",
        vec![User::DESIGN.clone(), Task::DESIGN.clone(), Doc::DESIGN.clone()],
    ));
    let defaults = Config::default();
    let from_env = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
    let config = Config {
        cases: CASES.max(from_env),
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        // Every shrinking run talks to DynamoDB Local: keep it bounded.
        max_shrink_iters: 1024,
        max_shrink_time: 180_000,
        ..defaults
    };
    let cases = config.cases;
    let stats = Mutex::new(Stats::default());
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let result = runner.run(&vec(op(), STEPS), |ops| {
        rt.block_on(run_sequence(&table, ops, &stats)).map_err(TestCaseError::fail)
    });
    rt.block_on(singletable_tests::delete_table(table.client(), table.name()));
    let stats = stats.into_inner().unwrap();
    match result {
        Ok(()) => {
            eprintln!(
                "state machine: {cases} sequences, {} steps, in {:.2?} ({:.2?} in operations, {:.2?} comparing states)",
                stats.steps,
                started.elapsed(),
                stats.in_ops,
                stats.in_checks
            );
            for (kind, count) in &stats.kinds {
                eprintln!("  {count:5}  {kind}");
            }
        }
        Err(e) => panic!("state machine: {e}\n{runner}"),
    }
}
