//! One search merged from its shard answers: hits in single-node order, distinct across
//! shards, `maxTotalHits` re-applied, totals and facets summed, injected fields removed by
//! splicing the hits' bytes, fields in the node's order, a fresh `requestUid`.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::{Map, Value};

use super::facets::{merge_distribution, merge_stats, FacetSettings};
use super::raw::{
    members, members_and_end, search_answer_members, skip_ws, write_members_without, Member,
};
use super::score::{compare, components_raw, Component};
use crate::shard_tag;

/// What the merge must know of the client's request and the index.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPlan {
    pub offset: usize,
    pub limit: usize,
    /// `(page, hitsPerPage)` in page mode.
    pub page: Option<(usize, usize)>,
    pub hits: HitPlan,
    /// The distinct attribute in force (request, else index setting).
    pub distinct: Option<String>,
    pub max_total_hits: usize,
    pub facets: FacetSettings,
}

impl SearchPlan {
    /// How many hits the merge may take from one shard: the whole window, unless distinct
    /// may drop some (then all of them).
    pub fn needed(&self) -> usize {
        if self.distinct.is_some() {
            return usize::MAX;
        }
        let end = match self.page {
            Some((page, per_page)) => page.max(1).saturating_mul(per_page),
            None => self.offset.saturating_add(self.limit),
        };
        end.min(self.max_total_hits)
    }
}

/// What to remove from each hit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HitPlan {
    pub show_ranking_score: bool,
    pub show_ranking_score_details: bool,
    /// Fields the gateway asked for only to merge (e.g. the distinct attribute).
    pub strip: Vec<String>,
}

impl HitPlan {
    fn drops(&self, key: &[u8]) -> bool {
        shard_tag::is_reserved(key)
            || (!self.show_ranking_score && key == b"_rankingScore")
            || (!self.show_ranking_score_details && key == b"_rankingScoreDetails")
            || self.strip.iter().any(|s| s.as_bytes() == key)
    }

    /// Copies a hit without the fields the client did not ask for.
    pub fn write_hit(&self, buf: &[u8], hit: &Hit, out: &mut Vec<u8>) {
        let strip_nested = |k: &[u8]| k == b"_formatted";
        let nested_drop = |k: &[u8]| self.drops(k);
        write_members_without(
            buf,
            hit.range,
            &hit.members,
            &nested_drop,
            &strip_nested,
            out,
        );
    }
}

/// Why shard answers cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError(pub String);

/// One hit as the merge sees it: its bytes and what orders it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub range: (usize, usize),
    pub score: f64,
    pub components: Vec<Component>,
    /// The distinct attribute's values, canonical JSON (`None`: the field is absent).
    pub distinct: Option<Vec<String>>,
    /// Found by the semantic half of a hybrid search (its score details are `vectorSort`).
    pub semantic: bool,
    /// Its members, read once for both ordering and copying.
    pub members: Vec<Member>,
}

/// One shard's answer, parsed just enough: its top-level members at once, its hits one by
/// one as the merge reaches them (a merge of k shards for a window of n reads about n + k
/// hits, not all of them).
#[derive(Debug)]
pub struct ShardAnswer<'a> {
    pub buf: &'a [u8],
    pub top: Vec<Member>,
    pub hits: Vec<Hit>,
    /// Where the next unread hit may start; `None` once the array is read.
    next: Option<usize>,
    distinct: Option<String>,
    /// Whether hits are compared with other shards' (a lone answer keeps its own order, and
    /// its scores need not be read).
    ranked: bool,
}

