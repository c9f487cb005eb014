//! The design as people and other tools read it: `singletable design ...`.
//!
//! Every function here is pure — a [`TableDesign`](singletable::TableDesign)
//! in, text or JSON out — so the CLI stays a thin layer:
//!
//! - [`show`]: the table single-table modelers draw (rows = entities,
//!   columns = key attributes, cells = templates), for a terminal or as
//!   Markdown;
//! - [`workbench`]: AWS NoSQL Workbench data models, exported with sample
//!   items rendered by the real template evaluator, and imported back into
//!   a design where the model allows;
//! - [`iam`]: a least-privilege IAM policy for the table and its indexes;
//! - [`samples`]: the deterministic sample items the export uses.

#[cfg(test)]
pub(crate) mod fixtures;
pub mod iam;
pub mod samples;
pub mod show;
pub mod workbench;
