//! A fake Kubernetes API server (feature `testing`): an HTTP server on 127.0.0.1 that keeps
//! objects in memory and speaks enough of the Kubernetes REST API for a real
//! `kube::Client` to work against it: discovery (`/api`, `/apis`, resource lists), create,
//! get, list (with equality label selectors), merge patch (object and `/status`) and
//! delete of namespaced objects, with API errors as `metav1.Status`. Tests play the
//! kubelet and the Job controller by setting objects' status, and can deny a verb on a
//! resource (403) to check RBAC errors.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value as Json, json};

/// A kind the server serves.
#[derive(Debug, Clone)]
struct Kind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
}

/// Core pods, batch Jobs and the Kubeflow and Argo kinds Katib's examples use.
const KINDS: &[Kind] = &[
    Kind {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
    },
    Kind {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
    },
    Kind {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
    },
    Kind {
        group: "kubeflow.org",
        version: "v1",
        kind: "TFJob",
        plural: "tfjobs",
    },
    Kind {
        group: "kubeflow.org",
        version: "v1",
        kind: "PyTorchJob",
        plural: "pytorchjobs",
    },
    Kind {
        group: "argoproj.io",
        version: "v1alpha1",
        kind: "Workflow",
        plural: "workflows",
    },
];

/// (group/version, plural, namespace, name)
type Key = (String, String, String, String);

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<Key, Json>,
    version: u64,
    denied: BTreeSet<(String, String)>,
    requests: Vec<String>,
}

/// A running fake API server; stops when dropped.
pub struct FakeApiServer {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> (StatusCode, Json) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn group_version(k: &Kind) -> String {
    if k.group.is_empty() {
        k.version.to_string()
    } else {
        format!("{}/{}", k.group, k.version)
    }
}

/// Merges `patch` into `target` (JSON merge patch, RFC 7386).
fn merge(target: &mut Json, patch: &Json) {
    match (target, patch) {
        (Json::Object(t), Json::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Json::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn matches_selector(object: &Json, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        let v = v.trim_start_matches('=');
        object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Json::as_str)
            == Some(v)
    })
}

impl State {
    fn discovery(&self, path: &str) -> Option<Json> {
        let group_list = || {
            let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for k in KINDS.iter().filter(|k| !k.group.is_empty()) {
                groups.entry(k.group).or_default().push(k.version);
            }
            let groups: Vec<Json> = groups
                .into_iter()
                .map(|(g, vs)| {
                    let versions: Vec<Json> = vs
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                        .collect();
                    json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                })
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        };
        let resources = |gv: &str| {
            let list: Vec<Json> = KINDS
                .iter()
                .filter(|k| group_version(k) == gv)
                .map(|k| {
                    json!({"name": k.plural, "singularName": k.kind.to_lowercase(),
                           "namespaced": true, "kind": k.kind,
                           "verbs": ["create", "delete", "get", "list", "patch", "watch"]})
                })
                .collect();
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
        };
        match path {
            "/version" => Some(
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
            ),
            "/api" => Some(json!({"kind": "APIVersions", "versions": ["v1"],
                                   "serverAddressByClientCIDRs": []})),
            "/apis" => Some(group_list()),
            "/api/v1" => Some(resources("v1")),
            p => {
                let gv = p.strip_prefix("/apis/")?;
                (gv.matches('/').count() == 1 && KINDS.iter().any(|k| group_version(k) == gv))
                    .then(|| resources(gv))
            }
        }
    }

