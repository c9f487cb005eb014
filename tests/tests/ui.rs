//! Compile-fail tests: every diagnostic `#[derive(Item)]` and
//! `#[derive(Document)]` can emit, with its expected message and span in
//! `tests/ui/*.stderr`.
//!
//! Regenerate the expectations with
//! `TRYBUILD=overwrite cargo test -p singletable-tests --test ui`, then read
//! every changed `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
