//! Comparing a single node's answer with Miroir's, field by field, tolerating only what the
//! README lists: per-request fields (`processingTimeMs`, `requestUid`), storage sizes, the
//! order of hits tied in every ranking rule (and which tied hits a window or distinct keeps),
//! and facets truncated to `maxValuesPerFacet`.

use serde_json::Value;

/// Hits of equal ranking, identified by their score details.
pub fn signature(hit: &Value) -> String {
    hit.get("_rankingScoreDetails")
        .map(Value::to_string)
        .unwrap_or_default()
        + &hit
            .get("_federation")
            .map(|f| f["weightedRankingScore"].to_string())
            .unwrap_or_default()
}

pub fn without_ranking_internals(hit: &Value) -> Value {
    let mut h = hit.clone();
    if let Some(o) = h.as_object_mut() {
        o.remove("_rankingScoreDetails");
    }
    h
}

/// Compares hit lists, tolerating permutations among equally ranked hits. Returns the number
/// of hits that were in a tie group whose order differed.
pub fn compare_hits(
    a: &[Value],
    b: &[Value],
    full_window: bool,
    offset: usize,
    distinct: bool,
    what: &str,
) -> Result<usize, String> {
    if a.len() != b.len() {
        return Err(format!("{what}: {} hits vs {}", a.len(), b.len()));
    }
    let mut reordered = 0;
    let mut i = 0;
    while i < a.len() {
        let sig = signature(&a[i]);
        if signature(&b[i]) != sig {
            return Err(format!(
                "{what}: hit {i} ranks differently:\n single {}\n miroir {}",
                a[i], b[i]
            ));
        }
        let mut j = i + 1;
        while j < a.len() && signature(&a[j]) == sig {
            if signature(&b[j]) != sig {
                return Err(format!(
                    "{what}: hit {j} ranks differently:\n single {}\n miroir {}",
                    a[j], b[j]
                ));
            }
            j += 1;
        }
        let mut left: Vec<String> = a[i..j]
            .iter()
            .map(|h| without_ranking_internals(h).to_string())
            .collect();
        let mut right: Vec<String> = b[i..j]
            .iter()
            .map(|h| without_ranking_internals(h).to_string())
            .collect();
        // A group may extend past either end of the window: before it, after its limit, or
        // past `maxTotalHits` (1000 here), where a node stops.
        let edge =
            (i == 0 && offset > 0) || (j == a.len() && (full_window || offset + a.len() >= 1000));
        if left != right {
            // With distinct, the hit standing for a value is the first of its tied documents.
            if !edge && !distinct {
                left.sort();
                right.sort();
                if left != right {
                    return Err(format!(
                        "{what}: tied hits {i}..{j} differ:\n single {left:?}\n miroir {right:?}"
                    ));
                }
            }
            reordered += j - i;
        }
        i = j;
    }
    Ok(reordered)
}

/// Compares two answers; returns how many hits differed only in tie order.
pub fn compare(
    a: &Value,
    b: &Value,
    window: Option<(usize, usize)>,
    distinct: bool,
    what: &str,
) -> Result<usize, String> {
    let (Some(ao), Some(bo)) = (a.as_object(), b.as_object()) else {
        return if a == b {
            Ok(0)
        } else {
            Err(format!("{what}: {a} vs {b}"))
        };
    };
    let ka: Vec<&String> = ao.keys().collect();
    let kb: Vec<&String> = bo.keys().collect();
    if ka != kb {
        return Err(format!("{what}: fields {ka:?} vs {kb:?}"));
    }
    let mut reordered = 0;
    for (k, va) in ao {
        let vb = &bo[k];
        match k.as_str() {
            "processingTimeMs" | "requestUid" => {}
            // Durations are each run's own: both must list the search's steps.
            "performanceDetails" => {
                let steps = |v: &Value| v.as_object().is_some_and(|o| o.contains_key("search"));
                if !steps(va) || !steps(vb) {
                    return Err(format!("{what}: performanceDetails {va} vs {vb}"));
                }
            }
            // Storage sizes are each node's own.
            "rawDocumentDbSize" | "avgDocumentSize" => {}
            "hits" => {
                let (ha, hb) = (va.as_array().unwrap(), vb.as_array().unwrap());
                let (offset, limit) = window.unwrap_or((0, usize::MAX));
                reordered += compare_hits(ha, hb, ha.len() == limit, offset, distinct, what)?;
            }
            "results"
                if va.is_array()
                    && va
                        .as_array()
                        .unwrap()
                        .first()
                        .is_some_and(|r| r.get("hits").is_some()) =>
            {
                for (i, (ra, rb)) in va
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(vb.as_array().unwrap())
                    .enumerate()
                {
                    let w = (
                        ra["offset"].as_u64().unwrap_or(0) as usize,
                        ra["limit"].as_u64().map_or(usize::MAX, |l| l as usize),
                    );
                    reordered +=
                        compare(ra, rb, Some(w), distinct, &format!("{what} results[{i}]"))?;
                }
            }
            "facetDistribution" if va != vb => {
                let mut detail = Vec::new();
                for (facet, values) in va.as_object().into_iter().flatten() {
                    // Known difference (README): a facet truncated to `maxValuesPerFacet`
                    // (100 here) is merged from the shards' own truncated lists.
                    let truncated = values.as_object().is_some_and(|v| v.len() >= 100);
                    if vb.get(facet) != Some(values) && !truncated {
                        detail.push(format!(
                            "{facet}: single {values}\n miroir {}",
                            vb.get(facet).unwrap_or(&Value::Null)
                        ));
                    }
                }
                if !detail.is_empty() {
                    return Err(format!(
                        "{what}: facetDistribution differs in {}",
                        detail.join("\n")
                    ));
                }
            }
            _ if va != vb => {
                return Err(format!(
                    "{what}: `{k}` differs:\n single {va}\n miroir {vb}"
                ))
            }
            _ => {}
        }
    }
    Ok(reordered)
}
