use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::plan::{plan, KeyFix, DEFAULT_NAMES};

fn key(uid: &str, name: &str, created: &str) -> Value {
    json!({
        "uid": uid, "key": format!("k-{uid}"), "name": name, "description": null,
        "actions": ["search"], "indexes": ["*"], "expiresAt": null,
        "createdAt": created, "updatedAt": created,
    })
}

fn now() -> OffsetDateTime {
    OffsetDateTime::parse(
        "2026-06-01T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// The listing after `fixes`, as the nodes would hold it.
fn apply(listed: &[(usize, Vec<Value>)], fixes: &[KeyFix]) -> Vec<(usize, Vec<Value>)> {
    let mut out = listed.to_vec();
    for fix in fixes {
        match fix {
            KeyFix::Create { node, body } => {
                let list = &mut out.iter_mut().find(|(n, _)| n == node).unwrap().1;
                assert!(
                    list.iter().all(|k| k["uid"] != body["uid"]),
                    "created twice"
                );
                let mut k = body.clone();
                k["createdAt"] = json!("2026-05-31T00:00:00Z");
                list.push(k);
            }
            KeyFix::Delete { node, uid } => {
                let list = &mut out.iter_mut().find(|(n, _)| n == node).unwrap().1;
                let before = list.len();
                list.retain(|k| k["uid"] != uid.as_str());
                assert_eq!(list.len() + 1, before, "deleted a key it does not hold");
            }
        }
    }
    out
}

fn uids(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .map(|k| k["uid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn each_node_keeps_the_oldest_default_and_gets_the_others_keys() {
    let listed = vec![
        (
            0,
            vec![
                key("a0", DEFAULT_NAMES[0], "2026-01-02T00:00:00Z"),
                key("mine", "app", "2026-01-05T00:00:00Z"),
            ],
        ),
        (1, vec![key("b0", DEFAULT_NAMES[0], "2026-01-01T00:00:00Z")]),
        (2, vec![key("c0", DEFAULT_NAMES[0], "2026-01-03T00:00:00Z")]),
    ];
    let fixes = plan(&listed, &HashSet::new(), now());
    let after = apply(&listed, &fixes);
    for (_, list) in &after {
        assert_eq!(uids(list), BTreeSet::from(["b0".into(), "mine".into()]));
    }
    // Creations first: no node is ever without a default search key.
    let first_delete = fixes
        .iter()
        .position(|f| matches!(f, KeyFix::Delete { .. }))
        .unwrap();
    assert!(fixes[first_delete..]
        .iter()
        .all(|f| matches!(f, KeyFix::Delete { .. })));
    let created = fixes
        .iter()
        .find_map(|f| match f {
            KeyFix::Create { node: 1, body } => Some(body.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        created,
        json!({"uid": "mine", "name": "app", "description": null, "actions": ["search"],
               "indexes": ["*"], "expiresAt": null})
    );
}

#[test]
fn a_default_most_nodes_hold_wins_over_an_older_one() {
    let listed = vec![
        (
            0,
            vec![key("old", DEFAULT_NAMES[1], "2020-01-01T00:00:00Z")],
        ),
        (
            1,
            vec![key("kept", DEFAULT_NAMES[1], "2026-01-01T00:00:00Z")],
        ),
        (
            2,
            vec![key("kept", DEFAULT_NAMES[1], "2026-01-01T00:00:00Z")],
        ),
    ];
    let after = apply(&listed, &plan(&listed, &HashSet::new(), now()));
    for (_, list) in &after {
        assert_eq!(uids(list), BTreeSet::from(["kept".into()]));
    }
}

#[test]
fn deleted_keys_are_deleted_and_expired_keys_not_recreated() {
    let mut expired = key("gone-soon", "temp", "2026-01-01T00:00:00Z");
    expired["expiresAt"] = json!("2026-05-01T00:00:00Z");
    let mut later = key("later", "temp", "2026-01-01T00:00:00Z");
    later["expiresAt"] = json!("2027-05-01T00:00:00Z");
    let listed = vec![
        (
            0,
            vec![key("dead", "x", "2026-01-01T00:00:00Z"), expired, later],
        ),
        (3, vec![]),
    ];
    let tombstones = HashSet::from(["dead".to_string()]);
    let after = apply(&listed, &plan(&listed, &tombstones, now()));
    assert_eq!(
        uids(&after[0].1),
        BTreeSet::from(["gone-soon".into(), "later".into()])
    );
    assert_eq!(uids(&after[1].1), BTreeSet::from(["later".into()]));
}

fn listing() -> impl Strategy<Value = (Vec<(usize, Vec<Value>)>, HashSet<String>)> {
    // Keys u0..u7; u0-u3 carry default names (two per name), the rest are plain.
    let node = proptest::collection::btree_set(0usize..8, 0..8);
    (
        proptest::collection::vec(node, 1..5),
        proptest::collection::hash_set(0usize..8, 0..3),
    )
        .prop_map(|(nodes, dead)| {
            let listed = nodes
                .into_iter()
                .enumerate()
                .map(|(n, held)| {
                    let keys = held
                        .into_iter()
                        .map(|k| {
                            let name = if k < 4 { DEFAULT_NAMES[k / 2] } else { "app" };
                            key(
                                &format!("u{k}"),
                                name,
                                &format!("2026-01-0{}T00:00:00Z", 8 - k),
                            )
                        })
                        .collect();
                    (n, keys)
                })
                .collect();
            let tombstones = dead.into_iter().map(|k| format!("u{k}")).collect();
            (listed, tombstones)
        })
}

proptest! {
    /// After one round every node holds the same keys, at most one of each default name,
    /// none deleted through the gateway; a second round changes nothing.
    #[test]
    fn one_round_aligns_every_node((listed, tombstones) in listing()) {
        let after = apply(&listed, &plan(&listed, &tombstones, now()));
        let first = uids(&after[0].1);
        for (_, list) in &after {
            prop_assert_eq!(&uids(list), &first);
            for name in DEFAULT_NAMES {
                prop_assert!(list.iter().filter(|k| k["name"] == name).count() <= 1);
            }
        }
        prop_assert!(first.iter().all(|u| !tombstones.contains(u)));
        let held_before: BTreeSet<String> = listed.iter().flat_map(|(_, l)| uids(l)).collect();
        for name in DEFAULT_NAMES {
            let had = listed.iter().flat_map(|(_, l)| l).any(|k| k["name"] == name
                && !tombstones.contains(k["uid"].as_str().unwrap()));
            let has = after[0].1.iter().any(|k| k["name"] == name);
            prop_assert_eq!(had, has, "{} lost", name);
        }
        for uid in &held_before {
            let plain = listed.iter().flat_map(|(_, l)| l)
                .any(|k| k["uid"] == uid.as_str() && k["name"] == "app");
            if plain && !tombstones.contains(uid) {
                prop_assert!(first.contains(uid), "{} lost", uid);
            }
        }
        prop_assert!(plan(&after, &tombstones, now()).is_empty());
    }
}