impl<'a> ShardAnswer<'a> {
    /// Reads the top-level members; hits are read by [`ShardAnswer::ensure`].
    pub fn parse(buf: &'a [u8], distinct: Option<&str>) -> Result<ShardAnswer<'a>, MergeError> {
        let start = skip_ws(buf, 0);
        if buf.get(start) != Some(&b'{') {
            return Err(MergeError("a shard answer is not a JSON object".into()));
        }
        // Read from the end, the hits array is never scanned; any other shape is read forwards.
        let (top, next) = match search_answer_members(buf) {
            Some((top, first)) => (top, Some(first)),
            None => Self::forward(buf, start),
        };
        Ok(ShardAnswer {
            buf,
            top,
            hits: Vec::new(),
            next,
            distinct: distinct.map(str::to_string),
            ranked: true,
        })
    }

    /// Marks the answer as the only one: its hits are taken in its order.
    pub fn alone(mut self) -> Self {
        self.ranked = false;
        self
    }

    fn forward(buf: &[u8], start: usize) -> (Vec<Member>, Option<usize>) {
        let (top, _) = members_and_end(buf, start);
        let next = top
            .iter()
            .find(|m| &buf[m.key.0..m.key.1] == b"hits" && buf.get(m.value.0) == Some(&b'['))
            .map(|m| m.value.0 + 1);
        (top, next)
    }

    /// Reads hits until hit `i` is known; whether it exists.
    pub fn ensure(&mut self, i: usize) -> Result<bool, MergeError> {
        let buf = self.buf;
        while self.hits.len() <= i {
            let Some(mut j) = self.next else {
                return Ok(false);
            };
            while j < buf.len() && matches!(buf[j], b' ' | b'\n' | b'\r' | b'\t' | b',') {
                j += 1;
            }
            if j >= buf.len() || buf[j] != b'{' {
                self.next = None;
                return Ok(false);
            }
            let (fields, end) = members_and_end(buf, j);
            // A lone answer without distinct is taken in its order: nothing to read in it.
            let hit = if !self.ranked && self.distinct.is_none() {
                Hit {
                    range: (j, end),
                    score: 0.0,
                    components: Vec::new(),
                    distinct: None,
                    semantic: false,
                    members: fields,
                }
            } else {
                Self::hit(buf, (j, end), fields, self.distinct.as_deref(), self.ranked)?
            };
            let end = hit.range.1;
            self.hits.push(hit);
            self.next = Some(end);
        }
        Ok(true)
    }

    /// Reads every hit (distinct needs them all).
    pub fn ensure_all(&mut self) -> Result<(), MergeError> {
        while self.ensure(self.hits.len())? {}
        Ok(())
    }

    fn hit(
        buf: &[u8],
        range: (usize, usize),
        fields: Vec<Member>,
        distinct: Option<&str>,
        ranked: bool,
    ) -> Result<Hit, MergeError> {
        let mut hit = Hit {
            range,
            score: 0.0,
            components: Vec::new(),
            distinct: None,
            semantic: false,
            members: Vec::new(),
        };
        for m in &fields {
            let key = &buf[m.key.0..m.key.1];
            let value = &buf[m.value.0..m.value.1];
            if !ranked && key.starts_with(b"_rankingScore") {
                continue;
            }
            if key == b"_rankingScore" {
                hit.score = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0.0);
            } else if key == b"_rankingScoreDetails" {
                if value.first() != Some(&b'{') {
                    return Err(MergeError("bad score details".into()));
                }
                hit.components = components_raw(buf, m.value.0);
                hit.semantic = super::raw::members(buf, m.value.0)
                    .iter()
                    .any(|f| &buf[f.key.0..f.key.1] == b"vectorSort");
            } else if distinct.is_some_and(|d| d.as_bytes() == key) {
                let v: Value = serde_json::from_slice(value).unwrap_or(Value::Null);
                hit.distinct = match v {
                    Value::Null => None,
                    Value::Array(items) => Some(items.iter().map(Value::to_string).collect()),
                    other => Some(vec![other.to_string()]),
                };
            }
        }
        hit.members = fields;
        Ok(hit)
    }

    /// A top-level number of the answer (0 if absent).
    pub fn number_or_zero(&self, name: &str) -> u64 {
        self.number(name).unwrap_or(0)
    }

    fn member(&self, name: &str) -> Option<&'a [u8]> {
        self.top
            .iter()
            .find(|m| &self.buf[m.key.0..m.key.1] == name.as_bytes())
            .map(|m| &self.buf[m.value.0..m.value.1])
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.member(name)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
    }

    /// A top-level object of the answer.
    pub fn object(&self, name: &str) -> Option<Map<String, Value>> {
        self.member(name)
            .and_then(|v| serde_json::from_slice(v).ok())
    }
}

