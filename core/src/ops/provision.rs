//! Provisioning: the table a [`TableDesign`](crate::TableDesign) describes,
//! created ([`Table::create_table`]) or checked and completed
//! ([`Table::ensure`]), with what was done, what differs and what the
//! endpoint could not do returned as data. The library never prints.

use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    PointInTimeRecoveryStatus, Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use crate::design::StreamView;
use crate::error::Error;
use crate::table::Table;

/// A change made to the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// The table was created (key schema, attributes, every GSI).
    CreatedTable,
    /// The stream was turned on.
    EnabledStream {
        /// What its records carry.
        view: StreamView,
    },
    /// Time to live was turned on.
    EnabledTtl {
        /// The attribute it reads.
        attribute: String,
    },
    /// Point-in-time recovery was turned on.
    EnabledPointInTimeRecovery,
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Applied::CreatedTable => f.write_str("created the table"),
            Applied::EnabledStream { view } => write!(f, "turned on the stream ({})", view.as_str()),
            Applied::EnabledTtl { attribute } => write!(f, "turned on time to live on `{attribute}`"),
            Applied::EnabledPointInTimeRecovery => f.write_str("turned on point-in-time recovery"),
        }
    }
}

/// A difference between the design and the live table that
/// [`Table::ensure`] does not change by itself: key schemas cannot change,
/// index changes need a backfill (`singletable migrate`), and switching a
/// stream or TTL off (or to another view or attribute) could break what
/// depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Drift {
    /// The table's key schema differs (it can never change in place).
    KeySchema {
        /// `(partition key, sort key)` of the design.
        expected: (String, String),
        /// Partition and sort key attributes of the live table.
        found: (Vec<String>, Vec<String>),
    },
    /// A key attribute is not of type S.
    KeyType {
        /// The attribute.
        attribute: String,
        /// Its live type.
        found: String,
    },
    /// An index of the design does not exist.
    MissingIndex {
        /// The index.
        name: String,
    },
    /// An index exists with other key attributes.
    IndexKeys {
        /// The index.
        name: String,
        /// `(partition key, sort key)` of the design.
        expected: (String, Option<String>),
        /// Partition and sort key attributes of the live index.
        found: (Vec<String>, Vec<String>),
    },
    /// The live table has an index the design lacks.
    ExtraIndex {
        /// The index.
        name: String,
    },
    /// The stream differs.
    Stream {
        /// The design's.
        expected: Option<StreamView>,
        /// The live table's (`None`: off).
        found: Option<StreamView>,
    },
    /// Time to live differs.
    Ttl {
        /// The design's attribute.
        expected: Option<String>,
        /// The live attribute (`None`: off).
        found: Option<String>,
    },
    /// Point-in-time recovery is on though the design leaves it off.
    PointInTimeRecovery {
        /// The design's.
        expected: bool,
        /// The live table's.
        found: bool,
    },
}

fn keys(pair: &(Vec<String>, Vec<String>)) -> String {
    format!("({}, {})", pair.0.join("+"), if pair.1.is_empty() { "-".to_string() } else { pair.1.join("+") })
}

fn view(v: &Option<StreamView>) -> &'static str {
    v.map_or("off", StreamView::as_str)
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::KeySchema { expected, found } => {
                write!(f, "key schema is {}, the design says ({}, {}); a key schema never changes: copy into a new table (singletable migrate)", keys(found), expected.0, expected.1)
            }
            Drift::KeyType { attribute, found } => write!(f, "key attribute `{attribute}` is of type {found}, the design needs S"),
            Drift::MissingIndex { name } => write!(f, "index `{name}` is missing; add it with its backfill (singletable migrate)"),
            Drift::IndexKeys { name, expected, found } => write!(
                f,
                "index `{name}` is keyed {}, the design says ({}, {})",
                keys(found),
                expected.0,
                expected.1.as_deref().unwrap_or("-")
            ),
            Drift::ExtraIndex { name } => write!(f, "index `{name}` is not in the design"),
            Drift::Stream { expected, found } => write!(f, "stream is {}, the design says {}", view(found), view(expected)),
            Drift::Ttl { expected, found } => write!(
                f,
                "time to live is {}, the design says {}",
                found.as_deref().map_or("off".to_string(), |a| format!("on `{a}`")),
                expected.as_deref().map_or("off".to_string(), |a| format!("on `{a}`"))
            ),
            Drift::PointInTimeRecovery { expected, found } => write!(
                f,
                "point-in-time recovery is {}, the design says {}",
                if *found { "on" } else { "off" },
                if *expected { "on" } else { "off" }
            ),
        }
    }
}

