//! Tests of the local process executor against real processes.

use super::*;
use kestrel_core::MetricLog;
use kestrel_core::outcome::RunEnd;
use kestrel_metrics_collector::SinkError;

#[derive(Default)]
struct VecSink(Mutex<Vec<(String, MetricLog)>>);

#[async_trait::async_trait]
impl MetricsSink for VecSink {
    async fn report(&self, trial: &str, logs: &[MetricLog]) -> Result<(), SinkError> {
        self.0
            .lock()
            .unwrap()
            .extend(logs.iter().map(|l| (trial.to_string(), l.clone())));
        Ok(())
    }
    async fn count(&self, trial: &str) -> Result<usize, SinkError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == trial)
            .count())
    }
}

impl VecSink {
    fn values(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| format!("{}={}", l.name, l.value))
            .collect()
    }
}

const YAML: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: exp}
spec:
  objective: {type: minimize, objectiveMetricName: loss, additionalMetricNames: [acc]}
  algorithm: {algorithmName: random}
  COLLECTOR
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec: {template: {spec: {containers: [{name: main, command: [sh, -c, SCRIPT], env: [{name: GREETING, value: hi}, {name: X, value: "${trialParameters.x}"}]}]}}}
"#;

fn trial(dir: &Path, script: &str, collector: &str) -> RenderedTrial {
    let yaml = YAML
        .replace("COLLECTOR", collector)
        .replace("SCRIPT", &serde_json::to_string(script).unwrap());
    let exp = kestrel_core::parse_experiment(&yaml, &kestrel_algorithms::Catalog).unwrap();
    let spec = kestrel_core::template::render(
        &exp.trial_template,
        &kestrel_core::template::TrialIdentity {
            name: "exp-t1",
            namespace: "default",
        },
        &[("x".to_string(), "0.5".to_string())].into_iter().collect(),
    )
    .unwrap();
    RenderedTrial {
        experiment: Arc::new(exp),
        trial: "exp-t1".into(),
        namespace: "default".into(),
        spec,
        base_dir: dir.to_path_buf(),
        attempt: 0,
        secret: Some("s3cret".into()),
    }
}

fn executor(dir: &Path, sink: Arc<VecSink>, grace: Duration) -> ProcessExecutor {
    ProcessExecutor::new(ExecutorConfig {
        sink,
        grace,
        runs_dir: dir.join("runs"),
        kubernetes: Default::default(),
        db_manager: None,
    })
}

