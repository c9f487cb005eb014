//! The front end: attributes parsed into a validated model, every error
//! collected with its span.

pub mod collection;
pub mod ctxt;
pub mod model;

/// The template grammar, shared with the runtime evaluator in `singletable`.
#[path = "../../../core/src/template/grammar.rs"]
#[allow(dead_code)]
pub mod grammar;
