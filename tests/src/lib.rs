//! Shared code for the cross-component tests: the test-vector generator lives here so the checked-in
//! vectors and the test that checks them are made by one piece of code.

pub mod vectors;
