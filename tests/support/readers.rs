//! Readers that loop on one search while a test flips or swaps what it reads, and count the
//! answers that mix documents of two versions (each document carries its version in `v`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::meili_api::Api;

#[derive(Debug, Default)]
pub struct Counts {
    pub answers: usize,
    pub failed: usize,
    pub mixed: usize,
    /// The versions whole answers showed.
    pub seen: BTreeSet<String>,
    /// The first failure or mixed answer, for the assertion message.
    pub first_problem: Option<String>,
}

pub struct Readers {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<Counts>>,
}

impl Readers {
    /// `n` readers searching `index` for every document (up to 1000) through `addr`.
    pub fn start(addr: SocketAddr, key: Option<&str>, index: &str, n: usize) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..n)
            .map(|_| {
                let stop = stop.clone();
                let key = key.map(str::to_string);
                let path = format!("/indexes/{index}/search");
                tokio::spawn(async move {
                    let mut api = Api::new(addr, key.as_deref());
                    let mut counts = Counts::default();
                    while !stop.load(Ordering::Relaxed) {
                        let resp = api.json("POST", &path, &json!({"limit": 1000})).await;
                        counts.answers += 1;
                        if resp.status != 200 {
                            counts.failed += 1;
                            counts.first_problem.get_or_insert(resp.text());
                            continue;
                        }
                        let body = resp.json();
                        let versions: BTreeSet<String> = body["hits"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|h| h["v"].as_str().map(str::to_string))
                            .collect();
                        match versions.len() {
                            0 => {}
                            1 => counts.seen.extend(versions),
                            _ => {
                                counts.mixed += 1;
                                counts
                                    .first_problem
                                    .get_or_insert(format!("mixed answer: {versions:?}"));
                            }
                        }
                    }
                    counts
                })
            })
            .collect();
        Readers { stop, handles }
    }

    /// Stops the readers; their counts summed.
    pub async fn finish(self) -> Counts {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Counts::default();
        for h in self.handles {
            let c = h.await.expect("reader");
            total.answers += c.answers;
            total.failed += c.failed;
            total.mixed += c.mixed;
            total.seen.extend(c.seen);
            if total.first_problem.is_none() {
                total.first_problem = c.first_problem;
            }
        }
        total
    }
}

/// `n` documents of version `v` (`v` in each, ids from `first`).
pub fn docs(v: &str, first: usize, n: usize) -> serde_json::Value {
    json!((first..first + n)
        .map(|i| json!({"id": i, "v": v, "title": format!("shoe {v} {i}")}))
        .collect::<Vec<_>>())
}

/// The versions (`v`) of a search answer's hits, sorted, each once.
pub fn versions(answer: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = answer["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits: {answer}"))
        .iter()
        .map(|h| h["v"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Swaps `a` and `b` through `api` `times` times, each swap waited for, with `pause` after.
pub async fn swap_times(
    api: &mut Api,
    (a, b): (&str, &str),
    times: usize,
    pause: std::time::Duration,
) {
    let body = json!([{"indexes": [a, b]}]).to_string();
    for _ in 0..times {
        let task = api
            .write(
                "POST",
                "/swap-indexes",
                Some("application/json"),
                body.as_bytes(),
            )
            .await;
        assert_eq!(task["status"], "succeeded", "{task}");
        tokio::time::sleep(pause).await;
    }
}
