//! Compile-time guarantees, one compile-fail case each in the workspace's `tests/ui/`.
//! The `.stderr` files next to the cases are the documentation of what a user sees.

#[test]
fn compile_errors_read_as_advice() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("../tests/ui/*.rs");
}
