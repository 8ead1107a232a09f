//! Library part of the examples: the items web API behind `items_server`, importable by tests
//! and benchmarks.

pub mod items;
