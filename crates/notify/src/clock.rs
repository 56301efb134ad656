//! The pipeline's one clock: every due time, retry schedule, expiry and attempt time (which the
//! `hooks` crate's auto-disable rule reads) comes from it, on both backends. Wall time by default; a
//! test makes it adjustable and moves it forward, so "a receiver down for a day" takes seconds.
//! Webhook signatures keep wall time: receivers check it against their own clocks.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// How far ahead of wall time this clock is (adjustable clocks only).
    ahead_ms: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// Wall time.
    pub fn system() -> Self {
        Self::default()
    }

    /// Wall time until [`advance`](Self::advance)d; every copy moves together.
    pub fn adjustable() -> Self {
        Self { ahead_ms: Some(Arc::new(AtomicI64::new(0))) }
    }

    /// Moves an adjustable clock forward. Panics on the system clock, which no test may move.
    pub fn advance(&self, by: Duration) {
        let ahead = self.ahead_ms.as_ref().expect("only an adjustable clock can be advanced");
        ahead.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4), Ordering::SeqCst);
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        crate::model::now_ms() + self.ahead_ms.as_ref().map_or(0, |a| a.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_every_copy_and_the_system_clock_cannot_be_moved() {
        let c = Clock::adjustable();
        let copy = c.clone();
        let before = copy.now_ms();
        c.advance(Duration::from_secs(86_400));
        let after = copy.now_ms();
        assert!((86_400_000..86_410_000).contains(&(after - before)), "{}", after - before);
        assert!((Clock::system().now_ms() - crate::model::now_ms()).abs() < 1_000);
        assert!(std::panic::catch_unwind(|| Clock::system().advance(Duration::from_secs(1))).is_err());
    }
}
