//! What only the data can tell: per-entity counts, sample items before and
//! after, key collisions and items lacking an attribute the new templates
//! need. (Filled by scanning the table.)

use serde::{Deserialize, Serialize};

/// One entity's findings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EntityReport {
    pub entity: String,
    /// Items of this entity in the table.
    pub items: u64,
    /// Items whose keys change.
    pub changing: u64,
    /// Up to three (before, after) key samples, as `attr=value` lines.
    pub samples: Vec<(String, String)>,
    /// Problems that block apply.
    pub errors: Vec<String>,
    /// Estimated write capacity units to apply.
    pub write_units: u64,
}
