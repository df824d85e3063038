//! Runs trials as Kubernetes objects (a Job, a Kubeflow job, an Argo Workflow: any kind,
//! found through discovery) created from the rendered `trialSpec`, named after the trial,
//! labelled as Katib labels them, with metrics collection set up in the primary pod
//! template (`kestrel_kubernetes::inject`). A trial's end is read from the object with the
//! template's success and failure conditions (Katib's GJSON rules); a pod that cannot run
//! (image pull errors, unschedulable, evicted) or an object deleted from under the trial
//! ends it with that reason. Stopping deletes the object (foreground propagation);
//! finished objects are deleted unless the template says `retain`. A restarted kestrel
//! re-attaches from the stored record (kind, namespace, name): the object is the state.
//! Before an object goes, its pods' logs are saved as the trial's log (`logs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kestrel_core::experiment::TemplateSource;
use kestrel_core::outcome::{RunEnd, StopReason};
use kestrel_core::{Experiment, RunRecord};
use kestrel_kubernetes::conditions::finished;
use kestrel_kubernetes::inject::{Collection, TRIAL_LABEL, inject};
use kestrel_kubernetes::pods::stuck;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{ExecError, RenderedTrial, RunPhase, TrialExecutor};

/// Where and how trials run on a cluster.
#[derive(Clone)]
pub struct KubeSettings {
    /// The API client; `None` infers one on first use (the kubeconfig, `KUBECONFIG`, or the
    /// pod's service account).
    pub client: Option<kube::Client>,
    /// kestrel's image, holding the `kestrel` binary for the collector.
    pub image: String,
    /// kestrel's DBManager as pods reach it, `host:port`.
    pub db_manager: String,
    /// Who owns each trial's object, if anyone (the operator's Trial resources).
    pub owner: Option<Arc<dyn TrialOwner>>,
    /// Where trials' logs are saved (`<runs_dir>/<experiment>/<trial>/trial.log`, as the
    /// local executor's); `None` saves none.
    pub runs_dir: Option<PathBuf>,
}

/// The owner of a trial's object: asked before the object is created; the
/// ownerReference it returns is set on the object, so the cluster deletes the object
/// with its owner.
#[async_trait::async_trait]
pub trait TrialOwner: Send + Sync {
    /// The ownerReference (`apiVersion`, `kind`, `name`, `uid`, ...) for `trial`'s object.
    async fn owner(&self, trial: &RenderedTrial) -> Result<Option<Json>, ExecError>;
}

/// What the store keeps of a trial's object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ObjectRef {
    api_version: String,
    kind: String,
    plural: String,
    namespace: String,
    name: String,
}

struct Attached {
    object: ObjectRef,
    experiment: String,
    primary: String,
    success: String,
    failure: String,
    retain: bool,
    stopped: Option<StopReason>,
}

/// Executes trials as cluster objects.
pub struct KubeExecutor {
    settings: KubeSettings,
    client: tokio::sync::OnceCell<kube::Client>,
    attached: Mutex<HashMap<String, Attached>>,
    watches: watches::Watches,
    /// What `forget` started: finished trials' logs being saved and objects deleted.
    background: Mutex<tokio::task::JoinSet<()>>,
}

