//! Idle connections to the nodes, kept by the thread that opened them.
//!
//! With Pingora's default runtime (one runtime per thread), a connection's readiness comes
//! from the runtime of the thread that opened it: a connection that another thread picks up
//! makes both threads wake for each answer. Pingora's own pool also watches every idle
//! connection from a task on a random thread, which wakes that thread twice per request. So
//! each thread keeps its own idle connections here; a connection is only ever used by the
//! thread that holds it, and checked for a close by the node when taken.

use std::any::Any;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ahash::AHashMap as HashMap;

/// Tells pools apart (several clients may live in one process, e.g. in tests).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's pool of each live client, by client id.
    static LOCAL: RefCell<Vec<(u64, Weak<dyn Any + Send + Sync>)>> = const { RefCell::new(Vec::new()) };
}

/// One thread's idle connections, most recently used last.
struct Pool<C> {
    by_node: HashMap<SocketAddr, Vec<(C, Instant)>>,
}

/// Idle connections of one client, per thread and node.
pub struct IdlePools<C> {
    id: u64,
    /// A connection idle longer is closed rather than used.
    timeout: Duration,
    /// Idle connections kept per thread and node; more are closed.
    per_node: usize,
    /// Every thread's pool, for sweeps.
    pools: Mutex<Vec<Arc<Mutex<Pool<C>>>>>,
    /// When the last sweep ran, in milliseconds since `born`.
    swept_ms: AtomicU64,
    born: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<C: Send + 'static> IdlePools<C> {
    pub fn new(timeout: Duration, per_node: usize) -> Self {
        IdlePools {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            timeout,
            per_node: per_node.max(1),
            pools: Mutex::default(),
            swept_ms: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    /// This thread's pool, made on first use.
    fn local(&self) -> Arc<Mutex<Pool<C>>> {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let found = local
                .iter()
                .find(|(id, _)| *id == self.id)
                .and_then(|(_, weak)| weak.upgrade())
                .and_then(|any| any.downcast::<Mutex<Pool<C>>>().ok());
            if let Some(pool) = found {
                return pool;
            }
            let pool = Arc::new(Mutex::new(Pool {
                by_node: HashMap::default(),
            }));
            lock(&self.pools).push(pool.clone());
            // Entries of clients since dropped go with this one's registration.
            local.retain(|(id, weak)| *id != self.id && weak.strong_count() > 0);
            let any: Arc<dyn Any + Send + Sync> = pool.clone();
            local.push((self.id, Arc::downgrade(&any)));
            pool
        })
    }

    /// The most recently used idle connection of this thread to `node` that `alive` accepts;
    /// those it refuses, and those idle too long, are closed.
    pub fn take(&self, node: SocketAddr, mut alive: impl FnMut(&mut C) -> bool) -> Option<C> {
        let pool = self.local();
        let mut pool = lock(&pool);
        let list = pool.by_node.get_mut(&node)?;
        let now = Instant::now();
        while let Some((mut conn, at)) = list.pop() {
            if now.duration_since(at) > self.timeout {
                // The rest were used earlier still.
                list.clear();
                return None;
            }
            if alive(&mut conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for this thread's next request to `node`.
    pub fn put(&self, node: SocketAddr, conn: C) {
        let pool = self.local();
        let mut pool = lock(&pool);
        let list = pool.by_node.entry(node).or_default();
        list.push((conn, Instant::now()));
        if list.len() > self.per_node {
            list.remove(0);
        }
    }

    /// Closes, in every thread's pool, connections idle too long or that `alive` refuses (a
    /// node closed them), at most once per `every`. Threads that stopped leave empty pools,
    /// which go too.
    pub fn sweep(&self, every: Duration, mut alive: impl FnMut(&mut C) -> bool) {
        let now_ms = self.born.elapsed().as_millis() as u64;
        let last = self.swept_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < every.as_millis() as u64
            || self
                .swept_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let now = Instant::now();
        let mut pools = lock(&self.pools);
        for pool in pools.iter() {
            let mut pool = lock(pool);
            for list in pool.by_node.values_mut() {
                list.retain_mut(|(conn, at)| {
                    now.duration_since(*at) <= self.timeout && alive(conn)
                });
            }
            pool.by_node.retain(|_, list| !list.is_empty());
        }
        pools.retain(|p| Arc::weak_count(p) > 0 || !lock(p).by_node.is_empty());
    }

    /// Idle connections kept, over all threads and nodes.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.pools)
            .iter()
            .map(|p| lock(p).by_node.values().map(Vec::len).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_thread_takes_back_its_own_connections_newest_first() {
        let pools = IdlePools::new(Duration::from_secs(60), 2);
        pools.put(addr(1), 10);
        pools.put(addr(1), 11);
        pools.put(addr(1), 12); // over the cap: the oldest (10) is closed
        pools.put(addr(2), 20);
        assert_eq!(pools.len(), 3);
        assert_eq!(pools.take(addr(1), |_| true), Some(12));
        // Another thread has nothing of this one's.
        let pools = Arc::new(pools);
        let other = pools.clone();
        let elsewhere = std::thread::spawn(move || other.take(addr(1), |_| true))
            .join()
            .unwrap();
        assert_eq!(elsewhere, None);
        assert_eq!(pools.take(addr(1), |_| true), Some(11));
        assert_eq!(pools.take(addr(1), |_| true), None);
        assert_eq!(pools.take(addr(3), |_| true), None);
    }

    #[test]
    fn closed_and_expired_connections_are_never_handed_out() {
        let pools = IdlePools::new(Duration::from_secs(60), 8);
        for c in [1, 2, 3] {
            pools.put(addr(1), c);
        }
        // 3 and 2 are refused (the node closed them): 1 comes.
        assert_eq!(pools.take(addr(1), |c| *c == 1), Some(1));
        assert_eq!(pools.len(), 0);

        let pools = IdlePools::new(Duration::ZERO, 8);
        pools.put(addr(1), 1);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(pools.take(addr(1), |_| true), None);
    }

    #[test]
    fn sweeps_close_what_every_thread_left_idle() {
        let pools = Arc::new(IdlePools::new(Duration::from_secs(60), 8));
        let other = pools.clone();
        std::thread::spawn(move || {
            other.put(addr(1), 1);
            other.put(addr(1), 2);
        })
        .join()
        .unwrap();
        pools.put(addr(1), 3);
        assert_eq!(pools.len(), 3);
        // The node closed 2; the thread that held 1 and 2 is gone.
        pools.sweep(Duration::ZERO, |c| *c != 2);
        assert_eq!(pools.len(), 2);
        // Not again within `every`.
        pools.sweep(Duration::from_secs(60), |_| false);
        assert_eq!(pools.len(), 2);
        let expired = IdlePools::new(Duration::ZERO, 8);
        expired.put(addr(1), 1);
        std::thread::sleep(Duration::from_millis(2));
        expired.sweep(Duration::ZERO, |_| true);
        assert_eq!(expired.len(), 0);
    }
}
