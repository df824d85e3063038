//! The behaviour every [`Store`] must have. Backends call [`run_all`] from their tests.

// Test-only code (cfg(test) or feature "testing"): a failed check panics by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::Timestamp;
use kestrel_core::status::reason;
use kestrel_core::{
    AlgorithmCatalog, AlgorithmSpec, ExperimentRecord, ExperimentState, FieldError, MetricLog,
    NasConfig, SearchSpace, TrialRecord, TrialState, Value,
};

use crate::{Acquire, Lease, Store, StoreError};

struct AnyAlgorithm;
impl AlgorithmCatalog for AnyAlgorithm {
    fn check_algorithm(
        &self,
        _: &AlgorithmSpec,
        _: Option<&SearchSpace>,
        _: Option<u32>,
    ) -> Vec<FieldError> {
        vec![]
    }
    fn check_nas(&self, _: &AlgorithmSpec, _: &NasConfig) -> Vec<FieldError> {
        vec![]
    }
    fn check_early_stopping(&self, _: &AlgorithmSpec) -> Vec<FieldError> {
        vec![]
    }
}

const YAML: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: NAME}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: lr, reference: lr}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec: {template: {spec: {containers: [{name: main, command: [echo, "${trialParameters.lr}"]}]}}}
"#;

/// A valid experiment record named `name`.
pub fn experiment(name: &str) -> ExperimentRecord {
    let spec = kestrel_core::parse_experiment(&YAML.replace("NAME", name), &AnyAlgorithm)
        .expect("fixture is valid");
    ExperimentRecord::new(
        spec,
        YAML.into(),
        7,
        Some("/tmp".into()),
        Timestamp::from_second(1_700_000_000).expect("valid time"),
    )
}

fn trial(exp: &str, index: u64) -> TrialRecord {
    let a = [("lr".to_string(), Value::Double(0.01 * (index + 1) as f64))]
        .into_iter()
        .collect();
    TrialRecord::created(
        exp,
        format!("{exp}-{index}"),
        index,
        a,
        Timestamp::from_second(1_700_000_100).expect("valid"),
    )
}

fn log(sec: i64, name: &str, value: &str) -> MetricLog {
    MetricLog {
        time: Timestamp::from_second(1_700_000_000 + sec).expect("valid"),
        name: name.into(),
        value: value.into(),
    }
}

/// Runs every check against fresh stores made by `make`.
pub fn run_all<S: Store>(make: impl Fn() -> S) {
    experiments_round_trip(&make());
    trials_are_ordered_and_unique(&make());
    transitions_are_compare_and_set(&make());
    metrics_keep_order_and_filter(&make());
    delete_cascades(&make());
    leases_admit_one_holder(&make());
}

