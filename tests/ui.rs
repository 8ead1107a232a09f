//! Compile-time checks of `#[cached]`: every misuse is an error that points at the user's code
//! and says what to do (`tests/ui/fail`), and the supported shapes compile without warnings
//! (`tests/ui/pass`). Regenerate the expected output with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
