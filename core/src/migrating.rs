//! Migrate-on-read: [`MigratingTable`], the new version's table during an
//! online migration (its docs are the manual).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update as TxUpdate,
};
use futures::StreamExt;

use crate::design::{EntityDesign, TableDesign};
use crate::error::Error;
use crate::key::PrimaryKey;
use crate::ops::query::Query;
use crate::ops::transact::cancel_reason;
use crate::ops::update::{PreparedUpdate, Update};
use crate::ops::write::{PreparedPut, WriteMeta};
use crate::reserved::{DESIGN_ATTR, DESIGN_SK, ONLINE_SK, PHASE_ATTR, PHASE_REFRESH, RESERVED_PK, WRITE_TOKEN_ATTR};
use crate::table::Table;
use crate::Item;

/// Where an online migration stands, as the application sees it; see
/// [`MigratingTable`] for what it does in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationPhase {
    /// Before cut-over: the old form is the truth.
    Expand,
    /// Cut over: the new form is the truth, the old one is kept current.
    CutOver,
    /// Old forms are being deleted: only the new form is written.
    Contract,
    /// No migration in progress and the table records the new design.
    Done,
}

/// Transactions cancelled by a conflict with another transaction on the
/// same item (the backfill's copy, another writer) are sent again this
/// many times in all, with a growing pause.
const CONFLICT_ATTEMPTS: u32 = 8;

enum Source {
    Fixed(MigrationPhase),
    Recorded(Mutex<Option<(Instant, MigrationPhase)>>),
}

/// Migrate-on-read: a [`Table`] for the new version of an application
/// that runs *while* an online migration (`singletable migrate apply
/// --online`) moves its items to new keys, so the new version can be
/// deployed before cut-over and no write ever pauses.
///
/// # What it does in each phase
///
/// It reads the phase from the table (the migration's state item, at most
/// [`PHASE_REFRESH`] old) or is given it ([`MigratingTable::with_phase`]).
/// For an entity whose table key changes:
///
/// | phase | reads | writes |
/// | --- | --- | --- |
/// | [`Expand`](MigrationPhase::Expand) (before cut-over; also before the apply started) | the old form, the truth while old application instances still write it (`get`; [`query_all`](MigratingTable::query_all) reads the old partition and picks out the new partition's items) | both forms in one transaction; puts and updates stamp both with a fresh [write token](crate::reserved::WRITE_TOKEN_ATTR); conditions (create, version, yours) decide on the old form |
/// | [`CutOver`](MigrationPhase::CutOver) (cut over, not contracted) | the new form | both forms, as in expand, conditions deciding on the new form: the old form stays current, so rolling back to the old version loses nothing |
/// | [`Contract`](MigrationPhase::Contract), [`Done`](MigrationPhase::Done) | the new form | the new form only |
///
/// Entities whose table key does not change (a new or changed index, or
/// no change) are read and written as [`Table`] does.
///
/// Why it is safe alongside the migration's own writers:
/// - the backfill copies an old form only where no new form exists, in a
///   transaction that checks the old form is still there, so it never
///   overwrites a new form this table wrote and never brings back one it
///   deleted (deletes remove both forms at once);
/// - the stream replay carries an old-form change over only when the new
///   form holds the write token that change started from: after this
///   table's write the tokens differ, so an older change is never
///   replayed over it, and this table's own changes are never replayed
///   again;
/// - the apply changes the phase to `contract`, then waits
///   [`PHASE_SETTLE`](crate::reserved::PHASE_SETTLE) before deleting old forms, so every instance has
///   stopped writing them; a write that lands later anyway (an instance
///   frozen for longer) is never lost: it reached the new form too, and
///   contract deletes an old form only if it is unchanged since contract
///   read it, naming the item otherwise.
///
/// The old form is found from the new key: the old key template's fields
/// must all be fields of the new key ([`Error::OldKeyNotDerivable`]
/// otherwise, when the table is built).
///
/// ```no_run
/// # use singletable::{Item, Table, TableDesign};
/// # #[derive(Item)]
/// # #[item(pk = "ORG#{org}#USER#{id}", sk = "PROFILE")]
/// # struct User { org: String, id: String, name: String }
/// # async fn demo(table: Table, old: TableDesign) -> Result<(), singletable::Error> {
/// // `table` is built with the new design; `old` is the design the table
/// // was migrated from (the recorded design, or the old version's).
/// let table = table.migrating_from(old)?;
/// table.put(&User { org: "acme".into(), id: "ann".into(), name: "Ann".into() }).await?;
/// let ann = table.get::<User>(&("acme".into(), "ann".into())).await?;
/// # Ok(()) }
/// ```
pub struct MigratingTable {
    table: Table,
    /// The same table with the old design, for queries of the old form.
    old: Table,
    /// Entities whose table key changes: name → old design (interned:
    /// prepared requests refer to designs as `'static`).
    moved: HashMap<String, &'static EntityDesign>,
    source: Source,
}

