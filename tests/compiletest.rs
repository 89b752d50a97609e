//! Mistakes in a schema are compile errors that point at the user's token and say what to
//! do. One minimal case per file in `tests/ui/`, with the expected error beside it.
//! Regenerate the `.stderr` files after an intended message change with
//! `TRYBUILD=overwrite cargo test --test compiletest`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
