//! The front end: attributes parsed into a validated model, every error
//! collected with its span.

pub mod collection;
pub mod ctxt;
pub mod model;

/// The template grammar, shared with the runtime evaluator in `singletable`:
/// a byte-identical copy of `core/src/template/grammar.rs`, so that the
/// packaged crate builds on its own. The `grammar_shared` test of the
/// workspace's `tests/` crate fails if the two drift apart; re-sync with
/// `cp core/src/template/grammar.rs derive/src/internals/grammar.rs`.
#[allow(dead_code)]
pub mod grammar;
