//! Tests of the local process executor against real processes.

use super::*;
use kestrel_core::MetricLog;
use kestrel_core::experiment::{CollectorKind, MetricsCollector};
use kestrel_metrics_collector::SinkError;

#[derive(Default)]
struct VecSink(Mutex<Vec<(String, MetricLog)>>);

impl MetricsSink for VecSink {
    fn report(&self, trial: &str, logs: &[MetricLog]) -> Result<(), SinkError> {
        self.0
            .lock()
            .unwrap()
            .extend(logs.iter().map(|l| (trial.to_string(), l.clone())));
        Ok(())
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

fn run(dir: &Path, script: &str, source: MetricsSource) -> TrialRun {
    let spec = MetricsCollector {
        kind: CollectorKind::StdOut,
        filters: vec![],
    };
    TrialRun {
        experiment: "exp".into(),
        trial: "exp-t1".into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("GREETING".into(), "hi".into())],
        working_dir: dir.to_path_buf(),
        experiment_dir: dir.to_path_buf(),
        trial_dir: dir.join("exp-t1"),
        collector: Collector::new(&spec, vec!["loss".into(), "acc".into()]).unwrap(),
        source,
    }
}

async fn wait(ex: &ProcessExecutor, h: &ProcessHandle) -> RunPhase {
    for _ in 0..200 {
        if let p @ RunPhase::Exited { .. } = ex.status(h) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("trial did not exit");
}

#[tokio::test]
async fn collects_every_line_including_an_unterminated_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(VecSink::default());
    let ex = ProcessExecutor::new(sink.clone(), Duration::from_secs(2));
    let script =
        "echo \"loss=0.5 $GREETING $KATIB_TRIAL_NAME\"; echo acc=0.1 >&2; printf loss=0.25; exit 3";
    let h = ex
        .launch(run(dir.path(), script, MetricsSource::Output))
        .await
        .unwrap();
    assert_eq!(
        wait(&ex, &h).await,
        RunPhase::Exited {
            code: Some(3),
            stopped: None
        }
    );
    let mut v = sink.values();
    v.sort();
    assert_eq!(v, ["acc=0.1", "loss=0.25", "loss=0.5"]);
    let log = std::fs::read_to_string(dir.path().join("exp-t1").join(LOG_FILE)).unwrap();
    assert!(log.contains("loss=0.5 hi exp-t1"), "{log}");
}

#[tokio::test]
async fn tails_a_metrics_file_and_reads_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(VecSink::default());
    let ex = ProcessExecutor::new(sink.clone(), Duration::from_secs(2));
    let file = dir.path().join("metrics.log");
    let script =
        "echo loss=9 ; echo loss=1 >> metrics.log; sleep 0.5; printf loss=2 >> metrics.log";
    let h = ex
        .launch(run(dir.path(), script, MetricsSource::File(file)))
        .await
        .unwrap();
    assert_eq!(
        wait(&ex, &h).await,
        RunPhase::Exited {
            code: Some(0),
            stopped: None
        }
    );
    // stdout is not parsed when the File collector is used.
    assert_eq!(sink.values(), ["loss=1", "loss=2"]);
}

#[tokio::test]
async fn stop_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let ex = ProcessExecutor::new(Arc::new(VecSink::default()), Duration::from_secs(2));
    // The grandchild writes its pid so the test can check it is gone.
    let script = "sleep 60 & echo $! > child.pid; wait";
    let h = ex
        .launch(run(dir.path(), script, MetricsSource::Output))
        .await
        .unwrap();
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
    ex.stop(&h, StopReason::Interrupted).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        ex.status(&h),
        RunPhase::Exited {
            stopped: Some(StopReason::Interrupted),
            ..
        }
    ));
    // Signal 0 probes for existence; the grandchild may linger as a zombie for a moment.
    let mut gone = false;
    for _ in 0..50 {
        let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "grandchild {grandchild} survived");
}

#[tokio::test]
async fn missing_program_or_directory_is_a_launch_error() {
    let dir = tempfile::tempdir().unwrap();
    let ex = ProcessExecutor::new(Arc::new(VecSink::default()), Duration::from_secs(1));
    let mut r = run(dir.path(), "true", MetricsSource::Output);
    r.argv = vec!["/definitely/not/a/program".into()];
    assert!(matches!(ex.launch(r).await, Err(ExecError::Spawn { .. })));
    let mut r = run(dir.path(), "true", MetricsSource::Output);
    r.working_dir = dir.path().join("missing");
    assert!(matches!(ex.launch(r).await, Err(ExecError::Prepare { .. })));
}
