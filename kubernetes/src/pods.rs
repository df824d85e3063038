//! Why a trial's pod cannot make progress, so a trial ends with a clear reason instead of
//! hanging: an image that cannot be pulled, a pod that cannot be scheduled, an evicted or
//! otherwise failed pod. A pure function of the pod's JSON (`status`), as the API server
//! reports it.

use serde_json::Value as Json;

/// A pod problem that ends its trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// Katib-style reason (`ImagePullBackOff`, `Unschedulable`, `Evicted`, ...).
    pub reason: String,
    /// What the cluster said, with the container or pod it is about.
    pub message: String,
}

/// Container waiting reasons that do not resolve by waiting.
const FATAL_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

fn text(v: &Json, key: &str) -> String {
    v.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The problem keeping `pod` from running, if any.
pub fn stuck(pod: &Json) -> Option<Stuck> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Json::as_str)
        .unwrap_or("the pod");
    let status = pod.get("status")?;
    // Evicted (node pressure) and other terminal pod failures.
    if text(status, "phase") == "Failed" && text(status, "reason") == "Evicted" {
        return Some(Stuck {
            reason: "Evicted".into(),
            message: format!("pod {name} was evicted: {}", text(status, "message")),
        });
    }
    // Containers (init containers first) that wait for something that will not come.
    let containers = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| status.get(*k).and_then(Json::as_array))
        .flatten();
    for c in containers {
        let Some(waiting) = c.pointer("/state/waiting") else {
            continue;
        };
        let reason = text(waiting, "reason");
        if FATAL_WAITING.contains(&reason.as_str()) {
            return Some(Stuck {
                message: format!(
                    "container {} of pod {name}: {reason}: {}",
                    text(c, "name"),
                    text(waiting, "message")
                ),
                reason,
            });
        }
    }
    // Not schedulable (no node fits; the scheduler retries, but a trial should not wait
    // forever without saying so).
    let unschedulable = status
        .get("conditions")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .find(|c| {
            text(c, "type") == "PodScheduled"
                && text(c, "status") == "False"
                && text(c, "reason") == "Unschedulable"
        });
    unschedulable.map(|c| Stuck {
        reason: "Unschedulable".into(),
        message: format!("pod {name} cannot be scheduled: {}", text(c, "message")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: Json) -> Json {
        json!({"metadata": {"name": "t-1-abcde"}, "status": status})
    }

    #[test]
    fn table() {
        let rows: Vec<(Json, Option<&str>, &str)> = vec![
            (pod(json!({"phase": "Running"})), None, ""),
            (pod(json!({"phase": "Pending"})), None, ""),
            // A container being created or pulling is not stuck yet.
            (
                pod(json!({"phase": "Pending", "containerStatuses": [
                    {"name": "training", "state": {"waiting": {"reason": "ContainerCreating"}}}]})),
                None,
                "",
            ),
            (
                pod(json!({"phase": "Pending", "containerStatuses": [
                    {"name": "training", "state": {"waiting": {"reason": "ImagePullBackOff",
                     "message": "Back-off pulling image \"mnist:nope\""}}}]})),
                Some("ImagePullBackOff"),
                "container training of pod t-1-abcde: ImagePullBackOff: Back-off pulling image \"mnist:nope\"",
            ),
            (
                pod(json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "kestrel-install", "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]})),
                Some("ErrImagePull"),
                "container kestrel-install of pod t-1-abcde: ErrImagePull: not found",
            ),
            (
                pod(json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]})),
                Some("Unschedulable"),
                "pod t-1-abcde cannot be scheduled: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            ),
            (
                pod(json!({"phase": "Failed", "reason": "Evicted",
                           "message": "The node was low on resource: memory."})),
                Some("Evicted"),
                "pod t-1-abcde was evicted: The node was low on resource: memory.",
            ),
            (json!({"metadata": {"name": "x"}}), None, ""),
        ];
        for (i, (p, reason, message)) in rows.into_iter().enumerate() {
            let got = stuck(&p);
            assert_eq!(got.as_ref().map(|s| s.reason.as_str()), reason, "row {i}");
            if let Some(s) = got {
                assert_eq!(s.message, message, "row {i}");
            }
        }
    }
}