/// How long [`TrialExecutor::drain`] waits for finished trials' logs and deletions.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn api_error(what: &str, e: &kube::Error) -> ExecError {
    let detail = match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "{what}: forbidden by the cluster's RBAC ({}); give kestrel's service account that permission",
            s.message
        ),
        kube::Error::Api(s) => format!("{what}: {} ({})", s.message, s.code),
        other => format!("{what}: {other}"),
    };
    ExecError::Invalid(detail)
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl KubeExecutor {
    /// An executor creating trials with `settings`.
    pub fn new(settings: KubeSettings) -> Self {
        KubeExecutor {
            client: tokio::sync::OnceCell::new_with(settings.client.clone()),
            settings,
            attached: Mutex::new(HashMap::new()),
            watches: Default::default(),
            background: Mutex::default(),
        }
    }

    /// The API client, inferred from the environment the first time.
    async fn client(&self) -> Result<kube::Client, ExecError> {
        self.client
            .get_or_try_init(|| async {
                kube::Client::try_default().await.map_err(|e| {
                    ExecError::Invalid(format!(
                        "cannot reach a Kubernetes cluster (kubeconfig, KUBECONFIG or in-cluster service account): {e}"
                    ))
                })
            })
            .await
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attached>> {
        self.attached.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn api(&self, r: &ObjectRef) -> Result<Api<DynamicObject>, ExecError> {
        Ok(Api::namespaced_with(
            self.client().await?,
            &r.namespace,
            &resource(r),
        ))
    }

    fn attach(&self, t: &RenderedTrial, object: ObjectRef) {
        let tt = &t.experiment.trial_template;
        self.lock().insert(
            t.trial.clone(),
            Attached {
                object,
                experiment: t.experiment.name.clone(),
                primary: tt.primary_container_name.clone(),
                success: tt.success_condition.clone(),
                failure: tt.failure_condition.clone(),
                retain: tt.retain,
                stopped: None,
            },
        );
    }

    /// What saving `trial`'s log takes (its pods from the watch), when logs are saved and
    /// the client exists.
    fn log_job(&self, trial: &str, a: &Attached) -> Option<logs::LogJob> {
        let runs = self.settings.runs_dir.as_ref()?;
        let client = self.client.get()?.clone();
        let path = crate::paths::experiment_dir(runs, &a.experiment)?
            .join(trial)
            .join(super::local::LOG_FILE);
        Some(logs::LogJob {
            watched: self.watches.pods(&client, &a.object.namespace, trial),
            namespace: a.object.namespace.clone(),
            trial: trial.to_string(),
            client,
            primary: a.primary.clone(),
            path,
        })
    }

    /// Why the trial's pods cannot run, if they cannot (from the pods' watch).
    async fn stuck_pod(&self, r: &ObjectRef, trial: &str) -> Option<String> {
        let client = self.client().await.ok()?;
        self.watches
            .pods(&client, &r.namespace, trial)
            .iter()
            .find_map(|p| {
                let json = serde_json::to_value(p.as_ref()).ok()?;
                stuck(&json).map(|s| format!("{}: {}", s.reason, s.message))
            })
    }

    /// The trial's object: from the watch's cache, else (just created, or gone) read
    /// once from the API server; `None` when it does not exist.
    async fn current(&self, r: &ObjectRef) -> Result<Option<Json>, ExecError> {
        let client = self.client().await?;
        if let Some(o) = self
            .watches
            .object(&client, &resource(r), &r.namespace, &r.name)
        {
            return Ok(Some(serde_json::to_value(o.as_ref()).unwrap_or_default()));
        }
        match self.api(r).await?.get(&r.name).await {
            Ok(o) => Ok(Some(serde_json::to_value(&o).unwrap_or_default())),
            Err(e) if is_code(&e, 404) => Ok(None),
            Err(e) => Err(api_error(&format!("reading {} {}", r.kind, r.name), &e)),
        }
    }
}

/// An object of another trial or owner already has the name (409 on create): never
/// adopted as this trial's.
fn foreign(existing: &DynamicObject, trial: &str) -> bool {
    existing
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(TRIAL_LABEL))
        .is_none_or(|t| t != trial)
}

/// Trials on a cluster can do everything an experiment asks.
pub fn accepts(_: &Experiment) -> Result<(), String> {
    Ok(())
}

/// A trial template kept in a ConfigMap: the YAML under `key` of ConfigMap `name` in
/// `namespace`.
async fn config_map_template(
    client: kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Json, ExecError> {
    let at = format!("spec.trialTemplate.configMap: ConfigMap {name} in namespace {namespace}");
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, namespace);
    let cm = match api.get(name).await {
        Ok(cm) => cm,
        Err(e) if is_code(&e, 404) => {
            return Err(ExecError::Invalid(format!("{at} does not exist")));
        }
        Err(e) => return Err(api_error(&format!("reading {at}"), &e)),
    };
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| ExecError::Invalid(format!("{at} has no key {key:?} (templatePath)")))?;
    if text.len() > kestrel_core::MAX_DOCUMENT_BYTES {
        return Err(ExecError::Invalid(format!(
            "{at}: the template under {key:?} is too large"
        )));
    }
    let spec: Json = serde_saphyr::from_str(text).map_err(|e| {
        ExecError::Invalid(format!(
            "{at}: the template under {key:?} is not YAML: {}",
            kestrel_core::error::bounded(e.to_string())
        ))
    })?;
    if !spec.is_object() {
        return Err(ExecError::Invalid(format!(
            "{at}: the template under {key:?} is not an object"
        )));
    }
    Ok(spec)
}

