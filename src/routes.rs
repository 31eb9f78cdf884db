//! Every Meilisearch v1.x endpoint, the class that decides how the gateway treats it (see the
//! README's "Route classes"), how the gateway serves it, and the API-key action a node checks
//! for it.
//!
//! Matching follows Meilisearch's router: trailing and doubled slashes are ignored, static
//! segments win over parameters (`/documents/fetch` is never a document id), a known path
//! with an unlisted method is a `405` naming the allowed methods, anything else a `404`.

use http::Method;

/// How the gateway treats a route: the classes of the README's "Route classes".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Sent to one replica of every shard; the answers are merged.
    FanOut,
    /// Sent to the owners of the documents named in the request.
    ByKey,
    /// Sent to every node; one gateway task for the client.
    Broadcast,
    /// Any one healthy node answers for all.
    OneNode,
    /// Answered by the gateway itself.
    Gateway,
    /// Meilisearch features that cannot be offered over a sharded fleet (yet).
    Unsupported,
}

impl RouteClass {
    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::FanOut => "fan_out",
            RouteClass::ByKey => "by_key",
            RouteClass::Broadcast => "broadcast",
            RouteClass::OneNode => "one_node",
            RouteClass::Gateway => "gateway",
            RouteClass::Unsupported => "unsupported",
        }
    }
}

/// The endpoint a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Running,
    Health,
    Version,
    GlobalStats,
    Metrics,
    TaskList,
    TaskGet,
    TaskCancel,
    TaskDelete,
    TaskCompact,
    TaskDocuments,
    BatchList,
    BatchGet,
    IndexList,
    IndexCreate,
    IndexGet,
    IndexUpdate,
    IndexDelete,
    IndexStats,
    IndexCompact,
    IndexFields,
    SwapIndexes,
    DocumentsBrowse,
    DocumentsFetch,
    DocumentsReplace,
    DocumentsUpdate,
    DocumentsDeleteAll,
    DocumentsDeleteBatch,
    DocumentsDeleteByFilter,
    DocumentsEdit,
    DocumentGet,
    DocumentDelete,
    Search,
    FacetSearch,
    Similar,
    MultiSearch,
    SettingsGet,
    SettingsUpdate,
    SettingsReset,
    /// One setting's sub-route; its name is [`Route::param`].
    SettingGet,
    SettingUpdate,
    SettingReset,
    KeyList,
    KeyCreate,
    KeyGet,
    KeyUpdate,
    KeyDelete,
    Snapshot,
    Dump,
    ExperimentalGet,
    ExperimentalUpdate,
    WebhookRead,
    WebhookWrite,
    DynamicRulesRead,
    DynamicRulesWrite,
    Export,
    Network,
    Logs,
    Chats,
    RenderTemplate,
}

/// How the gateway serves an endpoint: the one place that says it (the proxy and
/// `ops::dispatch` both follow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serve {
    /// Proxied to one node as is, on Pingora's proxy path.
    Proxy,
    /// `GET /health`, answered from the gateway's view of the fleet.
    Health,
    /// Served by one of the gateway's operations, body read first.
    Op(Op),
    /// Not served: `501`.
    NotServed,
}

/// The gateway's operations (`ops::dispatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    AddDocuments,
    DeleteDocument,
    DeleteDocuments,
    GetDocument,
    Browse,
    Search,
    MultiSearch,
    FacetSearch,
    Stats,
    Settings,
    Broadcast,
    TaskGet,
    TaskList,
    BatchGet,
    BatchList,
    TaskCancel,
    TaskDelete,
    RenderTemplate,
    Fields,
    Similar,
    TaskDocuments,
    Webhooks,
    /// Swaps and renames, atomic for readers.
    Swap,
    /// `GET /metrics`: every node's, then the gateway's.
    Metrics,
}

impl Op {
    /// Whether the operation needs the task store (writes and task routes).
    /// Whether it changes what nodes hold (it goes through the write gate).
    pub fn is_write(self) -> bool {
        use Op::*;
        matches!(
            self,
            AddDocuments | DeleteDocument | DeleteDocuments | Broadcast | Swap
        )
    }

    pub fn needs_store(self) -> bool {
        use Op::*;
        matches!(
            self,
            AddDocuments
                | DeleteDocument
                | DeleteDocuments
                | Broadcast
                | Swap
                | TaskGet
                | TaskList
                | BatchGet
                | BatchList
                | TaskDocuments
                | Webhooks
                | TaskCancel
                | TaskDelete
        )
    }
}

impl Endpoint {
    /// Whether the endpoint creates, changes or deletes API keys.
    pub fn changes_keys(self) -> bool {
        matches!(self, E::KeyCreate | E::KeyUpdate | E::KeyDelete)
    }

