//! The task index of a Redis store: rebuilt from every task's facets, then kept up to date
//! from the change stream every task write appends to.

use std::sync::atomic::Ordering;

use redis::AsyncCommands;

use super::RedisStore;
use crate::tasks::index::{Facets, TaskIndex};
use crate::tasks::StoreError;

/// Changes read per round trip while catching up.
const CATCH_UP_PAGE: usize = 10_000;

/// What this gateway has applied of the change stream.
pub(super) struct Applied {
    /// The last stream entry applied.
    pub(super) id: String,
    /// Its sequence number (the stream's entries are numbered without gaps).
    pub(super) seq: u64,
}

/// A stream entry: (id, seq, uid, old facets, new facets).
type Change = (String, u64, u64, Option<Facets>, Option<Facets>);

fn parse_changes(reply: redis::streams::StreamReadReply) -> Vec<Change> {
    let mut out = Vec::new();
    for key in reply.keys {
        for entry in key.ids {
            let field = |name: &str| -> Option<Vec<u8>> { entry.get::<Vec<u8>>(name) };
            let number = |name: &str| -> Option<u64> {
                field(name).and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
            };
            let facets = |name: &str| field(name).and_then(|b| Facets::decode(&b));
            if let (Some(seq), Some(uid)) = (number("s"), number("u")) {
                out.push((entry.id.clone(), seq, uid, facets("o"), facets("n")));
            }
        }
    }
    out
}

impl RedisStore {
    /// Rebuilds the index from the facets of every task, then applies what changed since.
    pub(super) fn reload_index(&self) -> Result<(), StoreError> {
        // The stream's position first: changes after it are applied on top of the snapshot
        // (applying a change the snapshot already holds, in order, converges).
        let (id, seq) = self.run(|mut c, k, _| async move {
            // One transaction: the last entry's id and its sequence number agree.
            let (last, seq): (redis::streams::StreamRangeReply, Option<u64>) = redis::pipe()
                .atomic()
                .xrevrange_count(&k.changes, "+", "-", 1)
                .get(&k.change_seq)
                .query_async(&mut c)
                .await?;
            Ok((last.ids.first().map(|e| e.id.clone()), seq.unwrap_or(0)))
        })?;
        let facets: Vec<(u64, Vec<u8>)> = self.run(|mut c, k, _| async move {
            let mut out = Vec::new();
            let mut iter: redis::AsyncIter<(u64, Vec<u8>)> = c.hscan(&k.facets).await?;
            while let Some(item) = iter.next_item().await {
                out.push(item?);
            }
            Ok(out)
        })?;
        let mut index = TaskIndex::default();
        let mut max = None;
        for (uid, bytes) in &facets {
            if let Some(f) = Facets::decode(bytes) {
                index.replace(*uid, None, Some(&f));
                max = max.max(Some(*uid));
            }
        }
        if let Some(max) = max {
            self.floor.fetch_max(max + 1, Ordering::Relaxed);
        }
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = Applied {
            id: id.unwrap_or_else(|| "0-0".into()),
            seq,
        };
        self.catch_up()
    }

    /// Applies the changes other writes appended since the last call; reloads the whole
    /// index if some were trimmed from the stream before this gateway read them.
    pub(super) fn catch_up(&self) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let from = applied.id.clone();
            let changes = self.run(move |mut c, k, _| async move {
                let options = redis::streams::StreamReadOptions::default().count(CATCH_UP_PAGE);
                let reply: Option<redis::streams::StreamReadReply> =
                    c.xread_options(&[&k.changes], &[&from], &options).await?;
                Ok(reply.map(parse_changes).unwrap_or_default())
            })?;
            let Some(first) = changes.first() else {
                return Ok(());
            };
            if first.1 != applied.seq + 1 {
                drop(applied);
                log::warn!("the task change stream moved on without this gateway: reloading the task index");
                return self.reload_index();
            }
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            for (id, seq, uid, old, new) in &changes {
                index.replace(*uid, old.as_ref(), new.as_ref());
                self.floor.fetch_max(uid + 1, Ordering::Relaxed);
                applied.id = id.clone();
                applied.seq = *seq;
            }
            if changes.len() < CATCH_UP_PAGE {
                return Ok(());
            }
        }
    }
}
