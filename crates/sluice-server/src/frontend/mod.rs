//! The RESP front end: framing, replies, connections and commands.

pub mod cmd;
pub mod connection;
pub mod frame;
pub mod parse;

pub use frame::Frame;
