use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn cache_with(settings: CacheSettings) -> SearchCache {
    SearchCache::new(settings, &Metrics::new())
}

fn on() -> CacheSettings {
    CacheSettings {
        enabled: true,
        ..CacheSettings::default()
    }
}

fn search<'a>(auth: Option<&'a [u8]>, body: &'a [u8]) -> RequestParts<'a> {
    RequestParts {
        method: "POST",
        path: "/indexes/movies/search",
        query: "",
        authorization: auth,
        body,
    }
}

fn hit_body(p: Probe) -> Option<Bytes> {
    match p {
        Probe::Hit(r) => Some(r.body),
        _ => None,
    }
}

#[test]
fn a_success_is_served_again_until_its_index_changes() {
    let cache = cache_with(on());
    let req = search(Some(b"Bearer k"), br#"{"q":"a"}"#);
    let Probe::Miss(p) = cache.probe(Some("movies"), &req) else {
        panic!("a first lookup misses");
    };
    cache.keep(p, &Reply::json(200, "answer"));
    assert_eq!(
        hit_body(cache.probe(Some("movies"), &req)).as_deref(),
        Some(&b"answer"[..])
    );
    cache.invalidate(Some("books"));
    assert!(hit_body(cache.probe(Some("movies"), &req)).is_some());
    cache.invalidate(Some("movies"));
    assert!(matches!(cache.probe(Some("movies"), &req), Probe::Miss(_)));
}

#[test]
fn errors_are_not_kept_and_keys_do_not_share_answers() {
    let cache = cache_with(on());
    let a = search(Some(b"Bearer a"), b"{}");
    let b = search(Some(b"Bearer b"), b"{}");
    let Probe::Miss(p) = cache.probe(Some("movies"), &a) else {
        panic!()
    };
    cache.keep(p, &Reply::json(403, "denied"));
    let Probe::Miss(p) = cache.probe(Some("movies"), &a) else {
        panic!("a 403 is not kept")
    };
    cache.keep(p, &Reply::json(200, "for a"));
    assert!(matches!(cache.probe(Some("movies"), &b), Probe::Miss(_)));
    assert!(matches!(
        cache.probe(Some("movies"), &search(None, b"{}")),
        Probe::Miss(_)
    ));
}

#[test]
fn the_ttl_bounds_an_answer_and_patterns_choose_indexes() {
    let cache = cache_with(CacheSettings {
        ttl: Duration::from_millis(30),
        indexes: vec!["mov*".into()],
        skip_indexes: vec!["movies_private".into()],
        ..on()
    });
    let req = search(None, b"{}");
    let Probe::Miss(p) = cache.probe(Some("movies"), &req) else {
        panic!()
    };
    cache.keep(p, &Reply::json(200, "x"));
    assert!(matches!(cache.probe(Some("movies"), &req), Probe::Hit(_)));
    std::thread::sleep(Duration::from_millis(40));
    assert!(matches!(cache.probe(Some("movies"), &req), Probe::Miss(_)));
    assert!(matches!(cache.probe(Some("books"), &req), Probe::Off));
    assert!(matches!(
        cache.probe(Some("movies_private"), &req),
        Probe::Off
    ));
    assert!(matches!(
        cache_with(CacheSettings::default()).probe(Some("movies"), &req),
        Probe::Off
    ));
}

#[test]
fn the_budget_is_kept_by_evicting() {
    let cache = cache_with(CacheSettings {
        max_bytes: 64 * 1024,
        ..on()
    });
    let answer = Reply::json(200, vec![b'x'; 4096]);
    for i in 0..200 {
        let body = format!("{{\"q\":\"{i}\"}}");
        if let Probe::Miss(p) = cache.probe(Some("movies"), &search(None, body.as_bytes())) {
            cache.keep(p, &answer);
        }
    }
    let held = cache.entries.as_ref().map_or(0, |e| e.weight());
    assert!(held <= 64 * 1024, "{held} bytes held");
    assert!(cache.metrics.bytes.get() > 0);
}

/// One step of a client workload against the cache and a model of the fleet.
#[derive(Debug, Clone)]
enum Step {
    /// Request `r` starts: a lookup, and on a miss the nodes answer from the data as it is.
    Start(usize),
    /// The oldest unfinished request's answer arrives and is kept.
    Finish,
    /// A write to index `i` succeeds on the nodes and the gateway learns it.
    Write(usize),
}

const INDEXES: [&str; 3] = ["a", "b", "c"];
/// Requests: two searches and two multi-searches over the indexes.
const REQUESTS: [(Option<&str>, &str); 4] = [
    (Some("a"), "{}"),
    (Some("b"), "{}"),
    (None, r#"{"queries":[{"indexUid":"a"},{"indexUid":"c"}]}"#),
    (None, r#"{"queries":[{"indexUid":"b"},{"indexUid":"c"}]}"#),
];

fn reads(r: usize) -> Vec<usize> {
    match REQUESTS[r].0 {
        Some(i) => vec![INDEXES.iter().position(|x| *x == i).unwrap_or(0)],
        None => multi_search_indexes(REQUESTS[r].1.as_bytes())
            .unwrap_or_default()
            .iter()
            .filter_map(|i| INDEXES.iter().position(|x| x == i))
            .collect(),
    }
}

/// The answer the nodes give request `r` when the indexes are at `versions`.
fn answer(r: usize, versions: &[u32; 3]) -> String {
    let v: Vec<String> = reads(r).iter().map(|&i| versions[i].to_string()).collect();
    v.join(",")
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..REQUESTS.len()).prop_map(Step::Start),
        2 => Just(Step::Finish),
        1 => (0..INDEXES.len()).prop_map(Step::Write),
    ]
}

proptest! {
    /// Whatever the interleaving of searches and writes, a hit always shows every index it
    /// reads as it is after the last write the gateway learned of.
    #[test]
    fn no_answer_is_served_after_its_index_changed(steps in prop::collection::vec(step(), 1..120)) {
        let cache = cache_with(on());
        let mut versions = [0u32; 3];
        let mut in_flight: std::collections::VecDeque<(Pending, String)> = Default::default();
        for s in steps {
            match s {
                Step::Start(r) => {
                    let (index, body) = REQUESTS[r];
                    let path = match index {
                        Some(i) => format!("/indexes/{i}/search"),
                        None => "/multi-search".to_string(),
                    };
                    let parts = RequestParts { path: &path, ..search(None, body.as_bytes()) };
                    match cache.probe(index, &parts) {
                        Probe::Hit(reply) => {
                            let expected = answer(r, &versions);
                            prop_assert_eq!(&reply.body[..], expected.as_bytes());
                        }
                        Probe::Miss(p) => in_flight.push_back((p, answer(r, &versions))),
                        Probe::Off => prop_assert!(false, "the cache is on"),
                    }
                }
                Step::Finish => {
                    if let Some((p, body)) = in_flight.pop_front() {
                        cache.keep(p, &Reply::json(200, body));
                    }
                }
                Step::Write(i) => {
                    versions[i] += 1;
                    cache.invalidate(Some(INDEXES[i]));
                }
            }
        }
    }
}
