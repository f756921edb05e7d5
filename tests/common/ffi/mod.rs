//! Helpers of the tests that drive the library only through its exported C functions, as a C
//! host does: C strings both ways, the event structs rendered as lines, and harnesses around the
//! handles. Every call goes through the `extern "C"` functions, never the Rust API behind them.

pub mod client;
pub mod events;
pub mod server;

use std::ffi::{c_char, CStr, CString};

use krmx::ffi::result::{krmx_last_error, krmx_result_name, KrmxResult};

/// A C string argument (the text must not contain NUL).
pub fn c(text: &str) -> CString {
    CString::new(text).unwrap()
}

/// `krmx_last_error()`: the message of the last failed call on this thread.
pub fn last_error() -> String {
    unsafe { CStr::from_ptr(krmx_last_error()) }.to_str().unwrap().to_string()
}

/// `krmx_result_name()`: the constant's name of a result code.
pub fn result_name(result: KrmxResult) -> String {
    unsafe { CStr::from_ptr(krmx_result_name(result as i32)) }.to_str().unwrap().to_string()
}

/// A string the library handed out (NULL: `None`), checking that its length field matches: a C
/// host may rely on either.
pub fn text(ptr: *const c_char, len: usize) -> Option<String> {
    if ptr.is_null() {
        assert_eq!(len, 0, "a NULL string has length 0");
        return None;
    }
    let s = unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_string();
    assert_eq!(s.len(), len, "the length field must match the NUL-terminated string");
    Some(s)
}

/// A user table as the harnesses return it: `(username, linked)` in join order.
pub fn users(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(name, linked)| (name.to_string(), *linked)).collect()
}
