//! Rendering a trial template for one trial: Katib's `${trialParameters.<name>}`
//! substitution (parameter values and `${trialSpec.*}` metadata), and finding the primary
//! container's command, args, env and working directory in the rendered object.
//!
//! Substitution walks the JSON tree and rewrites strings (keys and values), which is what
//! Katib's text replacement amounts to, without the risk of producing invalid JSON when a
//! value contains a quote.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::error::TemplateError;
use crate::experiment::{TemplateSource, TrialTemplate};
use crate::validate::is_metadata_reference;

/// The metadata references Katib accepts in `trialParameters[].reference`.
pub const METADATA_REFERENCES: &[&str] = &[
    "${trialSpec.Name}",
    "${trialSpec.Namespace}",
    "${trialSpec.Kind}",
    "${trialSpec.APIVersion}",
    "${trialSpec.Labels[<key>]}",
    "${trialSpec.Annotations[<key>]}",
];

const OPEN: &str = "${trialParameters.";

/// Every `<name>` used as `${trialParameters.<name>}` anywhere in `spec`.
pub fn placeholders(spec: &Json) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    visit_strings(spec, &mut |s| {
        let mut rest = s;
        while let Some(i) = rest.find(OPEN) {
            rest = &rest[i + OPEN.len()..];
            if let Some(end) = rest.find('}') {
                out.insert(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    });
    out
}

fn visit_strings(v: &Json, f: &mut impl FnMut(&str)) {
    match v {
        Json::String(s) => f(s),
        Json::Array(a) => a.iter().for_each(|x| visit_strings(x, f)),
        Json::Object(o) => o.iter().for_each(|(k, x)| {
            f(k);
            visit_strings(x, f)
        }),
        _ => {}
    }
}

fn map_strings(v: &Json, f: &impl Fn(&str) -> String) -> Json {
    match v {
        Json::String(s) => Json::String(f(s)),
        Json::Array(a) => Json::Array(a.iter().map(|x| map_strings(x, f)).collect()),
        Json::Object(o) => Json::Object(o.iter().map(|(k, x)| (f(k), map_strings(x, f))).collect()),
        other => other.clone(),
    }
}

/// Identity of the trial being rendered, for `${trialSpec.*}` references.
#[derive(Debug, Clone)]
pub struct TrialIdentity<'a> {
    /// Trial name.
    pub name: &'a str,
    /// Trial namespace (`default` when the experiment has none).
    pub namespace: &'a str,
}

/// Renders the template for a trial with the given assignment strings (by parameter
/// name). Returns the substituted `trialSpec` object with `metadata.name`/`namespace` set.
pub fn render(
    template: &TrialTemplate,
    trial: &TrialIdentity<'_>,
    assignments: &BTreeMap<String, String>,
) -> Result<Json, TemplateError> {
    let TemplateSource::Inline(spec) = &template.source else {
        return Err(TemplateError::NotInline);
    };
    let mut values = BTreeMap::new();
    for tp in &template.trial_parameters {
        let value = if is_metadata_reference(&tp.reference) {
            metadata_value(&tp.reference, spec, trial)
        } else {
            assignments.get(&tp.reference).cloned().ok_or_else(|| {
                TemplateError::MissingAssignment {
                    name: tp.name.clone(),
                    reference: tp.reference.clone(),
                }
            })?
        };
        values.insert(format!("{OPEN}{}}}", tp.name), value);
    }
    let mut out = map_strings(spec, &|s: &str| {
        if !s.contains(OPEN) {
            return s.to_string();
        }
        values
            .iter()
            .fold(s.to_string(), |acc, (k, v)| acc.replace(k.as_str(), v))
    });
    if let Some(obj) = out.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Json::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            m.insert("name".into(), Json::String(trial.name.to_string()));
            m.insert(
                "namespace".into(),
                Json::String(trial.namespace.to_string()),
            );
        }
    }
    Ok(out)
}

