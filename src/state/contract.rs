//! What every [`StateStore`] backend must do, as tests run against each of them: uids that
//! only grow (across reopening), tasks that a late refresh cannot bring back, hints kept in
//! order per node, intents settled in one step, and an index in step with every write.

use super::{Doc, StateStore};
use crate::tasks::{GatewayTask, TaskFilter};

pub fn task(uid: u64) -> GatewayTask {
    GatewayTask {
        uid,
        index_uid: Some("m".into()),
        kind: "indexCreation".into(),
        enqueued_at: "2026-01-01T00:00:00Z".into(),
        custom_metadata: None,
        copies: 1,
        node_tasks: vec![],
        details: None,
        error: None,
        canceled_by: None,
        view: None,
        awaiting: Vec::new(),
    }
}

/// Stores a new task the way the gateway does: a uid first, then the task.
pub fn create(store: &dyn StateStore) -> GatewayTask {
    let t = task(store.reserve_uids(1).unwrap());
    store.put(&t).unwrap();
    t
}

/// Runs every check on stores `open` opens (each call reopens the same store).
pub fn check_all(open: &dyn Fn() -> Box<dyn StateStore>) {
    uids_grow_and_survive_reopening(open);
    a_refresh_does_not_bring_back_a_deleted_task(&*open());
    hints_keep_order_per_node(open);
    settling_stores_the_task_and_its_hints_at_once(&*open());
    the_index_follows_the_writes(&*open());
    small_tables_round_trip(&*open());
    alias_table_is_compare_and_set(open);
    a_released_lease_is_free(&*open());
}

/// A lease is held by one holder until it is released (or expires); releasing a lease held
/// by another leaves it.
fn a_released_lease_is_free(store: &dyn StateStore) {
    let ttl = std::time::Duration::from_secs(30);
    assert!(store.lease("contract", "a", ttl).unwrap());
    if !store.shared() {
        return;
    }
    assert!(!store.lease("contract", "b", ttl).unwrap());
    store.release("contract", "b").unwrap();
    assert!(
        !store.lease("contract", "b", ttl).unwrap(),
        "b released a's lease"
    );
    store.release("contract", "a").unwrap();
    assert!(store.lease("contract", "b", ttl).unwrap());
    store.release("contract", "b").unwrap();
}

fn uids_grow_and_survive_reopening(open: &dyn Fn() -> Box<dyn StateStore>) {
    let (a, b) = {
        let store = open();
        let a = create(&*store).uid;
        let b = create(&*store).uid;
        assert!(b > a);
        let mut t = store.get(b).unwrap().unwrap();
        t.kind = "indexDeletion".into();
        store.put(&t).unwrap();
        (a, b)
    };
    let store = open();
    assert_eq!(store.get(b).unwrap().unwrap().kind, "indexDeletion");
    assert!(create(&*store).uid > b, "the counter survives reopening");
    let first = store.reserve_uids(10).unwrap();
    assert!(store.reserve_uids(1).unwrap() >= first + 10);
    store.delete(&[a]).unwrap();
    let all: Vec<u64> = store.all().unwrap().iter().map(|t| t.uid).collect();
    assert!(!all.contains(&a) && all.contains(&b));
    assert!(all.windows(2).all(|w| w[0] < w[1]), "oldest first: {all:?}");
    let wanted = store.tasks(&mut [b, a].into_iter()).unwrap();
    assert_eq!(wanted.iter().map(|t| t.uid).collect::<Vec<_>>(), [b]);
}

fn a_refresh_does_not_bring_back_a_deleted_task(store: &dyn StateStore) {
    let created = create(store);
    store.delete(&[created.uid]).unwrap();
    assert!(!store.update(&created).unwrap());
    assert!(store.get(created.uid).unwrap().is_none());
    assert!(!store
        .index()
        .unwrap()
        .select(&filter_uid(created.uid))
        .contains(created.uid));
}

fn filter_uid(uid: u64) -> TaskFilter {
    TaskFilter {
        uids: Some(vec![uid]),
        ..TaskFilter::default()
    }
}

