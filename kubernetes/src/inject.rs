//! Metrics collection without a webhook: when kestrel creates a trial's object it changes
//! the primary pod's template itself.
//!
//! For the StdOut and File collectors an init container copies the `kestrel` binary from
//! kestrel's image into an emptyDir, and the primary container's command becomes
//! `/kestrel-bin/kestrel collect ... -- <its command>`: the collector runs in the training
//! container, sees its output directly, reports to kestrel's DBManager within 0.1 s, and
//! exits with the command's status. This was chosen over a native sidecar
//! (`restartPolicy: Always` init container, Kubernetes 1.29+) because it needs no
//! shared process namespace, no log file on a shared volume and no minimum cluster
//! version, and a command that ends before a sidecar starts loses nothing (Katib's
//! known pains). The Push collector only gets the environment: the trial reports itself.
//!
//! The primary container is found by `kestrel_core::sites`: in a pod template (Job, the
//! Kubeflow jobs, JobSet), an Argo Workflow's container template (the binary comes from
//! the template's init container), or a Tekton task's step (a first step of the task
//! copies it). A TrainJob's pods are made by its training runtime, out of kestrel's
//! sight: it gets the Push environment, and wrapping is refused with what to do instead.
//!
//! Every pod template and the object get Katib's labels; the trial gets
//! `KATIB_TRIAL_NAME`, the DBManager address (`KESTREL_DB_MANAGER`) and its credential
//! (`KESTREL_TRIAL_TOKEN`).

use kestrel_core::experiment::{CollectorKind, FileFormat};
use kestrel_core::{Experiment, ObjectiveType};
use serde_json::{Value as Json, json};

use kestrel_core::sites::{self, Install, Site};

/// Katib's label naming a trial's experiment.
pub const EXPERIMENT_LABEL: &str = "katib.kubeflow.org/experiment";
/// Katib's label naming the trial.
pub const TRIAL_LABEL: &str = "katib.kubeflow.org/trial";
/// Where the kestrel binary is in kestrel's image.
pub const IMAGE_BINARY: &str = "/usr/local/bin/kestrel";
/// Where the primary container finds it.
pub const MOUNT: &str = "/kestrel-bin";
const VOLUME: &str = "kestrel-bin";

/// What the collector needs to know.
#[derive(Debug, Clone)]
pub struct Collection<'a> {
    /// The experiment (objective, collector, primary container and pod labels).
    pub experiment: &'a Experiment,
    /// The trial's name.
    pub trial: &'a str,
    /// kestrel's image (holds [`IMAGE_BINARY`]).
    pub image: &'a str,
    /// kestrel's DBManager as pods reach it, `host:port`.
    pub db_manager: &'a str,
    /// The trial run's secret.
    pub secret: &'a str,
}

/// Why a trial's object cannot be prepared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InjectError {
    /// No pod template has the primary container.
    #[error(
        "spec.trialTemplate.primaryContainerName: no pod template of the trial has a container named {0:?}"
    )]
    NoPrimary(String),
    /// Several do, and primaryPodLabels do not tell which.
    #[error(
        "spec.trialTemplate.primaryPodLabels: {count} pod templates have a container named {container:?}; set primaryPodLabels to the replica to collect from"
    )]
    Ambiguous {
        /// The container name.
        container: String,
        /// How many templates have it.
        count: usize,
    },
    /// The primary container has no command to wrap.
    #[error(
        "container {0:?} has no command: kestrel wraps it to collect metrics, so give the training command in `command` (the image's entrypoint is not known)"
    )]
    NoCommand(String),
    /// The kind's pods come from a runtime kestrel does not see (TrainJob).
    #[error(
        "kind {0}: its pods are made by the training runtime, where kestrel cannot add its collector; set spec.metricsCollectorSpec.collector.kind: Push and report from the trainer (KATIB_TRIAL_NAME and KESTREL_DB_MANAGER are set), or use a Job or PyTorchJob template"
    )]
    RuntimePods(String),
    /// The collector kind cannot run this way.
    #[error("spec.metricsCollectorSpec.collector.kind: {0} is not supported on Kubernetes yet")]
    Unsupported(String),
}

/// `object[key]` as an object, created when missing (or not an object); `None` when
/// `object` is not an object itself.
fn map<'a>(object: &'a mut Json, key: &str) -> Option<&'a mut serde_json::Map<String, Json>> {
    let o = object.as_object_mut()?;
    let v = o.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut()
}

/// `object[key]` as a list, created when missing (or not a list); `None` when `object`
/// is not an object itself.
fn list<'a>(object: &'a mut Json, key: &str) -> Option<&'a mut Vec<Json>> {
    let o = object.as_object_mut()?;
    let v = o.entry(key).or_insert_with(|| json!([]));
    if !v.is_array() {
        *v = json!([]);
    }
    v.as_array_mut()
}

fn label(object: &mut Json, c: &Collection<'_>) {
    let Some(meta) = map(object, "metadata") else {
        return;
    };
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    if let Some(l) = labels.as_object_mut() {
        l.insert(EXPERIMENT_LABEL.into(), json!(c.experiment.name));
        l.insert(TRIAL_LABEL.into(), json!(c.trial));
    }
}

