//! Compile-time tests of `#[derive(Aggregate)]`: what it accepts, and the errors it reports
//! on misuse (each pinned in a `.stderr` next to its case).
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test ui`, then read
//! every changed `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
