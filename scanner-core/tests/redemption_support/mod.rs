//! The shared fixtures (scanner-core's `test-support` feature), under the name these tests use.
#![allow(unused_imports)]

pub use scanner_core::fixtures::*;
