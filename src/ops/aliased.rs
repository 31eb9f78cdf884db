//! A request with its aliases resolved ([`crate::aliases`]), and the reads a swap holds
//! ([`crate::swap_gate`]): what the proxy does before it hands a request to an operation.

use bytes::Bytes;
use http::HeaderValue;

use super::Request;
use crate::aliases::resolve::{self, Resolution};
use crate::aliases::AliasService;
use crate::error::{ErrorType, MeiliError};
use crate::respond::Reply;
use crate::routes::{Op, Route};

/// A request once its aliases are resolved (from one snapshot of the table).
pub struct Resolved {
    /// The route naming the real index, when it changed.
    pub route: Option<Route>,
    pub path: Option<String>,
    pub body: Bytes,
    /// Plain multi-search results that echo an alias's name, by position.
    pub echo: Vec<(usize, String)>,
    /// A search of an alias with several targets: these targets.
    pub federated: Option<Vec<String>>,
}

impl Resolved {
    /// Resolves `route` at `path` with `body`; the refusal, for what an alias cannot do.
    pub fn of(
        aliases: &AliasService,
        route: &Route,
        path: &str,
        body: Bytes,
    ) -> Result<Resolved, Reply> {
        let table = aliases.snapshot();
        let mut resolved = Resolved {
            route: None,
            path: None,
            body,
            echo: Vec::new(),
            federated: None,
        };
        match resolve::resolve(
            &table,
            route.endpoint,
            route.index.as_deref(),
            path,
            &resolved.body,
        ) {
            Resolution::Direct => {}
            Resolution::Refused(e) => return Err(Reply::error(&e)),
            Resolution::Federated { alias, targets } => {
                aliases.count_resolution(&alias);
                resolved.federated = Some(targets);
            }
            Resolution::Rewritten(rw) => {
                for alias in &rw.aliases {
                    aliases.count_resolution(alias);
                }
                resolved.route = rw.index.map(|index| Route {
                    index: Some(index),
                    ..route.clone()
                });
                resolved.path = rw.path;
                if let Some(b) = rw.body {
                    resolved.body = Bytes::from(b);
                }
                resolved.echo = rw.echo;
            }
        }
        Ok(resolved)
    }

    /// The path a request proxied as is goes to, if it names an alias.
    pub fn proxied_path(
        aliases: &AliasService,
        route: &Route,
        path: &str,
    ) -> Result<Option<String>, Reply> {
        let table = aliases.snapshot();
        match resolve::resolve(&table, route.endpoint, route.index.as_deref(), path, b"") {
            Resolution::Rewritten(rw) => {
                rw.aliases.iter().for_each(|a| aliases.count_resolution(a));
                Ok(rw.path)
            }
            Resolution::Refused(e) => Err(Reply::error(&e)),
            Resolution::Direct | Resolution::Federated { .. } => Ok(None),
        }
    }

    /// Names the aliases in a plain multi-search answer where the client named them.
    pub fn echo_aliases(&self, reply: &mut Reply) {
        if self.echo.is_empty() || reply.status != 200 {
            return;
        }
        if let Some(named) = resolve::echo_aliases(&reply.body, &self.echo) {
            reply.body = Bytes::from(named);
        }
    }
}

/// The indexes a read holds against swaps; `None` for what is not an index read.
pub fn read_indexes(
    op: Op,
    req: &Request<'_>,
    federated: Option<&[String]>,
) -> Option<Vec<String>> {
    use Op::*;
    if let Some(targets) = federated {
        return Some(targets.to_vec());
    }
    match op {
        MultiSearch => Some(resolve::read_indexes(None, Some(&req.body))),
        Search | FacetSearch | Browse | GetDocument | Stats | Settings | Similar | Fields => {
            req.route.index.clone().map(|i| vec![i])
        }
        _ => None,
    }
}

/// A read held past its deadline by a swap.
pub fn swap_in_progress() -> Reply {
    let e = MeiliError::new(
        503,
        "miroir_swap_in_progress",
        ErrorType::System,
        "An index this read needs is being swapped or renamed on the nodes, and the swap did not end within the read deadline. Retry in a moment.",
    );
    Reply::error(&e).header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
}