/// The API resource of a recorded object.
fn resource(r: &ObjectRef) -> ApiResource {
    let (group, version) = r
        .api_version
        .split_once('/')
        .unwrap_or(("", r.api_version.as_str()));
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        plural: r.plural.clone(),
    }
}

fn ended(code: Option<i32>, stopped: Option<StopReason>, detail: Option<String>) -> RunPhase {
    RunPhase::Exited(RunEnd {
        code,
        stopped,
        log: None,
        detail,
    })
}

#[async_trait::async_trait]
impl TrialExecutor for KubeExecutor {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn detaches(&self) -> bool {
        true
    }

    async fn template(&self, exp: &Experiment) -> Result<Option<Json>, ExecError> {
        let TemplateSource::ConfigMap {
            name,
            namespace,
            template_path,
        } = &exp.trial_template.source
        else {
            return Ok(None);
        };
        let namespace = namespace
            .clone()
            .or_else(|| exp.namespace.clone())
            .unwrap_or_else(|| "default".into());
        let client = self.client().await?;
        config_map_template(client, &namespace, name, template_path)
            .await
            .map(Some)
    }

    async fn ready(&self) -> Result<(), ExecError> {
        let client = self.client().await?;
        client.apiserver_version().await.map_err(|e| {
            ExecError::Invalid(format!(
                "the Kubernetes API server (kubeconfig, KUBECONFIG or in-cluster service account) does not answer: {e}"
            ))
        })?;
        Ok(())
    }

    async fn launch(&self, t: &RenderedTrial) -> Result<RunRecord, ExecError> {
        let mut object = t.spec.clone();
        inject(
            &mut object,
            &Collection {
                experiment: &t.experiment,
                trial: &t.trial,
                image: &self.settings.image,
                db_manager: &self.settings.db_manager,
                secret: t.secret.as_deref().unwrap_or_default(),
            },
        )
        .map_err(|e| ExecError::Invalid(e.to_string()))?;
        if let Some(owner) = &self.settings.owner
            && let Some(reference) = owner.owner(t).await?
            && let Some(meta) = object.get_mut("metadata").and_then(Json::as_object_mut)
        {
            meta.insert("ownerReferences".into(), Json::Array(vec![reference]));
        }
        let text = |p: &str| {
            object
                .pointer(p)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (api_version, kind) = (text("/apiVersion"), text("/kind"));
        let (group, version) = api_version
            .split_once('/')
            .unwrap_or(("", api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.client().await?, &gvk)
            .await
            .map_err(|e| api_error(&format!("finding kind {kind} of {api_version}"), &e))?;
        let r = ObjectRef {
            api_version: api_version.clone(),
            kind: kind.clone(),
            plural: resource.plural.clone(),
            namespace: t.namespace.clone(),
            name: t.trial.clone(),
        };
        let dynamic: DynamicObject = serde_json::from_value(object).map_err(|e| {
            ExecError::Invalid(format!("the rendered trialSpec is not an object: {e}"))
        })?;
        let api = self.api(&r).await?;
        match api.create(&PostParams::default(), &dynamic).await {
            Ok(_) => {}
            // Created before kestrel could record it: the same trial (found by its label),
            // re-attached.
            Err(e) if is_code(&e, 409) => {
                let existing = api
                    .get(&t.trial)
                    .await
                    .map_err(|e| api_error(&format!("reading {kind} {}", t.trial), &e))?;
                if foreign(&existing, &t.trial) {
                    return Err(ExecError::Invalid(format!(
                        "a {kind} named {} that is not this trial's (no label {TRIAL_LABEL}={}) already exists in namespace {}; delete it or rename the experiment",
                        t.trial, t.trial, t.namespace
                    )));
                }
            }
            Err(e) => return Err(api_error(&format!("creating {kind} {}", t.trial), &e)),
        }
        self.attach(t, r.clone());
        Ok(RunRecord {
            executor: self.kind().into(),
            data: serde_json::to_value(&r).unwrap_or_default(),
        })
    }

    async fn adopt(&self, t: &RenderedTrial, record: &RunRecord) -> Result<(), ExecError> {
        if record.executor != self.kind() {
            return Err(ExecError::Record(format!(
                "trial {} was launched by the {} executor, not kubernetes",
                t.trial, record.executor
            )));
        }
        let r: ObjectRef = serde_json::from_value(record.data.clone())
            .map_err(|e| ExecError::Record(format!("trial {}: {e}", t.trial)))?;
        self.attach(t, r);
        Ok(())
    }

    async fn status(&self, trial: &str) -> Result<Option<RunPhase>, ExecError> {
        let Some((r, success, failure, stopped)) = self.lock().get(trial).map(|a| {
            (
                a.object.clone(),
                a.success.clone(),
                a.failure.clone(),
                a.stopped,
            )
        }) else {
            return Ok(None);
        };
        let Some(json) = self.current(&r).await? else {
            let detail = stopped
                .is_none()
                .then(|| format!("its {} {} was deleted", r.kind, r.name));
            return Ok(Some(ended(None, stopped, detail)));
        };
        if stopped.is_some() {
            // Being deleted (foreground): it ends when it is gone.
            return Ok(Some(RunPhase::Running));
        }
        if let Some(f) = finished(&json, &success, &failure) {
            let why = [f.reason, f.message]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            let detail = (!why.is_empty()).then_some(why);
            let code = if f.succeeded { Some(0) } else { None };
            let detail = if f.succeeded {
                None
            } else {
                detail.or(Some("the trial's object failed".into()))
            };
            return Ok(Some(ended(code, None, detail)));
        }
        if let Some(why) = self.stuck_pod(&r, trial).await {
            return Ok(Some(ended(None, None, Some(why))));
        }
        Ok(Some(RunPhase::Running))
    }

    async fn stop(&self, trial: &str, why: StopReason) -> Result<(), ExecError> {
        let Some((r, log)) = self.lock().get_mut(trial).map(|a| {
            // The log is saved once, by the first stop, while the pods still exist.
            let log = a
                .stopped
                .is_none()
                .then(|| self.log_job(trial, a))
                .flatten();
            a.stopped.get_or_insert(why);
            (a.object.clone(), log)
        }) else {
            return Ok(());
        };
        if let Some(log) = log {
            log.save().await;
        }
        let api = self.api(&r).await?;
        match api.delete(&r.name, &DeleteParams::foreground()).await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 404) => Ok(()),
            Err(e) => Err(api_error(&format!("deleting {} {}", r.kind, r.name), &e)),
        }
    }