async fn wait(ex: &ProcessExecutor, trial: &str) -> RunPhase {
    for _ in 0..200 {
        match ex.status(trial).await.unwrap() {
            Some(RunPhase::Running) => {}
            Some(p) => return p,
            None => panic!("not attached"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("trial did not exit");
}

fn code(p: &RunPhase) -> Option<i32> {
    match p {
        RunPhase::Exited(RunEnd { code, .. }) => *code,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn collects_every_line_including_an_unterminated_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(VecSink::default());
    let ex = executor(dir.path(), sink.clone(), Duration::from_secs(2));
    let script = "echo \"loss=0.5 $GREETING $KATIB_TRIAL_NAME $KESTREL_TRIAL_TOKEN\"; echo acc=0.1 >&2; printf loss=0.25; exit 3";
    ex.launch(&trial(dir.path(), script, "")).await.unwrap();
    assert_eq!(code(&wait(&ex, "exp-t1").await), Some(3));
    // stdout and stderr share one file, in the order written.
    assert_eq!(sink.values(), ["loss=0.5", "acc=0.1", "loss=0.25"]);
    let log = std::fs::read_to_string(dir.path().join("runs/exp/exp-t1").join(LOG_FILE)).unwrap();
    assert!(log.contains("loss=0.5 hi exp-t1 s3cret"), "{log}");
}

#[tokio::test]
async fn tails_a_metrics_file_and_reads_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(VecSink::default());
    let ex = executor(dir.path(), sink.clone(), Duration::from_secs(2));
    let collector = "metricsCollectorSpec: {collector: {kind: File}, source: {fileSystemPath: {path: metrics.log, kind: File}}}";
    // Old content of the file is not this run's.
    std::fs::create_dir_all(dir.path().join("runs/exp/exp-t1")).unwrap();
    std::fs::write(dir.path().join("runs/exp/exp-t1/metrics.log"), "loss=7\n").unwrap();
    let script =
        "echo loss=9 ; echo loss=1 >> metrics.log; sleep 0.3; printf loss=2 >> metrics.log";
    ex.launch(&trial(dir.path(), script, collector))
        .await
        .unwrap();
    assert_eq!(code(&wait(&ex, "exp-t1").await), Some(0));
    // stdout is not parsed when the File collector is used.
    assert_eq!(sink.values(), ["loss=1", "loss=2"]);
}

#[tokio::test]
async fn stop_kills_the_whole_process_group_and_a_graceful_exit_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(
        dir.path(),
        Arc::new(VecSink::default()),
        Duration::from_secs(2),
    );
    // The grandchild writes its pid so the test can check it is gone; the program itself
    // exits 5 on SIGTERM.
    let script = "sleep 60 & echo $! > ../../../child.pid; trap 'exit 5' TERM; wait; wait";
    ex.launch(&trial(dir.path(), script, "")).await.unwrap();
    let pid_file = dir.path().join("child.pid");
    for _ in 0..100 {
        if std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n')) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let grandchild: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let started = std::time::Instant::now();
    ex.stop("exp-t1", StopReason::Interrupted).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        ex.status("exp-t1").await.unwrap(),
        Some(RunPhase::Exited(RunEnd {
            code: Some(5),
            stopped: Some(StopReason::Interrupted),
            log: Some(
                dir.path()
                    .join("runs/exp/exp-t1/trial.log")
                    .display()
                    .to_string()
            ),
            detail: None,
        }))
    );
    let mut gone = false;
    for _ in 0..50 {
        if procinfo::start_ticks(grandchild as u32).is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "grandchild {grandchild} survived");
}

#[tokio::test]
async fn a_trial_outlives_its_executor_and_is_adopted_without_repeating_reports() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(VecSink::default());
    let script = "echo loss=3; sleep 0.6; echo loss=2; sleep 0.3; echo loss=1; exit 4";
    let t = trial(dir.path(), script, "");
    let first = executor(dir.path(), sink.clone(), Duration::from_secs(1));
    let rec = first.launch(&t).await.unwrap();
    for _ in 0..100 {
        if !sink.values().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sink.values(), ["loss=3"]);
    drop(first); // kestrel "crashes": nothing stops the trial
    let second = executor(dir.path(), sink.clone(), Duration::from_secs(1));
    assert_eq!(second.status("exp-t1").await.unwrap(), None);
    second.adopt(&t, &rec).await.unwrap();
    assert_eq!(
        second.status("exp-t1").await.unwrap(),
        Some(RunPhase::Running)
    );
    assert_eq!(code(&wait(&second, "exp-t1").await), Some(4));
    assert_eq!(sink.values(), ["loss=3", "loss=2", "loss=1"]);
    // Adopting a trial that ended meanwhile reads its status from the trial directory.
    let third = executor(dir.path(), sink.clone(), Duration::from_secs(1));
    third.adopt(&t, &rec).await.unwrap();
    assert_eq!(code(&wait(&third, "exp-t1").await), Some(4));
    assert_eq!(sink.values().len(), 3);
    // A record from another boot is lost; one from another executor is refused.
    let mut other_boot = rec.clone();
    other_boot.data["boot"] = serde_json::json!("another-boot");
    third.forget("exp-t1");
    third.adopt(&t, &other_boot).await.unwrap();
    assert!(matches!(
        third.status("exp-t1").await.unwrap(),
        Some(RunPhase::Lost(_))
    ));
    let mut foreign = rec.clone();
    foreign.executor = "kubernetes".into();
    assert!(matches!(
        third.adopt(&t, &foreign).await,
        Err(ExecError::Record(_))
    ));
}

#[tokio::test]
async fn relaunching_a_started_attempt_attaches_instead_of_starting_another() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(VecSink::default());
    let script = "echo started >> ../../../starts; echo loss=1; sleep 0.3; exit 7";
    let mut t = trial(dir.path(), script, "");
    let starts = || std::fs::read_to_string(dir.path().join("starts")).unwrap_or_default();
    // kestrel dies right after starting the trial, before the store recorded it.
    let first = executor(dir.path(), sink.clone(), Duration::from_secs(1));
    let a = first.launch(&t).await.unwrap();
    drop(first);
    // Launched again while it runs: found again.
    let second = executor(dir.path(), sink.clone(), Duration::from_secs(1));
    assert_eq!(second.launch(&t).await.unwrap(), a);
    assert_eq!(code(&wait(&second, "exp-t1").await), Some(7));
    drop(second);
    // Launched again after it ended: found again, ended, with its exit status.
    let third = executor(dir.path(), sink.clone(), Duration::from_secs(1));
    assert_eq!(third.launch(&t).await.unwrap(), a);
    assert_eq!(code(&wait(&third, "exp-t1").await), Some(7));
    assert_eq!(starts().lines().count(), 1, "started twice");
    assert_eq!(sink.values(), ["loss=1"]);
    // A re-run (the next attempt) starts anew.
    t.attempt = 1;
    third.forget("exp-t1");
    assert_ne!(third.launch(&t).await.unwrap(), a);
    assert_eq!(code(&wait(&third, "exp-t1").await), Some(7));
    assert_eq!(starts().lines().count(), 2);
}

