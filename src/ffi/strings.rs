//! Reading the caller's strings and writing into the caller's buffers.

use std::ffi::{c_char, CStr};

use super::result::{FfiError, KrmxResult};
use crate::proto::message::MessageError;
use crate::{Message, User};

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the duration of the call.
pub unsafe fn required<'a>(ptr: *const c_char, argument: &str) -> Result<&'a str, FfiError> {
    optional(ptr, argument)?.ok_or_else(|| FfiError::null(argument))
}

/// An optional string argument: NULL means absent.
///
/// # Safety
/// As for [`required`].
pub unsafe fn optional<'a>(ptr: *const c_char, argument: &str) -> Result<Option<&'a str>, FfiError> {
    if ptr.is_null() {
        return Ok(None);
    }
    CStr::from_ptr(ptr).to_str().map(Some).map_err(|e| {
        FfiError::new(KrmxResult::KRMX_ERR_INVALID_UTF8, format!("{argument} is not valid UTF-8: {e}"))
    })
}

/// A custom message from the `message_type` and `payload_json` arguments (NULL payload: none);
/// errors name those arguments.
///
/// # Safety
/// As for [`required`].
pub unsafe fn custom_message(message_type: *const c_char, payload_json: *const c_char) -> Result<Message, FfiError> {
    let kind = required(message_type, "message_type")?;
    let payload = optional(payload_json, "payload_json")?;
    Message::custom_from_json(kind, payload).map_err(|e| match e {
        MessageError::InvalidPayload(why) => {
            FfiError::new(KrmxResult::KRMX_ERR_INVALID_JSON, format!("payload_json is not valid JSON: {why}"))
        }
        other => crate::Error::from(other).into(),
    })
}

/// Copies `text` and a terminating NUL into `buffer` (the argument named `argument`) of
/// `capacity` bytes; writes the text's length (without the NUL) to `length` if it is not NULL. A
/// buffer that is too small gets nothing and the call fails with `KRMX_ERR_BUFFER_TOO_SMALL` (the
/// length is still written).
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` bytes of writing; `length` is NULL or valid.
pub unsafe fn copy_out(
    text: &str,
    buffer: *mut c_char,
    argument: &str,
    capacity: usize,
    length: *mut usize,
) -> Result<(), FfiError> {
    if !length.is_null() {
        *length = text.len();
    }
    if buffer.is_null() {
        return Err(FfiError::null(argument));
    }
    if capacity < text.len() + 1 {
        return Err(FfiError::new(
            KrmxResult::KRMX_ERR_BUFFER_TOO_SMALL,
            format!("{argument} of {capacity} bytes cannot hold {} bytes and a NUL", text.len()),
        ));
    }
    std::ptr::copy_nonoverlapping(text.as_ptr(), buffer.cast::<u8>(), text.len());
    *buffer.add(text.len()) = 0;
    Ok(())
}

/// Copies out user `index` of a user table, as `krmx_server_user` and `krmx_client_user` document:
/// the name into `buffer`, whether it is linked into `is_linked` (if not NULL).
///
/// # Safety
/// As for [`copy_out`]; `is_linked` is NULL or valid for writing.
pub unsafe fn copy_user(
    user: Option<User>,
    index: usize,
    buffer: *mut c_char,
    capacity: usize,
    length: *mut usize,
    is_linked: *mut bool,
) -> Result<(), FfiError> {
    let user = user.ok_or_else(|| {
        FfiError::new(KrmxResult::KRMX_ERR_INVALID_ARGUMENT, format!("there is no user at index {index}"))
    })?;
    if let Some(is_linked) = is_linked.as_mut() {
        *is_linked = user.is_linked;
    }
    copy_out(&user.username, buffer, "username", capacity, length)
}
