//! The one poison-recovering lock helper of the workspace.
//!
//! Every `std::sync::Mutex` in the client guards state that stays consistent even when a
//! holder panicked (a panicking response callback, say): each critical section either finishes
//! its update or leaves the previous value. So a poisoned lock is simply taken over, instead
//! of spreading the panic to every later caller.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking over a lock that a panicking holder poisoned.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_over() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = std::sync::Arc::clone(&m);
        let r = std::thread::spawn(move || {
            let _g = lock(&m2);
            panic!("poison it");
        })
        .join();
        assert!(r.is_err());
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