#[tokio::test]
async fn missing_program_or_directory_is_a_launch_error() {
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(
        dir.path(),
        Arc::new(VecSink::default()),
        Duration::from_secs(1),
    );
    let mut t = trial(dir.path(), "true", "");
    t.spec["spec"]["template"]["spec"]["containers"][0]["command"] =
        serde_json::json!(["/definitely/not/a/program"]);
    assert!(matches!(ex.launch(&t).await, Err(ExecError::Spawn { .. })));
    t.spec["spec"]["template"]["spec"]["containers"][0]["command"] =
        serde_json::json!(["no-such-program-kestrel"]);
    assert!(matches!(ex.launch(&t).await, Err(ExecError::Spawn { .. })));
    let mut t = trial(dir.path(), "true", "");
    t.spec["spec"]["template"]["spec"]["containers"][0]["workingDir"] =
        serde_json::json!("missing");
    assert!(matches!(
        ex.launch(&t).await,
        Err(ExecError::Prepare { .. })
    ));
}

#[tokio::test]
async fn a_launch_cut_short_before_the_pid_was_known_is_found_by_the_wrappers_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(VecSink::default());
    let t = trial(
        dir.path(),
        "echo started >> ../../../starts; echo loss=2; exit 4",
        "",
    );
    let ex = executor(dir.path(), sink.clone(), Duration::from_secs(1));
    ex.launch(&t).await.unwrap();
    assert_eq!(code(&wait(&ex, "exp-t1").await), Some(4));
    drop(ex);
    // Make it look as if kestrel died between writing its intent and learning the pid:
    // the record has no pid, only the wrapper's own note of it.
    let run_file = dir.path().join("runs/exp/exp-t1/run.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&run_file).unwrap()).unwrap();
    rec["pid"] = serde_json::json!(0);
    rec["start"] = serde_json::json!(0);
    std::fs::write(&run_file, serde_json::to_vec(&rec).unwrap()).unwrap();
    let again = executor(dir.path(), sink.clone(), Duration::from_secs(1));
    let found = again.launch(&t).await.unwrap();
    assert_ne!(found.data["pid"], serde_json::json!(0));
    assert_eq!(code(&wait(&again, "exp-t1").await), Some(4));
    let starts = std::fs::read_to_string(dir.path().join("starts")).unwrap();
    assert_eq!(starts.lines().count(), 1, "started twice");
    assert_eq!(sink.values(), ["loss=2"]);
}
