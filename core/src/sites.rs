//! Where a trial's containers are in its object, by kind of object: every pod template
//! (an object whose `spec.containers` is a list: Job, the Kubeflow jobs, JobSet, ...),
//! Argo Workflow templates with a `container` (Argo names it `main` in the pod), Tekton
//! tasks' steps (named `step-<name>` in the pod), and a TrainJob's trainer (whose pods
//! the training runtime makes, so only its environment can be set). Each site says how
//! the collector's binary gets next to the container, and which labels its pod carries,
//! so `primaryPodLabels` can choose among several. Validation, the local executor (which
//! runs the primary container's command) and the Kubernetes collector injection all find
//! the primary container here.

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// How the `kestrel` binary is put where a site's container finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// A pod spec at this pointer: an emptyDir in its `volumes`, an init container.
    Pod(String),
    /// An Argo template at this pointer: its `initContainers`, the volume in the
    /// workflow's `spec.volumes`.
    Argo(String),
    /// A Tekton task spec at this pointer: a first step copies it into a volume in the
    /// task's `volumes`.
    Tekton(String),
    /// Not possible (the pods are made from a runtime kestrel does not see).
    None,
}

/// One container a trial may run.
#[derive(Debug, Clone)]
pub struct Site {
    /// JSON pointer to the container object.
    pub container: String,
    /// The names it answers to as `primaryContainerName`.
    pub names: Vec<String>,
    /// Labels its pod will carry that can be known from the object.
    pub labels: BTreeMap<String, String>,
    /// Segments of its path (a Kubeflow job's replica type, `Master`, `Launcher`).
    pub path: Vec<String>,
    /// How the collector's binary gets next to it.
    pub install: Install,
}

