//! The fake API server's pod logs: `GET /api/v1/namespaces/NS/pods/NAME/log`, answered with
//! the text a test set for the container ([`super::FakeApiServer::set_log`]) and the
//! `container`, `tailLines` and `limitBytes` parameters read as the API server reads them
//! (the container may be left out only when the pod has one; the last lines first, then
//! at most that many bytes of them). RBAC on the `pods/log` subresource can be denied.

use hyper::StatusCode;
use serde_json::Value as Json;

use super::api::{State, param, status};

/// (namespace, pod, container)
pub(super) type LogKey = (String, String, String);

/// The pod named by `path` when it is a pod's log, else `None` (not a log request).
fn target(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [ns, "pods", name, "log"] => Some((ns, name)),
        _ => None,
    }
}

/// Answers a GET of a pod's log (the text, or the error), or `None` when `path` is not one.
pub(super) fn answer(
    state: &mut State,
    path: &str,
    query: &str,
) -> Option<Result<String, (StatusCode, Json)>> {
    let (ns, name) = target(path)?;
    state.requests.push(format!("GET {path}"));
    if state.denied.contains(&("get".into(), "pods/log".into())) {
        return Some(Err(status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "pods \"{name}\" is forbidden: User \"system:serviceaccount:kubeflow:kestrel\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"{ns}\""
            ),
        )));
    }
    let key = (
        "v1".to_string(),
        "pods".to_string(),
        ns.to_string(),
        name.to_string(),
    );
    let Some(pod) = state.objects.get(&key) else {
        return Some(Err(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("pods \"{name}\" not found"),
        )));
    };
    let containers: Vec<String> = ["/spec/containers", "/spec/initContainers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Json::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Json::as_str).map(str::to_string))
        .collect();
    let container = match param(query, "container") {
        Some(c) if containers.contains(&c) => c,
        Some(c) => {
            return Some(Err(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("container {c} is not valid for pod {name}"),
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Some(Err(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                ),
            )));
        }
    };
    let text = state
        .logs
        .get(&(ns.to_string(), name.to_string(), container))
        .cloned()
        .unwrap_or_default();
    let number = |p: &str| param(query, p).and_then(|v| v.parse::<usize>().ok());
    let mut out = match number("tailLines") {
        Some(n) => kestrel_core::text::last_lines(&text, n),
        None => &text,
    };
    if let Some(limit) = number("limitBytes") {
        let mut end = limit.min(out.len());
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out = &out[..end];
    }
    Some(Ok(out.to_string()))
}
