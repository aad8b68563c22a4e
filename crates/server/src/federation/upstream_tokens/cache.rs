//! The two in-memory helpers of [`super::UpstreamTokenSource`]:
//! - [`Bounded`]: a map of values that are good until a given time, with a fixed capacity (when full, expired
//!   entries go first, then arbitrary ones: it is a cache, a miss only costs a database read);
//! - [`Flights`]: single flight: of concurrent calls with one key, one runs the work (as its own task, so a
//!   caller going away never abandons a refresh that holds the store's lease) and all get its result.

use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `m`, recovering from a poisoned lock (the maps stay consistent: every update is one statement).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A bounded map of values good until a time (seconds, the clock of the caller).
pub(crate) struct Bounded<K, V> {
    map: Mutex<HashMap<K, (V, i64)>>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Bounded<K, V> {
    /// An empty map holding at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The value of `key` if it is still good at `now` (an expired one is dropped).
    pub(crate) fn get(&self, key: &K, now: i64) -> Option<V> {
        let mut map = lock(&self.map);
        match map.get(key) {
            Some((v, until)) if *until > now => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for `key` until `until` (nothing when that is not after `now`).
    pub(crate) fn put(&self, key: K, value: V, until: i64, now: i64) {
        if until <= now {
            self.remove(&key);
            return;
        }
        let mut map = lock(&self.map);
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, (_, u)| *u > now);
            let excess = (map.len() + 1).saturating_sub(self.capacity);
            let victims: Vec<K> = map.keys().take(excess).cloned().collect();
            for k in victims {
                map.remove(&k);
            }
        }
        map.insert(key, (value, until));
    }

    /// Forgets `key`.
    pub(crate) fn remove(&self, key: &K) {
        lock(&self.map).remove(key);
    }

    /// How many entries are held (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

type Flight<T> = Shared<BoxFuture<'static, T>>;

/// Single flight per key.
pub(crate) struct Flights<K, T: Clone> {
    map: Mutex<HashMap<K, Flight<T>>>,
}

impl<K, T: Clone> Default for Flights<K, T> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, T> Flights<K, T>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// The result of the flight for `key`: joins the one in progress, or starts `work()` as a task. `panicked`
    /// is the result when the task panics.
    pub(crate) async fn run<F>(self: &Arc<Self>, key: K, work: impl FnOnce() -> F, panicked: T) -> T
    where
        F: Future<Output = T> + Send + 'static,
    {
        let flight = {
            let mut map = lock(&self.map);
            if let Some(f) = map.get(&key) {
                f.clone()
            } else {
                let fut = work();
                let flights = Arc::clone(self);
                let k = key.clone();
                // The task removes its entry when done; it needs the lock, which is held until the entry is in.
                let task = tokio::spawn(async move {
                    let out = fut.await;
                    lock(&flights.map).remove(&k);
                    out
                });
                let flights = Arc::clone(self);
                let k = key.clone();
                let f = async move {
                    match task.await {
                        Ok(out) => out,
                        Err(_) => {
                            lock(&flights.map).remove(&k);
                            panicked
                        }
                    }
                }
                .boxed()
                .shared();
                map.insert(key, f.clone());
                f
            }
        };
        flight.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn bounded_drops_expired_then_arbitrary_entries_when_full() {
        let b = Bounded::new(3);
        b.put(1, "a", 10, 0);
        b.put(2, "b", 5, 0);
        b.put(3, "c", 10, 0);
        assert_eq!(b.get(&2, 4), Some("b"));
        assert_eq!(b.get(&2, 5), None, "good until 5, exclusive");
        b.put(2, "b", 5, 0);
        b.put(4, "d", 10, 6); // full: the expired 2 goes
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(&4, 6), Some("d"));
        b.put(5, "e", 10, 6); // full, nothing expired: one arbitrary entry goes
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(&5, 6), Some("e"));
        b.put(5, "e", 6, 6);
        assert_eq!(b.get(&5, 6), None, "a value not good after now is not kept");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_flight_per_key() {
        let flights: Arc<Flights<u8, u32>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (flights, runs) = (flights.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run(
                        1,
                        || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            7
                        },
                        0,
                    )
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("join"), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Done: the next call runs again.
        assert_eq!(flights.run(1, || async { 8 }, 0).await, 8);
    }
}
