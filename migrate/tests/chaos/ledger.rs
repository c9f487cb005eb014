//! The exact ledger of acknowledged writes and the final check of a table
//! against it.
//!
//! Every logical user `(org, id)` belongs to one writer, which writes it
//! one request at a time; so the ledger knows, for each, the state its
//! last acknowledged write left: present with `n`, `name`, `email`, or
//! deleted. A write that failed without proof that nothing was written
//! makes the item [`Expected::Unknown`]: the writer leaves it alone from
//! then on and the check accepts whatever the table holds for it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use singletable::Item;

use super::entities::{v1, UserState};

pub type Raw = HashMap<String, AttributeValue>;

/// What the table must hold for one logical user at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Exists(UserState),
    Deleted,
    /// A write whose outcome is not known; anything goes.
    Unknown,
}

/// Counters of one writer (or all, summed).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Acknowledged writes by operation and app version (`old`/`new`).
    pub acked: BTreeMap<String, u64>,
    /// Conditional writes refused by DynamoDB (nothing written): the item
    /// was not where this app version looks (moved, or gone).
    pub condition_failed: u64,
    /// Read-modify-writes whose read found nothing where the ledger says
    /// the item is (nothing written).
    pub read_found_nothing: u64,
    /// Reads (read-modify-write) or update results (ALL_NEW) that showed
    /// a state other than the ledger's: a loss seen by the application
    /// itself while it ran.
    pub stale_observations: u64,
    /// Writes with an unknown outcome (errors other than a refused
    /// condition); normally 0.
    pub unknown_outcomes: u64,
    /// Requests the library refused before sending (harness bugs).
    pub refused: u64,
    /// Reads that failed (nothing written).
    pub read_errors: u64,
    /// The first few error messages, for the report.
    pub errors: Vec<String>,
}

impl Stats {
    pub fn ack(&mut self, op: &str, new: bool) {
        *self.acked.entry(format!("{op}/{}", if new { "new" } else { "old" })).or_default() += 1;
    }

    pub fn error(&mut self, e: impl fmt::Display) {
        if self.errors.len() < 5 {
            self.errors.push(e.to_string());
        }
    }

    pub fn add(&mut self, o: &Stats) {
        for (k, v) in &o.acked {
            *self.acked.entry(k.clone()).or_default() += v;
        }
        self.condition_failed += o.condition_failed;
        self.read_found_nothing += o.read_found_nothing;
        self.stale_observations += o.stale_observations;
        self.unknown_outcomes += o.unknown_outcomes;
        self.refused += o.refused;
        self.read_errors += o.read_errors;
        for e in &o.errors {
            if self.errors.len() < 10 {
                self.errors.push(e.clone());
            }
        }
    }

    pub fn total_acked(&self) -> u64 {
        self.acked.values().sum()
    }
}

/// One writer's part of the ledger; the harness's [`Ledger`] is all of
/// them together.
#[derive(Debug, Default)]
pub struct WriterLedger {
    /// `(org, id)` -> expected state, every user this writer owns.
    pub items: BTreeMap<(String, String), Expected>,
    pub stats: Stats,
}

/// A snapshot of every writer's ledger.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub items: BTreeMap<(String, String), Expected>,
    pub stats: Stats,
}

impl Ledger {
    pub fn merge(parts: impl IntoIterator<Item = (BTreeMap<(String, String), Expected>, Stats)>) -> Ledger {
        let mut out = Ledger::default();
        for (items, stats) in parts {
            out.items.extend(items);
            out.stats.add(&stats);
        }
        out
    }
}

/// What the final state must look like, hand-written per scenario (not
/// rendered by the toolkit).
pub trait Forms {
    /// The table pk of the old and of the new design; equal unless the
    /// key moves.
    fn old_pk(&self, org: &str) -> String;
    fn new_pk(&self, org: &str) -> String;
    fn sk(&self, id: &str) -> String {
        format!("USER#{id}")
    }
    /// The index key attributes of the new design for a user:
    /// `(attribute, value)`.
    fn new_index_attrs(&self, org: &str, id: &str, s: &UserState) -> Vec<(&'static str, String)>;
}

/// The numbers of the final check; every one but the informational ones
/// must be 0.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub logical_users: usize,
    pub expected_present: usize,
    pub expected_deleted: usize,
    pub unknown_outcomes: usize,
    pub stored_items: usize,
    /// Present (new form) but `n`, `name` or `email` differ from the last
    /// acknowledged write.
    pub lost_updates: usize,
    /// Deleted per the ledger, present in some form.
    pub resurrected_deletes: usize,
    /// Present per the ledger, absent in the new form.
    pub missing: usize,
    /// Stored items still in the old key form when the key moved.
    pub old_form_orphans: usize,
    /// Logical users stored more than once.
    pub duplicates: usize,
    /// New-form items whose index key attribute differs from the new
    /// template's rendering of its fields.
    pub wrong_index_keys: usize,
    /// New-form items lacking an index key attribute of the new design.
    pub missing_index_keys: usize,
    /// Users no writer ever created.
    pub phantoms: usize,
    /// Items that do not decode as `User`, or of another entity.
    pub undecodable: usize,
    pub examples: Vec<String>,
}

impl CheckReport {
    pub fn failures(&self) -> usize {
        self.lost_updates
            + self.resurrected_deletes
            + self.missing
            + self.old_form_orphans
            + self.duplicates
            + self.wrong_index_keys
            + self.missing_index_keys
            + self.phantoms
            + self.undecodable
    }

