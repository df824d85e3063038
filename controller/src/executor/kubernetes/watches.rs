//! The cluster as the Kubernetes executor sees it: kube-runtime reflectors, one per trial
//! resource and namespace (objects labelled `katib.kubeflow.org/trial`) and one per
//! namespace for the trials' pods, each started when a trial first needs it and kept
//! while kestrel runs. `status` reads these caches, so a reconcile pass costs the API
//! server nothing however many trials run; only an object the cache does not hold (just
//! created, or gone) is read with a GET.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kestrel_kubernetes::inject::TRIAL_LABEL;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

/// A reflector's cache and the task feeding it.
struct Reflected<K: kube::Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    task: tokio::task::JoinHandle<()>,
}

impl<K: kube::Resource + 'static> Drop for Reflected<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `api`'s trial-labelled objects into a cache.
fn reflect<K>(api: Api<K>, dyntype: K::DynamicType, what: String) -> Reflected<K>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    let writer = Writer::new(dyntype);
    let store = writer.as_reader();
    let config = watcher::Config::default().labels(TRIAL_LABEL);
    let task = tokio::spawn(async move {
        let events = reflector::reflector(writer, watcher(api, config).default_backoff());
        let mut events = std::pin::pin!(events);
        while let Some(e) = events.next().await {
            if let Err(e) = e {
                tracing::warn!(watch = %what, error = %e, "watch failed; retrying");
            }
        }
    });
    Reflected { store, task }
}

/// (apiVersion, plural, namespace)
type Collection = (String, String, String);

/// The executor's reflectors.
#[derive(Default)]
pub(super) struct Watches {
    objects: Mutex<HashMap<Collection, Reflected<DynamicObject>>>,
    pods: Mutex<HashMap<String, Reflected<Pod>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Watches {
    /// The cached object `name` of `resource` in `namespace`, watching the collection from
    /// now on if it was not yet.
    pub fn object(
        &self,
        client: &kube::Client,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let key = (
            resource.api_version.clone(),
            resource.plural.clone(),
            namespace.to_string(),
        );
        let mut all = lock(&self.objects);
        let r = all.entry(key).or_insert_with(|| {
            let api = Api::namespaced_with(client.clone(), namespace, resource);
            reflect(
                api,
                resource.clone(),
                format!("{} in {namespace}", resource.plural),
            )
        });
        r.store
            .get(&reflector::ObjectRef::new_with(name, resource.clone()).within(namespace))
    }

    /// The cached pods of `trial` in `namespace`.
    pub fn pods(&self, client: &kube::Client, namespace: &str, trial: &str) -> Vec<Arc<Pod>> {
        let mut all = lock(&self.pods);
        let r = all.entry(namespace.to_string()).or_insert_with(|| {
            let api = Api::namespaced(client.clone(), namespace);
            reflect(api, (), format!("pods in {namespace}"))
        });
        r.store.state_filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(TRIAL_LABEL))
                .is_some_and(|t| t == trial)
        })
    }
}
