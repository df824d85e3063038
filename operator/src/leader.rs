//! Leader election between operator replicas: one `coordination.k8s.io` Lease
//! (`kestrel-operator` in the operator's namespace), held with kube-lease-manager. A
//! replica waits to lead before it opens anything; a leader that loses the Lease shuts
//! down (its pod restarts and waits again), and one that shuts down releases it so the
//! next takes over at once.

use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

/// The Lease's name.
pub const LEASE: &str = "kestrel-operator";

/// How leadership is held.
#[derive(Debug, Clone)]
pub struct Election {
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity (its pod name, and a random part).
    pub identity: String,
    /// Seconds a Lease stays valid without renewal.
    pub duration: u64,
}

/// Why leadership could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("leader election: {0}")]
pub struct ElectionError(String);

/// Held leadership: released by [`Leadership::release`] (or, less promptly, when dropped).
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<
        Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
    >,
}

impl Leadership {
    /// Completes when this replica is no longer the leader.
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|l| !*l).await;
    }

    /// Gives the Lease up, so that another replica leads at once.
    pub async fn release(self) {
        drop(self.leading);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!(lease = LEASE, "released"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "cannot release the Lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the lease manager failed"),
            Err(_) => tracing::warn!("releasing the Lease timed out"),
        }
    }
}

/// Waits until this replica leads.
pub async fn lead(client: kube::Client, e: &Election) -> Result<Leadership, ElectionError> {
    let grace = (e.duration / 3).max(1);
    let manager = LeaseManagerBuilder::new(client, LEASE)
        .with_namespace(&e.namespace)
        .with_identity(&e.identity)
        .with_duration(e.duration.max(grace + 1))
        .with_grace(grace)
        .build()
        .await
        .map_err(|x| ElectionError(x.to_string()))?;
    let (mut leading, task) = manager.watch().await;
    tracing::info!(lease = LEASE, namespace = %e.namespace, identity = %e.identity, "waiting to lead");
    leading
        .wait_for(|l| *l)
        .await
        .map_err(|_| ElectionError("the lease manager stopped".into()))?;
    tracing::info!(identity = %e.identity, "leading");
    Ok(Leadership { leading, task })
}

/// The default election: the Lease in `POD_NAMESPACE` (else `namespace`), for
/// `duration`, by this host with a random suffix.
pub fn election(namespace: &str, duration: Duration) -> Election {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "kestrel".into());
    Election {
        namespace: std::env::var("POD_NAMESPACE").unwrap_or_else(|_| namespace.to_string()),
        identity: format!("{host}-{:08x}", rand::random::<u32>()),
        duration: duration.as_secs().max(2),
    }
}