/// What [`Table::create_table`] or [`Table::ensure`] did and found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProvisionReport {
    /// The table.
    pub table: String,
    /// Changes made, in order.
    pub applied: Vec<Applied>,
    /// Differences left as they are.
    pub drift: Vec<Drift>,
    /// What the endpoint could not do or tell (e.g. point-in-time
    /// recovery on DynamoDB Local).
    pub warnings: Vec<String>,
}

impl ProvisionReport {
    /// Whether the table was created.
    pub fn created(&self) -> bool {
        self.applied.contains(&Applied::CreatedTable)
    }

    /// Whether the live table matches the design (after the changes made).
    pub fn in_sync(&self) -> bool {
        self.drift.is_empty()
    }
}

impl fmt::Display for ProvisionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table `{}`:", self.table)?;
        if self.applied.is_empty() && self.drift.is_empty() && self.warnings.is_empty() {
            return f.write_str(" matches the design, nothing to do");
        }
        for a in &self.applied {
            write!(f, "\n  + {a}")?;
        }
        for d in &self.drift {
            write!(f, "\n  ~ {d}")?;
        }
        for w in &self.warnings {
            write!(f, "\n  ! {w}")?;
        }
        Ok(())
    }
}

pub(crate) fn stream_spec(view: Option<StreamView>) -> Result<StreamSpecification, Error> {
    let b = match view {
        Some(v) => StreamSpecification::builder().stream_enabled(true).stream_view_type(StreamViewType::from(v.as_str())),
        None => StreamSpecification::builder().stream_enabled(false),
    };
    b.build().map_err(|e| Error::build("StreamSpecification", e))
}

fn live_view(v: &StreamViewType) -> Option<StreamView> {
    Some(match v {
        StreamViewType::KeysOnly => StreamView::KeysOnly,
        StreamViewType::NewImage => StreamView::NewImage,
        StreamViewType::OldImage => StreamView::OldImage,
        StreamViewType::NewAndOldImages => StreamView::NewAndOldImages,
        _ => return None,
    })
}

/// Whether an SDK error is the endpoint not knowing the operation.
fn unknown_operation<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
{
    e.as_service_error().and_then(|s| s.code()).is_some_and(|c| c.contains("UnknownOperation"))
}

impl Table {
    /// Settings applied right after CreateTable (the stream is part of it).
    pub(crate) async fn after_create(&self) -> Result<ProvisionReport, Error> {
        let mut report = ProvisionReport { table: self.name().to_string(), ..Default::default() };
        report.applied.push(Applied::CreatedTable);
        let s = &self.design().settings;
        if let Some(view) = s.stream {
            report.applied.push(Applied::EnabledStream { view });
        }
        if let Some(attr) = &s.ttl_attribute {
            self.enable_ttl(attr).await?;
            report.applied.push(Applied::EnabledTtl { attribute: attr.clone() });
        }
        if s.point_in_time_recovery {
            self.enable_pitr(&mut report).await?;
        }
        Ok(report)
    }

