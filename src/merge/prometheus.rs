//! `GET /metrics` over a fleet: each node's Prometheus text exposition, every sample labelled
//! with its node, families joined so each is declared once, and the gateway's own metrics
//! after them.

/// One metric family: its `# HELP` / `# TYPE` lines and its samples, in order.
#[derive(Default)]
struct Family {
    name: String,
    header: Vec<String>,
    samples: Vec<String>,
}

/// The expositions of `nodes` (`(node id, text)`), joined, then `own`.
pub fn merge_exposition(nodes: &[(&str, &[u8])], own: &[u8]) -> Vec<u8> {
    let mut families: Vec<Family> = Vec::new();
    for (node, text) in nodes {
        let text = String::from_utf8_lossy(text);
        let mut current: Option<usize> = None;
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let mut words = rest.split_whitespace();
                let (Some(kind @ ("HELP" | "TYPE")), Some(name)) = (words.next(), words.next())
                else {
                    continue;
                };
                let at = family(&mut families, name);
                if !families[at].header.iter().any(|h| h.contains(kind)) {
                    families[at].header.push(line.to_string());
                }
                current = Some(at);
                continue;
            }
            let name = metric_name(line);
            // A histogram's or summary's `_bucket`, `_sum` and `_count` belong to the family
            // declared before them; any other sample outside it starts a family of its own.
            let at = match current {
                Some(at) if belongs(&families[at].name, name) => at,
                _ => family(&mut families, name),
            };
            current = Some(at);
            families[at].samples.push(with_node(line, node));
        }
    }
    let mut out = Vec::new();
    for f in &families {
        for line in f.header.iter().chain(&f.samples) {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out.extend_from_slice(own);
    out
}

fn family(families: &mut Vec<Family>, name: &str) -> usize {
    match families.iter().position(|f| f.name == name) {
        Some(at) => at,
        None => {
            families.push(Family {
                name: name.to_string(),
                ..Family::default()
            });
            families.len() - 1
        }
    }
}

fn metric_name(sample: &str) -> &str {
    let end = sample
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(sample.len());
    &sample[..end]
}

fn belongs(family: &str, metric: &str) -> bool {
    metric == family
        || metric
            .strip_prefix(family)
            .is_some_and(|s| matches!(s, "_bucket" | "_sum" | "_count" | "_total" | "_created"))
}

/// `sample` with `node="<node>"` as its first label.
fn with_node(sample: &str, node: &str) -> String {
    let name = metric_name(sample);
    let rest = &sample[name.len()..];
    let node = node.replace('\\', "\\\\").replace('"', "\\\"");
    match rest.strip_prefix('{') {
        Some(labels) if labels.starts_with('}') => format!("{name}{{node=\"{node}\"{labels}"),
        Some(labels) => format!("{name}{{node=\"{node}\",{labels}"),
        None => format!("{name}{{node=\"{node}\"}}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "# HELP meilisearch_index_count Meilisearch Index Count\n\
        # TYPE meilisearch_index_count gauge\n\
        meilisearch_index_count 2\n\
        # HELP meilisearch_http_response_time_seconds Meilisearch HTTP response times\n\
        # TYPE meilisearch_http_response_time_seconds histogram\n\
        meilisearch_http_response_time_seconds_bucket{method=\"GET\",path=\"/metrics\",le=\"0.005\"} 1\n\
        meilisearch_http_response_time_seconds_sum{method=\"GET\",path=\"/metrics\"} 0.001\n\
        meilisearch_http_response_time_seconds_count{method=\"GET\",path=\"/metrics\"} 1\n";

    #[test]
    fn families_are_declared_once_and_samples_name_their_node() {
        let b = A.replace(" 2\n", " 5\n");
        let own = b"# HELP miroir_requests_total x\n# TYPE miroir_requests_total counter\nmiroir_requests_total 9\n";
        let out = merge_exposition(&[("n1", A.as_bytes()), ("n2", b.as_bytes())], own);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out.matches("# TYPE meilisearch_index_count gauge").count(),
            1
        );
        assert_eq!(
            out.matches("# TYPE meilisearch_http_response_time_seconds histogram")
                .count(),
            1
        );
        let lines: Vec<&str> = out.lines().collect();
        let count_at = |s: &str| {
            lines
                .iter()
                .position(|l| *l == s)
                .unwrap_or_else(|| panic!("{s} missing:\n{out}"))
        };
        // Both nodes' samples follow their family's declaration, in node order.
        let decl = count_at("# TYPE meilisearch_index_count gauge");
        let n1 = count_at("meilisearch_index_count{node=\"n1\"} 2");
        let n2 = count_at("meilisearch_index_count{node=\"n2\"} 5");
        assert!(decl < n1 && n1 < n2);
        let hist = count_at("# TYPE meilisearch_http_response_time_seconds histogram");
        let bucket = count_at(
            "meilisearch_http_response_time_seconds_bucket{node=\"n2\",method=\"GET\",path=\"/metrics\",le=\"0.005\"} 1",
        );
        assert!(hist < bucket && bucket < count_at("miroir_requests_total 9"));
        // The gateway's own come last, as they are.
        assert!(out.ends_with("miroir_requests_total 9\n"));
    }

    #[test]
    fn labels_are_added_whatever_the_sample_looks_like() {
        assert_eq!(with_node("m 1", "a"), "m{node=\"a\"} 1");
        assert_eq!(with_node("m{} 1", "a"), "m{node=\"a\"} 1");
        assert_eq!(
            with_node("m{x=\"1\"} 1 1700000000", "a\"b"),
            "m{node=\"a\\\"b\",x=\"1\"} 1 1700000000"
        );
    }
}
