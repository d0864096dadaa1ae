//! The Sluice server: the RESP front end over the [`sluice`] engine.
//!
//! Data path: [`frontend`] (framing, commands) → [`sluice::Sluice`] (keyspace → policy →
//! tiers). [`server`] owns the listener, connection limits and graceful shutdown.
//!
//! Layers, top first; a module uses only modules below it:
//! `server` → `http` (the metrics and health listener) and `frontend::connection` →
//! `frontend::cmd` → `state` → leaves (`auth`, `tls`,
//! `glob`, `frontend::parse`, `frontend::frame`) → `config` (the file, split into the engine's
//! settings and the server's) → the `sluice` engine.

pub mod auth;
pub mod bench;
pub mod config;
pub mod frontend;
pub mod glob;
pub mod http;
pub mod script;
pub mod server;
pub mod state;
pub mod status;
pub mod tls;

pub use server::Server;
