//! The `[[nodes]]` tables: each node's id, URL, group and weight checked, and its address
//! resolved.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};

use super::raw::RawNode;
use super::NodeSpec;

pub(super) fn validate_nodes(raw: &[RawNode], errors: &mut Vec<String>) -> Vec<NodeSpec> {
    if raw.is_empty() {
        errors.push("no `[[nodes]]`: at least one Meilisearch node is needed".into());
    }
    let mut ids = HashSet::new();
    let mut addrs = HashSet::new();
    let mut nodes = Vec::with_capacity(raw.len());
    for (i, n) in raw.iter().enumerate() {
        let at = format!("`nodes[{i}]` (id `{}`)", n.id);
        let id_ok = !n.id.is_empty()
            && n.id.len() <= 64
            && n.id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !id_ok {
            errors.push(format!(
                "{at}: a node id is 1 to 64 characters among a-z A-Z 0-9 - _ ."
            ));
        }
        if !ids.insert(n.id.as_str()) {
            errors.push(format!("{at}: the id `{}` is used by another node", n.id));
        }
        let group = n.group.clone().unwrap_or_else(|| "default".into());
        if group.is_empty() {
            errors.push(format!("{at}: `group` is empty"));
        }
        let weight = n.weight.unwrap_or(1);
        if !(1..=1000).contains(&weight) {
            errors.push(format!("{at}: `weight` is {weight}; expected 1 to 1000"));
        }
        match parse_node_url(&n.url) {
            Ok((url, authority, addr)) => {
                if !addrs.insert(addr) {
                    errors.push(format!("{at}: `{}` is the address of another node", n.url));
                }
                nodes.push(NodeSpec {
                    id: n.id.clone(),
                    url,
                    authority,
                    addr,
                    group,
                    weight: weight.clamp(1, 1000) as u32,
                });
            }
            Err(e) => errors.push(format!("{at}: url `{}`: {e}", n.url)),
        }
    }
    nodes
}

/// The authority and socket address of a node's normalized URL (for nodes the placement
/// remembers after they left the configuration).
pub fn node_address(url: &str) -> Result<(String, SocketAddr), String> {
    parse_node_url(url).map(|(_, authority, addr)| (authority, addr))
}

/// Parses `http://host:port[/]` into the normalized URL, the authority and a socket address.
pub(super) fn parse_node_url(url: &str) -> Result<(String, String, SocketAddr), String> {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err("TLS to nodes is not supported; use http:// on a trusted network".into());
    } else {
        return Err("expected `http://host:port`".into());
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err("expected `http://host:port` with no path, query or credentials".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => return Err("the port is missing (Meilisearch listens on 7700 by default)".into()),
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{port}` is not a port number"))?;
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = match bare_host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (bare_host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve `{bare_host}`: {e}"))?
            .next()
            .ok_or_else(|| format!("`{bare_host}` resolves to no address"))?,
    };
    Ok((format!("http://{authority}"), authority.to_string(), addr))
}
