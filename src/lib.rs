//! krmx-native: the Krmx realtime multi-user protocol as a library for Rust, C and every host
//! that can call C (C#/Unity, Godot, Vim).
//!
//! - [`proto`]: the protocol as pure state machines (sans-IO).
//! - [`runtime`]: the shared I/O thread (tokio + tungstenite) that moves bytes.
//! - [`Server`]: the host-facing server, driven by polling.
//! - `ffi`: the C API declared in `include/krmx.h`.

pub mod error;
pub mod ffi;
pub mod proto;
pub mod runtime;
pub mod server;

pub use error::{Error, ErrorKind, Result};
pub use proto::requirements::QueryRequirement;
pub use proto::{Message, ServerEvent, ServerStatus, User};
pub use server::{Server, ServerConfig, ServerWaker};
