//! A fake Kubernetes API server behind kube's mock client, for running the cluster source
//! end to end in tests: it lists the objects of [`objects`], answers 404 for EndpointSlices
//! until told to serve them and 403 for Secrets, echoes writes, and sends watch events (the
//! test's edits, and the controller's own status writes coming back as a real API server sends
//! them). Every request is recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A request the fake API server received, when.
#[derive(Clone, Debug)]
pub(super) struct Asked {
    pub at: Instant,
    pub method: http::Method,
    pub path: String,
    pub watching: bool,
    pub body: Value,
}

pub(super) const ROUTES: &str = "/apis/frontdesk.dev/v1alpha1/routes";
pub(super) const SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";

fn status_error(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    let mut response = Response::new(Body::from(serde_json::to_vec(&body).unwrap()));
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    response
}

fn list(items: Vec<Value>, version: u64) -> Response<Body> {
    let body = json!({"apiVersion": "v1", "kind": "List",
                      "metadata": {"resourceVersion": version.to_string()}, "items": items});
    Response::new(Body::from(serde_json::to_vec(&body).unwrap()))
}

/// The objects served, by the path that lists them: two Routes (`orders` with a Service
/// backend, `admin` naming the Policy `auth`), the Policy (basic auth from the Secret `users`),
/// the Service `orders`.
pub(super) fn objects() -> HashMap<&'static str, Vec<Value>> {
    let frontdesk = |kind: &str, name: &str, spec: Value| {
        json!({"apiVersion": "frontdesk.dev/v1alpha1", "kind": kind,
               "metadata": {"name": name, "namespace": "shop", "generation": 1,
                            "uid": format!("{name}-uid"), "resourceVersion": "1"},
               "spec": spec})
    };
    HashMap::from([
        (
            ROUTES,
            vec![
                frontdesk(
                    "Route",
                    "orders",
                    json!({"hosts": ["shop.example"],
                           "rules": [{"backends": [{"service": "orders", "port": 80}]}]}),
                ),
                frontdesk(
                    "Route",
                    "admin",
                    json!({"hosts": ["admin.example"], "policies": ["auth"],
                           "rules": [{"backends": [{"url": "http://127.0.0.1:1"}]}]}),
                ),
            ],
        ),
        (
            "/apis/frontdesk.dev/v1alpha1/policies",
            vec![frontdesk(
                "Policy",
                "auth",
                json!({"authentication": {"basic": {"secretRef": {"name": "users"}}}}),
            )],
        ),
        ("/apis/frontdesk.dev/v1alpha1/aggregates", vec![]),
        (
            "/api/v1/services",
            vec![
                json!({"metadata": {"name": "orders", "namespace": "shop", "resourceVersion": "1"},
                        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
            ],
        ),
        ("/api/v1/namespaces/frontdesk/configmaps", vec![]),
    ])
}

pub(super) fn slice() -> Value {
    json!({"metadata": {"name": "orders-x1", "namespace": "shop", "resourceVersion": "1",
                        "labels": {"kubernetes.io/service-name": "orders"}},
           "addressType": "IPv4",
           "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": true}}],
           "ports": [{"name": "http", "port": 8080}]})
}

/// The fake server's handles.
pub(super) struct FakeApi {
    pub client: Client,
    pub seen: Arc<Mutex<Vec<Asked>>>,
    /// EndpointSlices answer 404 until this is set.
    pub slices_served: Arc<AtomicBool>,
    edits: mpsc::UnboundedSender<(String, Value)>,
}

impl FakeApi {
    pub fn start() -> Self {
        let objects = objects()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        FakeApi::start_with(objects, HashMap::new())
    }

    /// Serves `objects` (lists, by path) and `singles` (objects read one at a time, by path;
    /// 404 for others).
    pub fn start_with(
        objects: HashMap<String, Vec<Value>>,
        singles: HashMap<String, Value>,
    ) -> Self {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let slices_served = Arc::new(AtomicBool::new(false));
        let (edits, edited) = mpsc::unbounded_channel();
        let state = State {
            objects,
            singles,
            version: 1,
            parked: HashMap::new(),
            queued: HashMap::new(),
        };
        let served = slices_served.clone();
        tokio::spawn(serve(handle, seen.clone(), served, edited, state));
        FakeApi {
            client: Client::new(service, "default"),
            seen,
            slices_served,
            edits,
        }
    }

    /// Stores `object` (replacing its namesake) in the list at `path` and sends it to that
    /// watch as MODIFIED, as an update by someone else would be.
    pub fn modify(&self, path: &str, object: Value) {
        self.edits.send((path.to_string(), object)).unwrap();
    }