    /// How the gateway serves this endpoint.
    pub fn serve(self) -> Serve {
        use Op as X;
        let op = match self {
            E::Health => return Serve::Health,
            E::DocumentsReplace | E::DocumentsUpdate => X::AddDocuments,
            E::DocumentDelete => X::DeleteDocument,
            E::DocumentsDeleteBatch => X::DeleteDocuments,
            E::DocumentGet => X::GetDocument,
            E::RenderTemplate => X::RenderTemplate,
            E::DocumentsBrowse | E::DocumentsFetch => X::Browse,
            E::Search => X::Search,
            E::MultiSearch => X::MultiSearch,
            E::FacetSearch => X::FacetSearch,
            E::GlobalStats | E::IndexStats => X::Stats,
            E::SettingsGet | E::SettingGet => X::Settings,
            E::TaskGet => X::TaskGet,
            E::TaskList => X::TaskList,
            E::TaskCancel => X::TaskCancel,
            E::TaskDelete => X::TaskDelete,
            E::SwapIndexes | E::IndexUpdate => X::Swap,
            E::IndexCreate
            | E::IndexDelete
            | E::IndexCompact
            | E::DocumentsDeleteAll
            | E::DocumentsDeleteByFilter
            | E::DocumentsEdit
            | E::SettingsUpdate
            | E::SettingsReset
            | E::SettingUpdate
            | E::SettingReset
            | E::KeyCreate
            | E::KeyUpdate
            | E::KeyDelete
            | E::Snapshot
            | E::Dump
            | E::ExperimentalUpdate
            | E::DynamicRulesWrite => X::Broadcast,
            E::WebhookRead | E::WebhookWrite => X::Webhooks,
            E::Running
            | E::Version
            | E::IndexList
            | E::IndexGet
            | E::KeyList
            | E::KeyGet
            | E::ExperimentalGet
            | E::DynamicRulesRead => return Serve::Proxy,
            E::BatchGet => X::BatchGet,
            E::BatchList => X::BatchList,
            E::Metrics => X::Metrics,
            E::IndexFields => X::Fields,
            E::Similar => X::Similar,
            E::TaskDocuments => X::TaskDocuments,
            E::TaskCompact | E::Export | E::Network | E::Logs | E::Chats => {
                return Serve::NotServed
            }
        };
        Serve::Op(op)
    }
}

impl Endpoint {
    /// Why a node's own feature means nothing through the gateway (answered `501`).
    pub fn node_local(self) -> Option<(&'static str, &'static str)> {
        use Endpoint as E;
        Some(match self {
            E::Export => (
                "/export",
                "it copies one node's documents to another instance, while behind Miroir the documents are spread over several nodes (the gateway itself uses it between its nodes to move shards). Export from each node, or create a dump",
            ),
            E::Network => (
                "/network",
                "it configures one node's own remote network for federated search and sharding, while Miroir is that network: its nodes are listed in its configuration",
            ),
            E::Logs => (
                "/logs",
                "it streams or tunes one node's own logs. Read them on each node, and Miroir's in its own log",
            ),
            E::Chats => (
                "/chats",
                "conversational search runs inside one node with its own chat workspace settings and is not routed across shards",
            ),
            _ => return None,
        })
    }
}

/// A classified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub class: RouteClass,
    /// The API-key action Meilisearch checks for this endpoint (`None`: public).
    pub action: Option<&'static str>,
    /// The `{index_uid}` path segment, when the route has one.
    pub index: Option<String>,
    /// The other path parameter (document id, task uid, key, setting name ...), if any.
    pub param: Option<String>,
}

/// Why a request matched no endpoint; both answer with an empty body, as Meilisearch does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    NotFound,
    /// The path exists but not with this method; `allow` lists the methods it takes.
    MethodNotAllowed {
        allow: String,
    },
}

/// A path segment of a pattern: a literal, `{index_uid}` or another parameter.
#[derive(Clone, Copy)]
enum Seg {
    Lit(&'static str),
    Index,
    Param,
}

use Seg::{Index as I, Lit as L, Param as P};

struct Resource {
    path: &'static [Seg],
    methods: &'static [(Method, Endpoint, RouteClass, Option<&'static str>)],
}

use Endpoint as E;
use RouteClass::{
    Broadcast as B, ByKey as K, FanOut as F, Gateway as G, OneNode as O, Unsupported as U,
};

