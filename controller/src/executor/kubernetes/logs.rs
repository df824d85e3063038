//! Trial logs from the cluster. When a trial's run ends, or kestrel stops it, the log of
//! the primary container of each of its pods is saved as the trial's `trial.log` in the
//! runs directory, where the local executor writes its trials' output: `kestrel logs`, the
//! dashboard and `run`'s summary read both the same way. Pods go with their object, so a
//! log is read before the object is deleted. While a trial runs, its log is the
//! cluster's (`kubectl logs -l katib.kubeflow.org/trial=NAME`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kestrel_kubernetes::inject::TRIAL_LABEL;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};

/// The most of one pod's log kept: its last lines, at most this many bytes of them.
pub const MAX_LOG_BYTES: i64 = 16 << 20;
/// The most lines of one pod's log kept.
pub const MAX_LOG_LINES: i64 = 100_000;
/// How long reading one trial's logs may take in all (its pods are read one by one; a
/// stop waits for them).
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// The container of `pod` that runs the trial: the primary container as the pod names it
/// (`step-NAME` in a Tekton task's pod, `main` in an Argo workflow's), or its only one.
pub fn log_container(pod: &Pod, primary: &str) -> Option<String> {
    let names: Vec<&str> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let tekton = format!("step-{primary}");
    [primary, tekton.as_str(), "main"]
        .into_iter()
        .find(|n| names.contains(n))
        .or_else(|| (names.len() == 1).then(|| names[0]))
        .map(str::to_string)
}

/// What to save of one trial: its pods, its primary container and where its log goes.
pub struct LogJob {
    pub client: kube::Client,
    pub namespace: String,
    pub trial: String,
    /// The trial's pods as the pods' watch has them; when it has none (not started yet,
    /// or the trial ended before it was needed), they are listed.
    pub watched: Vec<Arc<Pod>>,
    pub primary: String,
    pub path: PathBuf,
}

impl LogJob {
    /// Reads the pods' logs and writes them to the trial's log file (a previous attempt's
    /// log is kept beside it as `.previous`). A pod whose log cannot be read gets a line
    /// saying why; nothing here fails the trial.
    pub async fn save(self) {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        let mut pods: Vec<Pod> = self.watched.iter().map(|p| (**p).clone()).collect();
        if pods.is_empty() {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
            let selector = ListParams::default().labels(&format!("{TRIAL_LABEL}={}", self.trial));
            if let Ok(Ok(list)) = tokio::time::timeout_at(deadline, api.list(&selector)).await {
                pods = list.items;
            }
        }
        if pods.is_empty() {
            return;
        }
        pods.sort_by_key(|p| p.name_any());
        let several = pods.len() > 1;
        let mut out = String::new();
        for pod in &pods {
            let name = pod.name_any();
            let Some(container) = log_container(pod, &self.primary) else {
                continue;
            };
            if several {
                out.push_str(&format!("==> pod {name} <==\n"));
            }
            let api: Api<Pod> = Api::namespaced(
                self.client.clone(),
                &pod.namespace().unwrap_or_else(|| "default".into()),
            );
            let params = LogParams {
                container: Some(container.clone()),
                tail_lines: Some(MAX_LOG_LINES),
                limit_bytes: Some(MAX_LOG_BYTES),
                ..LogParams::default()
            };
            let why = match tokio::time::timeout_at(deadline, api.logs(&name, &params)).await {
                Ok(Ok(text)) => {
                    out.push_str(&text);
                    if !text.is_empty() && !text.ends_with('\n') {
                        out.push('\n');
                    }
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!(
                    "the trial's logs took over {} s to read",
                    READ_TIMEOUT.as_secs()
                ),
            };
            tracing::warn!(pod = %name, container, error = %why, "cannot read a trial's log");
            out.push_str(&format!(
                "[kestrel] cannot read the log of container {container} of pod {name}: {why}\n"
            ));
        }
        if let Err(e) = write(&self.path, out.as_bytes()).await {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot save a trial's log");
        }
    }
}

async fn write(path: &std::path::Path, text: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        let mut previous = path.as_os_str().to_owned();
        previous.push(".previous");
        tokio::fs::rename(path, previous).await?;
    }
    tokio::fs::write(path, text).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[&str]) -> Pod {
        let containers: Vec<_> = containers
            .iter()
            .map(|n| serde_json::json!({"name": n, "image": "x"}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": containers}
        }))
        .unwrap()
    }

    #[test]
    fn the_primary_container_is_found_as_each_kind_names_it() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["training", "sidecar"], Some("training")),
            (&["step-training", "step-prepare"], Some("step-training")),
            (&["main", "wait"], Some("main")),
            (&["tensorflow"], Some("tensorflow")),
            (&["a", "b"], None),
            (&[], None),
        ];
        for (containers, want) in cases {
            assert_eq!(
                log_container(&pod(containers), "training").as_deref(),
                *want,
                "{containers:?}"
            );
        }
    }
}
