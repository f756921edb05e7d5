//! The registry of live handles. A handle is checked against it before it is touched, so a
//! freed handle, a handle of the other kind or a stray pointer is an error code, never a read of
//! memory that is not ours.

use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};

use super::result::{FfiError, KrmxResult};

/// What a handle points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandleKind {
    Server,
    Client,
}

impl HandleKind {
    fn name(self) -> &'static str {
        match self {
            HandleKind::Server => "server",
            HandleKind::Client => "client",
        }
    }

    fn not_live(self) -> FfiError {
        let name = self.name();
        FfiError::new(KrmxResult::KRMX_ERR_INVALID_HANDLE, format!("{name} is not a live krmx {name} handle"))
    }
}

static LIVE: LazyLock<RwLock<HashSet<(usize, HandleKind)>>> = LazyLock::new(RwLock::default);

/// The registry keeps addresses disguised: a handle the host forgets to free must still look
/// unreachable to leak checkers (LeakSanitizer, valgrind) scanning our memory for pointers.
fn key<T>(ptr: *const T, kind: HandleKind) -> (usize, HandleKind) {
    (!(ptr as usize), kind)
}

/// Boxes `value` and registers the pointer as a live handle of `kind`.
pub fn register<T>(value: T, kind: HandleKind) -> *mut T {
    let ptr = Box::into_raw(Box::new(value));
    LIVE.write().unwrap_or_else(|e| e.into_inner()).insert(key(ptr, kind));
    ptr
}

/// The live handle behind `ptr`, or the error that explains why there is none.
///
/// # Safety
/// The host does not free the handle while the returned reference is in use (the header's rule).
pub unsafe fn live<'a, T>(ptr: *const T, kind: HandleKind) -> Result<&'a T, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(kind.name()));
    }
    if !LIVE.read().unwrap_or_else(|e| e.into_inner()).contains(&key(ptr, kind)) {
        return Err(kind.not_live());
    }
    // SAFETY: the registry holds only live handles of this kind, made by `register`.
    Ok(unsafe { &*ptr })
}

/// Releases a handle made by [`register`]: NULL does nothing; anything that is not a live handle
/// of `kind` (freed already, or of the other kind) is an error.
pub fn free<T>(ptr: *mut T, kind: HandleKind) -> Result<(), FfiError> {
    if ptr.is_null() {
        return Ok(());
    }
    let removed = LIVE.write().unwrap_or_else(|e| e.into_inner()).remove(&key(ptr, kind));
    if !removed {
        return Err(kind.not_live());
    }
    // SAFETY: only pointers made by `register` for this kind are in the registry, and removing it
    // made this the one owner.
    drop(unsafe { Box::from_raw(ptr) });
    Ok(())
}
