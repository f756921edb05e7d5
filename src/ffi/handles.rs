//! The registry of live handles. A handle is checked against it before it is touched, so a
//! freed handle, a handle of the other kind or a stray pointer is an error code, never a read of
//! memory that is not ours.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, RwLock};

use super::result::{FfiError, KrmxResult};
use crate::proto::id_map::IdBuildHasher;

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

static LIVE: LazyLock<RwLock<HashSet<(usize, HandleKind), IdBuildHasher>>> = LazyLock::new(RwLock::default);

/// The registry keeps addresses disguised: a handle the host forgets to free must still look
/// unreachable to leak checkers (LeakSanitizer, valgrind) scanning our memory for pointers.
fn key<T>(ptr: *const T, kind: HandleKind) -> (usize, HandleKind) {
    (!(ptr as usize), kind)
}

/// Makes `value` a live handle of `kind`; the pointer is what the host holds.
pub fn register<T>(value: T, kind: HandleKind) -> *mut T {
    let ptr = Arc::into_raw(Arc::new(value)).cast_mut();
    LIVE.write().unwrap_or_else(|e| e.into_inner()).insert(key(ptr, kind));
    ptr
}

/// The live handle behind `ptr`, or the error that explains why there is none. The handle stays
/// alive while the returned reference does: a host that frees it on another thread meanwhile (a
/// bug the library survives) releases it only when this call is done.
///
/// # Safety
/// `ptr` is NULL or any pointer: it is only compared with the registry until found there.
pub unsafe fn live<T>(ptr: *const T, kind: HandleKind) -> Result<Arc<T>, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(kind.name()));
    }
    let live = LIVE.read().unwrap_or_else(|e| e.into_inner());
    if !live.contains(&key(ptr, kind)) {
        return Err(kind.not_live());
    }
    // SAFETY: the registry holds only pointers made by `register` for this kind, and owns one
    // strong count of each until `free` takes it out, which needs the write lock we exclude.
    unsafe {
        Arc::increment_strong_count(ptr);
        Ok(Arc::from_raw(ptr))
    }
}

/// Releases a handle made by [`register`]: NULL does nothing; anything that is not a live handle
/// of `kind` (freed already, or of the other kind) is an error. `wake` is given the handle first,
/// to end a poll another thread may be waiting in; the handle is dropped here, or when the last
/// call still using it returns.
pub fn free<T>(ptr: *mut T, kind: HandleKind, wake: impl FnOnce(&T)) -> Result<(), FfiError> {
    if ptr.is_null() {
        return Ok(());
    }
    let removed = LIVE.write().unwrap_or_else(|e| e.into_inner()).remove(&key(ptr, kind));
    if !removed {
        return Err(kind.not_live());
    }
    // SAFETY: the pointer came from `Arc::into_raw` in `register`; removing it from the registry
    // handed us the registry's strong count.
    let handle = unsafe { Arc::from_raw(ptr.cast_const()) };
    wake(&handle);
    drop(handle);
    Ok(())
}
