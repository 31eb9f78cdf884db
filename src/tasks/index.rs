//! Which tasks a listing's filters select, without reading the tasks: bitmaps of task uids by
//! status, type, index and canceler, the way Meilisearch indexes its own queue. The store
//! keeps each task's [`Facets`] in a small table beside it, builds this index from that table
//! when it opens and keeps it in step with every task write, so `GET /tasks?limit=20` reads
//! twenty tasks however many are stored.

use std::collections::HashMap;

use roaring::RoaringTreemap;

use super::model::{GatewayTask, Status};
use super::query::TaskFilter;
use crate::auth::Scope;

/// What listings filter a task on, short of its dates.
#[derive(Debug, Clone, PartialEq)]
pub struct Facets {
    pub status: Status,
    pub kind: String,
    pub index_uid: Option<String>,
    pub canceled_by: Option<u64>,
}

const STATUSES: [Status; 5] = [
    Status::Enqueued,
    Status::Processing,
    Status::Succeeded,
    Status::Failed,
    Status::Canceled,
];

fn status_byte(status: Status) -> u8 {
    STATUSES.iter().position(|s| *s == status).unwrap_or(0) as u8
}

impl Facets {
    pub fn of(task: &GatewayTask) -> Facets {
        Facets {
            status: task.status(),
            kind: task.kind.clone(),
            index_uid: task.index_uid.clone(),
            canceled_by: task.canceled_by,
        }
    }

