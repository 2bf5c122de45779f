#![recursion_limit = "256"]
//! fastdfs-rs: a fast, durable, wire-compatible re-implementation of go-fastdfs.
//! See docs/ARCHITECTURE.md for the bird's-eye view and the code map.

pub mod access;
pub mod admission;
pub mod alarm;
pub mod api;
pub mod auth;
pub mod client;
pub mod codec;
pub mod compact;
pub mod config;
pub mod error;
pub mod failpoint;
pub mod guesses;
pub mod http;
pub mod image;
pub mod jpeg_dc;
pub mod json;
pub mod logfile;
pub mod md5x;
pub mod metrics;
pub mod migrate;
pub mod placement;
pub mod router;
pub mod s3;
pub mod server;
pub mod store;
pub mod sync;
pub mod sys;
pub mod tls;
pub mod totp;
pub mod tus;
pub mod web;
pub mod worker;

/// Version printed by `fastdfs version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit this binary was built from (build.rs; "unknown" outside a checkout).
pub const GIT_COMMIT: &str = env!("FASTDFS_GIT_COMMIT");
/// When this binary was built, UTC (build.rs; `SOURCE_DATE_EPOCH` when set).
pub const BUILD_TIME: &str = env!("FASTDFS_BUILD_TIME");