impl Site {
    /// Whether the site's pod carries every one of `wanted` (a label matches by value, or
    /// a replica type in its path, case-insensitively: Kubeflow's `job-role: master`).
    pub fn carries(&self, wanted: &BTreeMap<String, String>) -> bool {
        wanted.iter().all(|(k, v)| {
            self.labels.get(k) == Some(v) || self.path.iter().any(|s| s.eq_ignore_ascii_case(v))
        })
    }
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn str_map(v: Option<&Json>) -> BTreeMap<String, String> {
    v.and_then(Json::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn name_of(v: &Json) -> Option<String> {
    v.get("name").and_then(Json::as_str).map(str::to_string)
}

/// Every pod template's containers.
fn pod_templates(v: &Json, at: &str, out: &mut Vec<Site>) {
    match v {
        Json::Object(o) => {
            if let Some(cs) = o
                .get("spec")
                .and_then(|s| s.get("containers"))
                .and_then(Json::as_array)
            {
                let labels = str_map(v.pointer("/metadata/labels"));
                let path: Vec<String> = at.split('/').map(str::to_string).collect();
                for (i, c) in cs.iter().enumerate() {
                    out.push(Site {
                        container: format!("{at}/spec/containers/{i}"),
                        names: name_of(c).into_iter().collect(),
                        labels: labels.clone(),
                        path: path.clone(),
                        install: Install::Pod(format!("{at}/spec")),
                    });
                }
            }
            for (k, x) in o {
                pod_templates(x, &format!("{at}/{}", escape(k)), out);
            }
        }
        Json::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pod_templates(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Argo Workflow templates running a container.
fn argo(object: &Json, out: &mut Vec<Site>) {
    let Some(templates) = object.pointer("/spec/templates").and_then(Json::as_array) else {
        return;
    };
    for (i, t) in templates.iter().enumerate() {
        let Some(c) = t.get("container").filter(|c| c.is_object()) else {
            continue;
        };
        let at = format!("/spec/templates/{i}");
        let mut names = vec!["main".to_string()];
        names.extend(name_of(c));
        out.push(Site {
            container: format!("{at}/container"),
            names,
            labels: str_map(t.pointer("/metadata/labels")),
            path: name_of(t).into_iter().collect(),
            install: Install::Argo(at),
        });
    }
}

/// Tekton PipelineRun tasks' (inline) steps.
fn tekton(object: &Json, out: &mut Vec<Site>) {
    let Some(tasks) = object
        .pointer("/spec/pipelineSpec/tasks")
        .and_then(Json::as_array)
    else {
        return;
    };
    for (i, task) in tasks.iter().enumerate() {
        let Some(steps) = task.pointer("/taskSpec/steps").and_then(Json::as_array) else {
            continue;
        };
        let at = format!("/spec/pipelineSpec/tasks/{i}/taskSpec");
        let labels: BTreeMap<String, String> = name_of(task)
            .map(|n| [("tekton.dev/pipelineTask".to_string(), n)].into())
            .unwrap_or_default();
        for (j, s) in steps.iter().enumerate() {
            let names = name_of(s)
                .map(|n| vec![format!("step-{n}"), n])
                .unwrap_or_default();
            out.push(Site {
                container: format!("{at}/steps/{j}"),
                names,
                labels: labels.clone(),
                path: vec![],
                install: Install::Tekton(at.clone()),
            });
        }
    }
}

/// A TrainJob's trainer (its pods are the runtime's: environment only).
fn trainer(object: &Json, out: &mut Vec<Site>) {
    if object.get("kind").and_then(Json::as_str) != Some("TrainJob") {
        return;
    }
    if object.pointer("/spec/trainer").is_some_and(Json::is_object) {
        out.push(Site {
            container: "/spec/trainer".into(),
            names: vec!["node".into()],
            labels: [
                (
                    "jobset.sigs.k8s.io/replicatedjob-name".into(),
                    "node".into(),
                ),
                (
                    "batch.kubernetes.io/job-completion-index".into(),
                    "0".into(),
                ),
            ]
            .into(),
            path: vec![],
            install: Install::None,
        });
    }
}

/// Every container site of `object`.
pub fn sites(object: &Json) -> Vec<Site> {
    let mut out = Vec::new();
    pod_templates(object, "", &mut out);
    argo(object, &mut out);
    tekton(object, &mut out);
    trainer(object, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn found(object: &Json) -> Vec<(String, Vec<String>, Install)> {
        sites(object)
            .into_iter()
            .map(|s| (s.container, s.names, s.install))
            .collect()
    }

    #[test]
    fn sites_of_each_kind_of_object() {
        let pytorch = json!({"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
            "Master": {"template": {"spec": {"containers": [{"name": "pytorch"}]}}},
            "Worker": {"template": {"metadata": {"labels": {"a": "b"}},
                                    "spec": {"containers": [{"name": "pytorch"}, {"name": "side"}]}}}}}});
        let all = sites(&pytorch);
        assert_eq!(all.len(), 3);
        let master = BTreeMap::from([(
            "training.kubeflow.org/job-role".to_string(),
            "master".to_string(),
        )]);
        let chosen: Vec<&str> = all
            .iter()
            .filter(|s| s.carries(&master))
            .map(|s| s.container.as_str())
            .collect();
        assert_eq!(
            chosen,
            ["/spec/pytorchReplicaSpecs/Master/template/spec/containers/0"]
        );
        assert!(all[1].carries(&BTreeMap::from([("a".into(), "b".into())])));
        assert_eq!(
            all[1].install,
            Install::Pod("/spec/pytorchReplicaSpecs/Worker/template/spec".into())
        );

        let argo = json!({"kind": "Workflow", "spec": {"templates": [
            {"name": "hp", "steps": []},
            {"name": "train", "container": {"name": "t", "command": ["x"]}}]}});
        assert_eq!(
            found(&argo),
            [(
                "/spec/templates/1/container".to_string(),
                vec!["main".to_string(), "t".to_string()],
                Install::Argo("/spec/templates/1".into())
            )]
        );

        let tekton = json!({"kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": [
            {"name": "train", "taskSpec": {"steps": [{"name": "fit", "command": ["x"]}]}},
            {"name": "by-ref", "taskRef": {"name": "elsewhere"}}]}}});
        let t = &sites(&tekton)[0];
        assert_eq!(t.names, ["step-fit", "fit"]);
        assert_eq!(t.labels["tekton.dev/pipelineTask"], "train");
        assert_eq!(
            t.install,
            Install::Tekton("/spec/pipelineSpec/tasks/0/taskSpec".into())
        );

        let train = json!({"kind": "TrainJob", "spec": {"trainer": {"command": ["x"]}}});
        assert_eq!(
            found(&train),
            [(
                "/spec/trainer".to_string(),
                vec!["node".to_string()],
                Install::None
            )]
        );
        // A trainer field in another kind is not a container.
        assert!(sites(&json!({"kind": "Other", "spec": {"trainer": {}}})).is_empty());
    }
}
