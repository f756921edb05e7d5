//! The Krmx protocol as pure state machines (sans-IO): no sockets, no threads, no clock reads.
//!
//! Inputs carry the current time where it matters; outputs are frames to write and events for the
//! application. The runtime (`crate::runtime`) moves the bytes; the host-facing API drives these
//! machines from the host's own thread.

pub mod client;
pub mod id_map;
mod link_timer;
pub mod message;
pub mod requirements;
pub mod server;
pub mod username;
pub mod version;

pub use client::{ClientActionError, ClientCore, ClientCoreConfig, ClientEvent, ClientOutput, ClientStatus, ReconnectPolicy};
pub use message::{Message, MessageError};
pub use server::{ConnectionId, Output, ServerCore, ServerCoreConfig, ServerEvent, ServerStatus, User};
