//! The fake API server's objects and REST verbs: routing of
//! `/api/v1/namespaces/NS/PLURAL[/NAME[/status]]` and `/apis/G/V/namespaces/...`, create,
//! get, list (equality and existence label selectors), merge patch (object and
//! `/status`) and delete, with API errors as `metav1.Status`. Every change is recorded as
//! a watch event with its resourceVersion (see `watch`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{Value as Json, json};

use super::apply;
use super::kinds::{self, Kind};

/// (group/version, plural, namespace, name)
pub(super) type Key = (String, String, String, String);

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub(super) struct Event {
    pub version: u64,
    pub key: Key,
    /// ADDED, MODIFIED or DELETED.
    pub kind: &'static str,
    pub object: Json,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub objects: BTreeMap<Key, Json>,
    pub version: u64,
    pub denied: BTreeSet<(String, String)>,
    pub requests: Vec<String>,
    pub events: Vec<Event>,
    pub notify: Arc<tokio::sync::Notify>,
    /// Server-side apply: each object's field owners (field path to field manager).
    pub owners: BTreeMap<Key, BTreeMap<String, String>>,
    /// Containers' logs, as a test set them.
    pub logs: BTreeMap<super::logs::LogKey, String>,
}

/// A request's target collection or object.
pub(super) struct Route {
    pub kind: &'static Kind,
    /// Empty for every namespace.
    pub namespace: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

pub(super) fn status(code: StatusCode, reason: &str, message: String) -> (StatusCode, Json) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn not_found(what: String) -> (StatusCode, Json) {
    status(StatusCode::NOT_FOUND, "NotFound", what)
}

/// Merges `patch` into `target` (JSON merge patch, RFC 7386).
pub(super) fn merge(target: &mut Json, patch: &Json) {
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

/// Whether `object`'s labels satisfy `selector` (`k=v`, `k==v`, `k!=v` and `k` terms).
pub(super) fn matches_selector(object: &Json, selector: &str) -> bool {
    let label = |k: &str| {
        object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Json::as_str)
    };
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            return label(k) != Some(v);
        }
        match term.split_once('=') {
            Some((k, v)) => label(k) == Some(v.trim_start_matches('=')),
            None => label(term).is_some(),
        }
    })
}

fn finalizers(o: &Json) -> usize {
    o.pointer("/metadata/finalizers")
        .and_then(Json::as_array)
        .map_or(0, Vec::len)
}

fn owned_by(o: &Json, uid: &str) -> bool {
    o.pointer("/metadata/ownerReferences")
        .and_then(Json::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Json::as_str) == Some(uid))
        })
}