impl std::fmt::Debug for MigratingTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut moved: Vec<&String> = self.moved.keys().collect();
        moved.sort();
        f.debug_struct("MigratingTable").field("table", &self.table.name()).field("moved", &moved).finish_non_exhaustive()
    }
}

impl Table {
    /// This table (built with the new design) during an online migration
    /// from `old`; see [`MigratingTable`]. Fails with
    /// [`Error::OldKeyNotDerivable`] for an entity whose old key needs
    /// fields its new key does not hold.
    pub fn migrating_from(self, old: TableDesign) -> Result<MigratingTable, Error> {
        let mut moved = HashMap::new();
        for new in &self.design().entities {
            let Some(before) = old.entities.iter().find(|e| e.entity == new.entity) else { continue };
            if before.pk.template.source == new.pk.template.source && before.sk.template.source == new.sk.template.source {
                continue;
            }
            let held: Vec<&str> = new.pk.template.fields().chain(new.sk.template.fields()).map(|f| f.attr.as_ref()).collect();
            let mut missing: Vec<String> = Vec::new();
            for f in before.pk.template.fields().chain(before.sk.template.fields()) {
                if !held.contains(&f.attr.as_ref()) && !missing.iter().any(|m| *m == f.field.as_ref()) {
                    missing.push(f.field.to_string());
                }
            }
            if !missing.is_empty() {
                return Err(Error::OldKeyNotDerivable { entity: new.entity.to_string(), missing });
            }
            moved.insert(new.entity.to_string(), intern(before));
        }
        let old = Table::new(self.client.clone(), old);
        Ok(MigratingTable { table: self, old, moved, source: Source::Recorded(Mutex::new(None)) })
    }
}

/// A `'static` copy of an entity design, made once per distinct design
/// in a process (a handful: the old designs of migrating tables).
fn intern(design: &EntityDesign) -> &'static EntityDesign {
    static DESIGNS: Mutex<Vec<&'static EntityDesign>> = Mutex::new(Vec::new());
    let mut designs = DESIGNS.lock().expect("interned designs");
    if let Some(d) = designs.iter().find(|d| **d == design) {
        return d;
    }
    let leaked: &'static EntityDesign = Box::leak(Box::new(design.clone()));
    designs.push(leaked);
    leaked
}

/// A fresh write token: 128 random bits.
fn write_token() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

impl MigratingTable {
    /// Uses `phase` instead of reading it from the table (tests, or an
    /// application that learns the phase another way).
    pub fn with_phase(mut self, phase: MigrationPhase) -> Self {
        self.source = Source::Fixed(phase);
        self
    }

    /// The table with the new design, for everything else.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The phase, read from the table at most [`PHASE_REFRESH`] ago.
    pub async fn phase(&self) -> Result<MigrationPhase, Error> {
        let cache = match &self.source {
            Source::Fixed(p) => return Ok(*p),
            Source::Recorded(cache) => cache,
        };
        if let Some((at, phase)) = *cache.lock().expect("phase cache") {
            if at.elapsed() < PHASE_REFRESH {
                return Ok(phase);
            }
        }
        // The time of the read, not of its answer: what was true when the
        // read started is trusted for PHASE_REFRESH from then.
        let started = Instant::now();
        let phase = self.read_phase().await?;
        *cache.lock().expect("phase cache") = Some((started, phase));
        Ok(phase)
    }

