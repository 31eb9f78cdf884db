use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

const KINDS: [&str; 4] = [
    "documentAdditionOrUpdate",
    "settingsUpdate",
    "indexSwap",
    "taskDeletion",
];
const INDEXES: [&str; 3] = ["movies", "movies_fr", "books"];

fn facets() -> impl Strategy<Value = Facets> {
    (
        0..5usize,
        0..KINDS.len(),
        proptest::option::of(0..INDEXES.len()),
        proptest::option::of(0..4u64),
    )
        .prop_map(|(status, kind, index, canceled_by)| Facets {
            status: STATUSES[status],
            kind: KINDS[kind].to_string(),
            index_uid: index.map(|i| INDEXES[i].to_string()),
            canceled_by,
        })
}

/// The fields of a task's view that filters read, as `aggregate` writes them.
fn view(uid: u64, f: &Facets) -> Value {
    json!({
        "uid": uid,
        "batchUid": if f.status == Status::Enqueued { Value::Null } else { uid.into() },
        "indexUid": f.index_uid,
        "status": f.status.as_str(),
        "type": f.kind,
        "canceledBy": f.canceled_by,
    })
}

fn some_of<T: Clone + std::fmt::Debug + 'static>(
    items: Vec<T>,
) -> impl Strategy<Value = Option<Vec<T>>> {
    proptest::option::of(proptest::sample::subsequence(
        items.clone(),
        0..=items.len(),
    ))
}

fn filters() -> impl Strategy<Value = TaskFilter> {
    let statuses: Vec<String> = STATUSES.iter().map(|s| s.as_str().to_string()).collect();
    let kinds: Vec<String> = KINDS.iter().map(|s| s.to_string()).collect();
    let mut indexes: Vec<String> = INDEXES.iter().map(|s| s.to_string()).collect();
    indexes.push("unknown".into());
    (
        some_of((0..12u64).collect()),
        some_of((0..12u64).collect()),
        some_of((0..4u64).collect()),
        some_of(kinds),
        some_of(statuses),
        some_of(indexes),
        any::<bool>(),
    )
        .prop_map(
            |(uids, batch_uids, canceled_by, types, statuses, index_uids, batched)| TaskFilter {
                limit: 20,
                uids,
                batch_uids,
                canceled_by,
                types,
                statuses,
                index_uids,
                batched,
                ..TaskFilter::default()
            },
        )
}

proptest! {
    #[test]
    fn facets_survive_encoding(f in facets()) {
        prop_assert_eq!(Facets::decode(&f.encode()), Some(f));
    }

    /// After any sequence of writes and removals, the index selects exactly the tasks whose
    /// views the filter matches, and shows a restricted key exactly what it may see.
    #[test]
    fn the_index_selects_what_the_filter_matches(
        writes in proptest::collection::vec((0..12u64, proptest::option::of(facets())), 0..40),
        filter in filters(),
        patterns in proptest::sample::subsequence(vec!["movies*", "books", "*"], 0..=2),
    ) {
        let mut index = TaskIndex::default();
        let mut stored: BTreeMap<u64, Facets> = BTreeMap::new();
        for (uid, new) in writes {
            let old = match &new {
                Some(f) => stored.insert(uid, f.clone()),
                None => stored.remove(&uid),
            };
            index.replace(uid, old.as_ref(), new.as_ref());
        }
        let expected: Vec<u64> = stored
            .iter()
            .filter(|(uid, f)| filter.matches(&view(**uid, f)))
            .map(|(uid, _)| *uid)
            .collect();
        prop_assert_eq!(index.select(&filter).iter().collect::<Vec<_>>(), expected);
        prop_assert_eq!(index.len(), stored.len() as u64);

        let scope = Scope::from_key(&json!({"indexes": patterns}));
        let visible: Vec<u64> = stored
            .iter()
            .filter(|(uid, f)| scope.allows_task(&view(**uid, f)))
            .map(|(uid, _)| *uid)
            .collect();
        match index.visible(&scope) {
            None => prop_assert_eq!(visible.len(), stored.len()),
            Some(set) => prop_assert_eq!(set.iter().collect::<Vec<_>>(), visible),
        }
        let unfinished: Vec<u64> = stored
            .iter()
            .filter(|(_, f)| !f.status.is_final())
            .map(|(uid, _)| *uid)
            .collect();
        prop_assert_eq!(index.unfinished().iter().collect::<Vec<_>>(), unfinished);
    }

    #[test]
    fn a_page_starts_at_from(
        uids in proptest::collection::btree_set(0..100u64, 0..30),
        from in proptest::option::of(0..110u64),
        reverse in any::<bool>(),
    ) {
        let mut set: RoaringTreemap = uids.iter().copied().collect();
        from_on(&mut set, from, reverse);
        let expected: Vec<u64> = uids
            .iter()
            .copied()
            .filter(|u| match (from, reverse) {
                (None, _) => true,
                (Some(f), false) => *u <= f,
                (Some(f), true) => *u >= f,
            })
            .collect();
        prop_assert_eq!(set.iter().collect::<Vec<_>>(), expected);
    }
}

#[test]
fn the_oldest_finished_tasks_come_first() {
    let mut index = TaskIndex::default();
    for (uid, status) in [
        (1, Status::Succeeded),
        (2, Status::Enqueued),
        (3, Status::Failed),
        (4, Status::Canceled),
        (5, Status::Processing),
    ] {
        let f = Facets {
            status,
            kind: "settingsUpdate".into(),
            index_uid: Some("movies".into()),
            canceled_by: None,
        };
        index.replace(uid, None, Some(&f));
    }
    assert_eq!(index.oldest_finished(2), [1, 3]);
    assert_eq!(index.oldest_finished(10), [1, 3, 4]);
}
