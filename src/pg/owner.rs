//! The one place segplan acts with its owner's privileges from Rust: reading contacts made and
//! reserved by every brand, so a cap "at most 3 contacts a week across all brands" counts what the
//! caller's brands cannot see, and taking the reservation locks. It is what a SECURITY DEFINER
//! function does (PostgreSQL's own SetUserIdAndSecContext), limited to statements segplan builds
//! itself over its own tables, with values as parameters, under the pinned search_path
//! (`pg_catalog, pg_temp`) every segplan function runs with. It also reads and writes the shared
//! leaf cache (src/pg/leaf_cache.rs), only under the caller's own role and settings, and the ids
//! of contact keys the caller's own statements returned (src/pg/dense_ids.rs). Customer tables
//! are never read here.
use super::catalog::extension_owner;
use pgrx::prelude::*;

/// Puts the caller back when dropped, also when an error unwinds through (a transaction or
/// subtransaction abort restores it as well).
struct Restore {
    user: pg_sys::Oid,
    context: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}

/// Runs `f` as segplan's owner.
pub fn as_owner<T>(f: impl FnOnce() -> T) -> T {
    let owner = extension_owner();
    let mut user = pg_sys::InvalidOid;
    let mut context = 0;
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    let _restore = Restore { user, context };
    unsafe { pg_sys::SetUserIdAndSecContext(owner, context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32) };
    f()
}