fn hints_keep_order_per_node(open: &dyn Fn() -> Box<dyn StateStore>) {
    {
        let store = open();
        // "a1" sorts between "a" and "a\u{1}": it must not leak into a's queue.
        for (node, body) in [("a", "1"), ("a1", "x"), ("a", "2"), ("b", "y"), ("a", "3")] {
            store.hint_push(node, body.as_bytes()).unwrap();
        }
    }
    let store = open();
    let bodies = |node: &str| -> Vec<Vec<u8>> {
        store
            .hints(node, 10)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(bodies("a"), [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    assert_eq!(bodies("a1"), [b"x".to_vec()]);
    let counts = store.hint_counts().unwrap();
    assert_eq!((counts["a"], counts["a1"], counts["b"]), (3, 1, 1));

    let (first, _) = store.hints("a", 1).unwrap().remove(0);
    store.hint_delete(&first).unwrap();
    store.hint_delete(&first).unwrap(); // twice: no double count
    assert_eq!(bodies("a"), [b"2".to_vec(), b"3".to_vec()]);
    assert_eq!(store.hint_counts().unwrap()["a"], 2);
    let (second, _) = store.hints("a", 1).unwrap().remove(0);
    let t = create(&*store);
    let mut done = t.clone();
    done.kind = "settingsUpdate".into();
    store.hint_done(&second, Some(&done)).unwrap();
    assert_eq!(store.get(t.uid).unwrap().unwrap().kind, "settingsUpdate");
    assert_eq!(bodies("a"), [b"3".to_vec()]);
    for node in ["a", "a1", "b"] {
        for (key, _) in store.hints(node, 10).unwrap() {
            store.hint_delete(&key).unwrap();
        }
    }
    assert!(
        store.hint_counts().unwrap().is_empty(),
        "empty queues are not listed"
    );
}

fn settling_stores_the_task_and_its_hints_at_once(store: &dyn StateStore) {
    let id = store
        .intent_begin(b"intent", &[(7, b"part".to_vec())])
        .unwrap();
    assert_eq!(store.move_log_len(7).unwrap(), 1);
    let (key, part) = store.move_log(7, 10).unwrap().remove(0);
    assert_eq!((key.0, key.1, part.as_slice()), (7, id, b"part".as_slice()));
    let t = task(store.reserve_uids(1).unwrap());
    store
        .settle(id, Some(&t), &[("z".into(), b"missed".to_vec())])
        .unwrap();
    assert!(store.intents().unwrap().iter().all(|(i, _)| *i != id));
    assert_eq!(store.get(t.uid).unwrap(), Some(t));
    assert_eq!(store.hints("z", 10).unwrap()[0].1, b"missed");
    for (key, _) in store.hints("z", 10).unwrap() {
        store.hint_delete(&key).unwrap();
    }
    store.move_log_drop(7, Some(key)).unwrap();
    assert_eq!(store.move_log_len(7).unwrap(), 0);
    let other = store.intent_begin(b"other", &[(8, b"p".to_vec())]).unwrap();
    store.move_log_abandon(other, &[8]).unwrap();
    store.settle(other, None, &[]).unwrap();
    assert_eq!(store.move_log_len(8).unwrap(), 0);
}

fn the_index_follows_the_writes(store: &dyn StateStore) {
    let before = store.len().unwrap();
    let mut t = create(store);
    let failed = TaskFilter {
        statuses: Some(vec!["failed".into()]),
        ..TaskFilter::default()
    };
    assert!(!store.index().unwrap().select(&failed).contains(t.uid));
    t.view = Some(serde_json::json!({"status": "processing"}));
    assert!(!store.update(&t).unwrap(), "not finished yet");
    t.view = Some(serde_json::json!({"status": "failed"}));
    assert!(store.update(&t).unwrap(), "this write finished it");
    assert!(!store.update(&t).unwrap(), "finished once only");
    assert!(store.index().unwrap().select(&failed).contains(t.uid));
    assert!(store.index().unwrap().finished().contains(t.uid));
    assert_eq!(store.len().unwrap(), before + 1);
    store.delete(&[t.uid]).unwrap();
    assert_eq!(store.len().unwrap(), before);
}

fn small_tables_round_trip(store: &dyn StateStore) {
    store.set_facet_values("m", Some(42)).unwrap();
    assert_eq!(store.facet_values("m").unwrap(), Some(42));
    store.set_facet_values("m", None).unwrap();
    assert_eq!(store.facet_values("m").unwrap(), None);
    store.set_key_tombstone("k1", true).unwrap();
    assert!(store.key_tombstones().unwrap().contains("k1"));
    store.set_key_tombstone("k1", false).unwrap();
    assert!(store.key_tombstones().unwrap().is_empty());
    store.set_webhook("u2", Some(b"{\"b\":1}")).unwrap();
    store.set_webhook("u1", Some(b"{\"a\":1}")).unwrap();
    let hooks: Vec<String> = store
        .webhooks()
        .unwrap()
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(hooks, ["u1", "u2"]);
    store.set_webhook("u1", None).unwrap();
    store.set_webhook("u2", None).unwrap();
    assert!(store.webhooks().unwrap().is_empty());
}

/// A change of the alias table is a compare-and-set: of two writers that read one version,
/// one wins and the other is told to read again; the winner's table survives reopening.
fn alias_table_is_compare_and_set(open: &dyn Fn() -> Box<dyn StateStore>) {
    let store = open();
    let (v0, _) = store.doc(Doc::Aliases).unwrap();
    assert!(store.set_doc(Doc::Aliases, v0, b"{\"a\":1}").unwrap());
    assert!(
        !store.set_doc(Doc::Aliases, v0, b"{\"b\":1}").unwrap(),
        "stale version wins"
    );
    assert_eq!(store.doc_version(Doc::Aliases).unwrap(), v0 + 1);
    drop(store);
    let store = open();
    assert_eq!(
        store.doc(Doc::Aliases).unwrap(),
        (v0 + 1, b"{\"a\":1}".to_vec())
    );
    store.ack_doc(Doc::Aliases, "g1", v0 + 1).unwrap();
    if store.shared() {
        assert_eq!(
            store.doc_acks(Doc::Aliases).unwrap().get("g1"),
            Some(&(v0 + 1))
        );
    }
    // Documents are independent of each other.
    let (p0, _) = store.doc(Doc::Placement).unwrap();
    assert!(store.set_doc(Doc::Placement, p0, b"{\"p\":1}").unwrap());
    assert_eq!(
        store.doc(Doc::Aliases).unwrap(),
        (v0 + 1, b"{\"a\":1}".to_vec())
    );
    assert_eq!(
        store.doc(Doc::Placement).unwrap(),
        (p0 + 1, b"{\"p\":1}".to_vec())
    );
    store.ack_doc(Doc::Placement, "g1", p0 + 1).unwrap();
    if store.shared() {
        assert_eq!(
            store.doc_acks(Doc::Placement).unwrap().get("g1"),
            Some(&(p0 + 1))
        );
        assert_eq!(
            store.doc_acks(Doc::Aliases).unwrap().get("g1"),
            Some(&(v0 + 1))
        );
    }
}