macro_rules! res {
    ([$($seg:expr),*] => $( $m:ident $e:ident $c:ident $a:expr ),+ $(,)?) => {
        Resource {
            path: &[$($seg),*],
            methods: &[$( (Method::$m, E::$e, $c, $a) ),+],
        }
    };
}

/// Setting sub-routes whose update verb is `PATCH`; the others use `PUT`.
const PATCH_SETTINGS: &[&str] = &[
    "typo-tolerance",
    "faceting",
    "pagination",
    "embedders",
    "chat",
];
/// Every per-setting sub-route of Meilisearch v1.x.
pub const SETTINGS: &[&str] = &[
    "filterable-attributes",
    "sortable-attributes",
    "displayed-attributes",
    "typo-tolerance",
    "searchable-attributes",
    "stop-words",
    "non-separator-tokens",
    "separator-tokens",
    "dictionary",
    "synonyms",
    "distinct-attribute",
    "proximity-precision",
    "localized-attributes",
    "ranking-rules",
    "faceting",
    "pagination",
    "embedders",
    "search-cutoff-ms",
    "facet-search",
    "prefix-search",
    "chat",
    "foreign-keys",
];

/// The route table. Within one segment count, literal segments come before parameters so the
/// first path match is the one Meilisearch's router picks.
static TABLE: &[Resource] = &[
    res!([] => GET Running O None),
    res!([L("health")] => GET Health G None),
    res!([L("version")] => GET Version O Some("version")),
    res!([L("stats")] => GET GlobalStats F Some("stats.get")),
    res!([L("metrics")] => GET Metrics G Some("metrics.get")),
    res!([L("tasks")] => GET TaskList G Some("tasks.get"), DELETE TaskDelete G Some("tasks.delete")),
    res!([L("tasks"), L("cancel")] => POST TaskCancel G Some("tasks.cancel")),
    res!([L("tasks"), L("compact")] => POST TaskCompact U Some("tasks.compact")),
    res!([L("tasks"), P] => GET TaskGet G Some("tasks.get")),
    res!([L("tasks"), P, L("documents")] => GET TaskDocuments G Some("tasks.get")),
    res!([L("batches")] => GET BatchList G Some("tasks.get")),
    res!([L("batches"), P] => GET BatchGet G Some("tasks.get")),
    res!([L("indexes")] => GET IndexList O Some("indexes.get"), POST IndexCreate B Some("indexes.create")),
    res!([L("indexes"), I] => GET IndexGet O Some("indexes.get"), PATCH IndexUpdate B Some("indexes.update"),
        DELETE IndexDelete B Some("indexes.delete")),
    res!([L("indexes"), I, L("documents")] => GET DocumentsBrowse F Some("documents.get"),
        POST DocumentsReplace K Some("documents.add"), PUT DocumentsUpdate K Some("documents.add"),
        DELETE DocumentsDeleteAll B Some("documents.delete")),
    res!([L("indexes"), I, L("documents"), L("delete-batch")] => POST DocumentsDeleteBatch K Some("documents.delete")),
    res!([L("indexes"), I, L("documents"), L("delete")] => POST DocumentsDeleteByFilter B Some("documents.delete")),
    res!([L("indexes"), I, L("documents"), L("edit")] => POST DocumentsEdit B Some("documents.*")),
    res!([L("indexes"), I, L("documents"), L("fetch")] => POST DocumentsFetch F Some("documents.get")),
    res!([L("indexes"), I, L("documents"), P] => GET DocumentGet K Some("documents.get"),
        DELETE DocumentDelete K Some("documents.delete")),
    res!([L("indexes"), I, L("search")] => GET Search F Some("search"), POST Search F Some("search")),
    res!([L("indexes"), I, L("facet-search")] => POST FacetSearch F Some("search")),
    res!([L("indexes"), I, L("similar")] => GET Similar F Some("search"), POST Similar F Some("search")),
    res!([L("indexes"), I, L("stats")] => GET IndexStats F Some("stats.get")),
    res!([L("indexes"), I, L("fields")] => POST IndexFields F Some("fields.post")),
    res!([L("indexes"), I, L("compact")] => POST IndexCompact B Some("indexes.compact")),
    res!([L("indexes"), I, L("settings")] => GET SettingsGet O Some("settings.get"),
        PATCH SettingsUpdate B Some("settings.update"), DELETE SettingsReset B Some("settings.update")),
    // `settings/{name}` is resolved against SETTINGS in `classify`.
    res!([L("indexes"), I, L("settings"), P] => GET SettingGet O Some("settings.get"),
        PUT SettingUpdate B Some("settings.update"), DELETE SettingReset B Some("settings.update")),
    res!([L("multi-search")] => POST MultiSearch F Some("search")),
    res!([L("swap-indexes")] => POST SwapIndexes B Some("indexes.swap")),
    res!([L("keys")] => GET KeyList O Some("keys.get"), POST KeyCreate B Some("keys.create")),
    res!([L("keys"), P] => GET KeyGet O Some("keys.get"), PATCH KeyUpdate B Some("keys.update"),
        DELETE KeyDelete B Some("keys.delete")),
    res!([L("snapshots")] => POST Snapshot B Some("snapshots.create")),
    res!([L("dumps")] => POST Dump B Some("dumps.create")),
    res!([L("experimental-features")] => GET ExperimentalGet O Some("experimental.get"),
        PATCH ExperimentalUpdate B Some("experimental.update")),
    res!([L("webhooks")] => GET WebhookRead G Some("webhooks.get"), POST WebhookWrite G Some("webhooks.create")),
    res!([L("webhooks"), P] => GET WebhookRead G Some("webhooks.get"), PATCH WebhookWrite G Some("webhooks.update"),
        DELETE WebhookWrite G Some("webhooks.delete")),
    res!([L("dynamic-search-rules")] => POST DynamicRulesRead O Some("dynamicSearchRules.get"),
        DELETE DynamicRulesWrite B Some("dynamicSearchRules.delete")),
    res!([L("dynamic-search-rules"), P] => GET DynamicRulesRead O Some("dynamicSearchRules.get"),
        PATCH DynamicRulesWrite B Some("dynamicSearchRules.update"),
        DELETE DynamicRulesWrite B Some("dynamicSearchRules.delete")),
    res!([L("export")] => POST Export U Some("export")),
    res!([L("network")] => GET Network U Some("network.get"), PATCH Network U Some("network.update")),
    res!([L("network"), L("control")] => POST Network U Some("network.update")),
    res!([L("logs"), L("stream")] => POST Logs U Some("metrics.get"), DELETE Logs U Some("metrics.get")),
    res!([L("logs"), L("stderr")] => POST Logs U Some("metrics.get")),
    res!([L("chats")] => GET Chats U Some("chats.get")),
    res!([L("chats"), P] => GET Chats U Some("chats.get"), DELETE Chats U Some("chats.delete")),
    res!([L("chats"), P, L("settings")] => GET Chats U Some("chatsSettings.get"),
        PATCH Chats U Some("chatsSettings.update"), DELETE Chats U Some("chatsSettings.update")),
    res!([L("chats"), P, L("chat"), L("completions")] => POST Chats U Some("chatCompletions")),
    res!([L("render-template")] => POST RenderTemplate K Some("settings.get")),
];