    /// `status, has canceler, canceler (8 bytes LE), kind length, kind, has index, index`.
    pub fn encode(&self) -> Vec<u8> {
        let kind = self.kind.as_bytes();
        let index = self.index_uid.as_deref().unwrap_or_default().as_bytes();
        let mut out = Vec::with_capacity(13 + kind.len() + index.len());
        out.push(status_byte(self.status));
        out.push(self.canceled_by.is_some() as u8);
        out.extend_from_slice(&self.canceled_by.unwrap_or(0).to_le_bytes());
        out.push(kind.len().min(255) as u8);
        out.extend_from_slice(&kind[..kind.len().min(255)]);
        out.push(self.index_uid.is_some() as u8);
        out.extend_from_slice(index);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Facets> {
        let status = *STATUSES.get(usize::from(*bytes.first()?))?;
        let canceled = *bytes.get(1)? == 1;
        let canceler = u64::from_le_bytes(bytes.get(2..10)?.try_into().ok()?);
        let kind_len = usize::from(*bytes.get(10)?);
        let kind = std::str::from_utf8(bytes.get(11..11 + kind_len)?).ok()?;
        let has_index = *bytes.get(11 + kind_len)? == 1;
        let index = std::str::from_utf8(bytes.get(12 + kind_len..)?).ok()?;
        Some(Facets {
            status,
            kind: kind.to_string(),
            index_uid: has_index.then(|| index.to_string()),
            canceled_by: canceled.then_some(canceler),
        })
    }
}

/// Task uids by facet.
#[derive(Debug, Default)]
pub struct TaskIndex {
    all: RoaringTreemap,
    by_status: [RoaringTreemap; 5],
    by_kind: HashMap<String, RoaringTreemap>,
    by_index: HashMap<String, RoaringTreemap>,
    by_canceler: HashMap<u64, RoaringTreemap>,
}

/// Removes `uid` from `map[key]`, dropping the entry once empty.
fn remove_from<K: std::hash::Hash + Eq>(map: &mut HashMap<K, RoaringTreemap>, key: &K, uid: u64) {
    if let Some(set) = map.get_mut(key) {
        set.remove(uid);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// The union of `map`'s sets for `keys`.
fn union_of<'a, K: std::hash::Hash + Eq + 'a>(
    map: &HashMap<K, RoaringTreemap>,
    keys: impl IntoIterator<Item = &'a K>,
) -> RoaringTreemap {
    let mut out = RoaringTreemap::new();
    for key in keys {
        if let Some(set) = map.get(key) {
            out |= set;
        }
    }
    out
}

impl TaskIndex {
    /// Replaces what is known of task `uid`: `old` as stored before, `new` as stored now
    /// (`None`: not stored).
    pub fn replace(&mut self, uid: u64, old: Option<&Facets>, new: Option<&Facets>) {
        if let Some(old) = old {
            self.all.remove(uid);
            self.by_status[usize::from(status_byte(old.status))].remove(uid);
            remove_from(&mut self.by_kind, &old.kind, uid);
            if let Some(index) = &old.index_uid {
                remove_from(&mut self.by_index, index, uid);
            }
            if let Some(canceler) = old.canceled_by {
                remove_from(&mut self.by_canceler, &canceler, uid);
            }
        }
        if let Some(new) = new {
            self.all.insert(uid);
            self.by_status[usize::from(status_byte(new.status))].insert(uid);
            self.by_kind
                .entry(new.kind.clone())
                .or_default()
                .insert(uid);
            if let Some(index) = &new.index_uid {
                self.by_index.entry(index.clone()).or_default().insert(uid);
            }
            if let Some(canceler) = new.canceled_by {
                self.by_canceler.entry(canceler).or_default().insert(uid);
            }
        }
    }

    pub fn len(&self) -> u64 {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    fn statuses(&self, statuses: &[Status]) -> RoaringTreemap {
        let mut out = RoaringTreemap::new();
        for s in statuses {
            out |= &self.by_status[usize::from(status_byte(*s))];
        }
        out
    }

    /// Tasks not finished.
    pub fn unfinished(&self) -> RoaringTreemap {
        self.statuses(&[Status::Enqueued, Status::Processing])
    }

    /// Finished tasks.
    pub fn finished(&self) -> RoaringTreemap {
        self.statuses(&[Status::Succeeded, Status::Failed, Status::Canceled])
    }

    /// The tasks `filter` selects on everything but dates, which need the tasks themselves
    /// (see [`TaskFilter::has_dates`]).
    pub fn select(&self, filter: &TaskFilter) -> RoaringTreemap {
        let mut out = self.all.clone();
        // A task is its own batch once started (see `aggregate`).
        if filter.batched || filter.batch_uids.is_some() {
            out -= &self.by_status[usize::from(status_byte(Status::Enqueued))];
        }
        for uids in [&filter.uids, &filter.batch_uids].into_iter().flatten() {
            out &= uids.iter().copied().collect::<RoaringTreemap>();
        }
        if let Some(cancelers) = &filter.canceled_by {
            out &= union_of(&self.by_canceler, cancelers);
        }
        if let Some(kinds) = &filter.types {
            out &= union_of(&self.by_kind, kinds);
        }
        if let Some(names) = &filter.statuses {
            let statuses: Vec<Status> = names.iter().filter_map(|s| Status::parse(s)).collect();
            out &= self.statuses(&statuses);
        }
        if let Some(indexes) = &filter.index_uids {
            out &= union_of(&self.by_index, indexes);
        }
        out
    }

    /// The tasks `scope` may see; `None` when it sees them all.
    pub fn visible(&self, scope: &Scope) -> Option<RoaringTreemap> {
        if scope.is_unrestricted() {
            return None;
        }
        let mut out = RoaringTreemap::new();
        for (index, set) in &self.by_index {
            if scope.allows_index(index) {
                out |= set;
            }
        }
        for (kind, set) in &self.by_kind {
            if crate::auth::concerns_no_single_index(kind) {
                out -= set;
            }
        }
        Some(out)
    }

    /// Up to `n` finished tasks, oldest first.
    pub fn oldest_finished(&self, n: usize) -> Vec<u64> {
        self.finished().iter().take(n).collect()
    }
}

/// Keeps of `candidates` the uids a page starting at `from` can show: up to `from` for
/// newest-first pages, from it on for `reverse` ones.
pub fn from_on(candidates: &mut RoaringTreemap, from: Option<u64>, reverse: bool) {
    match (from, reverse) {
        (None, _) => {}
        (Some(from), false) => {
            candidates.remove_range(from.saturating_add(1)..);
        }
        (Some(from), true) => {
            candidates.remove_range(..from);
        }
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
