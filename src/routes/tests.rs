use super::*;

fn route(method: Method, path: &str) -> Route {
    classify(&method, path).unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
}

fn class(method: Method, path: &str) -> RouteClass {
    route(method, path).class
}

#[test]
fn root_routes() {
    assert_eq!(route(Method::GET, "/health").class, RouteClass::Gateway);
    assert_eq!(route(Method::GET, "/health").action, None);
    assert_eq!(route(Method::GET, "/version").class, RouteClass::OneNode);
    assert_eq!(route(Method::GET, "/").endpoint, Endpoint::Running);
    assert_eq!(class(Method::GET, "/stats"), RouteClass::FanOut);
    assert_eq!(class(Method::GET, "/metrics"), RouteClass::Gateway);
}

#[test]
fn task_and_batch_routes_belong_to_the_gateway() {
    for (m, p, e) in [
        (Method::GET, "/tasks", Endpoint::TaskList),
        (Method::DELETE, "/tasks", Endpoint::TaskDelete),
        (Method::POST, "/tasks/cancel", Endpoint::TaskCancel),
        (Method::GET, "/tasks/12", Endpoint::TaskGet),
        (Method::GET, "/batches", Endpoint::BatchList),
        (Method::GET, "/batches/3", Endpoint::BatchGet),
    ] {
        let r = route(m, p);
        assert_eq!((r.endpoint, r.class), (e, RouteClass::Gateway), "{p}");
    }
    assert_eq!(route(Method::GET, "/tasks/12").param.as_deref(), Some("12"));
    // `cancel` is a literal, never a task uid.
    assert_eq!(
        classify(&Method::GET, "/tasks/cancel"),
        Err(NoRoute::MethodNotAllowed {
            allow: "POST".into()
        })
    );
    assert_eq!(route(Method::GET, "/tasks").action, Some("tasks.get"));
}

#[test]
fn index_lifecycle_routes() {
    assert_eq!(class(Method::GET, "/indexes"), RouteClass::OneNode);
    assert_eq!(class(Method::POST, "/indexes"), RouteClass::Broadcast);
    let r = route(Method::GET, "/indexes/movies");
    assert_eq!(
        (r.endpoint, r.class, r.index.as_deref()),
        (Endpoint::IndexGet, RouteClass::OneNode, Some("movies"))
    );
    assert_eq!(
        class(Method::PATCH, "/indexes/movies"),
        RouteClass::Broadcast
    );
    assert_eq!(
        class(Method::DELETE, "/indexes/movies"),
        RouteClass::Broadcast
    );
    assert_eq!(class(Method::POST, "/swap-indexes"), RouteClass::Broadcast);
    assert_eq!(
        class(Method::POST, "/indexes/movies/compact"),
        RouteClass::Broadcast
    );
    assert_eq!(
        class(Method::GET, "/indexes/movies/stats"),
        RouteClass::FanOut
    );
}

#[test]
fn document_routes() {
    let cases = [
        (
            Method::GET,
            "/indexes/m/documents",
            Endpoint::DocumentsBrowse,
            RouteClass::FanOut,
        ),
        (
            Method::POST,
            "/indexes/m/documents/fetch",
            Endpoint::DocumentsFetch,
            RouteClass::FanOut,
        ),
        (
            Method::POST,
            "/indexes/m/documents",
            Endpoint::DocumentsReplace,
            RouteClass::ByKey,
        ),
        (
            Method::PUT,
            "/indexes/m/documents",
            Endpoint::DocumentsUpdate,
            RouteClass::ByKey,
        ),
        (
            Method::DELETE,
            "/indexes/m/documents",
            Endpoint::DocumentsDeleteAll,
            RouteClass::Broadcast,
        ),
        (
            Method::POST,
            "/indexes/m/documents/delete-batch",
            Endpoint::DocumentsDeleteBatch,
            RouteClass::ByKey,
        ),
        (
            Method::POST,
            "/indexes/m/documents/delete",
            Endpoint::DocumentsDeleteByFilter,
            RouteClass::Broadcast,
        ),
        (
            Method::POST,
            "/indexes/m/documents/edit",
            Endpoint::DocumentsEdit,
            RouteClass::Broadcast,
        ),
        (
            Method::GET,
            "/indexes/m/documents/42",
            Endpoint::DocumentGet,
            RouteClass::ByKey,
        ),
        (
            Method::DELETE,
            "/indexes/m/documents/42",
            Endpoint::DocumentDelete,
            RouteClass::ByKey,
        ),
    ];
    for (m, p, e, c) in cases {
        let r = route(m.clone(), p);
        assert_eq!((r.endpoint, r.class), (e, c), "{m} {p}");
        assert_eq!(r.index.as_deref(), Some("m"));
    }
    assert_eq!(
        route(Method::GET, "/indexes/m/documents/42")
            .param
            .as_deref(),
        Some("42")
    );
    // Static segments shadow the document id, as in Meilisearch's router.
    assert_eq!(
        classify(&Method::GET, "/indexes/m/documents/fetch"),
        Err(NoRoute::MethodNotAllowed {
            allow: "POST".into()
        })
    );
}