fn metadata_value(reference: &str, spec: &Json, trial: &TrialIdentity<'_>) -> String {
    let inner = &reference["${trialSpec.".len()..reference.len() - 1];
    let text = |ptr: &str| {
        spec.pointer(ptr)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let keyed = |prefix: &str, field: &str| {
        inner
            .strip_prefix(prefix)
            .and_then(|k| k.strip_suffix(']'))
            .map(|key| {
                spec.pointer(&format!("/metadata/{field}"))
                    .and_then(|m| m.get(key))
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
    };
    match inner {
        "Name" => trial.name.to_string(),
        "Namespace" => trial.namespace.to_string(),
        "Kind" => text("/kind"),
        "APIVersion" => text("/apiVersion"),
        _ => keyed("Labels[", "labels")
            .or_else(|| keyed("Annotations[", "annotations"))
            .unwrap_or_default(),
    }
}

/// What the local executor needs from the primary container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerCommand {
    /// `command` followed by `args`.
    pub argv: Vec<String>,
    /// `env` entries with a literal `value`.
    pub env: Vec<(String, String)>,
    /// `workingDir`, if set.
    pub working_dir: Option<String>,
}

/// Finds the container named `name` in the rendered spec (a pod template's, an Argo
/// template's, a Tekton step, a TrainJob's trainer).
pub fn primary_container(spec: &Json, name: &str) -> Result<ContainerCommand, TemplateError> {
    let container =
        find_container(spec, name).ok_or_else(|| TemplateError::NoPrimaryContainer(name.into()))?;
    let bad = |message: String| TemplateError::BadContainer {
        container: name.into(),
        message,
    };
    let strings = |field: &str| -> Result<Vec<String>, TemplateError> {
        match container.get(field) {
            None | Some(Json::Null) => Ok(vec![]),
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s.clone()),
                    Json::Number(n) => Ok(n.to_string()),
                    other => Err(bad(format!("{field} must hold strings, found {other}"))),
                })
                .collect(),
            Some(other) => Err(bad(format!(
                "{field} must be a list of strings, found {other}"
            ))),
        }
    };
    let mut argv = strings("command")?;
    argv.extend(strings("args")?);
    if argv.is_empty() {
        return Err(bad("has no command or args; a local trial needs the program to run (the image's entrypoint is not available)".into()));
    }
    let mut env = Vec::new();
    if let Some(list) = container.get("env").and_then(Json::as_array) {
        for e in list {
            let n = e
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("env entry without a name".into()))?;
            match e.get("value") {
                Some(Json::String(v)) => env.push((n.to_string(), v.clone())),
                Some(Json::Number(v)) => env.push((n.to_string(), v.to_string())),
                None if e.get("valueFrom").is_some() => {
                    return Err(bad(format!(
                        "env {n}: valueFrom needs Kubernetes; give a literal value for local trials"
                    )));
                }
                _ => env.push((n.to_string(), String::new())),
            }
        }
    }
    let working_dir = container
        .get("workingDir")
        .and_then(Json::as_str)
        .map(str::to_string);
    Ok(ContainerCommand {
        argv,
        env,
        working_dir,
    })
}

/// The container `name` answers to in the spec (see [`crate::sites`]); the first of
/// several.
pub(crate) fn find_container<'a>(v: &'a Json, name: &str) -> Option<&'a Json> {
    crate::sites::sites(v)
        .into_iter()
        .find(|s| s.names.iter().any(|n| n == name))
        .and_then(|s| v.pointer(&s.container))
}