/// The merged order of the hits, `(shard, hit)` pairs, up to `needed` of them (all with
/// distinct, applied across shards). Returns the order and how many hits distinct removed.
pub fn merge_order(
    shards: &mut [ShardAnswer<'_>],
    distinct: bool,
    needed: usize,
) -> Result<(Vec<(usize, usize)>, usize), MergeError> {
    if distinct {
        for s in shards.iter_mut() {
            s.ensure_all()?;
        }
    }
    let mut cursors = vec![0usize; shards.len()];
    let mut out = Vec::with_capacity(needed.min(4096));
    let mut seen: HashSet<String> = HashSet::new();
    let mut dropped = 0;
    loop {
        if out.len() >= needed {
            break;
        }
        for (s, cursor) in cursors.iter().enumerate() {
            shards[s].ensure(*cursor)?;
        }
        let shards: &[ShardAnswer<'_>] = shards;
        // k is small (one answer per shard group): a linear pick of the best head.
        let mut best: Option<usize> = None;
        for s in 0..shards.len() {
            let Some(h) = shards[s].hits.get(cursors[s]) else {
                continue;
            };
            best = match best {
                None => Some(s),
                Some(b) => {
                    let bh = &shards[b].hits[cursors[b]];
                    // Ties keep the earlier shard first, for a stable order.
                    if compare(&h.components, h.score, &bh.components, bh.score)
                        == Ordering::Greater
                    {
                        Some(s)
                    } else {
                        Some(b)
                    }
                }
            };
        }
        let Some(s) = best else { break };
        let hit = &shards[s].hits[cursors[s]];
        cursors[s] += 1;
        if distinct {
            if let Some(values) = &hit.distinct {
                if values.iter().any(|v| seen.contains(v.as_str())) {
                    dropped += 1;
                    continue;
                }
                seen.extend(values.iter().cloned());
            }
        }
        out.push((s, cursors[s] - 1));
    }
    Ok((out, dropped))
}

/// Merges shard answers of one search into the client's answer.
pub fn merge_search(
    shards: &mut [ShardAnswer<'_>],
    plan: &SearchPlan,
    gateway_ms: u64,
) -> Result<Vec<u8>, MergeError> {
    let (mut order, dropped) = merge_order(shards, plan.distinct.is_some(), plan.needed())?;
    let shards: &[ShardAnswer<'_>] = shards;
    let first = shards
        .first()
        .ok_or_else(|| MergeError("no shard answered".into()))?;
    // With distinct, a node counts distinct values; when every shard returned all its hits,
    // the merged list is that count exactly.
    let complete = shards.iter().all(|s| {
        let total = s
            .number("estimatedTotalHits")
            .or_else(|| s.number("totalHits"))
            .unwrap_or(0);
        s.hits.len() as u64 >= total
    });
    let distinct_total = (plan.distinct.is_some() && complete).then_some(order.len() as u64);
    order.truncate(plan.max_total_hits);
    let (skip, take) = match plan.page {
        // Page 0 has no hits, as on a node (the totals are still counted).
        Some((0, _)) => (0, 0),
        Some((page, per_page)) => (page.saturating_sub(1).saturating_mul(per_page), per_page),
        None => (plan.offset, plan.limit),
    };
    let window: Vec<(usize, usize)> = order.iter().skip(skip).take(take).copied().collect();

    let sum = |name: &str| shards.iter().filter_map(|s| s.number(name)).sum::<u64>();
    let mut out = Vec::with_capacity(
        window
            .iter()
            .map(|&(s, h)| shards[s].hits[h].range.1 - shards[s].hits[h].range.0)
            .sum::<usize>()
            + 512,
    );
    out.push(b'{');
    for (i, m) in first.top.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let key = &first.buf[m.key.0..m.key.1];
        out.extend_from_slice(&first.buf[m.start..m.value.0]);
        let value: Vec<u8> = match key {
            b"hits" => {
                let mut hits = Vec::with_capacity(out.capacity());
                hits.push(b'[');
                for (n, &(s, h)) in window.iter().enumerate() {
                    if n > 0 {
                        hits.push(b',');
                    }
                    plan.hits
                        .write_hit(shards[s].buf, &shards[s].hits[h], &mut hits);
                }
                hits.push(b']');
                hits
            }
            b"processingTimeMs" => {
                let slowest = shards
                    .iter()
                    .filter_map(|s| s.number("processingTimeMs"))
                    .max()
                    .unwrap_or(0);
                (slowest + gateway_ms).to_string().into_bytes()
            }
            b"limit" => plan.limit.to_string().into_bytes(),
            b"offset" => plan.offset.to_string().into_bytes(),
            b"hitsPerPage" => plan.page.map_or(0, |p| p.1).to_string().into_bytes(),
            b"page" => plan.page.map_or(1, |p| p.0).to_string().into_bytes(),
            // A node's estimate counts candidates before distinct: so does the sum.
            b"estimatedTotalHits" => distinct_total
                .unwrap_or_else(|| sum("estimatedTotalHits"))
                .to_string()
                .into_bytes(),
            b"totalHits" => distinct_total
                .unwrap_or_else(|| total_hits(sum("totalHits"), dropped))
                .to_string()
                .into_bytes(),
            b"totalPages" => {
                let total = distinct_total.unwrap_or_else(|| total_hits(sum("totalHits"), dropped));
                let per_page = plan.page.map_or(1, |p| p.1) as u64;
                let pages = if per_page == 0 {
                    0
                } else {
                    total.div_ceil(per_page)
                };
                pages.to_string().into_bytes()
            }
            // The semantic hits of the merged window, as a node counts those of its own (a
            // lone answer's count is its own).
            b"semanticHitCount" if shards.len() > 1 => window
                .iter()
                .filter(|&&(s, h)| shards[s].hits[h].semantic)
                .count()
                .to_string()
                .into_bytes(),
            b"semanticHitCount" => sum("semanticHitCount").to_string().into_bytes(),
            // A lone answer's distribution is the node's own unless it must be cut to the
            // client's `maxValuesPerFacet` (the nodes keep more) or hides the gateway's fields.
            b"facetDistribution"
                if shards.len() == 1
                    && lone_distribution_fits(first.buf, m.value.0, plan.facets.max_values) =>
            {
                first.buf[m.value.0..m.value.1].to_vec()
            }
            b"facetStats" if shards.len() == 1 => first.buf[m.value.0..m.value.1].to_vec(),
            b"facetDistribution" => {
                let parts: Vec<Map<String, Value>> = shards
                    .iter()
                    .filter_map(|s| s.object("facetDistribution"))
                    .collect();
                let refs: Vec<&Map<String, Value>> = parts.iter().collect();
                let candidates = sum("estimatedTotalHits").max(sum("totalHits"));
                let mut merged = merge_distribution(&refs, &plan.facets, candidates);
                merged.shift_remove(shard_tag::FIELD);
                merged.shift_remove(shard_tag::order::FIELD);
                serde_json::to_vec(&merged).unwrap_or_default()
            }
            b"facetStats" => {
                let parts: Vec<Map<String, Value>> = shards
                    .iter()
                    .filter_map(|s| s.object("facetStats"))
                    .collect();
                let refs: Vec<&Map<String, Value>> = parts.iter().collect();
                serde_json::to_vec(&merge_stats(&refs)).unwrap_or_default()
            }
            b"requestUid" => format!("\"{}\"", uuid::Uuid::now_v7()).into_bytes(),
            _ => first.buf[m.value.0..m.value.1].to_vec(),
        };
        out.extend_from_slice(&value);
    }
    out.push(b'}');
    Ok(out)
}

/// Whether the distribution at `pos` has no gateway field and at most `max_values` values
/// per facet.
fn lone_distribution_fits(buf: &[u8], pos: usize, max_values: usize) -> bool {
    buf.get(pos) == Some(&b'{')
        && members(buf, pos).iter().all(|facet| {
            !shard_tag::is_reserved(&buf[facet.key.0..facet.key.1])
                && buf.get(facet.value.0) == Some(&b'{')
                && members(buf, facet.value.0).len() <= max_values
        })
}

/// Exhaustive totals (page mode): summed, less distinct duplicates, capped like a node.
fn total_hits(sum: u64, dropped: usize) -> u64 {
    sum.saturating_sub(dropped as u64)
}

#[cfg(test)]
mod tests;
