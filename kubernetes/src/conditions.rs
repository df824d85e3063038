//! Whether a trial's Kubernetes object has finished, by Katib's rules: the trial
//! template's `failureCondition` is checked first, then `successCondition`, each a GJSON
//! path evaluated on the object's JSON (the `gjson` crate follows Go's syntax, `#(...)#`
//! queries and `@this` included). A path matches when it yields an object or a non-empty
//! array; the matched condition's `reason` and `message` are kept.

use serde_json::Value as Json;

/// How a trial's object ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Whether it succeeded (else it failed).
    pub succeeded: bool,
    /// The matched condition's `reason` (empty when it has none).
    pub reason: String,
    /// The matched condition's `message` (empty when it has none).
    pub message: String,
}

/// The object's end by `success` and `failure` (GJSON paths), or `None` while it runs.
pub fn finished(object: &Json, success: &str, failure: &str) -> Option<Finished> {
    let text = object.to_string();
    let matched = |path: &str| -> Option<(String, String)> {
        if path.is_empty() {
            return None;
        }
        let v = gjson::get(&text, path);
        let first = match v.kind() {
            gjson::Kind::Object => v,
            gjson::Kind::Array => v.array().into_iter().next()?,
            _ => return None,
        };
        let field = |name: &str| {
            let f = first.get(name);
            if f.kind() == gjson::Kind::String {
                f.str().to_string()
            } else {
                String::new()
            }
        };
        Some((field("reason"), field("message")))
    };
    if let Some((reason, message)) = matched(failure) {
        return Some(Finished {
            succeeded: false,
            reason,
            message,
        });
    }
    matched(success).map(|(reason, message)| Finished {
        succeeded: true,
        reason,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Katib's defaults (core::validate::template) and the examples' custom conditions.
    const COMPLETE: &str = r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#;
    const FAILED: &str = r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#;
    const SUCCEEDED: &str = r#"status.conditions.#(type=="Succeeded")#|#(status=="True")#"#;
    const ARGO_OK: &str = r#"status.[@this].#(phase=="Succeeded")#"#;
    const ARGO_FAIL: &str = r#"status.[@this].#(phase=="Failed")#"#;

    fn conditions(list: serde_json::Value) -> Json {
        json!({"kind": "Job", "status": {"conditions": list}})
    }

    #[test]
    fn katib_conditions_table() {
        let ok = |reason: &str| {
            Some(Finished {
                succeeded: true,
                reason: reason.into(),
                message: String::new(),
            })
        };
        let rows: Vec<(Json, &str, &str, Option<Finished>)> = vec![
            // A Job still running: no conditions, or none true.
            (
                json!({"kind": "Job", "status": {"active": 1}}),
                COMPLETE,
                FAILED,
                None,
            ),
            (
                conditions(json!([{"type": "Complete", "status": "False"}])),
                COMPLETE,
                FAILED,
                None,
            ),
            (
                conditions(
                    json!([{"type": "Complete", "status": "True", "reason": "CompletionsReached"}]),
                ),
                COMPLETE,
                FAILED,
                ok("CompletionsReached"),
            ),
            // Failure is checked first, and its reason and message are kept.
            (
                conditions(json!([
                    {"type": "Complete", "status": "True"},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit"}
                ])),
                COMPLETE,
                FAILED,
                Some(Finished {
                    succeeded: false,
                    reason: "BackoffLimitExceeded".into(),
                    message: "Job has reached the specified backoff limit".into(),
                }),
            ),
            // Kubeflow training jobs say Succeeded.
            (
                conditions(json!([
                    {"type": "Created", "status": "True"},
                    {"type": "Running", "status": "False"},
                    {"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded"}
                ])),
                SUCCEEDED,
                FAILED,
                ok("PyTorchJobSucceeded"),
            ),
            // Argo Workflows: the status object itself, by phase (@this).
            (
                json!({"status": {"phase": "Running"}}),
                ARGO_OK,
                ARGO_FAIL,
                None,
            ),
            (
                json!({"status": {"phase": "Succeeded"}}),
                ARGO_OK,
                ARGO_FAIL,
                ok(""),
            ),
            (
                json!({"status": {"phase": "Failed", "message": "child failed"}}),
                ARGO_OK,
                ARGO_FAIL,
                Some(Finished {
                    succeeded: false,
                    reason: String::new(),
                    message: "child failed".into(),
                }),
            ),
            // An object matches; a scalar does not; an empty path never matches.
            (
                json!({"status": {"done": {"at": 1}}}),
                "status.done",
                "",
                ok(""),
            ),
            (json!({"status": {"done": true}}), "status.done", "", None),
            (json!({"status": {}}), "", "", None),
        ];
        for (i, (object, success, failure, want)) in rows.into_iter().enumerate() {
            assert_eq!(finished(&object, success, failure), want, "row {i}");
        }
    }
}