/// Kubernetes' `$(VAR)` expansion in command and args: a reference to a defined variable
/// is replaced by its value, an undefined one is left as written, and `$$` yields `$`.
pub fn expand_env_refs(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(end) = tail.strip_prefix("$(").and_then(|t| t.find(')')) {
            let name = &tail[2..2 + end];
            match lookup(name).filter(|_| !name.is_empty()) {
                Some(v) => out.push_str(&v),
                None => out.push_str(&tail[..3 + end]),
            }
            rest = &tail[3 + end..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::TrialParameter;
    use serde_json::json;

    fn template(spec: Json, params: &[(&str, &str)]) -> TrialTemplate {
        TrialTemplate {
            source: TemplateSource::Inline(spec),
            trial_parameters: params
                .iter()
                .map(|(n, r)| TrialParameter {
                    name: n.to_string(),
                    description: None,
                    reference: r.to_string(),
                })
                .collect(),
            primary_container_name: "training-container".into(),
            primary_pod_labels: Default::default(),
            success_condition: String::new(),
            failure_condition: String::new(),
            retain: false,
        }
    }

    fn job() -> Json {
        json!({"apiVersion": "batch/v1", "kind": "Job",
          "metadata": {"labels": {"team": "vision"}},
          "spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "command": ["sleep"]},
            {"name": "training-container", "command": ["python3", "train.py"],
             "args": ["--lr=${trialParameters.learningRate}", "--run=${trialParameters.trialName}", "--team=${trialParameters.team}"],
             "env": [{"name": "LR", "value": "${trialParameters.learningRate}"}], "workingDir": "/app"}]}}}})
    }

    #[test]
    fn substitutes_parameters_and_metadata() {
        let t = template(
            job(),
            &[
                ("learningRate", "lr"),
                ("trialName", "${trialSpec.Name}"),
                ("team", "${trialSpec.Labels[team]}"),
            ],
        );
        let a = BTreeMap::from([("lr".to_string(), "0.01".to_string())]);
        let out = render(
            &t,
            &TrialIdentity {
                name: "exp-abc",
                namespace: "default",
            },
            &a,
        )
        .unwrap();
        let c = primary_container(&out, "training-container").unwrap();
        assert_eq!(
            c.argv,
            [
                "python3",
                "train.py",
                "--lr=0.01",
                "--run=exp-abc",
                "--team=vision"
            ]
        );
        assert_eq!(c.env, [("LR".to_string(), "0.01".to_string())]);
        assert_eq!(c.working_dir.as_deref(), Some("/app"));
        assert_eq!(
            out.pointer("/metadata/name").and_then(Json::as_str),
            Some("exp-abc")
        );
    }

    #[test]
    fn values_with_quotes_stay_valid() {
        let t = template(
            job(),
            &[
                ("learningRate", "lr"),
                ("trialName", "${trialSpec.Name}"),
                ("team", "${trialSpec.Kind}"),
            ],
        );
        let a = BTreeMap::from([("lr".to_string(), "a\"b".to_string())]);
        let out = render(
            &t,
            &TrialIdentity {
                name: "x",
                namespace: "ns",
            },
            &a,
        )
        .unwrap();
        let c = primary_container(&out, "training-container").unwrap();
        assert_eq!(c.argv[2], "--lr=a\"b");
        assert_eq!(c.argv[4], "--team=Job");
    }

    #[test]
    fn missing_assignment_and_container_are_errors() {
        let t = template(job(), &[("learningRate", "lr")]);
        let err = render(
            &t,
            &TrialIdentity {
                name: "x",
                namespace: "ns",
            },
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(matches!(err, TemplateError::MissingAssignment { .. }));
        assert!(matches!(
            primary_container(&job(), "nope"),
            Err(TemplateError::NoPrimaryContainer(_))
        ));
    }

    #[test]
    fn expands_kubernetes_env_references() {
        let env = |k: &str| (k == "DIR").then(|| "/data".to_string());
        assert_eq!(expand_env_refs("$(DIR)/train.py", &env), "/data/train.py");
        assert_eq!(
            expand_env_refs("$(NOPE)-$$(DIR)-$5-$(", &env),
            "$(NOPE)-$(DIR)-$5-$("
        );
        assert_eq!(expand_env_refs("a$(DIR)b$(DIR)", &env), "a/datab/data");
        assert_eq!(expand_env_refs("$()", &env), "$()");
    }

    #[test]
    fn finds_placeholders() {
        let p = placeholders(&job());
        assert_eq!(
            p.into_iter().collect::<Vec<_>>(),
            ["learningRate", "team", "trialName"]
        );
    }
}
