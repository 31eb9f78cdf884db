//! Plain multi-search (no `federation`): each query merged on its own like a search, the
//! results in the order of the queries.

use super::raw::result_ranges;
use super::search::{merge_search, MergeError, SearchPlan, ShardAnswer};

/// Merges the nodes' multi-search answers (`answers[n]` holds every query's result, in
/// order) into `{"results": [...]}`, one merged search per plan.
pub fn merge_multi(
    answers: &[&[u8]],
    plans: &[&SearchPlan],
    gateway_ms: u64,
) -> Result<Vec<u8>, MergeError> {
    let ranges: Vec<Vec<(usize, usize)>> = answers.iter().map(|a| result_ranges(a)).collect();
    let mut out = Vec::from(&b"{\"results\":["[..]);
    for (i, plan) in plans.iter().enumerate() {
        let mut shards = query_answers(answers, &ranges, i, plan.distinct.as_deref())?;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&merge_search(&mut shards, plan, gateway_ms)?);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Query `i`'s answer from each node's multi-search answer (`ranges`: [`result_ranges`]).
pub(super) fn query_answers<'a>(
    answers: &[&'a [u8]],
    ranges: &[Vec<(usize, usize)>],
    i: usize,
    distinct: Option<&str>,
) -> Result<Vec<ShardAnswer<'a>>, MergeError> {
    answers
        .iter()
        .zip(ranges)
        .map(|(a, r)| {
            let range = r
                .get(i)
                .ok_or_else(|| MergeError("a node answered fewer queries".into()))?;
            ShardAnswer::parse(&a[range.0..range.1], distinct)
        })
        .collect()
}
