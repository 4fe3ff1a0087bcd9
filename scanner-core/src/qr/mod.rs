//! QR codes: rendering a ticket's text as SVG/PNG and reading QR codes back out of camera frames.

/// The synthetic decode corpus: for tests and the benches only (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub mod corpus;
pub mod decode;
pub mod render;