    async fn reserved_item(&self, sk: &str) -> Result<Option<HashMap<String, AttributeValue>>, Error> {
        let design = self.table.design();
        let key = HashMap::from([
            (design.pk_attr.clone(), AttributeValue::S(RESERVED_PK.to_string())),
            (design.sk_attr.clone(), AttributeValue::S(sk.to_string())),
        ]);
        let out = self
            .table
            .client()
            .get_item()
            .table_name(self.table.name())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::dynamo("GetItem (migration state)", self.table.name(), e))?;
        Ok(out.item)
    }

    async fn read_phase(&self) -> Result<MigrationPhase, Error> {
        let state_error = |reason: String| Error::MigrationState { table: self.table.name().to_string(), reason };
        if let Some(state) = self.reserved_item(ONLINE_SK).await? {
            return match state.get(PHASE_ATTR).and_then(|v| v.as_s().ok()).map(String::as_str) {
                Some("expand") => Ok(MigrationPhase::Expand),
                Some("cutover") => Ok(MigrationPhase::CutOver),
                Some("contract") => Ok(MigrationPhase::Contract),
                other => Err(state_error(format!("unknown phase {other:?}"))),
            };
        }
        // No migration in progress: the recorded design says whether it is
        // still to come (the old keys) or over (the new ones).
        let Some(item) = self.reserved_item(DESIGN_SK).await? else { return Ok(MigrationPhase::Expand) };
        let json = item.get(DESIGN_ATTR).and_then(|v| v.as_s().ok()).ok_or_else(|| state_error("the design item has no design".into()))?;
        let recorded = TableDesign::from_json(json)?;
        let at_new = self.moved.keys().all(|name| {
            let (new, rec) = (self.table.design().entity(name), recorded.entity(name));
            matches!((new, rec), (Some(n), Some(r)) if n.pk.template.source == r.pk.template.source && n.sk.template.source == r.sk.template.source)
        });
        Ok(if at_new { MigrationPhase::Done } else { MigrationPhase::Expand })
    }

    /// The old design of `T` while both of its forms are written.
    async fn dual<T: Item>(&self) -> Result<Option<(&'static EntityDesign, MigrationPhase)>, Error> {
        let Some(old) = self.moved.get(T::DESIGN.entity.as_ref()).copied() else { return Ok(None) };
        let phase = self.phase().await?;
        Ok(matches!(phase, MigrationPhase::Expand | MigrationPhase::CutOver).then_some((old, phase)))
    }

    /// The old form's key, from the new key's fields.
    fn old_key<T: Item>(&self, old: &EntityDesign, key: &PrimaryKey) -> Result<HashMap<String, AttributeValue>, Error> {
        let key = Self::old_primary_key::<T>(old, key)?;
        let design = self.old.design();
        Ok(HashMap::from([(design.pk_attr.clone(), AttributeValue::S(key.pk)), (design.sk_attr.clone(), AttributeValue::S(key.sk))]))
    }

    fn old_primary_key<T: Item>(old: &EntityDesign, key: &PrimaryKey) -> Result<PrimaryKey, Error> {
        let new = T::DESIGN;
        let mut fields: HashMap<String, AttributeValue> = HashMap::new();
        for (template, text, attr) in [(&new.pk.template, &key.pk, &new.pk.attr), (&new.sk.template, &key.sk, &new.sk.attr)] {
            for (field, value) in template.parse_key(text, &new.entity, attr)? {
                fields.insert(field.attr.to_string(), value);
            }
        }
        let pk = old.pk.template.render_item(&fields, &old.entity, &old.pk.attr)?;
        let sk = old.sk.template.render_item(&fields, &old.entity, &old.sk.attr)?;
        Ok(PrimaryKey { pk, sk })
    }

    /// Reads one item: the old form before cut-over, the new form after.
    pub async fn get<T: Item>(&self, key: &T::Key) -> Result<Option<T>, Error> {
        let Some((old, MigrationPhase::Expand)) = self.dual::<T>().await? else { return self.table.get::<T>(key).await };
        let old_key = self.old_key::<T>(old, &T::key_of(key)?)?;
        let out = self
            .table
            .client()
            .get_item()
            .table_name(self.table.name())
            .set_key(Some(old_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::dynamo("GetItem (old form)", self.table.name(), e))?;
        out.item.map(T::from_item).transpose()
    }

    /// Runs a query built with [`Table::query`] on [`table()`](Self::table)
    /// and returns all of its items, as [`Query::all`] does.
    ///
    /// Before cut-over the old form is the truth for an entity whose table
    /// key changes, so the query reads the old partition that the query's
    /// partition fields render (every item of the entity there) and keeps
    /// the items whose new keys fall in the query's partition and sort
    /// condition, in the new sort key's order, up to its limit. That needs
    /// every field of the old partition key among the query's partition
    /// fields ([`Error::OldPartitionNotDerivable`] otherwise). Index
    /// queries, and every query from cut-over on, run as they are (before
    /// cut-over an index query reads the new forms: what migrating tables
    /// wrote and what the backfill and the replay carried over so far).
    ///
    /// ```no_run
    /// # use singletable::{Item, KeyParts, MigratingTable};
    /// # #[derive(Item)]
    /// # #[item(pk = "TENANT#{org}", sk = "USER#{id}")]
    /// # struct User { org: String, id: String }
    /// # async fn demo(table: &MigratingTable) -> Result<(), singletable::Error> {
    /// let users: Vec<User> = table.query_all(table.table().query::<User>().pk(KeyParts::new().set("org", "acme"))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn query_all<T: Item>(&self, query: Query<'_, T>) -> Result<Vec<T>, Error> {
        let Some((old_entity, MigrationPhase::Expand)) = self.dual::<T>().await? else { return query.all().await };
        if query.on_index() {
            return query.all().await;
        }
        let old = match query.for_old_form(&self.old, old_entity) {
            Ok(old) => old,
            Err(Ok(missing)) => return Err(Error::OldPartitionNotDerivable { entity: T::DESIGN.entity.to_string(), missing }),
            Err(Err(e)) => return Err(e),
        };
        let (pk_attr, sk_attr) = (T::DESIGN.pk.attr.as_ref(), T::DESIGN.sk.attr.as_ref());
        let mut found: Vec<(String, T)> = Vec::new();
        let mut items = old.request.raw_stream();
        while let Some(item) = items.next().await {
            let item = T::from_item(item?)?;
            // Where the item's new form lives.
            let new = item.to_item()?;
            let text = |attr: &str| new.get(attr).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let sk = text(sk_attr);
            if text(pk_attr) == old.pk && old.sk.matches(&sk) {
                found.push((sk, item));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        if !old.forward {
            found.reverse();
        }
        found.truncate(old.limit.unwrap_or(usize::MAX));
        Ok(found.into_iter().map(|(_, item)| item).collect())
    }

    /// Writes an item (as [`Table::put`]); both forms until contract.
    pub async fn put<T: Item>(&self, item: &T) -> Result<(), Error> {
        match self.dual::<T>().await? {
            None => self.table.put(item).await,
            Some((old, phase)) => self.put_both(old, phase, self.table.prepare_put(item, false, None)?).await,
        }
    }

    /// Writes an item only if none has its key (as [`Table::create`]);
    /// both forms until contract.
    pub async fn create<T: Item>(&self, item: &T) -> Result<(), Error> {
        match self.dual::<T>().await? {
            None => self.table.create(item).await,
            Some((old, phase)) => self.put_both(old, phase, self.table.prepare_put(item, true, None)?).await,
        }
    }

    /// Deletes an item (as [`Table::delete`]); both forms at once until
    /// contract, so that neither the old form nor the backfill brings it
    /// back.
    pub async fn delete<T: Item>(&self, key: &T::Key) -> Result<(), Error> {
        let Some((old, _)) = self.dual::<T>().await? else { return self.table.delete::<T>(key).await };
        let new_key = T::key_of(key)?;
        let old_key = self.old_key::<T>(old, &new_key)?;
        let delete = |key: HashMap<String, AttributeValue>| -> Result<TransactWriteItem, Error> {
            let d = Delete::builder().table_name(self.table.name()).set_key(Some(key)).build().map_err(|e| Error::build("Delete", e))?;
            Ok(TransactWriteItem::builder().delete(d).build())
        };
        let meta = self.table.prepare_keyed::<T>("DeleteItem", key, false, None, None)?.meta;
        let items = vec![delete(old_key)?, delete(self.table.key_map(new_key))?];
        self.transact(items, meta, None).await
    }

    /// Sends an update built with [`Table::update`] on
    /// [`table()`](Self::table) and returns the item as stored after it,
    /// as [`Update::send`] does.
    ///
    /// Until contract it updates both forms in one transaction (each built
    /// for its own design, so each form's index keys stay true), with the
    /// update's conditions deciding on the form that is the truth. Where
    /// the other form is missing or fails the condition (a new form the
    /// replay has not created or caught up yet), the truth alone is
    /// updated: before cut-over the stream replay carries that change over
    /// as it carries the old version's, and an update applied to a new
    /// form that was behind is set right by the replay too, which replays
    /// every later old-form change in order.
    ///
    /// ```no_run
    /// # use singletable::{Item, MigratingTable};
    /// # #[derive(Item)]
    /// # #[item(pk = "ORG#{org}#USER#{id}", sk = "PROFILE")]
    /// # struct User { org: String, id: String, logins: u32 }
    /// # async fn demo(table: &MigratingTable) -> Result<(), singletable::Error> {
    /// let f = User::fields();
    /// let key = ("acme".to_string(), "ann".to_string());
    /// let ann: User = table.update(table.table().update::<User>(&key).add(f.logins, 1)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update<T: Item>(&self, update: Update<'_, T>) -> Result<T, Error> {
        let Some((old, phase)) = self.dual::<T>().await? else { return update.send().await };
        let Some(new_key) = update.key().cloned() else { return update.send().await };
        let old_key = Self::old_primary_key::<T>(old, &new_key)?;
        // A fresh token on both forms, as puts stamp: the replay skips this
        // change (superseded), and after cut-over contract tells it from an
        // old instance's write to the old form alone.
        let (new_form, old_form) = update.prepare_pair(old, old_key, (WRITE_TOKEN_ATTR, AttributeValue::S(write_token())))?;
        let table = self.table.name();
        let action = |p: &PreparedUpdate| -> Result<TransactWriteItem, Error> {
            let (names, values) = p.expr.clone().into_maps();
            let u = TxUpdate::builder()
                .table_name(table)
                .set_key(Some(p.key.clone()))
                .update_expression(p.update.clone())
                .set_condition_expression(p.condition.clone())
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(|e| Error::build("Update", e))?;
            Ok(TransactWriteItem::builder().update(u).build())
        };
        let items = vec![action(&old_form)?, action(&new_form)?];
        // Action 0 is the old form, 1 the new.
        let (truth, other) = if phase == MigrationPhase::Expand { (old_form, 1) } else { (new_form, 0) };
        let truth_index = 1 - other;
        match self.transact(items, truth.meta.clone(), Some(truth_index)).await {
            Ok(()) => {
                // A transaction returns no item: read the truth back.
                let out = self
                    .table
                    .client()
                    .get_item()
                    .table_name(table)
                    .set_key(Some(truth.key.clone()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| Error::dynamo("GetItem (after update)", table, e))?;
                let item = out.item.ok_or_else(|| truth.meta.error(crate::ops::write::Failure::NotFound))?;
                T::from_item(item)
            }
            Err(Error::TransactionCanceled { reasons, .. })
                if !reasons.is_empty() && reasons.iter().all(|r| r.action == other && r.code == "ConditionalCheckFailed") =>
            {
                tracing::debug!(target: "singletable", table, phase = ?phase, "update: the other form is missing or behind; updating the truth alone");
                self.update_one::<T>(truth).await
            }
            Err(e) => Err(e),
        }
    }

    async fn update_one<T: Item>(&self, p: PreparedUpdate) -> Result<T, Error> {
        let PreparedUpdate { key, update, condition, expr, meta } = p;
        let (names, values) = expr.into_maps();
        let result = self
            .table
            .client()
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(key))
            .update_expression(update)
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::AllNew)
            .set_return_values_on_condition_check_failure(meta.return_old())
            .send()
            .await;
        match result {
            Ok(out) => T::from_item(out.attributes.unwrap_or_default()),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => Err(meta.error(meta.explain(c.item()))),
                _ => Err(Error::dynamo("UpdateItem", self.table.name(), e)),
            },
        }
    }

    async fn put_both(&self, old: &EntityDesign, phase: MigrationPhase, prepared: PreparedPut) -> Result<(), Error> {
        let PreparedPut { mut item, condition, expr, meta, .. } = prepared;
        item.insert(WRITE_TOKEN_ATTR.to_string(), AttributeValue::S(write_token()));
        let old_item = Self::old_form_of(meta.entity, old, &item)?;
        let (names, values) = expr.into_maps();
        // The condition (create-only, version) holds on the form reads
        // come from.
        let truth_is_old = phase == MigrationPhase::Expand;
        let put = |item: HashMap<String, AttributeValue>, conditional: bool| -> Result<TransactWriteItem, Error> {
            let mut p = Put::builder().table_name(self.table.name()).set_item(Some(item));
            if conditional && condition.is_some() {
                p = p
                    .set_condition_expression(condition.clone())
                    .set_expression_attribute_names(names.clone())
                    .set_expression_attribute_values(values.clone())
                    .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
            }
            Ok(TransactWriteItem::builder().put(p.build().map_err(|e| Error::build("Put", e))?).build())
        };
        let items = vec![put(old_item, truth_is_old)?, put(item, !truth_is_old)?];
        self.transact(items, meta, Some(usize::from(!truth_is_old))).await
    }

    /// The old form of an encoded new-form item: the new design's key
    /// attributes replaced by the old design's.
    fn old_form_of(
        new: &EntityDesign,
        old: &EntityDesign,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<HashMap<String, AttributeValue>, Error> {
        let mut out = item.clone();
        for key in new.key_designs() {
            out.remove(key.attr.as_ref());
        }
        for (attr, value) in old.render_keys(&out)? {
            out.insert(attr, AttributeValue::S(value));
        }
        Ok(out)
    }

    /// Sends a transaction of one item's two forms, again after a
    /// conflict with another transaction (bounded); a failed condition of
    /// action `truth` is explained as the single write's would be.
    async fn transact(&self, items: Vec<TransactWriteItem>, meta: WriteMeta, truth: Option<usize>) -> Result<(), Error> {
        let table = self.table.name();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.table.client().transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let e = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(c)) = e.as_service_error() else {
                return Err(Error::dynamo("TransactWriteItems (both forms)", table, e));
            };
            let codes: Vec<&str> = c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
            if let Some(i) = truth {
                if let Some(r) = c.cancellation_reasons().get(i).filter(|r| r.code() == Some("ConditionalCheckFailed")) {
                    return Err(meta.error(meta.explain(r.item())));
                }
            }
            let conflict_only = codes.iter().all(|c| matches!(*c, "None" | "TransactionConflict"));
            if conflict_only && attempt < CONFLICT_ATTEMPTS {
                tracing::debug!(target: "singletable", table, attempt, "both-forms write cancelled by a conflicting transaction; sending it again");
                tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
                continue;
            }
            let reasons = c
                .cancellation_reasons()
                .iter()
                .enumerate()
                .filter(|(_, r)| r.code().is_some_and(|code| code != "None"))
                .map(|(i, r)| cancel_reason(i, &meta, r))
                .collect();
            return Err(Error::TransactionCanceled { table: table.to_string(), reasons });
        }
    }
}
