//! Ordering hits from different shards the way one node orders them.
//!
//! A node sorts by its ranking rules in sequence (a bucket sort): the rule-by-rule scores in
//! `_rankingScoreDetails`, compared lexicographically, give exactly that order. Sort rules
//! compare their values (numbers before strings, `null` last, in the rule's direction), geo
//! sort its distance. Scores compare with an epsilon, as in Meilisearch's federated merge
//! (`milli/src/score_details.rs`, `search/federated/weighted_scores.rs`).

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// One step of a hit's ranking, in rule order.
#[derive(Debug, Clone, PartialEq)]
pub enum Component {
    Score(f64),
    Sort { asc: bool, value: Value },
    Geo { asc: bool, distance: Option<f64> },
    Vector(f64),
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// The components of a hit from its `_rankingScoreDetails`.
pub fn components(details: &Map<String, Value>) -> Vec<Component> {
    let mut rules: Vec<(&String, &Value)> = details.iter().collect();
    rules.sort_by_key(|(_, v)| v.get("order").and_then(Value::as_u64).unwrap_or(u64::MAX));
    let mut out = Vec::with_capacity(rules.len() + 2);
    for (name, entry) in rules {
        match name.as_str() {
            "words" => match (num(entry, "matchingWords"), num(entry, "maxMatchingWords")) {
                (Some(m), Some(max)) if max > 0.0 => out.push(Component::Score(m / max)),
                _ => out.push(Component::Score(num(entry, "score").unwrap_or(0.0))),
            },
            "attribute" => {
                out.push(Component::Score(
                    num(entry, "attributeRankingOrderScore").unwrap_or(0.0),
                ));
                out.push(Component::Score(
                    num(entry, "queryWordDistanceScore").unwrap_or(0.0),
                ));
            }
            "exactness" => {
                let rank = match entry.get("matchType").and_then(Value::as_str) {
                    Some("exactMatch") => 3.0,
                    Some("matchesStart") => 2.0,
                    _ => 1.0,
                };
                out.push(Component::Score(rank / 3.0));
                if let (Some(m), Some(max)) =
                    (num(entry, "matchingWords"), num(entry, "maxMatchingWords"))
                {
                    out.push(Component::Score((m + 1.0) / (max + 1.0)));
                }
            }
            "skipped" => out.push(Component::Score(0.0)),
            "vectorSort" => out.push(Component::Vector(num(entry, "similarity").unwrap_or(0.0))),
            "pin" => {}
            other if other.ends_with(":asc") || other.ends_with(":desc") => {
                let asc = other.ends_with(":asc");
                if other.starts_with("_geoPoint(") {
                    out.push(Component::Geo {
                        asc,
                        distance: entry.get("distance").and_then(Value::as_f64),
                    });
                } else {
                    out.push(Component::Sort {
                        asc,
                        value: entry.get("value").cloned().unwrap_or(Value::Null),
                    });
                }
            }
            // typo, proximity, attributeRank, wordPosition and any future rule with a score.
            _ => out.push(Component::Score(num(entry, "score").unwrap_or(0.0))),
        }
    }
    out
}

/// The components of a hit straight from the bytes of its `_rankingScoreDetails` object,
/// without building a tree (the merge's hot path; [`components`] is the reference).
pub fn components_raw(buf: &[u8], start: usize) -> Vec<Component> {
    use super::raw::members;
    let num = |range: (usize, usize)| -> f64 {
        std::str::from_utf8(&buf[range.0..range.1])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0)
    };
    let mut rules: Vec<(u64, &[u8], Vec<super::raw::Member>)> = members(buf, start)
        .into_iter()
        .map(|m| {
            let fields = if buf.get(m.value.0) == Some(&b'{') {
                members(buf, m.value.0)
            } else {
                Vec::new()
            };
            let order = fields
                .iter()
                .find(|f| &buf[f.key.0..f.key.1] == b"order")
                .map_or(u64::MAX, |f| num(f.value) as u64);
            (order, &buf[m.key.0..m.key.1], fields)
        })
        .collect();
    rules.sort_by_key(|r| r.0);
    let field = |fields: &[super::raw::Member], name: &[u8]| {
        fields
            .iter()
            .find(|f| &buf[f.key.0..f.key.1] == name)
            .map(|f| f.value)
    };
    let mut out = Vec::with_capacity(rules.len() + 2);
    for (_, name, fields) in &rules {
        let f = |n: &[u8]| field(fields, n).map(num);
        match *name {
            b"words" => match (f(b"matchingWords"), f(b"maxMatchingWords")) {
                (Some(m), Some(max)) if max > 0.0 => out.push(Component::Score(m / max)),
                _ => out.push(Component::Score(f(b"score").unwrap_or(0.0))),
            },
            b"attribute" => {
                out.push(Component::Score(
                    f(b"attributeRankingOrderScore").unwrap_or(0.0),
                ));
                out.push(Component::Score(
                    f(b"queryWordDistanceScore").unwrap_or(0.0),
                ));
            }
            b"exactness" => {
                let rank = match field(fields, b"matchType").map(|r| &buf[r.0..r.1]) {
                    Some(b"\"exactMatch\"") => 3.0,
                    Some(b"\"matchesStart\"") => 2.0,
                    _ => 1.0,
                };
                out.push(Component::Score(rank / 3.0));
                if let (Some(m), Some(max)) = (f(b"matchingWords"), f(b"maxMatchingWords")) {
                    out.push(Component::Score((m + 1.0) / (max + 1.0)));
                }
            }
            b"skipped" => out.push(Component::Score(0.0)),
            b"vectorSort" => out.push(Component::Vector(f(b"similarity").unwrap_or(0.0))),
            b"pin" => {}
            other if other.ends_with(b":asc") || other.ends_with(b":desc") => {
                let asc = other.ends_with(b":asc");
                if other.starts_with(b"_geoPoint(") {
                    let distance = field(fields, b"distance").and_then(|r| {
                        std::str::from_utf8(&buf[r.0..r.1])
                            .ok()
                            .and_then(|s| s.parse().ok())
                    });
                    out.push(Component::Geo { asc, distance });
                } else {
                    let value = field(fields, b"value")
                        .and_then(|r| serde_json::from_slice(&buf[r.0..r.1]).ok())
                        .unwrap_or(Value::Null);
                    out.push(Component::Sort { asc, value });
                }
            }
            _ => out.push(Component::Score(f(b"score").unwrap_or(0.0))),
        }
    }
    out
}

