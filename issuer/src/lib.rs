//! The issuer: catalog, orders without oversell, payments, signed tickets, the email outbox, the admin
//! API and the scanner support endpoints. `main.rs` is a thin command-line shell over [`app::start`] and
//! [`keys::generate`].

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod background;
pub mod backup;
pub mod catalog;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod door;
pub mod edge;
pub mod email;
pub mod error;
pub mod exports;
pub mod extract;
pub mod hub_tokens;
pub mod i18n;
pub mod keys;
pub mod limits;
pub mod orders;
pub mod pages;
pub mod payments;
pub mod scanner;
pub mod selfservice;
pub mod sms;
pub mod staff;
pub mod state;
pub mod sync;
pub mod util;

pub use app::{start, Running};
pub use config::Config;
pub use error::Error;
