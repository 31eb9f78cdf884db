//! Where documents live: primary key → shard (stable hash), shard → owner nodes (rendezvous).
//!
//! Both functions are part of the on-disk contract: changing either moves documents between
//! nodes, so they are pinned by golden vectors in the tests below.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of the shard hash ("miroir" in ASCII). Never change it: it decides where data lives.
const SHARD_SEED: u64 = 0x6d69_726f_6972;
/// Seed of the rendezvous weights, distinct from [`SHARD_SEED`] so the two are independent.
const RENDEZVOUS_SEED: u64 = 0x6d69_726f_6972_0001;

/// The shard of a document, from its canonical primary-key string.
///
/// The canonical form of an integer id is its decimal string, so `1` and `"1"` (the same
/// document for Meilisearch) land on the same shard; see [`canonical_id`].
pub fn shard_of(canonical_id: &[u8], shards: u32) -> u32 {
    debug_assert!(shards > 0);
    (xxh3_64_with_seed(canonical_id, SHARD_SEED) % u64::from(shards.max(1))) as u32
}

/// The canonical string of a primary-key value, as Meilisearch identifies documents:
/// a string as is, an integer in decimal. Other JSON values are not valid ids.
pub fn canonical_id(value: &serde_json::Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        serde_json::Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => {
            Some(std::borrow::Cow::Owned(n.to_string()))
        }
        _ => None,
    }
}