/// The `kestrel collect` arguments for the experiment's collector.
fn collect_args(c: &Collection<'_>) -> Result<Vec<String>, InjectError> {
    let exp = c.experiment;
    let metrics: Vec<&str> = exp.objective.all_metrics().collect();
    let mut args: Vec<String> = [
        &format!("{MOUNT}/kestrel"),
        "collect",
        "--trial",
        c.trial,
        "--metrics",
        &metrics.join(","),
        "--db-manager",
        c.db_manager,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if exp.objective.kind == ObjectiveType::Maximize {
        args.extend(["--objective-type".into(), "maximize".into()]);
    }
    match &exp.metrics_collector.kind {
        CollectorKind::StdOut => {}
        CollectorKind::File { path, format } => {
            args.extend([
                "--source".into(),
                "file".into(),
                "--path".into(),
                path.clone(),
            ]);
            if *format == FileFormat::Json {
                args.extend(["--format".into(), "json".into()]);
            }
        }
        CollectorKind::Push => {}
        CollectorKind::TensorFlowEvent { path } => {
            args.extend([
                "--source".into(),
                "tfevent".into(),
                "--path".into(),
                path.clone(),
            ]);
        }
        CollectorKind::Unsupported { name } => return Err(InjectError::Unsupported(name.clone())),
    }
    for f in &exp.metrics_collector.filters {
        args.extend(["--filter".into(), f.clone()]);
    }
    args.push("--".into());
    Ok(args)
}

/// Labels `object` and every pod template in it, and sets up metrics collection for the
/// primary container (see the module documentation).
pub fn inject(object: &mut Json, c: &Collection<'_>) -> Result<(), InjectError> {
    let exp = c.experiment;
    let primary = &exp.trial_template.primary_container_name;
    label(object, c);
    let all = sites::sites(object);
    for s in &all {
        let template = match &s.install {
            Install::Pod(spec) => spec.strip_suffix("/spec").unwrap_or(spec),
            Install::Argo(t) => t,
            _ => continue,
        };
        if let Some(t) = object.pointer_mut(template) {
            label(t, c);
        }
    }
    let candidates: Vec<&Site> = all.iter().filter(|s| s.names.contains(primary)).collect();
    let chosen: Vec<&Site> = if candidates.len() > 1 {
        // primaryPodLabels name the replica (Katib's default: job-role master).
        let wanted = &exp.trial_template.primary_pod_labels;
        candidates
            .iter()
            .copied()
            .filter(|s| s.carries(wanted))
            .collect()
    } else {
        candidates.clone()
    };
    let site = match chosen.as_slice() {
        [one] => (*one).clone(),
        [] if candidates.is_empty() => return Err(InjectError::NoPrimary(primary.clone())),
        _ => {
            return Err(InjectError::Ambiguous {
                container: primary.clone(),
                count: candidates.len(),
            });
        }
    };
    let push = matches!(exp.metrics_collector.kind, CollectorKind::Push);
    let wrapper = if push { None } else { Some(collect_args(c)?) };
    if wrapper.is_some() && site.install == Install::None {
        let kind = object
            .get("kind")
            .and_then(Json::as_str)
            .unwrap_or_default();
        return Err(InjectError::RuntimePods(kind.to_string()));
    }
    let no_primary = || InjectError::NoPrimary(primary.clone());
    let container = object.pointer_mut(&site.container).ok_or_else(no_primary)?;
    let env = [
        ("KATIB_TRIAL_NAME", c.trial),
        ("KESTREL_DB_MANAGER", c.db_manager),
        ("KESTREL_TRIAL_TOKEN", c.secret),
    ];
    let vars = list(container, "env").ok_or_else(no_primary)?;
    vars.retain(|v| {
        !env.iter()
            .any(|(n, _)| v.get("name").and_then(Json::as_str) == Some(n))
    });
    vars.extend(env.iter().map(|(n, v)| json!({"name": n, "value": v})));
    let Some(mut wrapper) = wrapper else {
        return Ok(());
    };
    let command = container
        .get("command")
        .and_then(Json::as_array)
        .filter(|c| !c.is_empty())
        .cloned()
        .ok_or_else(|| InjectError::NoCommand(primary.clone()))?;
    let mut wrapped: Vec<Json> = wrapper.drain(..).map(Json::String).collect();
    wrapped.extend(command);
    if let Some(o) = container.as_object_mut() {
        o.insert("command".into(), Json::Array(wrapped));
    }
    let mount = json!({"name": VOLUME, "mountPath": MOUNT});
    list(container, "volumeMounts")
        .ok_or_else(no_primary)?
        .push(mount.clone());
    install(object, &site.install, c.image, mount).ok_or_else(no_primary)
}

/// Puts the `kestrel` binary where the site's container finds it (see [`Install`]).
fn install(object: &mut Json, how: &Install, image: &str, mount: Json) -> Option<()> {
    let volume = json!({"name": VOLUME, "emptyDir": {}});
    let copier = json!({
        "name": "kestrel-install",
        "image": image,
        "command": ["cp", IMAGE_BINARY, format!("{MOUNT}/kestrel")],
        "volumeMounts": [mount],
    });
    match how {
        Install::Pod(spec) => {
            let pod = object.pointer_mut(spec)?;
            list(pod, "volumes")?.push(volume);
            list(pod, "initContainers")?.push(copier);
        }
        Install::Argo(template) => {
            list(object.pointer_mut(template)?, "initContainers")?.push(copier);
            list(object.pointer_mut("/spec")?, "volumes")?.push(volume);
        }
        Install::Tekton(task) => {
            let task = object.pointer_mut(task)?;
            list(task, "volumes")?.push(volume);
            // Steps run in order in one pod: the first one installs the binary.
            list(task, "steps")?.insert(0, copier);
        }
        Install::None => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests;