    /// How many requests matched `check`.
    pub fn count(&self, check: impl Fn(&Asked) -> bool) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|a| check(a))
            .count()
    }
}

/// The server state: the objects, the resource version, the watches waiting for an event,
/// and events no watch has taken yet.
struct State {
    objects: HashMap<String, Vec<Value>>,
    singles: HashMap<String, Value>,
    version: u64,
    parked: HashMap<String, Vec<tower_test::mock::SendResponse<Response<Body>>>>,
    queued: HashMap<String, Vec<Value>>,
}

impl State {
    /// Stores `object` in the list at `path` under a new resource version, and sends it to
    /// that list's watch.
    fn modify(&mut self, path: &str, mut object: Value) {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        let items = self.objects.entry(path.to_string()).or_default();
        let name = object["metadata"]["name"].clone();
        items.retain(|o| o["metadata"]["name"] != name);
        items.push(object.clone());
        let event = json!({"type": "MODIFIED", "object": object});
        match self.parked.get_mut(path).and_then(Vec::pop) {
            // A watch response ends after its events; the watcher then watches again.
            Some(send) => send.send_response(events(&[event])),
            None => self.queued.entry(path.to_string()).or_default().push(event),
        }
    }
}

fn events(events: &[Value]) -> Response<Body> {
    let mut lines = Vec::new();
    for e in events {
        lines.extend(serde_json::to_vec(e).unwrap());
        lines.push(b'\n');
    }
    Response::new(Body::from(lines))
}

async fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    seen: Arc<Mutex<Vec<Asked>>>,
    slices_served: Arc<AtomicBool>,
    mut edited: mpsc::UnboundedReceiver<(String, Value)>,
    mut state: State,
) {
    loop {
        let (request, send) = tokio::select! {
            next = handle.next_request() => match next {
                Some(next) => next,
                None => return,
            },
            Some((path, object)) = edited.recv() => {
                state.modify(&path, object);
                continue;
            }
        };
        let (parts, body) = request.into_parts();
        let body = body.collect_bytes().await.unwrap_or_default();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or_default();
        let watching = query.split('&').any(|q| q == "watch=true");
        let asked = Asked {
            at: Instant::now(),
            method: parts.method.clone(),
            path: path.clone(),
            watching,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        seen.lock().unwrap().push(asked.clone());
        if parts.method == http::Method::GET && watching {
            match state.queued.remove(&path) {
                Some(events_) => send.send_response(events(&events_)),
                None => state.parked.entry(path).or_default().push(send),
            }
            continue;
        }
        let not_found = || {
            status_error(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        };
        let response = if path == "/apis/gateway.networking.k8s.io/v1" {
            not_found()
        } else if path == SLICES {
            if slices_served.load(Ordering::SeqCst) {
                list(vec![slice()], state.version)
            } else {
                not_found()
            }
        } else if path.starts_with("/api/v1/namespaces/shop/secrets") {
            status_error(
                403,
                "Forbidden",
                "secrets is forbidden: User \"system:serviceaccount:frontdesk:frontdesk\" cannot list resource \"secrets\" in the namespace \"shop\"",
            )
        } else if let Some(items) = state.objects.get(path.as_str()) {
            list(items.clone(), state.version)
        } else if parts.method == http::Method::GET {
            match state.singles.get(&path) {
                Some(object) => Response::new(Body::from(serde_json::to_vec(object).unwrap())),
                None => not_found(),
            }
        } else if parts.method == http::Method::PATCH && path.ends_with("/status") {
            // `/apis/frontdesk.dev/v1alpha1/namespaces/shop/routes/orders/status`: the new
            // status is stored and comes back on the watch, generation unchanged.
            let segments: Vec<&str> = path.split('/').collect();
            let listed = format!("/apis/frontdesk.dev/v1alpha1/{}", segments[6]);
            let stored = (state.objects.get(&listed)).and_then(|items| {
                items
                    .iter()
                    .find(|o| o["metadata"]["name"] == segments[7])
                    .cloned()
            });
            match stored {
                Some(mut object) => {
                    object["status"] = asked.body["status"].clone();
                    state.modify(&listed, object.clone());
                    Response::new(Body::from(serde_json::to_vec(&object).unwrap()))
                }
                None => not_found(),
            }
        } else if parts.method == http::Method::PATCH && path.ends_with("-last-accepted") {
            state.singles.insert(path.clone(), asked.body.clone());
            Response::new(Body::from(body.to_vec()))
        } else if (parts.method == http::Method::PATCH && path.contains("/configmaps/"))
            || (parts.method == http::Method::POST && path.ends_with("/events"))
        {
            Response::new(Body::from(body.to_vec()))
        } else {
            status_error(404, "NotFound", "not in this fake")
        };
        send.send_response(response);
    }
}