#[test]
fn search_routes_fan_out() {
    for (m, p, e) in [
        (Method::GET, "/indexes/m/search", Endpoint::Search),
        (Method::POST, "/indexes/m/search", Endpoint::Search),
        (
            Method::POST,
            "/indexes/m/facet-search",
            Endpoint::FacetSearch,
        ),
        (Method::POST, "/indexes/m/similar", Endpoint::Similar),
        (Method::POST, "/multi-search", Endpoint::MultiSearch),
        (Method::POST, "/indexes/m/fields", Endpoint::IndexFields),
    ] {
        let r = route(m, p);
        assert_eq!((r.endpoint, r.class), (e, RouteClass::FanOut), "{p}");
    }
    assert_eq!(
        route(Method::POST, "/indexes/m/search").action,
        Some("search")
    );
}

#[test]
fn settings_routes_with_their_own_verbs() {
    assert_eq!(
        class(Method::GET, "/indexes/m/settings"),
        RouteClass::OneNode
    );
    assert_eq!(
        class(Method::PATCH, "/indexes/m/settings"),
        RouteClass::Broadcast
    );
    assert_eq!(
        class(Method::DELETE, "/indexes/m/settings"),
        RouteClass::Broadcast
    );
    for name in SETTINGS {
        let path = format!("/indexes/m/settings/{name}");
        let get = route(Method::GET, &path);
        assert_eq!(
            (get.endpoint, get.class),
            (Endpoint::SettingGet, RouteClass::OneNode)
        );
        assert_eq!(get.param.as_deref(), Some(*name));
        let verb = if PATCH_SETTINGS.contains(name) {
            Method::PATCH
        } else {
            Method::PUT
        };
        let wrong = if verb == Method::PATCH {
            Method::PUT
        } else {
            Method::PATCH
        };
        assert_eq!(route(verb, &path).class, RouteClass::Broadcast, "{path}");
        assert_eq!(
            route(Method::DELETE, &path).endpoint,
            Endpoint::SettingReset
        );
        let allow = format!(
            "GET, {}, DELETE",
            if PATCH_SETTINGS.contains(name) {
                "PATCH"
            } else {
                "PUT"
            }
        );
        assert_eq!(
            classify(&wrong, &path),
            Err(NoRoute::MethodNotAllowed { allow }),
            "{path}"
        );
    }
    assert_eq!(SETTINGS.len(), 22);
    assert_eq!(
        classify(&Method::GET, "/indexes/m/settings/no-such-setting"),
        Err(NoRoute::NotFound)
    );
}

#[test]
fn key_routes() {
    assert_eq!(class(Method::GET, "/keys"), RouteClass::OneNode);
    assert_eq!(class(Method::GET, "/keys/abc"), RouteClass::OneNode);
    assert_eq!(class(Method::POST, "/keys"), RouteClass::Broadcast);
    assert_eq!(class(Method::PATCH, "/keys/abc"), RouteClass::Broadcast);
    assert_eq!(class(Method::DELETE, "/keys/abc"), RouteClass::Broadcast);
    assert_eq!(route(Method::POST, "/keys").action, Some("keys.create"));
}

