//! QR codes: rendering a ticket's text as SVG/PNG and reading QR codes back out of camera frames.

pub mod corpus;
pub mod decode;
pub mod render;