/// A query parameter, percent-decoded.
pub(super) fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(c)) => {
                out.push(c);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The route of `path`, or the error answering it.
pub(super) fn route(path: &str) -> Result<Route, (StatusCode, Json)> {
    let rest = path
        .strip_prefix("/api/")
        .map(|r| (String::new(), r))
        .or_else(|| {
            let r = path.strip_prefix("/apis/")?;
            let (g, r) = r.split_once('/')?;
            Some((g.to_string(), r))
        });
    let Some((group, rest)) = rest else {
        return Err(not_found(format!("no route {path}")));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (version, ns, plural, name, sub) = match parts.as_slice() {
        // Every namespace's objects (list and watch only).
        [v, plural] => (*v, "", *plural, None, None),
        [v, "namespaces", ns, plural] => (*v, *ns, *plural, None, None),
        [v, "namespaces", ns, plural, name] => (*v, *ns, *plural, Some(*name), None),
        [v, "namespaces", ns, plural, name, sub] => (*v, *ns, *plural, Some(*name), Some(*sub)),
        _ => return Err(not_found(format!("no route {path}"))),
    };
    let Some(kind) = kinds::find(&group, version, plural) else {
        return Err(not_found(format!(
            "the server could not find the requested resource {plural}"
        )));
    };
    Ok(Route {
        kind,
        namespace: ns.to_string(),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
    })
}

impl State {
    /// Records a change for watches and wakes them.
    pub fn changed(&mut self, kind: &'static str, key: Key, object: Json) {
        self.events.push(Event {
            version: self.version,
            key,
            kind,
            object,
        });
        self.notify.notify_waiters();
    }

    /// Answers 403 when RBAC (the test) denies `verb` on the route's resource.
    pub fn authorize(&self, verb: &str, r: &Route) -> Result<(), (StatusCode, Json)> {
        let plural = r.kind.plural;
        if self
            .denied
            .contains(&(verb.to_string(), plural.to_string()))
        {
            return Err(status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "{plural} is forbidden: User \"system:serviceaccount:kubeflow:kestrel\" cannot {verb} resource \"{plural}\" in API group \"{}\" in the namespace \"{}\"",
                    r.kind.group, r.namespace
                ),
            ));
        }
        Ok(())
    }

    /// Serves a plain (non-watch) request.
    pub fn handle(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
    ) -> (StatusCode, Json) {
        self.requests.push(format!("{method} {path}"));
        if method == Method::GET
            && let Some(d) = kinds::discovery(path)
        {
            return (StatusCode::OK, d);
        }
        match route(path) {
            Ok(r) => self
                .serve(method, &r, query, content_type, body)
                .unwrap_or_else(|e| e),
            Err(e) => e,
        }
    }

    fn serve(
        &mut self,
        method: &Method,
        r: &Route,
        query: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(StatusCode, Json), (StatusCode, Json)> {
        let verb = match (method.clone(), &r.name) {
            (Method::POST, None) => "create",
            (Method::GET, None) => "list",
            (Method::GET, Some(_)) => "get",
            (Method::PATCH, Some(_)) => "patch",
            (Method::DELETE, Some(_)) => "delete",
            _ => {
                return Err(status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    format!("{method} on {}", r.kind.plural),
                ));
            }
        };
        self.authorize(verb, r)?;
        let gv = kinds::group_version(r.kind);
        let plural = r.kind.plural;
        let key = |n: &str| {
            (
                gv.clone(),
                plural.to_string(),
                r.namespace.clone(),
                n.to_string(),
            )
        };
        let name = r.name.clone().unwrap_or_default();
        match verb {
            "create" => {
                let mut obj = serde_json::from_slice::<Json>(body).map_err(|_| {
                    status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "body is not JSON".into(),
                    )
                })?;
                let n = obj
                    .pointer("/metadata/name")
                    .and_then(Json::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        status(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            "metadata.name: Required value".into(),
                        )
                    })?;
                if self.objects.contains_key(&key(&n)) {
                    return Err(status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("{plural} \"{n}\" already exists"),
                    ));
                }
                obj["apiVersion"] = json!(gv);
                obj["kind"] = json!(r.kind.kind);
                Ok((StatusCode::CREATED, self.insert(key(&n), obj)))
            }
            "get" => self
                .objects
                .get(&key(&name))
                .map(|o| (StatusCode::OK, o.clone()))
                .ok_or_else(|| not_found(format!("{plural} \"{name}\" not found"))),
            "list" => {
                let selector = param(query, "labelSelector").unwrap_or_default();
                let items: Vec<Json> = self
                    .objects
                    .iter()
                    .filter(|((g, p, n, _), o)| {
                        *g == gv
                            && p == plural
                            && (r.namespace.is_empty() || *n == r.namespace)
                            && matches_selector(o, &selector)
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                Ok((
                    StatusCode::OK,
                    json!({"kind": format!("{}List", r.kind.kind), "apiVersion": gv,
                           "metadata": {"resourceVersion": self.version.to_string()}, "items": items}),
                ))
            }
            "patch" => {
                let patch = serde_json::from_slice::<Json>(body).map_err(|_| {
                    status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "patch is not JSON".into(),
                    )
                })?;
                let patch = if r.sub.as_deref() == Some("status") {
                    json!({"status": patch.get("status").cloned().unwrap_or(Json::Null)})
                } else {
                    patch
                };
                let how = apply::Writer::of(query, content_type);
                if how.apply && !self.objects.contains_key(&key(&name)) {
                    // Server-side apply of a missing object creates it.
                    let mut obj = patch.clone();
                    obj["metadata"]["name"] = json!(name);
                    obj["apiVersion"] = json!(gv);
                    obj["kind"] = json!(r.kind.kind);
                    how.own(self, &key(&name), &patch);
                    return Ok((StatusCode::CREATED, self.insert(key(&name), obj)));
                }
                let current = self
                    .objects
                    .get(&key(&name))
                    .ok_or_else(|| not_found(format!("{plural} \"{name}\" not found")))?;
                how.check(self, &key(&name), current, &patch)?;
                how.own(self, &key(&name), &patch);
                self.modify(&key(&name), |o| merge(o, &patch))
                    .map(|o| (StatusCode::OK, o))
                    .ok_or_else(|| not_found(format!("{plural} \"{name}\" not found")))
            }
            _ => self
                .delete(&key(&name))
                .map(|o| (StatusCode::OK, o))
                .ok_or_else(|| not_found(format!("{plural} \"{name}\" not found"))),
        }
    }

    /// Stores a new object with its server-set metadata; returns it.
    pub fn insert(&mut self, key: Key, mut obj: Json) -> Json {
        self.version += 1;
        let meta = &mut obj["metadata"];
        meta["namespace"] = json!(key.2);
        meta["uid"] = json!(format!("uid-{}", self.version));
        meta["resourceVersion"] = json!(self.version.to_string());
        meta["generation"] = json!(1);
        meta["creationTimestamp"] = json!(
            jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
        self.objects.insert(key.clone(), obj.clone());
        self.changed("ADDED", key, obj.clone());
        obj
    }

    /// Changes a stored object; returns it, or `None` when there is none. A changed spec
    /// raises `metadata.generation`. An object being deleted goes once its last finalizer
    /// is removed.
    pub fn modify(&mut self, key: &Key, change: impl FnOnce(&mut Json)) -> Option<Json> {
        let version = self.version + 1;
        let o = self.objects.get_mut(key)?;
        let spec = o.get("spec").cloned();
        change(o);
        o["metadata"]["resourceVersion"] = json!(version.to_string());
        // As the API server: a change of the spec is a new generation.
        if o.get("spec") != spec.as_ref() {
            let g = o
                .pointer("/metadata/generation")
                .and_then(Json::as_i64)
                .unwrap_or(0);
            o["metadata"]["generation"] = json!(g + 1);
        }
        let o = o.clone();
        self.version = version;
        self.changed("MODIFIED", key.clone(), o.clone());
        if o.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&o) == 0 {
            self.remove(key);
        }
        Some(o)
    }

    /// Deletes an object as the API server does: one with finalizers is only marked
    /// (`deletionTimestamp`) until they are removed; returns it.
    pub fn delete(&mut self, key: &Key) -> Option<Json> {
        let o = self.objects.get(key)?;
        if finalizers(o) == 0 {
            return self.remove(key);
        }
        if o.pointer("/metadata/deletionTimestamp").is_some() {
            return Some(o.clone());
        }
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default();
        self.modify(key, |o| o["metadata"]["deletionTimestamp"] = json!(now))
    }

    /// Removes a stored object and, as the garbage collector would, every object it owns
    /// (by `ownerReferences` uid); returns it.
    pub fn remove(&mut self, key: &Key) -> Option<Json> {
        let o = self.objects.remove(key)?;
        self.version += 1;
        self.changed("DELETED", key.clone(), o.clone());
        if let Some(uid) = o.pointer("/metadata/uid").and_then(Json::as_str) {
            let owned: Vec<Key> = self
                .objects
                .iter()
                .filter(|(_, x)| owned_by(x, uid))
                .map(|(k, _)| k.clone())
                .collect();
            for k in owned {
                self.delete(&k);
            }
        }
        Some(o)
    }
}
