//! The kinds the fake API server serves and its discovery documents (`/version`, `/api`,
//! `/apis`, each group version's resource list), so `kube::discovery` finds dynamic kinds
//! as on a cluster with the Kubeflow, JobSet, Argo and Tekton CRDs installed.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

/// A kind the server serves.
#[derive(Debug, Clone)]
pub(super) struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
    }
}

/// Core pods and config maps, batch Jobs, and every trial kind Katib's examples use.
pub(super) const KINDS: &[Kind] = &[
    kind("", "v1", "Pod", "pods"),
    kind("", "v1", "ConfigMap", "configmaps"),
    kind("", "v1", "Event", "events"),
    kind("batch", "v1", "Job", "jobs"),
    kind("kubeflow.org", "v1", "TFJob", "tfjobs"),
    kind("kubeflow.org", "v1", "PyTorchJob", "pytorchjobs"),
    kind("kubeflow.org", "v1", "XGBoostJob", "xgboostjobs"),
    kind("kubeflow.org", "v2beta1", "MPIJob", "mpijobs"),
    kind("trainer.kubeflow.org", "v1alpha1", "TrainJob", "trainjobs"),
    kind("jobset.x-k8s.io", "v1alpha2", "JobSet", "jobsets"),
    kind("argoproj.io", "v1alpha1", "Workflow", "workflows"),
    kind("tekton.dev", "v1beta1", "PipelineRun", "pipelineruns"),
    kind("kubeflow.org", "v1beta1", "Experiment", "experiments"),
    kind("kubeflow.org", "v1beta1", "Trial", "trials"),
    kind("kubeflow.org", "v1beta1", "Suggestion", "suggestions"),
    kind("coordination.k8s.io", "v1", "Lease", "leases"),
    kind("events.k8s.io", "v1", "Event", "events"),
];

/// `group/version`, or `version` for the core group.
pub(super) fn group_version(k: &Kind) -> String {
    if k.group.is_empty() {
        k.version.to_string()
    } else {
        format!("{}/{}", k.group, k.version)
    }
}

/// The kind served at `group`, `version`, `plural`.
pub(super) fn find(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

fn group_list() -> Json {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in KINDS.iter().filter(|k| !k.group.is_empty()) {
        let versions = groups.entry(k.group).or_default();
        if !versions.contains(&k.version) {
            versions.push(k.version);
        }
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
}

fn resources(gv: &str) -> Json {
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
}

/// The discovery document at `path`, if it is one.
pub(super) fn discovery(path: &str) -> Option<Json> {
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