#[test]
fn administrative_routes() {
    assert_eq!(
        class(Method::GET, "/experimental-features"),
        RouteClass::OneNode
    );
    assert_eq!(
        class(Method::PATCH, "/experimental-features"),
        RouteClass::Broadcast
    );
    assert_eq!(class(Method::POST, "/dumps"), RouteClass::Broadcast);
    assert_eq!(class(Method::POST, "/snapshots"), RouteClass::Broadcast);
    // Webhooks are the gateway's own.
    assert_eq!(class(Method::GET, "/webhooks"), RouteClass::Gateway);
    assert_eq!(class(Method::POST, "/webhooks"), RouteClass::Gateway);
    assert_eq!(
        class(Method::POST, "/dynamic-search-rules"),
        RouteClass::OneNode
    );
    assert_eq!(
        class(Method::PATCH, "/dynamic-search-rules/r1"),
        RouteClass::Broadcast
    );
    for (m, p) in [
        (Method::POST, "/export"),
        (Method::GET, "/network"),
        (Method::POST, "/logs/stderr"),
        (Method::GET, "/chats"),
        (Method::POST, "/chats/w/chat/completions"),
        (Method::POST, "/tasks/compact"),
    ] {
        assert_eq!(class(m, p), RouteClass::Unsupported, "{p}");
    }
    // Rendered where the document it names lives.
    assert_eq!(class(Method::POST, "/render-template"), RouteClass::ByKey);
}

#[test]
fn paths_are_normalized_like_meilisearch() {
    assert_eq!(
        route(Method::GET, "/indexes/m/search/").endpoint,
        Endpoint::Search
    );
    assert_eq!(
        route(Method::GET, "//indexes//m/search").endpoint,
        Endpoint::Search
    );
}

#[test]
fn unknown_paths_and_methods() {
    assert_eq!(classify(&Method::GET, "/nope"), Err(NoRoute::NotFound));
    assert_eq!(
        classify(&Method::GET, "/indexes/m/search/extra"),
        Err(NoRoute::NotFound)
    );
    assert_eq!(
        classify(&Method::HEAD, "/health"),
        Err(NoRoute::MethodNotAllowed {
            allow: "GET".into()
        })
    );
    assert_eq!(
        classify(&Method::PUT, "/indexes/m/search"),
        Err(NoRoute::MethodNotAllowed {
            allow: "GET, POST".into()
        })
    );
}

#[test]
fn how_an_endpoint_is_served_agrees_with_its_class() {
    for resource in TABLE {
        for (_, endpoint, class, _) in resource.methods {
            let serve = endpoint.serve();
            let consistent = match class {
                // One node answers; settings reads go through the gateway to hide the tag.
                RouteClass::OneNode => serve == Serve::Proxy || serve == Serve::Op(Op::Settings),
                RouteClass::Broadcast => matches!(serve, Serve::Op(Op::Broadcast | Op::Swap)),
                RouteClass::ByKey => matches!(
                    serve,
                    Serve::Op(
                        Op::AddDocuments
                            | Op::DeleteDocument
                            | Op::DeleteDocuments
                            | Op::GetDocument
                            | Op::RenderTemplate
                    )
                ),
                RouteClass::FanOut => {
                    matches!(serve, Serve::Op(_) | Serve::NotServed)
                        && serve != Serve::Op(Op::Broadcast)
                }
                RouteClass::Gateway => matches!(
                    serve,
                    Serve::Health
                        | Serve::Op(
                            Op::TaskGet
                                | Op::TaskList
                                | Op::TaskCancel
                                | Op::TaskDelete
                                | Op::BatchGet
                                | Op::BatchList
                                | Op::TaskDocuments
                                | Op::Webhooks
                                | Op::Metrics
                        )
                ),
                RouteClass::Unsupported => serve == Serve::NotServed,
            };
            assert!(
                consistent,
                "{endpoint:?} ({class:?}) is served as {serve:?}"
            );
        }
    }
    // Writes and task routes wait for the task store; reads never do.
    assert!(Op::AddDocuments.needs_store() && Op::TaskList.needs_store());
    assert!(!Op::GetDocument.needs_store() && !Op::Search.needs_store());
}