/// Meilisearch's order of sort values: `Greater` means `left` ranks first.
pub fn compare_sort_values(asc: bool, left: &Value, right: &Value) -> Ordering {
    let order = match (left, right) {
        (Value::Null, Value::Null) => return Ordering::Equal,
        (Value::Null, _) => return Ordering::Less,
        (_, Value::Null) => return Ordering::Greater,
        (Value::Number(_), Value::String(_)) => return Ordering::Greater,
        (Value::String(_), Value::Number(_)) => return Ordering::Less,
        (Value::Number(l), Value::Number(r)) => l
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&r.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(l), Value::String(r)) => l.cmp(r),
        _ => return Ordering::Equal,
    };
    // Ascending: the smaller value ranks first.
    if asc {
        order.reverse()
    } else {
        order
    }
}

fn close(l: f64, r: f64) -> Ordering {
    if (l - r).abs() <= f64::EPSILON {
        Ordering::Equal
    } else {
        l.partial_cmp(&r).unwrap_or(Ordering::Equal)
    }
}

/// `federated` follows Meilisearch's federated merge, which compares geo distances as raw
/// values whatever the direction.
fn compare_component(l: &Component, r: &Component, federated: bool) -> Option<Ordering> {
    use Component::*;
    match (l, r) {
        (Score(a) | Vector(a), Score(b) | Vector(b)) => Some(close(*a, *b)),
        (Sort { asc: la, value: lv }, Sort { asc: ra, value: rv }) if la == ra => {
            Some(compare_sort_values(*la, lv, rv))
        }
        (
            Geo {
                asc: la,
                distance: ld,
            },
            Geo {
                asc: ra,
                distance: rd,
            },
        ) if la == ra => Some(match (ld, rd) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            // Geo distances: the nearer ranks first when ascending.
            (Some(a), Some(b)) => {
                let o = close(*a, *b);
                if *la && !federated {
                    o.reverse()
                } else {
                    o
                }
            }
        }),
        _ => None,
    }
}

