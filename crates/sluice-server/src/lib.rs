//! The Sluice server: the RESP front end over the [`sluice`] engine.
//!
//! Data path: [`frontend`] (framing, commands) → [`sluice::Sluice`] (keyspace → policy →
//! tiers). [`server`] owns the listener, connection limits and graceful shutdown.

pub mod auth;
pub mod bench;
pub mod frontend;
pub mod server;
pub mod tls;

pub use server::Server;
