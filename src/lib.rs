#![recursion_limit = "256"]
//! fastdfs-rs: a fast, durable, wire-compatible re-implementation of go-fastdfs.
//! See docs/ARCHITECTURE.md for the bird's-eye view and the code map.

pub mod access;
pub mod admission;
pub mod api;
pub mod auth;
pub mod client;
pub mod codec;
pub mod compact;
pub mod config;
pub mod error;
pub mod http;
pub mod image;
pub mod json;
pub mod metrics;
pub mod placement;
pub mod router;
pub mod server;
pub mod store;
pub mod sync;
pub mod sys;
pub mod totp;
pub mod tus;
pub mod worker;

/// Version printed by `fastdfs version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
