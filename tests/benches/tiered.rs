//! Tiered benchmarks.
fn main() {}
