//! The C API declared in `include/krmx.h` (generated from this module by cbindgen).
//!
//! Conventions (from rustls-ffi, ENet and GameNetworkingSockets): opaque handles made by `_new`
//! and released by `_free`; every call returns a numbered `KrmxResult`; a thread-local message
//! explains the last error; every export runs inside a panic boundary; events are plain structs
//! whose strings the handle owns until the next poll.

pub mod client;
pub mod event;
mod handles;
pub mod result;
pub mod server;
mod strings;

use std::ffi::c_char;

/// The library's version ("0.1.0"), matching `KRMX_VERSION` in the header. Static; never freed.
#[no_mangle]
pub extern "C" fn krmx_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