/// Classifies a request by method and path (the query string is not part of `path`).
pub fn classify(method: &Method, path: &str) -> Result<Route, NoRoute> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let resource = TABLE
        .iter()
        .find(|r| matches_path(r.path, &segs))
        .ok_or(NoRoute::NotFound)?;
    let mut index = None;
    let mut param = None;
    for (seg, value) in resource.path.iter().zip(&segs) {
        match seg {
            Seg::Index => index = Some((*value).to_string()),
            Seg::Param => param = Some((*value).to_string()),
            Seg::Lit(_) => {}
        }
    }
    let is_setting = matches!(resource.methods[0].1, E::SettingGet);
    let methods: Vec<(Method, Endpoint, RouteClass, Option<&'static str>)> = if is_setting {
        let name = param.as_deref().unwrap_or_default();
        if !SETTINGS.contains(&name) {
            return Err(NoRoute::NotFound);
        }
        let update = if PATCH_SETTINGS.contains(&name) {
            Method::PATCH
        } else {
            Method::PUT
        };
        resource
            .methods
            .iter()
            .cloned()
            .map(|(m, e, c, a)| (if m == Method::PUT { update.clone() } else { m }, e, c, a))
            .collect()
    } else {
        resource.methods.to_vec()
    };
    match methods.iter().find(|(m, ..)| m == method) {
        Some((_, endpoint, class, action)) => Ok(Route {
            endpoint: *endpoint,
            class: *class,
            action: *action,
            index,
            param,
        }),
        None => {
            let allow: Vec<&str> = methods.iter().map(|(m, ..)| m.as_str()).collect();
            Err(NoRoute::MethodNotAllowed {
                allow: allow.join(", "),
            })
        }
    }
}

fn matches_path(pattern: &[Seg], segs: &[&str]) -> bool {
    pattern.len() == segs.len()
        && pattern.iter().zip(segs).all(|(p, s)| match p {
            Seg::Lit(lit) => lit == s,
            Seg::Index | Seg::Param => true,
        })
}

#[cfg(test)]
mod tests;