    fn handle(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> (StatusCode, Json) {
        self.requests.push(format!("{method} {path}"));
        if method == Method::GET
            && let Some(d) = self.discovery(path)
        {
            return (StatusCode::OK, d);
        }
        // /api/v1/namespaces/NS/PLURAL[/NAME[/status]] or /apis/G/V/namespaces/...
        let rest = path
            .strip_prefix("/api/")
            .map(|r| (String::new(), r))
            .or_else(|| {
                let r = path.strip_prefix("/apis/")?;
                let (g, r) = r.split_once('/')?;
                Some((g.to_string(), r))
            });
        let Some((group, rest)) = rest else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route {path}"),
            );
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (version, ns, plural, name, sub) = match parts.as_slice() {
            [v, "namespaces", ns, plural] => (*v, *ns, *plural, None, None),
            [v, "namespaces", ns, plural, name] => (*v, *ns, *plural, Some(*name), None),
            [v, "namespaces", ns, plural, name, sub] => (*v, *ns, *plural, Some(*name), Some(*sub)),
            _ => {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("no route {path}"),
                );
            }
        };
        let Some(kind) = KINDS
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
        else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("the server could not find the requested resource {plural}"),
            );
        };
        let verb = match (method.clone(), name) {
            (Method::POST, None) => "create",
            (Method::GET, None) => "list",
            (Method::GET, Some(_)) => "get",
            (Method::PATCH, Some(_)) => "patch",
            (Method::DELETE, Some(_)) => "delete",
            _ => {
                return status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    format!("{method} {path}"),
                );
            }
        };
        if self
            .denied
            .contains(&(verb.to_string(), plural.to_string()))
        {
            return status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "{plural} is forbidden: User \"system:serviceaccount:kubeflow:kestrel\" cannot {verb} resource \"{plural}\" in API group \"{group}\" in the namespace \"{ns}\""
                ),
            );
        }
        let gv = group_version(kind);
        let key = |n: &str| {
            (
                gv.clone(),
                plural.to_string(),
                ns.to_string(),
                n.to_string(),
            )
        };
        match verb {
            "create" => {
                let Ok(mut obj) = serde_json::from_slice::<Json>(body) else {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "body is not JSON".into(),
                    );
                };
                let Some(n) = obj
                    .pointer("/metadata/name")
                    .and_then(Json::as_str)
                    .map(str::to_string)
                else {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        "metadata.name: Required value".into(),
                    );
                };
                if self.objects.contains_key(&key(&n)) {
                    return status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("{plural} \"{n}\" already exists"),
                    );
                }
                self.version += 1;
                let meta = &mut obj["metadata"];
                meta["namespace"] = json!(ns);
                meta["uid"] = json!(format!("uid-{}", self.version));
                meta["resourceVersion"] = json!(self.version.to_string());
                meta["creationTimestamp"] = json!(
                    jiff::Timestamp::now()
                        .round(jiff::Unit::Second)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                );
                obj["apiVersion"] = json!(gv);
                obj["kind"] = json!(kind.kind);
                self.objects.insert(key(&n), obj.clone());
                (StatusCode::CREATED, obj)
            }
            "get" => match name.and_then(|n| self.objects.get(&key(n))) {
                Some(o) => (StatusCode::OK, o.clone()),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{plural} \"{}\" not found", name.unwrap_or_default()),
                ),
            },
            "list" => {
                let selector = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("labelSelector="))
                    .map(|s| {
                        s.replace("%3D", "=")
                            .replace("%2C", ",")
                            .replace("%2F", "/")
                    })
                    .unwrap_or_default();
                let items: Vec<Json> = self
                    .objects
                    .iter()
                    .filter(|((g, p, n, _), o)| {
                        *g == gv && p == plural && n == ns && matches_selector(o, &selector)
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                (
                    StatusCode::OK,
                    json!({"kind": format!("{}List", kind.kind), "apiVersion": gv,
                                        "metadata": {"resourceVersion": self.version.to_string()}, "items": items}),
                )
            }
            "patch" => {
                let n = name.unwrap_or_default();
                let Ok(patch) = serde_json::from_slice::<Json>(body) else {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "patch is not JSON".into(),
                    );
                };
                let version = self.version + 1;
                match self.objects.get_mut(&key(n)) {
                    Some(o) => {
                        let patch = if sub == Some("status") {
                            json!({"status": patch.get("status").cloned().unwrap_or(Json::Null)})
                        } else {
                            patch
                        };
                        merge(o, &patch);
                        o["metadata"]["resourceVersion"] = json!(version.to_string());
                        self.version = version;
                        (StatusCode::OK, o.clone())
                    }
                    None => status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{plural} \"{n}\" not found"),
                    ),
                }
            }
            _ => {
                let n = name.unwrap_or_default();
                match self.objects.remove(&key(n)) {
                    Some(o) => (StatusCode::OK, o),
                    None => status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{plural} \"{n}\" not found"),
                    ),
                }
            }
        }
    }
}

impl FakeApiServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (code, json) =
                                state.lock().unwrap_or_else(|p| p.into_inner()).handle(
                                    &parts.method,
                                    parts.uri.path(),
                                    parts.uri.query().unwrap_or_default(),
                                    &body,
                                );
                            let mut res = Response::new(Full::new(Bytes::from(json.to_string())));
                            *res.status_mut() = code;
                            res.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(FakeApiServer { url, state, task })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A real `kube::Client` for this server, default namespace `namespace`.
    pub fn client(&self, namespace: &str) -> Result<kube::Client, String> {
        let uri: hyper::Uri = self.url.parse().map_err(|e| format!("{e}"))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = namespace.to_string();
        kube::Client::try_from(config).map_err(|e| e.to_string())
    }

    /// An object by API version (`batch/v1`), plural, namespace and name.
    pub fn object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Json> {
        let key = (
            api_version.to_string(),
            plural.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        self.state().objects.get(&key).cloned()
    }

    /// Every object of a plural in a namespace.
    pub fn objects(&self, api_version: &str, plural: &str, namespace: &str) -> Vec<Json> {
        self.state()
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| g == api_version && p == plural && n == namespace)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Sets an object's status, as the controller owning it would; false when it is gone.
    pub fn set_status(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        status: Json,
    ) -> bool {
        let mut s = self.state();
        s.version += 1;
        let version = s.version;
        let key = (
            api_version.to_string(),
            plural.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        match s.objects.get_mut(&key) {
            Some(o) => {
                o["status"] = status;
                o["metadata"]["resourceVersion"] = json!(version.to_string());
                true
            }
            None => false,
        }
    }

    /// Adds a pod, as a Job controller would (with its status, as the kubelet reports it).
    pub fn create_pod(&self, namespace: &str, mut pod: Json) {
        let mut s = self.state();
        s.version += 1;
        let version = s.version;
        let name = pod
            .pointer("/metadata/name")
            .and_then(Json::as_str)
            .unwrap_or("pod")
            .to_string();
        pod["apiVersion"] = json!("v1");
        pod["kind"] = json!("Pod");
        pod["metadata"]["namespace"] = json!(namespace);
        pod["metadata"]["resourceVersion"] = json!(version.to_string());
        s.objects
            .insert(("v1".into(), "pods".into(), namespace.into(), name), pod);
    }

    /// Answers `verb` on `plural` with 403 Forbidden from now on, as RBAC would.
    pub fn deny(&self, verb: &str, plural: &str) {
        self.state()
            .denied
            .insert((verb.to_string(), plural.to_string()));
    }

    /// The requests served so far, `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }
}

#[cfg(test)]
mod tests;
