//! The registry of live handles. A handle is checked against it before it is touched, so a
//! freed handle, a handle of the other kind or a stray pointer is an error code, never a read of
//! memory that is not ours.

use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};

/// What a handle points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandleKind {
    Server,
    Client,
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

/// Whether `ptr` is a live handle of `kind`.
pub fn is_live<T>(ptr: *const T, kind: HandleKind) -> bool {
    LIVE.read().unwrap_or_else(|e| e.into_inner()).contains(&key(ptr, kind))
}

/// Unregisters `ptr` and gives back ownership, if it was a live handle of `kind`.
///
/// # Safety
/// `ptr` was returned by [`register`] with the same `T` and `kind` (checked through the registry).
pub unsafe fn unregister<T>(ptr: *mut T, kind: HandleKind) -> Option<Box<T>> {
    let removed = LIVE.write().unwrap_or_else(|e| e.into_inner()).remove(&key(ptr, kind));
    // SAFETY: only pointers made by `register` for this kind are in the registry.
    removed.then(|| unsafe { Box::from_raw(ptr) })
}