/// The rendezvous weight of `node_id` for `shard`: the owners of a shard are the nodes with
/// the highest weights. Keyed by node id, not URL, so moving a node to a new address moves
/// no data.
pub fn rendezvous_weight(node_id: &str, shard: u32) -> u64 {
    let seed = RENDEZVOUS_SEED ^ (u64::from(shard)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    xxh3_64_with_seed(node_id.as_bytes(), seed)
}

/// The `count` owners of `shard` among `members` (node ids), best first.
///
/// Returns indexes into `members`. Ties (equal weights) break by node id so the choice never
/// depends on the order of the list.
pub fn owners(members: &[&str], shard: u32, count: usize) -> Vec<usize> {
    let mut scored: Vec<(u64, &str, usize)> = members
        .iter()
        .enumerate()
        .map(|(i, id)| (rendezvous_weight(id, shard), *id, i))
        .collect();
    scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(count).map(|(_, _, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Golden vectors: these values are where data lives on existing clusters.
    #[test]
    fn shard_hash_golden_vectors() {
        let cases: &[(&str, u32, u32)] = &[
            ("1", 64, GOLDEN[0]),
            ("2", 64, GOLDEN[1]),
            ("42", 64, GOLDEN[2]),
            ("movie-1", 64, GOLDEN[3]),
            ("a_b-C", 64, GOLDEN[4]),
            ("", 64, GOLDEN[5]),
            ("18446744073709551615", 64, GOLDEN[6]),
            ("1", 1024, GOLDEN[7]),
            ("movie-1", 7, GOLDEN[8]),
        ];
        for (id, shards, want) in cases {
            assert_eq!(
                shard_of(id.as_bytes(), *shards),
                *want,
                "id {id:?} over {shards}"
            );
        }
        assert_eq!(xxh3_64_with_seed(b"1", SHARD_SEED), GOLDEN_RAW_1);
    }

    const GOLDEN: [u32; 9] = [1, 40, 31, 21, 14, 15, 11, 449, 1];
    const GOLDEN_RAW_1: u64 = 8_473_662_280_202_463_681;

    #[test]
    fn rendezvous_golden_vectors() {
        let members = ["node-a", "node-b", "node-c"];
        for (shard, want) in GOLDEN_OWNERS.iter().enumerate() {
            assert_eq!(owners(&members, shard as u32, 2), want, "shard {shard}");
        }
    }

    const GOLDEN_OWNERS: [[usize; 2]; 6] = [[0, 2], [0, 1], [2, 0], [2, 0], [1, 2], [2, 0]];

    #[test]
    fn integer_and_string_ids_are_the_same_document() {
        let int: serde_json::Value = serde_json::json!(1);
        let string: serde_json::Value = serde_json::json!("1");
        let a = canonical_id(&int).unwrap();
        let b = canonical_id(&string).unwrap();
        assert_eq!(a, b);
        assert_eq!(shard_of(a.as_bytes(), 64), shard_of(b.as_bytes(), 64));
        assert_eq!(canonical_id(&serde_json::json!(-7)).unwrap(), "-7");
        assert!(canonical_id(&serde_json::json!(1.5)).is_none());
        assert!(canonical_id(&serde_json::json!(null)).is_none());
        assert!(canonical_id(&serde_json::json!([1])).is_none());
    }

    fn node_ids() -> impl Strategy<Value = Vec<String>> {
        prop::collection::btree_set("[a-z][a-z0-9-]{0,11}", 3..=32)
            .prop_map(|s| s.into_iter().collect())
    }

    fn owned_counts(ids: &[&str], shards: u32) -> BTreeMap<usize, usize> {
        let mut counts: BTreeMap<usize, usize> = (0..ids.len()).map(|i| (i, 0)).collect();
        for s in 0..shards {
            *counts.get_mut(&owners(ids, s, 1)[0]).unwrap() += 1;
        }
        counts
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d69726f6972),
            ..ProptestConfig::default()
        })]

        /// Spread bound (stated in the README): with S = 1024 shards over 3..=32 nodes, every
        /// node's count is within 5 standard deviations of the mean S/N (the spread of a fair
        /// random assignment, so no node is systematically favoured) and max/min <= 3.5.
        #[test]
        fn shards_spread_evenly(ids in node_ids()) {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let shards = 1024u32;
            let p = 1.0 / ids.len() as f64;
            let mean = f64::from(shards) * p;
            let sigma = (f64::from(shards) * p * (1.0 - p)).sqrt();
            let counts = owned_counts(&ids, shards);
            for n in counts.values() {
                let dev = (*n as f64 - mean).abs() / sigma;
                prop_assert!(dev <= 5.0, "{n} shards vs mean {mean:.1} ({dev:.1} sigma) over {} nodes", ids.len());
            }
            let max = *counts.values().max().unwrap() as f64;
            let min = *counts.values().min().unwrap() as f64;
            prop_assert!(min > 0.0 && max / min <= 3.5, "max {max} min {min} over {} nodes", ids.len());
        }

        /// Adding a node moves only shards to it; removing it moves only its own shards.
        #[test]
        fn one_node_change_moves_only_its_shards(ids in node_ids(), extra in "[A-Z][a-z0-9]{0,8}", rf in 1usize..=3) {
            let shards = 256u32;
            let before: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut after = before.clone();
            after.push(&extra);
            let new_idx = after.len() - 1;
            for s in 0..shards {
                let old: BTreeSet<&str> = owners(&before, s, rf).into_iter().map(|i| before[i]).collect();
                let new: BTreeSet<&str> = owners(&after, s, rf).into_iter().map(|i| after[i]).collect();
                let gained: Vec<&&str> = new.difference(&old).collect();
                let lost: Vec<&&str> = old.difference(&new).collect();
                // Adding: the only possible change is the new node replacing one old owner.
                prop_assert!(gained.is_empty() || (gained == vec![&after[new_idx]] && lost.len() == 1),
                    "shard {s}: gained {gained:?} lost {lost:?}");
            }
        }

        #[test]
        fn removing_a_node_moves_only_its_shards(ids in node_ids(), victim in 0usize..32, rf in 1usize..=2) {
            let shards = 256u32;
            let before: Vec<&str> = ids.iter().map(String::as_str).collect();
            let victim = victim % before.len();
            let after: Vec<&str> = before.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, id)| *id).collect();
            for s in 0..shards {
                let old: BTreeSet<&str> = owners(&before, s, rf).into_iter().map(|i| before[i]).collect();
                let new: BTreeSet<&str> = owners(&after, s, rf).into_iter().map(|i| after[i]).collect();
                if old.contains(before[victim]) {
                    // The victim's place goes to exactly one other node; the rest stay.
                    prop_assert_eq!(old.difference(&new).collect::<Vec<_>>(), vec![&before[victim]]);
                    prop_assert_eq!(new.difference(&old).count(), 1);
                } else {
                    prop_assert_eq!(&old, &new, "shard {} moved though {} did not own it", s, before[victim]);
                }
            }
        }

        #[test]
        fn owner_choice_ignores_list_order(ids in node_ids(), shard in 0u32..1024) {
            let a: Vec<&str> = ids.iter().map(String::as_str).collect();
            let pick_a: BTreeSet<&str> = owners(&a, shard, 2).into_iter().map(|i| a[i]).collect();
            let b: Vec<&str> = a.iter().rev().copied().collect();
            let pick_b: BTreeSet<&str> = owners(&b, shard, 2).into_iter().map(|i| b[i]).collect();
            prop_assert_eq!(pick_a, pick_b);
        }

        #[test]
        fn shards_stay_in_range(id in any::<Vec<u8>>(), shards in 1u32..100_000) {
            prop_assert!(shard_of(&id, shards) < shards);
        }
    }
}
