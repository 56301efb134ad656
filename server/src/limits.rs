//! Per-user caps on what stays open (live event streams) and on what a user stores (bytes per day).
//! (The crypto lab's limits are `app::crypto_api::ssr::LabGate`, password hashing's are
//! `auth::PasswordHasher`'s slots.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt};

/// At most `max` open streams per user on this instance. A slot is taken when a stream starts and
/// given back when the stream is dropped (it ended, or the client went away).
#[derive(Clone)]
pub struct StreamSlots {
    max: usize,
    open: Arc<Mutex<HashMap<i64, usize>>>,
}

impl StreamSlots {
    pub fn new(max: usize) -> Self {
        Self { max, open: Arc::default() }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for `user_id`, or `None` when they already have `max` streams open.
    pub fn try_take(&self, user_id: i64) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user_id).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(StreamSlot { user_id, open: self.open.clone() })
    }

    /// Streams `user_id` has open now.
    pub fn open_for(&self, user_id: i64) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).get(&user_id).copied().unwrap_or(0)
    }
}

/// One open stream's place; dropping it frees the place.
pub struct StreamSlot {
    user_id: i64,
    open: Arc<Mutex<HashMap<i64, usize>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

/// `stream`, holding `slot` for as long as it lives.
pub fn holding<S: Stream>(stream: S, slot: StreamSlot) -> impl Stream<Item = S::Item> {
    stream.map(move |item| {
        let _ = &slot;
        item
    })
}

/// Each user's stored bytes over a rolling day (`limits.stored_bytes_per_day`): the one allowance that
/// notification payloads, workflow inputs and step outputs, and inbound webhooks all draw on.
#[derive(Clone)]
pub struct Storage(Arc<auth::StoredBytes>);

/// A charge [`Storage`] refused: the words for the user, and when to try again.
#[derive(Debug)]
pub struct OverStorage {
    pub message: String,
    pub retry_after: Duration,
}

impl Storage {
    pub fn new(pool: sqlx::AnyPool, bytes_per_day: u64) -> Self {
        Self(Arc::new(auth::StoredBytes::new(pool, bytes_per_day)))
    }

    /// Counts `bytes` for `owner`. A database failure refuses too (briefly): nothing is stored
    /// uncounted.
    pub async fn charge(&self, owner: &str, bytes: u64) -> Result<(), OverStorage> {
        match self.0.charge(owner, bytes).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err(OverStorage { message: self.0.refusal(bytes, wait), retry_after: wait }),
            Err(e) => {
                tracing::error!(error = %e, "could not count stored bytes");
                Err(OverStorage { message: "Could not check your storage allowance; try again shortly.".into(), retry_after: Duration::from_secs(5) })
            }
        }
    }

    /// Gives back a charge for something that was then not stored.
    pub async fn refund(&self, owner: &str, bytes: u64) {
        if let Err(e) = self.0.refund(owner, bytes).await {
            tracing::warn!(error = %e, "could not give back stored bytes");
        }
    }
}

impl From<OverStorage> for crate::api::ApiError {
    /// 429 `quota_exceeded` with `Retry-After` (whole seconds, rounded up), as every per-user allowance.
    fn from(o: OverStorage) -> Self {
        crate::api::ApiError::from(notify::NotifyError::from(o))
    }
}

impl From<OverStorage> for notify::NotifyError {
    fn from(o: OverStorage) -> Self {
        notify::NotifyError::QuotaExceeded { message: o.message, retry_after: o.retry_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_user_and_come_back_when_dropped() {
        let slots = StreamSlots::new(2);
        let a1 = slots.try_take(1).unwrap();
        let _a2 = slots.try_take(1).unwrap();
        assert!(slots.try_take(1).is_none(), "a third stream for user 1 is refused");
        let _b1 = slots.try_take(2).expect("user 2 has their own");
        drop(a1);
        assert_eq!(slots.open_for(1), 1);
        assert!(slots.try_take(1).is_some());
    }

    #[test]
    fn a_dropped_stream_gives_its_slot_back() {
        let slots = StreamSlots::new(1);
        let stream = holding(futures_util::stream::iter([1, 2, 3]), slots.try_take(7).unwrap());
        assert_eq!(slots.open_for(7), 1);
        drop(stream);
        assert_eq!(slots.open_for(7), 0);
    }
}
