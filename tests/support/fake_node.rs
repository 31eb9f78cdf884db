//! A Meilisearch-compatible test node: answers the endpoints the gateway relies on the way
//! Meilisearch v1.50 does (status codes, JSON shapes, auth errors), and records every
//! request it receives so tests can check what the gateway sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::http::{read_message, response_bytes, Message};

/// What a test can see and change of a running node.
#[derive(Default)]
pub struct NodeState {
    pub received: Vec<Message>,
    /// When false, `/health` answers 503 like an overloaded node.
    pub unhealthy: bool,
    /// Added before every answer.
    pub delay: Duration,
    /// Added before search answers only (health checks stay fast: a slow, not a dead, node).
    pub search_delay: Duration,
    /// Requests being answered now, and the most seen at once.
    pub in_flight: usize,
    pub max_in_flight: usize,
    /// When true, searches answer `503 too_many_search_requests`, as a saturated node does.
    pub search_overloaded: bool,
    /// The node's indexes, by uid.
    pub indexes: BTreeMap<String, Index>,
    /// Every task, uid = position.
    pub tasks: Vec<Value>,
    /// API keys (`uid`, `key`, `actions`, `indexes` ...), as `POST /keys` made them.
    pub keys: Vec<Value>,
    /// Set at first start (a restart keeps the keys).
    pub started: bool,
    /// Networks `POST /export` may reach besides public addresses, as Meilisearch's
    /// `--experimental-allowed-ip-networks` (CIDRs, or `any`). Empty: loopback and private
    /// targets are refused, as by default.
    pub allowed_ip_networks: Vec<String>,
    /// How long an export retries a refused target, a failed connection or a `408`/`429`/`5xx`
    /// answer before its task fails; `None` is Meilisearch's 15 minutes.
    pub export_retry_for: Option<Duration>,
    /// The export being processed: tasks enqueued meanwhile wait behind it.
    pub export_job: Option<super::fake_export_job::ExportJob>,
    /// Tasks waiting for the export to end, or for the queue to resume, in order.
    pub queue: VecDeque<super::fake_meili::Queued>,
    /// When true, tasks are enqueued but not processed, as on a node busy indexing.
    pub queue_paused: bool,
    /// The experimental features turned on (`PATCH /experimental-features`).
    pub features: std::collections::BTreeSet<String>,
}

/// An index's documents by canonical id, listed as a node lists them: by internal id, handed
/// out at first insertion, the smallest free one first (an id freed by a deletion is reused).
#[derive(Clone, Default)]
pub struct Documents {
    internal: BTreeMap<String, u32>,
    by_internal: BTreeMap<u32, (String, Value)>,
    free: std::collections::BTreeSet<u32>,
    next: u32,
}

impl Documents {
    pub fn len(&self) -> usize {
        self.internal.len()
    }

    pub fn is_empty(&self) -> bool {
        self.internal.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        let at = self.internal.get(id)?;
        self.by_internal.get(at).map(|(_, d)| d)
    }

    /// The document `id`, inserted empty if new.
    pub fn get_or_insert(&mut self, id: String) -> &mut Value {
        let at = match self.internal.get(&id) {
            Some(at) => *at,
            None => {
                let at = self.free.pop_first().unwrap_or_else(|| {
                    self.next += 1;
                    self.next - 1
                });
                self.internal.insert(id.clone(), at);
                self.by_internal
                    .insert(at, (id, Value::Object(Default::default())));
                at
            }
        };
        &mut self.by_internal.get_mut(&at).expect("indexed document").1
    }

    pub fn remove(&mut self, id: &str) -> Option<Value> {
        let at = self.internal.remove(id)?;
        self.free.insert(at);
        self.by_internal.remove(&at).map(|(_, d)| d)
    }

    /// `(id, document)` in the node's order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.by_internal.values().map(|(id, d)| (id, d))
    }

    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.by_internal.values().map(|(_, d)| d)
    }

    pub fn to_map(&self) -> BTreeMap<String, Value> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// One index of the test node.