fn experiments_round_trip(s: &impl Store) {
    let b = experiment("b-exp");
    let a = experiment("a-exp");
    s.create_experiment(&b).unwrap();
    s.create_experiment(&a).unwrap();
    assert!(matches!(
        s.create_experiment(&a),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.experiment("a-exp").unwrap(), Some(a.clone()));
    assert_eq!(s.experiment("nope").unwrap(), None);
    assert_eq!(s.experiments().unwrap().len(), 2);
    let mut st = a.status.clone();
    st.state = ExperimentState::Succeeded;
    st.reason = reason::GOAL_REACHED.into();
    s.set_experiment_status("a-exp", &st).unwrap();
    assert_eq!(s.experiment("a-exp").unwrap().unwrap().status, st);
    assert!(matches!(
        s.set_experiment_status("nope", &st),
        Err(StoreError::NotFound(_))
    ));
    // A continued experiment: a new budget, running again.
    let mut more = s.experiment("a-exp").unwrap().unwrap();
    more.spec.max_trial_count = Some(99);
    more.status.state = ExperimentState::Running;
    s.replace_experiment(&more).unwrap();
    assert_eq!(s.experiment("a-exp").unwrap(), Some(more.clone()));
    more.spec.name = "nope".into();
    assert!(matches!(
        s.replace_experiment(&more),
        Err(StoreError::NotFound(_))
    ));
}

fn trials_are_ordered_and_unique(s: &impl Store) {
    s.create_experiment(&experiment("e")).unwrap();
    for i in [2, 0, 1] {
        s.insert_trial(&trial("e", i)).unwrap();
    }
    let idx: Vec<u64> = s.trials("e").unwrap().iter().map(|t| t.index).collect();
    assert_eq!(idx, [0, 1, 2]);
    assert!(matches!(
        s.insert_trial(&trial("e", 1)),
        Err(StoreError::Conflict(_))
    ));
    let mut same_index = trial("e", 1);
    same_index.name = "other-name".into();
    assert!(matches!(
        s.insert_trial(&same_index),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.insert_trial(&trial("ghost", 0)),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.counts("e").unwrap().created, 3);
}

fn transitions_are_compare_and_set(s: &impl Store) {
    s.create_experiment(&experiment("e")).unwrap();
    let mut t = trial("e", 0);
    s.insert_trial(&t).unwrap();
    t.state = TrialState::Running;
    s.update_trial(&t, TrialState::Created).unwrap();
    t.state = TrialState::Succeeded;
    t.objective = Some(0.5);
    s.update_trial(&t, TrialState::Running).unwrap();
    // A second writer that still believes the trial is running loses.
    let mut stale = t.clone();
    stale.state = TrialState::Killed;
    assert!(matches!(
        s.update_trial(&stale, TrialState::Running),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.trials("e").unwrap()[0], t);
    assert_eq!(s.trial(&t.name).unwrap(), Some(t.clone()));
    assert_eq!(s.trial("no-such-trial").unwrap(), None);
    assert!(matches!(
        s.update_trial(&trial("e", 9), TrialState::Created),
        Err(StoreError::NotFound(_))
    ));
}

fn metrics_keep_order_and_filter(s: &impl Store) {
    s.create_experiment(&experiment("e")).unwrap();
    s.insert_trial(&trial("e", 0)).unwrap();
    s.append_metrics("e-0", &[log(3, "loss", "0.9"), log(1, "acc", "0.1")])
        .unwrap();
    s.append_metrics("e-0", &[log(2, "loss", "0.5")]).unwrap();
    let all = s.metrics("e-0", None).unwrap();
    assert_eq!(
        all.iter().map(|l| l.value.as_str()).collect::<Vec<_>>(),
        ["0.9", "0.1", "0.5"]
    );
    assert_eq!(all[0].time, log(3, "loss", "").time);
    let loss = s.metrics("e-0", Some("loss")).unwrap();
    assert_eq!(loss.len(), 2);
    assert!(s.metrics("e-0", Some("none")).unwrap().is_empty());
    // Like Katib's DB manager, logs of trials the store never saw are kept.
    s.append_metrics("ghost", &[log(1, "x", "1")]).unwrap();
    assert_eq!(s.metrics("ghost", None).unwrap().len(), 1);
    assert_eq!(s.delete_metrics("ghost").unwrap(), 1);
    assert!(s.metrics("ghost", None).unwrap().is_empty());
    assert_eq!(s.delete_metrics("ghost").unwrap(), 0);
}

fn delete_cascades(s: &impl Store) {
    s.create_experiment(&experiment("e")).unwrap();
    s.insert_trial(&trial("e", 0)).unwrap();
    s.append_metrics("e-0", &[log(1, "loss", "1")]).unwrap();
    assert!(s.delete_experiment("e").unwrap());
    assert!(!s.delete_experiment("e").unwrap());
    assert!(s.trials("e").unwrap().is_empty());
    assert!(s.metrics("e-0", None).unwrap().is_empty());
    // The name can be reused.
    s.create_experiment(&experiment("e")).unwrap();
}

fn lease(holder: &str, sec: i64) -> Lease {
    let at = Timestamp::from_second(1_700_000_000 + sec).expect("valid");
    Lease {
        holder: holder.into(),
        command: "kestrel run".into(),
        pid: 42,
        host: "h".into(),
        boot_id: None,
        pid_start: None,
        acquired_at: at,
        heartbeat: at,
    }
}

fn leases_admit_one_holder(s: &impl Store) {
    s.create_experiment(&experiment("e")).unwrap();
    let never = |_: &Lease| false;
    let always = |_: &Lease| true;
    assert_eq!(s.lease("e").unwrap(), None);
    let a = lease("a", 0);
    assert_eq!(
        s.acquire_lease("e", &a, &never).unwrap(),
        Acquire::Acquired { took_over: None }
    );
    // Re-acquiring one's own lease succeeds; another live holder is refused and named.
    assert!(matches!(
        s.acquire_lease("e", &a, &never).unwrap(),
        Acquire::Acquired { took_over: None }
    ));
    let b = lease("b", 5);
    assert_eq!(
        s.acquire_lease("e", &b, &never).unwrap(),
        Acquire::Held(a.clone())
    );
    // Heartbeats are recorded for the holder only.
    let later = Timestamp::from_second(1_700_000_009).unwrap();
    assert!(s.renew_lease("e", "a", later).unwrap());
    assert!(!s.renew_lease("e", "b", later).unwrap());
    assert_eq!(s.lease("e").unwrap().unwrap().heartbeat, later);
    // The stale policy sees the current lease; a stale one is taken over.
    let seen = std::cell::RefCell::new(None);
    let stale = |l: &Lease| {
        *seen.borrow_mut() = Some(l.holder.clone());
        true
    };
    match s.acquire_lease("e", &b, &stale).unwrap() {
        Acquire::Acquired {
            took_over: Some(old),
        } => assert_eq!(old.holder, "a"),
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.borrow().as_deref(), Some("a"));
    // The old holder learns it lost the lease; its release does not free b's.
    assert!(!s.renew_lease("e", "a", later).unwrap());
    s.release_lease("e", "a").unwrap();
    assert_eq!(s.lease("e").unwrap().unwrap().holder, "b");
    s.release_lease("e", "b").unwrap();
    assert_eq!(s.lease("e").unwrap(), None);
    assert!(matches!(
        s.acquire_lease("e", &a, &always).unwrap(),
        Acquire::Acquired { took_over: None }
    ));
    // Deleting the experiment frees its lease.
    s.delete_experiment("e").unwrap();
    assert_eq!(s.lease("e").unwrap(), None);
}