    async fn enable_ttl(&self, attr: &str) -> Result<(), Error> {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(attr)
            .enabled(true)
            .build()
            .map_err(|e| Error::build("TimeToLiveSpecification", e))?;
        self.client()
            .update_time_to_live()
            .table_name(self.name())
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| Error::dynamo("UpdateTimeToLive", self.name(), e))?;
        Ok(())
    }

    async fn enable_pitr(&self, report: &mut ProvisionReport) -> Result<(), Error> {
        let spec = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()
            .map_err(|e| Error::build("PointInTimeRecoverySpecification", e))?;
        match self.client().update_continuous_backups().table_name(self.name()).point_in_time_recovery_specification(spec).send().await {
            Ok(_) => report.applied.push(Applied::EnabledPointInTimeRecovery),
            Err(e) if unknown_operation(&e) => report.warnings.push(
                "point-in-time recovery requested, but this endpoint does not support it (UpdateContinuousBackups: UnknownOperationException, as on DynamoDB Local); left off".into(),
            ),
            Err(e) => return Err(Error::dynamo("UpdateContinuousBackups", self.name(), e)),
        }
        Ok(())
    }

    /// Makes the live table match the design as far as that is safe, and
    /// reports the rest: creates the table if it does not exist (see
    /// [`Table::create_table`]); otherwise turns on a missing stream, time
    /// to live or point-in-time recovery, and reports as [`Drift`] what it
    /// leaves alone (key schema, indexes — a new index needs the backfill
    /// `singletable migrate` does — and settings that are on but differ).
    /// Running it again changes nothing.
    ///
    /// ```no_run
    /// # async fn demo(table: singletable::Table) -> Result<(), singletable::Error> {
    /// let report = table.ensure().await?;
    /// for drift in &report.drift {
    ///     eprintln!("{}: {drift}", table.name());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ensure(&self) -> Result<ProvisionReport, Error> {
        let described = self.client().describe_table().table_name(self.name()).send().await;
        let live = match described {
            Ok(out) => out.table,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => None,
            Err(e) => return Err(Error::dynamo("DescribeTable", self.name(), e)),
        };
        let Some(live) = live else {
            return self.create_table().await;
        };
        self.wait_active().await?;
        let mut report = ProvisionReport { table: self.name().to_string(), ..Default::default() };
        self.compare_keys(&live, &mut report);
        self.ensure_stream(&live, &mut report).await?;
        self.ensure_ttl(&mut report).await?;
        self.ensure_pitr(&mut report).await?;
        Ok(report)
    }

    fn compare_keys(&self, live: &TableDescription, report: &mut ProvisionReport) {
        let d = self.design();
        let of = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> (Vec<String>, Vec<String>) {
            let pick = |kind: KeyType| schema.iter().filter(|k| k.key_type == kind).map(|k| k.attribute_name.clone()).collect();
            (pick(KeyType::Hash), pick(KeyType::Range))
        };
        let found = of(live.key_schema());
        if found.0 != [d.pk_attr.clone()] || found.1 != [d.sk_attr.clone()] {
            report.drift.push(Drift::KeySchema { expected: (d.pk_attr.clone(), d.sk_attr.clone()), found });
        }
        let mut key_attrs: Vec<&str> = vec![&d.pk_attr, &d.sk_attr];
        for i in &d.indexes {
            key_attrs.push(&i.pk_attr);
            key_attrs.extend(i.sk_attr.as_deref());
        }
        for def in live.attribute_definitions() {
            if key_attrs.contains(&def.attribute_name.as_str()) && def.attribute_type != ScalarAttributeType::S {
                report.drift.push(Drift::KeyType { attribute: def.attribute_name.clone(), found: def.attribute_type.as_str().to_string() });
            }
        }
        let live_indexes = live.global_secondary_indexes();
        for wanted in &d.indexes {
            match live_indexes.iter().find(|g| g.index_name() == Some(wanted.name.as_str())) {
                None => report.drift.push(Drift::MissingIndex { name: wanted.name.clone() }),
                Some(g) => {
                    let found = of(g.key_schema());
                    if found.0 != [wanted.pk_attr.clone()] || found.1 != wanted.sk_attr.iter().cloned().collect::<Vec<_>>() {
                        report.drift.push(Drift::IndexKeys {
                            name: wanted.name.clone(),
                            expected: (wanted.pk_attr.clone(), wanted.sk_attr.clone()),
                            found,
                        });
                    }
                }
            }
        }
        for g in live_indexes {
            let name = g.index_name().unwrap_or_default();
            if d.index(name).is_none() {
                report.drift.push(Drift::ExtraIndex { name: name.to_string() });
            }
        }
    }

    async fn ensure_stream(&self, live: &TableDescription, report: &mut ProvisionReport) -> Result<(), Error> {
        let found = live
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type().and_then(live_view));
        let expected = self.design().settings.stream;
        match (expected, found) {
            (Some(view), None) => {
                self.client()
                    .update_table()
                    .table_name(self.name())
                    .stream_specification(stream_spec(Some(view))?)
                    .send()
                    .await
                    .map_err(|e| Error::dynamo("UpdateTable", self.name(), e))?;
                self.wait_active().await?;
                report.applied.push(Applied::EnabledStream { view });
            }
            (e, f) if e != f => report.drift.push(Drift::Stream { expected: e, found: f }),
            _ => {}
        }
        Ok(())
    }

    async fn ensure_ttl(&self, report: &mut ProvisionReport) -> Result<(), Error> {
        let out = self
            .client()
            .describe_time_to_live()
            .table_name(self.name())
            .send()
            .await
            .map_err(|e| Error::dynamo("DescribeTimeToLive", self.name(), e))?;
        let found = out
            .time_to_live_description()
            .filter(|t| matches!(t.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)))
            .and_then(|t| t.attribute_name().map(str::to_string));
        let expected = self.design().settings.ttl_attribute.clone();
        match (&expected, &found) {
            (Some(attr), None) => {
                self.enable_ttl(attr).await?;
                report.applied.push(Applied::EnabledTtl { attribute: attr.clone() });
            }
            (e, f) if e != f => report.drift.push(Drift::Ttl { expected, found }),
            _ => {}
        }
        Ok(())
    }

    async fn ensure_pitr(&self, report: &mut ProvisionReport) -> Result<(), Error> {
        let expected = self.design().settings.point_in_time_recovery;
        let found = match self.client().describe_continuous_backups().table_name(self.name()).send().await {
            Ok(out) => out
                .continuous_backups_description()
                .and_then(|c| c.point_in_time_recovery_description())
                .and_then(|p| p.point_in_time_recovery_status())
                .is_some_and(|s| *s == PointInTimeRecoveryStatus::Enabled),
            Err(e) if unknown_operation(&e) => {
                if expected {
                    report.warnings.push(
                        "point-in-time recovery requested, but this endpoint does not support it (DescribeContinuousBackups: UnknownOperationException, as on DynamoDB Local); left unchecked".into(),
                    );
                }
                return Ok(());
            }
            Err(e) => return Err(Error::dynamo("DescribeContinuousBackups", self.name(), e)),
        };
        match (expected, found) {
            (true, false) => self.enable_pitr(report).await?,
            (false, true) => report.drift.push(Drift::PointInTimeRecovery { expected, found }),
            _ => {}
        }
        Ok(())
    }
}


impl Table {
    /// Creates the table from the design: key schema, attribute
    /// definitions, every GSI (on-demand capacity, projection ALL) and the
    /// stream; waits until it is ACTIVE, then turns on time to live and
    /// point-in-time recovery as the design's settings ask. Where the
    /// endpoint lacks an API (DynamoDB Local has no point-in-time
    /// recovery) the report carries a warning instead. See also
    /// [`Table::ensure`].
    pub async fn create_table(&self) -> Result<crate::ops::provision::ProvisionReport, Error> {
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
                    .map_err(|e| Error::build("AttributeDefinition", e))?,
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
            req = req.global_secondary_indexes(gsi.build().map_err(|e| Error::build("GlobalSecondaryIndex", e))?);
        }
        if let Some(view) = d.settings.stream {
            req = req.stream_specification(crate::ops::provision::stream_spec(Some(view))?);
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
}

fn key_element(attr: &str, kind: KeyType) -> Result<KeySchemaElement, Error> {
    KeySchemaElement::builder()
        .attribute_name(attr)
        .key_type(kind)
        .build()
        .map_err(|e| Error::build("KeySchemaElement", e))
}
