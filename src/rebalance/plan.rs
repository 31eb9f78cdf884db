//! The planner: from where shards are and which nodes should exist, the fewest moves that
//! leave every node of a group within one shard of its weighted fair share.
//!
//! Plain code over [`Placement`]: `check-config --plan` prints its answer without touching
//! anything, and the reload applies the same one.

use std::cmp::Reverse;

use serde::Serialize;

use crate::config::NodeSpec;
use crate::placement::Placement;
use crate::routing::rendezvous_weight;

/// One slot of one shard changing owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMove {
    pub shard: u32,
    pub group: String,
    /// Which of the shard's `replication_factor` owners in the group.
    pub slot: usize,
    pub from: String,
    pub to: String,
}

/// The moves from `current` to a balanced placement over `desired`, or why there is none.
pub fn plan(current: &Placement, desired: &[NodeSpec]) -> Result<Vec<PlannedMove>, String> {
    let mut wanted: Vec<&str> = desired.iter().map(|n| n.group.as_str()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut have: Vec<&str> = current.groups.iter().map(String::as_str).collect();
    have.sort_unstable();
    if wanted != have {
        return Err(format!(
            "the replica groups would change from {have:?} to {wanted:?}: adding or removing a whole group online is not supported; change the nodes within the groups"
        ));
    }
    let mut moves = Vec::new();
    for (g, name) in current.groups.iter().enumerate() {
        let members: Vec<&NodeSpec> = desired.iter().filter(|n| &n.group == name).collect();
        moves.extend(plan_group(current, g, &members));
    }
    Ok(moves)
}

/// How many slots each member should hold: `total` shared by weight (largest remainder),
/// none above `cap`; a remainder goes first to the node that holds more already, so the
/// plan moves as little as possible.
pub fn targets(weights: &[u32], current: &[usize], total: usize, cap: usize) -> Vec<usize> {
    let n = weights.len();
    let mut out = vec![0usize; n];
    let mut capped = vec![false; n];
    loop {
        let left: usize = total - (0..n).filter(|&i| capped[i]).map(|_| cap).sum::<usize>();
        let w: u64 = (0..n)
            .filter(|&i| !capped[i])
            .map(|i| u64::from(weights[i]))
            .sum();
        if w == 0 {
            return out;
        }
        let mut rem: Vec<(u64, usize)> = Vec::new();
        let mut given = 0;
        let mut newly_capped = false;
        let open: Vec<usize> = (0..n).filter(|&i| !capped[i]).collect();
        for i in open {
            let exact = left as u64 * u64::from(weights[i]);
            let floor = (exact / w) as usize;
            if floor >= cap {
                capped[i] = true;
                out[i] = cap;
                newly_capped = true;
            } else {
                out[i] = floor;
                given += floor;
                rem.push((exact % w, i));
            }
        }
        if newly_capped {
            continue;
        }
        rem.sort_by_key(|&(frac, i)| (Reverse(frac), Reverse(current[i]), i));
        for &(_, i) in rem.iter().cycle().take(left.saturating_sub(given)) {
            out[i] += 1;
        }
        return out;
    }
}

fn plan_group(current: &Placement, g: usize, members: &[&NodeSpec]) -> Vec<PlannedMove> {
    let rf = current.replication_factor;
    let shards = current.shards;
    let group = &current.groups[g];
    // The group's owners slot by slot, edited as slots are freed and given.
    let mut slots: Vec<Vec<String>> = (0..shards)
        .map(|s| current.owners_in_group(s, g).to_vec())
        .collect();
    let member = |id: &str| members.iter().position(|m| m.id == id);
    let mut counts = vec![0usize; members.len()];
    let mut free: Vec<(u32, usize, String)> = Vec::new();
    let mut held: Vec<Vec<(u32, usize)>> = vec![Vec::new(); members.len()];
    for (shard, owners) in slots.iter().enumerate() {
        for (k, owner) in owners.iter().enumerate() {
            match member(owner) {
                Some(i) => {
                    counts[i] += 1;
                    held[i].push((shard as u32, k));
                }
                None => free.push((shard as u32, k, owner.clone())),
            }
        }
    }
    let weights: Vec<u32> = members.iter().map(|m| m.weight).collect();
    let goal = targets(&weights, &counts, shards as usize * rf, shards as usize);
    // Nodes above their share give up the slots rendezvous likes least for them, preferring
    // shards no other node gives up (a receiver can take a shard only once).
    for (i, mine) in held.iter_mut().enumerate() {
        let excess = counts[i].saturating_sub(goal[i]);
        if excess == 0 {
            continue;
        }
        let id = &members[i].id;
        let freed = |s: u32, free: &[(u32, usize, String)]| free.iter().any(|f| f.0 == s);
        mine.sort_by_key(|&(s, k)| (freed(s, &free), rendezvous_weight(id, s), s, k));
        for (s, k) in mine.drain(..excess) {
            free.push((s, k, id.clone()));
        }
        counts[i] -= excess;
    }
    for (s, k, _) in &free {
        slots[*s as usize][*k].clear();
    }
    free.sort_by_key(|(s, k, _)| (*s, *k));
    let mut moves = Vec::new();
    for (shard, slot, from) in free {
        let owners = &slots[shard as usize];
        // The most short of its share, among nodes not holding the shard already; past
        // their share by one only if a replica constraint leaves no other choice.
        let pick = |slack: usize| {
            (0..members.len())
                .filter(|&i| counts[i] < goal[i] + slack && !owners.contains(&members[i].id))
                .max_by_key(|&i| {
                    (
                        goal[i] + slack - counts[i],
                        rendezvous_weight(&members[i].id, shard),
                        Reverse(i),
                    )
                })
        };
        let Some(to) = pick(0).or_else(|| pick(1)) else {
            slots[shard as usize][slot] = from;
            continue;
        };
        counts[to] += 1;
        let to = members[to].id.clone();
        slots[shard as usize][slot] = to.clone();
        if to != from {
            moves.push(PlannedMove {
                shard,
                group: group.clone(),
                slot,
                from,
                to,
            });
        }
    }
    // A replica constraint may have pushed a slot past someone's share: hand such slots to
    // a node short of its share that does not hold the shard.
    for _ in 0..shards as usize * rf {
        let over = (0..members.len()).find(|&i| counts[i] > goal[i]);
        let under = (0..members.len()).find(|&i| counts[i] < goal[i]);
        let (Some(over), Some(under)) = (over, under) else {
            break;
        };
        let (o, u) = (&members[over].id, &members[under].id);
        let slot = (0..shards).find_map(|s| {
            let owners = &slots[s as usize];
            let k = owners.iter().position(|x| x == o)?;
            (!owners.contains(u)).then_some((s, k))
        });
        let Some((shard, slot)) = slot else {
            break;
        };
        slots[shard as usize][slot] = u.clone();
        counts[over] -= 1;
        counts[under] += 1;
        match moves
            .iter()
            .position(|m| m.shard == shard && m.slot == slot)
        {
            Some(i) if moves[i].from == *u => {
                moves.remove(i);
            }
            Some(i) => moves[i].to = u.clone(),
            None => moves.push(PlannedMove {
                shard,
                group: group.clone(),
                slot,
                from: o.clone(),
                to: u.clone(),
            }),
        }
    }
    moves.sort_by_key(|m| (m.shard, m.slot));
    moves
}

/// `current` once `moves` are done.
pub fn apply(current: &Placement, moves: &[PlannedMove]) -> Placement {
    let mut next = current.clone();
    for m in moves {
        if let Some(g) = next.group(&m.group) {
            next.set_owner(m.shard, g, m.slot, &m.to);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterSpec;
    use proptest::prelude::*;

    fn spec(id: &str, group: &str, weight: u32) -> NodeSpec {
        NodeSpec {
            id: id.into(),
            url: "http://127.0.0.1:1".into(),
            authority: "127.0.0.1:1".into(),
            addr: ([127, 0, 0, 1], 1).into(),
            group: group.into(),
            weight,
        }
    }

    fn fleet(n: usize, weights: &[u32]) -> Vec<NodeSpec> {
        (0..n)
            .map(|i| spec(&format!("node-{i}"), "g", weights[i % weights.len()]))
            .collect()
    }

    fn cluster(shards: u32, rf: usize) -> ClusterSpec {
        ClusterSpec {
            shards,
            replication_factor: rf,
        }
    }

    /// Plans from rendezvous to balanced and returns the balanced placement.
    fn balanced(shards: u32, rf: usize, specs: &[NodeSpec]) -> Placement {
        let start = Placement::rendezvous(&cluster(shards, rf), specs);
        let moves = plan(&start, specs).unwrap();
        apply(&start, &moves)
    }

    fn assert_fair(p: &Placement, specs: &[NodeSpec]) -> Result<(), TestCaseError> {
        let counts = p.counts();
        let total = (p.shards as usize * p.replication_factor) as f64;
        let w: f64 = specs.iter().map(|s| f64::from(s.weight)).sum();
        for s in specs {
            let share = total * f64::from(s.weight) / w;
            let have = counts.get(s.id.as_str()).copied().unwrap_or(0) as f64;
            prop_assert!(
                (have - share).abs() < 1.0,
                "{} holds {have}, fair share {share:.2}",
                s.id
            );
        }
        for shard in 0..p.shards {
            let owners = p.owners_in_group(shard, 0);
            let mut unique = owners.to_vec();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), owners.len(), "shard {} held twice", shard);
        }
        Ok(())
    }

    #[test]
    fn example_fleet_is_balanced_by_the_plan() {
        let specs = fleet(3, &[1]);
        let p = balanced(64, 1, &specs);
        let mut counts: Vec<usize> = p.counts().values().copied().collect();
        counts.sort();
        assert_eq!(counts, [21, 21, 22]);
        assert!(
            plan(&p, &specs).unwrap().is_empty(),
            "a balanced fleet moves nothing"
        );
    }

    #[test]
    fn weights_share_by_proportion() {
        let specs = vec![spec("big", "g", 2), spec("a", "g", 1), spec("b", "g", 1)];
        let p = balanced(64, 1, &specs);
        let counts = p.counts();
        assert_eq!(counts["big"], 32);
        assert_eq!(counts["a"] + counts["b"], 32);
    }

    #[test]
    fn group_changes_are_refused() {
        let specs = fleet(3, &[1]);
        let p = balanced(16, 1, &specs);
        let mut more = specs.clone();
        more.push(spec("x", "other", 1));
        assert!(plan(&p, &more).unwrap_err().contains("groups"));
    }

    #[test]
    fn targets_respect_the_cap() {
        assert_eq!(targets(&[1000, 1, 1], &[0, 0, 0], 128, 64), [64, 32, 32]);
        assert_eq!(targets(&[1, 1, 1], &[0, 9, 0], 64, 64), [21, 22, 21]);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 64,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d69726f6972),
            ..ProptestConfig::default()
        })]

        /// Every plan ends within one slot of each node's weighted share, no shard twice.
        #[test]
        fn plans_are_fair(n in 3usize..=32, big in any::<bool>(), weights in prop::collection::vec(1u32..=3, 1..4), rf in 1usize..=2) {
            let shards = if big { 1024 } else { 64 };
            let specs = fleet(n, &weights);
            let p = balanced(shards, rf, &specs);
            assert_fair(&p, &specs)?;
        }

        /// Adding a node to a balanced fleet moves only shards to it, as many as its share.
        #[test]
        fn adding_a_node_moves_only_to_it(n in 3usize..=31, big in any::<bool>(), rf in 1usize..=2) {
            let shards = if big { 1024 } else { 64 };
            let specs = fleet(n, &[1]);
            let p = balanced(shards, rf, &specs);
            let mut grown = specs.clone();
            grown.push(spec("new", "g", 1));
            let moves = plan(&p, &grown).unwrap();
            prop_assert!(moves.iter().all(|m| m.to == "new"));
            let share = shards as usize * rf / (n + 1);
            prop_assert!(moves.len() == share || moves.len() == share + 1, "{} moves, share {}", moves.len(), share);
            assert_fair(&apply(&p, &moves), &grown)?;
        }

        /// Removing a node moves its shards and nothing else.
        #[test]
        fn removing_a_node_moves_only_its_shards(n in 4usize..=32, victim in 0usize..32, big in any::<bool>()) {
            let shards = if big { 1024 } else { 64 };
            let specs = fleet(n, &[1]);
            let p = balanced(shards, 1, &specs);
            let gone = specs[victim % n].id.clone();
            let shrunk: Vec<NodeSpec> = specs.iter().filter(|s| s.id != gone).cloned().collect();
            let moves = plan(&p, &shrunk).unwrap();
            prop_assert!(moves.iter().all(|m| m.from == gone));
            prop_assert_eq!(moves.len(), p.counts()[gone.as_str()]);
            assert_fair(&apply(&p, &moves), &shrunk)?;
        }
    }
}
