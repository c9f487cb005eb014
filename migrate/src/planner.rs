//! Making a plan against a live table: what `singletable migrate plan`
//! does, for the CLI, applications and tools alike.
//!
//! [`make_plan`] reads the live table (DescribeTable) and the design it
//! records, [`diff`]s that (or the old design given, for a table never
//! migrated) against the new design, [`analyze`]s the data and
//! [`fingerprint`]s the table's state. It prints nothing: what the user
//! should hear comes back as [`Note`]s beside the [`Plan`].

use std::fmt;

use aws_sdk_dynamodb::Client;
use singletable::TableDesign;

use crate::analyze::{analyze, AnalyzeOptions};
use crate::error::MigrateError;
use crate::fingerprint::fingerprint;
use crate::live::describe;
use crate::plan::{diff, DefaultValue, Defaults, Plan};
use crate::reserved::read_recorded_design;

/// What to plan: the design to reach and the table to reach it in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlanRequest {
    /// The new design.
    pub design: TableDesign,
    /// The live table (`None`: the design's table). When the table does
    /// not exist yet, or its key schema is the design's, the design is
    /// applied to this table under this name.
    pub table: Option<String>,
    /// The design the table was built with, for a table that records none
    /// (one never migrated by singletable). A recorded design wins over it.
    pub from: Option<TableDesign>,
    /// Values for attributes old items lack (parse them against the new
    /// design with [`parse_default`](crate::analyze::parse_default)).
    pub defaults: Defaults,
    /// Parallel scan segments of the analysis.
    pub segments: u32,
    /// Write budget (WCU per second) to estimate durations at; `None`:
    /// unthrottled.
    pub max_wcu: Option<f64>,
}

impl PlanRequest {
    /// A request to move the design's table to `design`: no old design
    /// given, no defaults, 4 segments, unthrottled.
    pub fn new(design: TableDesign) -> Self {
        PlanRequest { design, table: None, from: None, defaults: Defaults::new(), segments: 4, max_wcu: None }
    }

    /// Plans for the live table `table` instead of the design's.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// The design the table was built with ([`from`](Self::from)), used
    /// when it records none.
    pub fn old_design(mut self, design: TableDesign) -> Self {
        self.from = Some(design);
        self
    }

    /// Values for attributes old items lack.
    pub fn defaults(mut self, defaults: Defaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Parallel scan segments of the analysis.
    pub fn segments(mut self, segments: u32) -> Self {
        self.segments = segments;
        self
    }

    /// Write budget to estimate durations at.
    pub fn max_wcu(mut self, max_wcu: Option<f64>) -> Self {
        self.max_wcu = max_wcu;
        self
    }
}

/// Something worth telling the user about how a plan was made; not a
/// problem of the plan (those are in [`Plan::blocking_errors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// The table records the design it was last migrated to, and it is
    /// not the [`from`](PlanRequest::from) design given: the recorded one
    /// is used.
    RecordedDesignWins { table: String },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::RecordedDesignWins { table } => write!(
                f,
                "table `{table}` records the design it was last migrated to; it is used, and the old design given is ignored"
            ),
        }
    }
}

/// A plan and the notes made while making it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Planned {
    pub plan: Plan,
    pub notes: Vec<Note>,
}

/// Makes a plan as `singletable migrate plan` does; see the
/// [module docs](self). The plan may have blocking errors
/// ([`Plan::blocking_errors`]): it is returned all the same, so that they
/// can be shown.
pub async fn make_plan(client: &Client, request: &PlanRequest) -> Result<Planned, MigrateError> {
    let mut notes = Vec::new();
    let mut new = request.design.clone();
    let table = request.table.clone().unwrap_or_else(|| new.table.clone());
    let live = describe(client, &table).await?;
    let same_keys = live.pk_attr.as_deref() == Some(new.pk_attr.as_str()) && live.sk_attr.as_deref() == Some(new.sk_attr.as_str());
    if !live.exists || same_keys {
        // The design goes to the table named, under that name.
        new.table = table.clone();
    }
    let recorded = match (&live.pk_attr, &live.sk_attr) {
        (Some(pk), Some(sk)) if live.exists => read_recorded_design(client, &table, pk, sk).await?,
        _ => None,
    };
    if let (Some(r), Some(g)) = (&recorded, &request.from) {
        if r.entities != g.entities || r.indexes != g.indexes {
            notes.push(Note::RecordedDesignWins { table: table.clone() });
        }
    }
    let old = recorded.clone().or_else(|| request.from.clone());
    let changes = diff(old.as_ref(), &new, &live)?;
    let opts = AnalyzeOptions { segments: request.segments, defaults: request.defaults.clone(), max_wcu: request.max_wcu };
    let entities = analyze(client, &table, old.as_ref(), &new, &changes, &opts).await?;
    let plan = Plan {
        table,
        from: old,
        to: new,
        changes,
        entities,
        fingerprint: fingerprint(&live, recorded.as_ref()),
        defaults: DefaultValue::from_defaults(&request.defaults)?,
    };
    Ok(Planned { plan, notes })
}
