//! One template grammar: `singletable-derive` carries a copy of
//! `core/src/template/grammar.rs` (a published crate cannot include a file
//! from outside its own directory), and this test keeps the copy
//! byte-identical to the original, so the derive and the runtime evaluator
//! can never read a template differently. Needs no database.

const CORE: &str = include_str!("../../core/src/template/grammar.rs");
const DERIVE: &str = include_str!("../../derive/src/internals/grammar.rs");

#[test]
fn derive_grammar_is_a_byte_identical_copy_of_core_grammar() {
    if CORE == DERIVE {
        return;
    }
    let first_difference = CORE
        .lines()
        .zip(DERIVE.lines())
        .position(|(core, derive)| core != derive)
        .map(|i| {
            format!(
                "first difference at line {}:\n  core:   {:?}\n  derive: {:?}",
                i + 1,
                CORE.lines().nth(i).unwrap_or_default(),
                DERIVE.lines().nth(i).unwrap_or_default(),
            )
        })
        .unwrap_or_else(|| {
            format!(
                "same lines, different length or line endings ({} vs {} bytes)",
                CORE.len(),
                DERIVE.len()
            )
        });
    panic!(
        "derive/src/internals/grammar.rs is no longer a copy of core/src/template/grammar.rs \
         ({first_difference}).\nEdit the grammar in core, then re-sync the derive's copy from the \
         repository root with\n\n    cp core/src/template/grammar.rs derive/src/internals/grammar.rs\n"
    );
}
