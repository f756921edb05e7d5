//! krmx-native: the Krmx realtime multi-user protocol as a library for Rust, C and every host
//! that can call C (C#/Unity, Godot, Vim).
//!
//! - [`proto`]: the protocol as pure state machines (sans-IO).
//! - [`runtime`]: the shared I/O thread (tokio + tungstenite) that moves bytes.
//! - [`Server`] and [`Client`]: the host-facing server and client, driven by polling.
//! - `ffi`: the C API declared in `include/krmx.h`.

pub mod client;
pub mod error;
pub mod ffi;
mod host;
pub mod proto;
pub mod runtime;
pub mod server;

pub use client::{Client, ClientConfig, ClientWaker};
pub use host::Waker;
pub use error::{Error, ErrorKind, Result};
pub use proto::requirements::QueryRequirement;
pub use proto::{ClientEvent, ClientStatus, Message, ReconnectPolicy, ServerEvent, ServerStatus, User};
pub use server::{Server, ServerConfig, ServerWaker};