    fn example(&mut self, s: String) {
        if self.examples.len() < 12 {
            self.examples.push(s);
        }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  logical users {} (present {}, deleted {}, unknown outcome {}); stored items {}",
            self.logical_users, self.expected_present, self.expected_deleted, self.unknown_outcomes, self.stored_items
        )?;
        writeln!(f, "  | lost acknowledged updates | {:>6} |", self.lost_updates)?;
        writeln!(f, "  | resurrected deletes       | {:>6} |", self.resurrected_deletes)?;
        writeln!(f, "  | missing items             | {:>6} |", self.missing)?;
        writeln!(f, "  | old-form orphans          | {:>6} |", self.old_form_orphans)?;
        writeln!(f, "  | duplicates                | {:>6} |", self.duplicates)?;
        writeln!(f, "  | wrong index keys          | {:>6} |", self.wrong_index_keys)?;
        writeln!(f, "  | missing index keys        | {:>6} |", self.missing_index_keys)?;
        writeln!(f, "  | phantoms (never written)  | {:>6} |", self.phantoms)?;
        writeln!(f, "  | undecodable               | {:>6} |", self.undecodable)?;
        for e in &self.examples {
            writeln!(f, "    e.g. {e}")?;
        }
        Ok(())
    }
}

fn text(item: &Raw, attr: &str) -> Option<String> {
    item.get(attr).and_then(|v| v.as_s().ok()).cloned()
}

/// Compares every stored item (the toolkit's own `#SINGLETABLE` items
/// left out) with the ledger.
pub fn check(items: &[Raw], ledger: &Ledger, forms: &dyn Forms, key_moved: bool) -> CheckReport {
    let mut r = CheckReport {
        logical_users: ledger.items.len(),
        expected_present: ledger.items.values().filter(|e| matches!(e, Expected::Exists(_))).count(),
        expected_deleted: ledger.items.values().filter(|e| matches!(e, Expected::Deleted)).count(),
        unknown_outcomes: ledger.items.values().filter(|e| matches!(e, Expected::Unknown)).count(),
        ..CheckReport::default()
    };
    // (org, id) -> [(is new form, item, decoded)]
    let mut stored: BTreeMap<(String, String), Vec<(bool, &Raw, v1::User)>> = BTreeMap::new();
    for item in items {
        let pk = text(item, "pk").unwrap_or_default();
        if pk.starts_with(singletable_migrate::reserved::RESERVED_PK) {
            continue;
        }
        r.stored_items += 1;
        if text(item, "_et").as_deref() != Some("User") {
            r.undecodable += 1;
            r.example(format!("not a User: {item:?}"));
            continue;
        }
        let user = match v1::User::from_item(item.clone()) {
            Ok(u) => u,
            Err(e) => {
                r.undecodable += 1;
                r.example(format!("undecodable ({e}): {item:?}"));
                continue;
            }
        };
        let sk = text(item, "sk").unwrap_or_default();
        let is_new = pk == forms.new_pk(&user.org) && sk == forms.sk(&user.id);
        let is_old = pk == forms.old_pk(&user.org) && sk == forms.sk(&user.id);
        if !is_new && !is_old {
            r.undecodable += 1;
            r.example(format!("({pk}, {sk}) is neither form of {}/{}", user.org, user.id));
            continue;
        }
        if key_moved && is_old {
            r.old_form_orphans += 1;
        }
        stored.entry((user.org.clone(), user.id.clone())).or_default().push((is_new, item, user));
    }

    for ((org, id), copies) in &stored {
        if copies.len() > 1 {
            r.duplicates += 1;
            r.example(format!("{org}/{id} stored {} times", copies.len()));
        }
        // Index keys of every new-form copy.
        for (is_new, item, user) in copies.iter().filter(|c| c.0) {
            debug_assert!(*is_new);
            let state = UserState { email: user.email.clone(), name: user.name.clone(), n: user.n };
            for (attr, want) in forms.new_index_attrs(org, id, &state) {
                match text(item, attr) {
                    None => {
                        r.missing_index_keys += 1;
                        r.example(format!("{org}/{id}: no {attr} (want {want})"));
                    }
                    Some(got) if got != want => {
                        r.wrong_index_keys += 1;
                        r.example(format!("{org}/{id}: {attr} = {got}, want {want}"));
                    }
                    Some(_) => {}
                }
            }
        }
        let new_copy = copies.iter().find(|c| c.0).map(|c| &c.2);
        match ledger.items.get(&(org.clone(), id.clone())) {
            None => {
                r.phantoms += 1;
                r.example(format!("{org}/{id}: stored, never written"));
            }
            Some(Expected::Unknown) => {}
            Some(Expected::Deleted) => {
                r.resurrected_deletes += 1;
                r.example(format!("{org}/{id}: deleted, but stored ({} copies)", copies.len()));
            }
            Some(Expected::Exists(want)) => match new_copy {
                None => {} // counted as missing below
                Some(u) => {
                    let got = UserState { email: u.email.clone(), name: u.name.clone(), n: u.n };
                    if &got != want {
                        r.lost_updates += 1;
                        r.example(format!("{org}/{id}: stored {got:?}, acknowledged {want:?}"));
                    }
                }
            },
        }
    }
    for ((org, id), want) in &ledger.items {
        if matches!(want, Expected::Exists(_)) {
            let has_new = stored.get(&(org.clone(), id.clone())).is_some_and(|c| c.iter().any(|c| c.0));
            if !has_new {
                r.missing += 1;
                r.example(format!("{org}/{id}: acknowledged present, no new-form item"));
            }
        }
    }
    r
}
