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
//! Every pod template and the object get Katib's labels; the trial gets
//! `KATIB_TRIAL_NAME`, the DBManager address (`KESTREL_DB_MANAGER`) and its credential
//! (`KESTREL_TRIAL_TOKEN`).

use kestrel_core::experiment::{CollectorKind, FileFormat};
use kestrel_core::{Experiment, ObjectiveType};
use serde_json::{Value as Json, json};

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
    /// The collector kind cannot run this way.
    #[error("spec.metricsCollectorSpec.collector.kind: {0} is not supported on Kubernetes yet")]
    Unsupported(String),
}

/// JSON pointers of every pod template (an object whose `spec.containers` is a list).
fn pod_templates(v: &Json, at: String, out: &mut Vec<String>) {
    match v {
        Json::Object(o) => {
            if o.get("spec")
                .and_then(|s| s.get("containers"))
                .is_some_and(Json::is_array)
            {
                out.push(at.clone());
            }
            for (k, x) in o {
                let k = k.replace('~', "~0").replace('/', "~1");
                pod_templates(x, format!("{at}/{k}"), out);
            }
        }
        Json::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pod_templates(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
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
        CollectorKind::Unsupported { name } => return Err(InjectError::Unsupported(name.clone())),
    }
    for f in &exp.metrics_collector.filters {
        args.extend(["--filter".into(), f.clone()]);
    }
    args.push("--".into());
    Ok(args)
}

/// Labels `object` and every pod template in it, and sets up metrics collection in the
/// primary pod template (see the module documentation).
pub fn inject(object: &mut Json, c: &Collection<'_>) -> Result<(), InjectError> {
    let exp = c.experiment;
    let primary = &exp.trial_template.primary_container_name;
    label(object, c);
    let mut templates = Vec::new();
    pod_templates(object, String::new(), &mut templates);
    for t in &templates {
        if let Some(template) = object.pointer_mut(t) {
            label(template, c);
        }
    }
    let has_primary = |t: &String| {
        object
            .pointer(&format!("{t}/spec/containers"))
            .and_then(Json::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|x| x.get("name").and_then(Json::as_str) == Some(primary))
            })
    };
    let candidates: Vec<&String> = templates.iter().filter(|t| has_primary(t)).collect();
    let chosen: Vec<&String> = if candidates.len() > 1 {
        // primaryPodLabels name the replica (Katib's default: job-role master).
        let roles: Vec<String> = exp
            .trial_template
            .primary_pod_labels
            .values()
            .map(|v| v.to_ascii_lowercase())
            .collect();
        candidates
            .iter()
            .copied()
            .filter(|t| {
                t.split('/')
                    .any(|seg| roles.contains(&seg.to_ascii_lowercase()))
            })
            .collect()
    } else {
        candidates.clone()
    };
    let template = match chosen.as_slice() {
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
    let Some(pod) = object.pointer_mut(&format!("{template}/spec")) else {
        return Err(InjectError::NoPrimary(primary.clone()));
    };
    let env = [
        ("KATIB_TRIAL_NAME", c.trial),
        ("KESTREL_DB_MANAGER", c.db_manager),
        ("KESTREL_TRIAL_TOKEN", c.secret),
    ];
    let no_primary = || InjectError::NoPrimary(primary.clone());
    let container = list(pod, "containers")
        .and_then(|cs| {
            cs.iter_mut()
                .find(|x| x.get("name").and_then(Json::as_str) == Some(primary))
        })
        .ok_or_else(no_primary)?;
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
    list(pod, "volumes")
        .ok_or_else(no_primary)?
        .push(json!({"name": VOLUME, "emptyDir": {}}));
    list(pod, "initContainers")
        .ok_or_else(no_primary)?
        .push(json!({
            "name": "kestrel-install",
            "image": c.image,
            "command": ["cp", IMAGE_BINARY, format!("{MOUNT}/kestrel")],
            "volumeMounts": [mount],
        }));
    Ok(())
}

#[cfg(test)]
mod tests;