    fn forget(&self, trial: &str) {
        let Some(a) = self.lock().remove(trial) else {
            return;
        };
        let Some(client) = self.client.get().cloned() else {
            return;
        };
        // A stopped trial's log was saved when it was stopped.
        let log = a
            .stopped
            .is_none()
            .then(|| self.log_job(trial, &a))
            .flatten();
        // Finished objects go unless the template retains them (Katib's retain); a
        // stopped one is already going.
        let keep = a.retain || a.stopped.is_some();
        let delete = (!keep).then(|| {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client, &a.object.namespace, &resource(&a.object));
            (api, a.object.name.clone())
        });
        if log.is_none() && delete.is_none() {
            return;
        }
        let mut background = self.background.lock().unwrap_or_else(|p| p.into_inner());
        // Tasks that ended are collected as new ones come, so the set stays small.
        while background.try_join_next().is_some() {}
        background.spawn(async move {
            if let Some(log) = log {
                log.save().await;
            }
            if let Some((api, name)) = delete
                && let Err(e) = api.delete(&name, &DeleteParams::foreground()).await
                && !is_code(&e, 404)
            {
                tracing::warn!(object = %name, error = %e, "cannot delete a finished trial's object");
            }
        });
    }

    async fn drain(&self) {
        let mut tasks =
            std::mem::take(&mut *self.background.lock().unwrap_or_else(|p| p.into_inner()));
        let all = async { while tasks.join_next().await.is_some() {} };
        // Each log read has its own deadline; this bounds the deletions too.
        if tokio::time::timeout(DRAIN_TIMEOUT, all).await.is_err() {
            tracing::warn!("finished trials' logs and objects were left unfinished at exit");
        }
    }
}

mod logs;
#[cfg(test)]
mod tests;
mod watches;