#[derive(Clone)]
pub struct Index {
    pub primary_key: Option<String>,
    pub documents: Documents,
    /// The `filterableAttributes` setting (`[]` by default).
    pub filterable: Value,
    /// The other settings set and not reset since, by name (defaults are not stored); see
    /// `fake_settings::settings_of` for what `GET /indexes/{uid}/settings` shows.
    pub settings: serde_json::Map<String, Value>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            primary_key: None,
            documents: Documents::default(),
            filterable: json!([]),
            settings: Default::default(),
        }
    }
}

pub struct FakeNode {
    pub name: String,
    pub addr: SocketAddr,
    pub state: Arc<Mutex<NodeState>>,
    master_key: Option<String>,
    task: JoinHandle<()>,
    /// Tells connection tasks to end, as a killed process would.
    stopped: tokio::sync::watch::Sender<bool>,
}

impl FakeNode {
    /// Starts `n1`, `n2` and `n3`.
    pub async fn three(master_key: Option<&str>) -> Vec<FakeNode> {
        let mut nodes = Vec::new();
        for name in ["n1", "n2", "n3"] {
            nodes.push(FakeNode::start(name, master_key).await);
        }
        nodes
    }

    /// Starts a node on a free loopback port.
    pub async fn start(name: &str, master_key: Option<&str>) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(name, master_key, listener, Default::default())
    }

    /// Starts a node whose exports may reach `networks` (CIDRs, or `any`), as Meilisearch
    /// started with `--experimental-allowed-ip-networks`.
    pub async fn start_allowing(
        name: &str,
        master_key: Option<&str>,
        networks: &[&str],
    ) -> FakeNode {
        let node = Self::start(name, master_key).await;
        node.set_allowed_ip_networks(networks);
        node
    }

    /// Starts a node on a given address (to bring a stopped node back).
    pub async fn start_at(name: &str, master_key: Option<&str>, addr: SocketAddr) -> FakeNode {
        let listener = TcpListener::bind(addr).await.expect("bind again");
        Self::serve(name, master_key, listener, Default::default())
    }

    /// Starts a stopped node again on its address with the data it had, as a restarted
    /// process would.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("bind again");
        let node = Self::serve(
            &self.name,
            self.master_key.as_deref(),
            listener,
            self.state.clone(),
        );
        // The old handle's drop stops the node: resume its export only after.
        *self = node;
        super::fake_export_job::resume_export(&self.state);
    }

    fn serve(
        name: &str,
        master_key: Option<&str>,
        listener: TcpListener,
        state: Arc<Mutex<NodeState>>,
    ) -> FakeNode {
        let addr = listener.local_addr().expect("local addr");
        {
            // A node with a master key makes its default keys at first start.
            let mut s = state.lock().unwrap();
            if master_key.is_some() && !s.started {
                s.keys = super::fake_keys::defaults();
            }
            s.started = true;
        }
        let (stopped, stop_rx) = tokio::sync::watch::channel(false);
        let node = Arc::new(Behaviour {
            name: name.to_string(),
            master_key: master_key.map(str::to_string),
            state: state.clone(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let node = node.clone();
                let mut stop = stop_rx.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let req = tokio::select! {
                            req = read_message(&mut reader, false, false) => req,
                            _ = stop.wait_for(|s| *s) => return,
                        };
                        let Ok(Some(req)) = req else { return };
                        let delay = {
                            let mut state = node.state.lock().unwrap();
                            state.in_flight += 1;
                            state.max_in_flight = state.max_in_flight.max(state.in_flight);
                            let search = req.path().ends_with("search");
                            state.delay
                                + if search {
                                    state.search_delay
                                } else {
                                    Duration::ZERO
                                }
                        };
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let (status, headers, body) = node.answer(&req);
                        {
                            let mut state = node.state.lock().unwrap();
                            state.in_flight -= 1;
                            state.received.push(req);
                        }
                        let bytes = response_bytes(status, &headers, &body);
                        if reader.get_mut().write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeNode {
            name: name.to_string(),
            addr,
            state,
            master_key: master_key.map(str::to_string),
            task,
            stopped,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes the listener (new connections are refused); kept-alive ones end too. An export
    /// being processed stops; [`FakeNode::restart`] processes it again, as Meilisearch does.
    pub fn stop(&self) {
        self.task.abort();
        let _ = self.stopped.send(true);
        if let Some(job) = &self.state.lock().unwrap().export_job {
            job.handle.abort();
        }
    }

    /// Requests received so far, matching `path` (without query).
    pub fn received(&self, path: &str) -> Vec<Message> {
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|m| m.path() == path)
            .cloned()
            .collect()
    }

    pub fn set_search_overloaded(&self, overloaded: bool) {
        self.state.lock().unwrap().search_overloaded = overloaded;
    }

    pub fn set_unhealthy(&self, unhealthy: bool) {
        self.state.lock().unwrap().unhealthy = unhealthy;
    }

    /// The networks exports may reach besides public addresses (see
    /// [`NodeState::allowed_ip_networks`]); panics on a value Meilisearch would refuse to
    /// start with.
    pub fn set_allowed_ip_networks(&self, networks: &[&str]) {
        for n in networks {
            assert!(
                super::fake_export_request::parse_network(n).is_some(),
                "`{n}` is not a CIDR or `any`"
            );
        }
        self.state.lock().unwrap().allowed_ip_networks =
            networks.iter().map(|n| n.to_string()).collect();
    }

    /// How long exports retry before failing (Meilisearch: 15 minutes).
    pub fn set_export_retry_for(&self, retry_for: Duration) {
        self.state.lock().unwrap().export_retry_for = Some(retry_for);
    }

    pub fn master_key(&self) -> Option<&str> {
        self.master_key.as_deref()
    }

    /// Holds the task queue (tasks are answered `enqueued` and wait), or processes what
    /// waited, in order.
    pub fn pause_queue(&self, paused: bool) {
        let mut state = self.state.lock().unwrap();
        state.queue_paused = paused;
        if !paused {
            super::fake_export_job::drain(&self.state, &mut state);
        }
    }

    /// The documents of `index` on this node.
    pub fn documents(&self, index: &str) -> BTreeMap<String, Value> {
        self.state
            .lock()
            .unwrap()
            .indexes
            .get(index)
            .map(|i| i.documents.to_map())
            .unwrap_or_default()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Behaviour {
    name: String,
    master_key: Option<String>,
    state: Arc<Mutex<NodeState>>,
}

pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

pub fn error(status: u16, code: &str, kind: &str, message: &str) -> Answer {
    let body = json!({
        "message": message,
        "code": code,
        "type": kind,
        "link": format!("https://docs.meilisearch.com/errors#{code}"),
    });
    json_answer(status, body)
}

fn invalid_key() -> Answer {
    error(
        403,
        "invalid_api_key",
        "auth",
        "The provided API key is invalid.",
    )
}

pub fn json_answer(status: u16, body: serde_json::Value) -> Answer {
    (
        status,
        vec![("content-type".into(), "application/json".into())],
        serde_json::to_vec(&body).expect("json"),
    )
}

impl Behaviour {
    /// Meilisearch's key check: public `/health`; `Bearer <master key>`, or an API key granting
    /// the route's action (and its index, on index routes), elsewhere when a master key is set.
    /// A tenant token's claims, when the request carries one that holds.
    fn authorize(&self, req: &Message) -> Result<Option<Value>, Answer> {
        let Some(master) = &self.master_key else {
            return Ok(None);
        };
        let header = req.header("authorization").unwrap_or("");
        let mut parts = header.splitn(2, ' ');
        let tenant = |token: &str| {
            let keys = &self.state.lock().unwrap().keys;
            super::fake_tenant::verify(keys, token)
        };
        match (parts.next(), parts.next()) {
            (Some("Bearer"), Some(token)) if token == master => Ok(None),
            (Some("Bearer"), Some(token)) if self.key_grants(req, token) => Ok(None),
            (Some("Bearer"), Some(token)) if token.contains('.') => match tenant(token) {
                Some(claims) => Ok(Some(claims)),
                None => Err(invalid_key()),
            },
            (Some("Bearer"), _) => Err(invalid_key()),
            _ => Err(error(
                401,
                "missing_authorization_header",
                "auth",
                "The Authorization header is missing. It must use the bearer authorization method.",
            )),
        }
    }

    /// Whether API key `token` grants the request: its action (wildcards as Meilisearch expands
    /// them) and, on `/indexes/{uid}/...`, its index. Key routes need the master key here.
    fn key_grants(&self, req: &Message, token: &str) -> bool {
        let Ok(method) = http::Method::from_bytes(req.method.as_bytes()) else {
            return false;
        };
        let Ok(route) = miroir::routes::classify(&method, req.path()) else {
            return false;
        };
        let Some(action) = route.action else {
            return true;
        };
        if action.starts_with("keys.") {
            return false;
        }
        let state = self.state.lock().unwrap();
        let Some(key) = state.keys.iter().find(|k| k["key"] == token) else {
            return false;
        };
        let allowed = key["actions"].as_array().into_iter().flatten().any(|a| {
            let a = a.as_str().unwrap_or_default();
            a == "*"
                || a == action
                || a.strip_suffix('*')
                    .is_some_and(|prefix| prefix.ends_with('.') && action.starts_with(prefix))
        });
        let index_ok = route.index.as_deref().is_none_or(|uid| {
            key["indexes"].as_array().into_iter().flatten().any(|p| {
                let p = p.as_str().unwrap_or_default();
                p == "*"
                    || p == uid
                    || p.strip_suffix('*')
                        .is_some_and(|prefix| uid.starts_with(prefix))
            })
        });
        allowed && index_ok
    }

    fn answer(&self, req: &Message) -> Answer {
        let path = req.path().trim_end_matches('/');
        let mut answer = self.route(req, path);
        answer.1.push(("x-fake-node".into(), self.name.clone()));
        answer
    }

    fn route(&self, req: &Message, path: &str) -> Answer {
        if req.method == "GET" && path == "/health" {
            if self.state.lock().unwrap().unhealthy {
                return error(
                    503,
                    "too_many_search_requests",
                    "system",
                    "Too many search requests running at the same time: 0. Retry after 10s.",
                );
            }
            return json_answer(200, json!({"status": "available"}));
        }
        let claims = match self.authorize(req) {
            Ok(claims) => claims,
            Err(refusal) => return refusal,
        };
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let tenant_request;
        let req = match claims {
            None => req,
            Some(claims) => match super::fake_tenant::apply(&claims, req, &segs) {
                Some(r) => {
                    tenant_request = r;
                    &tenant_request
                }
                None => return invalid_key(),
            },
        };
        match (req.method.as_str(), segs.as_slice()) {
            ("GET", ["version"]) => json_answer(
                200,
                json!({"commitSha": "fake", "commitDate": "2026-01-01T00:00:00.000000000Z", "pkgVersion": "1.50.0"}),
            ),
            ("POST", ["tasks", "cancel"]) | ("DELETE", ["tasks"]) if req.query().is_empty() => {
                error(
                    400,
                    "missing_task_filters",
                    "invalid_request",
                    "Query parameters to filter the tasks to cancel are missing.",
                )
            }
            // These two start or stop an export, which runs on its own task and needs the
            // shared state.
            ("POST", ["export"]) => super::fake_export_job::export(&self.state, req),
            ("POST", ["tasks", "cancel"]) => super::fake_export_job::cancel(&self.state, req),
            _ => super::fake_meili::route(&mut self.state.lock().unwrap(), req, &segs),
        }
    }
}
