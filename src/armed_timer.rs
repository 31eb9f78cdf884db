//! A timer kept armed on each proxy thread's runtime.
//!
//! Tokio wakes its own runtime (a write to its event fd, then one more turn of its event loop)
//! whenever a timer is set earlier than every timer the runtime had when it last went idle.
//! On a runtime idle between requests that is every request's deadline: one wake-up per
//! request for nothing. A timer that always fires within a second keeps the runtime's next
//! wake earlier than any deadline, so setting one wakes nothing.

use std::cell::Cell;
use std::time::Duration;

/// Shorter than any read deadline worth having.
const PERIOD: Duration = Duration::from_secs(1);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

/// Arms the timer of this thread's runtime, once per thread. Called on the request path;
/// outside a runtime it does nothing.
pub fn keep_armed() {
    if ARMED.get() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    ARMED.set(true);
    runtime.spawn(async {
        loop {
            tokio::time::sleep(PERIOD).await;
        }
    });
}