/// Compares two hits of one query: `Greater` means `left` ranks first. Falls back to the
/// global `_rankingScore` when the details cannot be compared step by step.
pub fn compare(
    left: &[Component],
    left_score: f64,
    right: &[Component],
    right_score: f64,
) -> Ordering {
    step_by_step(left, right, false, |_, _| close(left_score, right_score))
}

/// Compares component lists rule by rule; `incomparable` decides from the counts of
/// components left on each side when two components cannot be compared.
fn step_by_step(
    left: &[Component],
    right: &[Component],
    weighted: bool,
    incomparable: impl FnOnce(usize, usize) -> Ordering,
) -> Ordering {
    let mut l = left.iter();
    let mut r = right.iter();
    loop {
        match (l.next(), r.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) => match compare_component(a, b, weighted) {
                Some(Ordering::Equal) => continue,
                Some(o) => return o,
                None => return incomparable(l.count(), r.count()),
            },
        }
    }
}

/// Meilisearch's federated comparison values: runs of rule scores coalesced into one (times
/// the query's weight), sort and geo values kept apart.
pub fn weighted(components: &[Component], ranking_score: f64, weight: f64) -> Vec<Component> {
    let only_scores = components.iter().all(|c| matches!(c, Component::Score(_)));
    if only_scores {
        // One run: its merged score is exactly the global `_rankingScore`.
        return vec![Component::Score(ranking_score * weight)];
    }
    let mut out = Vec::new();
    let mut run: Vec<f64> = Vec::new();
    let flush = |run: &mut Vec<f64>, out: &mut Vec<Component>| {
        if !run.is_empty() {
            out.push(Component::Score(merged(run) * weight));
            run.clear();
        }
    };
    for c in components {
        match c {
            Component::Score(s) => run.push(*s),
            Component::Vector(s) => {
                flush(&mut run, &mut out);
                out.push(Component::Vector(s * weight));
            }
            other => {
                flush(&mut run, &mut out);
                out.push(other.clone());
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The merged local score of consecutive rule scores (Meilisearch's `Rank::merge`), each
/// score read back as a fraction with a small denominator.
fn merged(scores: &[f64]) -> f64 {
    let (mut rank, mut max) = (1u64, 1u64);
    for s in scores {
        let (r, m) = as_fraction(*s);
        rank = rank.saturating_sub(1).saturating_mul(m).saturating_add(r);
        max = max.saturating_mul(m);
    }
    rank as f64 / max.max(1) as f64
}

/// The fraction `r/m` (m <= 1000) closest to `s`.
fn as_fraction(s: f64) -> (u64, u64) {
    let mut best = (1u64, 1u64, f64::MAX);
    for m in 1..=1000u64 {
        let r = (s * m as f64).round().clamp(1.0, m as f64) as u64;
        let err = (r as f64 / m as f64 - s).abs();
        if err + 1e-12 < best.2 {
            best = (r, m, err);
            if err < 1e-9 {
                break;
            }
        }
    }
    (best.0, best.1)
}

/// Meilisearch's federated comparison of weighted values (`weighted_scores::compare`).
pub fn compare_weighted(
    left: &[Component],
    left_global: f64,
    right: &[Component],
    right_global: f64,
) -> Ordering {
    step_by_step(left, right, true, |lc, rc| match lc.cmp(&rc) {
        Ordering::Equal => close(left_global, right_global),
        o => o,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn comps(v: Value) -> Vec<Component> {
        components(v.as_object().unwrap())
    }

    #[test]
    fn reads_every_kind_of_rule() {
        let c = comps(json!({
            "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 2, "score": 0.5},
            "typo": {"order": 1, "typoCount": 0, "maxTypoCount": 1, "score": 1.0},
            "attribute": {"order": 3, "attributeRankingOrderScore": 1.0, "queryWordDistanceScore": 0.8, "score": 0.9},
            "year:desc": {"order": 4, "value": 2001},
            "_geoPoint(1, 2):asc": {"order": 5, "value": {"lat": 1, "lng": 2}, "distance": 12.5},
            "exactness": {"order": 6, "matchType": "noExactMatch", "matchingWords": 0, "maxMatchingWords": 1, "score": 0.3},
            "proximity": {"order": 2, "score": 0.75}
        }));
        assert_eq!(
            c,
            vec![
                Component::Score(0.5),
                Component::Score(1.0),
                Component::Score(0.75),
                Component::Score(1.0),
                Component::Score(0.8),
                Component::Sort {
                    asc: false,
                    value: json!(2001)
                },
                Component::Geo {
                    asc: true,
                    distance: Some(12.5)
                },
                Component::Score(1.0 / 3.0),
                Component::Score(0.5),
            ]
        );
    }

    #[test]
    fn the_raw_reader_agrees_with_the_reference() {
        let details = json!({
            "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 2, "score": 0.5},
            "typo": {"order": 1, "typoCount": 0, "maxTypoCount": 1, "score": 1.0},
            "attribute": {"order": 3, "attributeRankingOrderScore": 1.0, "queryWordDistanceScore": 0.8, "score": 0.9},
            "year:desc": {"order": 4, "value": 2001},
            "title:asc": {"order": 7, "value": "b\"c"},
            "_geoPoint(1, 2):asc": {"order": 5, "value": {"lat": 1, "lng": 2}, "distance": 12.5},
            "exactness": {"order": 6, "matchType": "noExactMatch", "matchingWords": 0, "maxMatchingWords": 1, "score": 0.3},
            "proximity": {"order": 2, "score": 0.75},
            "skipped": {"order": 8}
        });
        let bytes = serde_json::to_vec(&details).unwrap();
        assert_eq!(
            components_raw(&bytes, 0),
            components(details.as_object().unwrap())
        );
    }

    #[test]
    fn rules_compare_in_order_not_by_global_score() {
        // A sort value decides before later rules, whatever the global scores say.
        let a = vec![
            Component::Score(1.0),
            Component::Sort {
                asc: true,
                value: json!(5),
            },
            Component::Score(0.1),
        ];
        let b = vec![
            Component::Score(1.0),
            Component::Sort {
                asc: true,
                value: json!(9),
            },
            Component::Score(1.0),
        ];
        assert_eq!(compare(&a, 0.3, &b, 0.9), Ordering::Greater);
        // Numbers before strings, null last.
        assert_eq!(
            compare_sort_values(true, &json!(100), &json!("a")),
            Ordering::Greater
        );
        assert_eq!(
            compare_sort_values(false, &json!(null), &json!("a")),
            Ordering::Less
        );
        assert_eq!(
            compare_sort_values(false, &json!("b"), &json!("a")),
            Ordering::Greater
        );
        // Nearer first when ascending.
        let near = vec![Component::Geo {
            asc: true,
            distance: Some(1.0),
        }];
        let far = vec![Component::Geo {
            asc: true,
            distance: Some(2.0),
        }];
        assert_eq!(compare(&near, 1.0, &far, 1.0), Ordering::Greater);
    }

    #[test]
    fn weighted_values_follow_meilisearch() {
        let plain = vec![Component::Score(0.5), Component::Score(1.0)];
        assert_eq!(weighted(&plain, 0.8, 0.5), vec![Component::Score(0.4)]);
        let sorted = vec![
            Component::Score(0.5),
            Component::Sort {
                asc: true,
                value: json!(1),
            },
        ];
        let w = weighted(&sorted, 0.5, 2.0);
        assert_eq!(
            w[1],
            Component::Sort {
                asc: true,
                value: json!(1)
            }
        );
        assert!(
            (match w[0] {
                Component::Score(s) => s,
                _ => 0.0,
            } - 1.0)
                .abs()
                < 1e-9
        );
        // Rank::merge: ((outer - 1) * inner_max + inner) / (outer_max * inner_max).
        assert!((merged(&[0.5, 1.0]) - 0.5).abs() < 1e-12);
        assert!((merged(&[0.5, 0.5]) - 0.25).abs() < 1e-12);
        assert!((merged(&[2.0 / 3.0, 0.25]) - (1.0 * 4.0 + 1.0) / 12.0).abs() < 1e-12);
    }
}
