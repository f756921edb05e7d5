//! Result codes, the thread-local last error, and the panic boundary every export goes through.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{Error, ErrorKind};

/// The result of every call. Numbers are stable and never reused.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum KrmxResult {
    /// Success. From a poll: an event was written.
    KRMX_OK = 0,
    /// From a poll: no event arrived within the timeout (not an error).
    KRMX_NO_EVENT = 1,
    /// A required pointer argument was NULL.
    KRMX_ERR_NULL_ARGUMENT = 2,
    /// An argument is out of range or malformed.
    KRMX_ERR_INVALID_ARGUMENT = 3,
    /// A string argument is not valid UTF-8.
    KRMX_ERR_INVALID_UTF8 = 4,
    /// A payload is not valid JSON text.
    KRMX_ERR_INVALID_JSON = 5,
    /// A message type starts with the reserved `krmx/` prefix.
    KRMX_ERR_RESERVED_TYPE = 6,
    /// No user by that name.
    KRMX_ERR_UNKNOWN_USER = 7,
    /// The user exists but is not linked to a connection.
    KRMX_ERR_USER_NOT_LINKED = 8,
    /// A user by that name already exists.
    KRMX_ERR_USER_EXISTS = 9,
    /// The username does not meet the username rule.
    KRMX_ERR_INVALID_USERNAME = 10,
    /// Not possible in the current status (for example: sending before listening).
    KRMX_ERR_WRONG_STATUS = 11,
    /// No pending authentication request has that id (answered, timed out, or its connection closed).
    KRMX_ERR_UNKNOWN_REQUEST = 12,
    /// The operating system refused (a port already taken, an address that is not local, ...).
    KRMX_ERR_IO = 13,
    /// A caller-provided buffer is too small; the needed length was written where asked.
    KRMX_ERR_BUFFER_TOO_SMALL = 14,
    /// The handle is not a live handle of this kind (already freed, or not made by this library).
    KRMX_ERR_INVALID_HANDLE = 15,
    /// A bug inside the library was caught at the boundary; the handle should be freed.
    KRMX_ERR_PANIC = 16,
    /// A configured limit is reached (for example `max_users` on `krmx_server_join`).
    KRMX_ERR_LIMIT_REACHED = 17,
}

use KrmxResult::*;

impl From<ErrorKind> for KrmxResult {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidArgument => KRMX_ERR_INVALID_ARGUMENT,
            ErrorKind::InvalidUtf8 => KRMX_ERR_INVALID_UTF8,
            ErrorKind::InvalidJson => KRMX_ERR_INVALID_JSON,
            ErrorKind::ReservedType => KRMX_ERR_RESERVED_TYPE,
            ErrorKind::UnknownUser => KRMX_ERR_UNKNOWN_USER,
            ErrorKind::UserNotLinked => KRMX_ERR_USER_NOT_LINKED,
            ErrorKind::UserExists => KRMX_ERR_USER_EXISTS,
            ErrorKind::InvalidUsername => KRMX_ERR_INVALID_USERNAME,
            ErrorKind::WrongStatus => KRMX_ERR_WRONG_STATUS,
            ErrorKind::UnknownRequest => KRMX_ERR_UNKNOWN_REQUEST,
            ErrorKind::Io => KRMX_ERR_IO,
            ErrorKind::LimitReached => KRMX_ERR_LIMIT_REACHED,
        }
    }
}

/// An error at the boundary: a code and a message for humans.
pub struct FfiError {
    pub code: KrmxResult,
    pub message: String,
}

impl FfiError {
    pub fn new(code: KrmxResult, message: impl Into<String>) -> Self {
        FfiError { code, message: message.into() }
    }
    pub fn null(argument: &str) -> Self {
        FfiError::new(KRMX_ERR_NULL_ARGUMENT, format!("{argument} must not be NULL"))
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError { code: e.kind.into(), message: e.message }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
}

/// Runs an export's body: errors become codes plus a last-error message, panics become
/// `KRMX_ERR_PANIC`. Nothing unwinds into the caller.
pub fn guard(function: &str, body: impl FnOnce() -> Result<KrmxResult, FfiError>) -> KrmxResult {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code)) => code,
        Ok(Err(error)) => {
            set_last_error(&format!("{function}: {}", error.message));
            error.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("{function}: internal error: {what}"));
            KRMX_ERR_PANIC
        }
    }
}

/// The message of the last error on the calling thread, as NUL-terminated UTF-8; `""` when no
/// call on this thread has failed yet. The pointer is valid until the next failing call on this
/// thread. Never NULL; never needs freeing.
#[no_mangle]
pub extern "C" fn krmx_last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// The name of a result code (`"KRMX_ERR_UNKNOWN_USER"`), or `"KRMX_UNKNOWN_RESULT"` for a number
/// this version does not know. A static string: never freed, valid forever.
#[no_mangle]
pub extern "C" fn krmx_result_name(result: i32) -> *const c_char {
    let name: &'static [u8] = match result {
        0 => b"KRMX_OK\0",
        1 => b"KRMX_NO_EVENT\0",
        2 => b"KRMX_ERR_NULL_ARGUMENT\0",
        3 => b"KRMX_ERR_INVALID_ARGUMENT\0",
        4 => b"KRMX_ERR_INVALID_UTF8\0",
        5 => b"KRMX_ERR_INVALID_JSON\0",
        6 => b"KRMX_ERR_RESERVED_TYPE\0",
        7 => b"KRMX_ERR_UNKNOWN_USER\0",
        8 => b"KRMX_ERR_USER_NOT_LINKED\0",
        9 => b"KRMX_ERR_USER_EXISTS\0",
        10 => b"KRMX_ERR_INVALID_USERNAME\0",
        11 => b"KRMX_ERR_WRONG_STATUS\0",
        12 => b"KRMX_ERR_UNKNOWN_REQUEST\0",
        13 => b"KRMX_ERR_IO\0",
        14 => b"KRMX_ERR_BUFFER_TOO_SMALL\0",
        15 => b"KRMX_ERR_INVALID_HANDLE\0",
        16 => b"KRMX_ERR_PANIC\0",
        17 => b"KRMX_ERR_LIMIT_REACHED\0",
        _ => b"KRMX_UNKNOWN_RESULT\0",
    };
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn panics_and_errors_become_codes_and_messages() {
        assert_eq!(guard("f", || panic!("boom")), KRMX_ERR_PANIC);
        let message = unsafe { CStr::from_ptr(krmx_last_error()) }.to_str().unwrap().to_string();
        assert_eq!(message, "f: internal error: boom");
        assert_eq!(guard("g", || Err(FfiError::null("name"))), KRMX_ERR_NULL_ARGUMENT);
        let message = unsafe { CStr::from_ptr(krmx_last_error()) }.to_str().unwrap().to_string();
        assert_eq!(message, "g: name must not be NULL");
    }

    #[test]
    fn every_code_has_its_name() {
        for code in 0..=17 {
            let name = unsafe { CStr::from_ptr(krmx_result_name(code)) }.to_str().unwrap();
            assert!(name.starts_with("KRMX_") && name != "KRMX_UNKNOWN_RESULT", "{code}");
        }
        assert_eq!(unsafe { CStr::from_ptr(krmx_result_name(18)) }.to_str().unwrap(), "KRMX_UNKNOWN_RESULT");
        assert_eq!(unsafe { CStr::from_ptr(krmx_result_name(-1)) }.to_str().unwrap(), "KRMX_UNKNOWN_RESULT");
    }
}
