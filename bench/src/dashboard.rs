//! `kestrel-bench dashboard`: how long the dashboard's experiment page takes with a large
//! experiment. Writes an experiment of `--trials` finished trials (three reports each) into
//! a fresh store, serves it with the real `kestrel dashboard`, and times headless Chromium
//! from navigation until the history plot has drawn every trial, then each tab until its
//! plot or table is drawn.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use headless_chrome::{Browser, LaunchOptions, Tab};
use kestrel_core::{
    ExperimentRecord, MetricLog, MetricObservation, Timestamp, TrialRecord, TrialState, Value,
};
use kestrel_store::Store;
use kestrel_store::sqlite::SqliteStore;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const YAML: &str = r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: big
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  maxTrialCount: 100000
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}
    - {name: "y", parameterType: double, feasibleSpace: {min: "0", max: "1"}}
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.0001", max: "1", distribution: logUniform}}
    - {name: opt, parameterType: categorical, feasibleSpace: {list: [sgd, adam, rmsprop]}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {name: x, reference: x}
      - {name: "y", reference: "y"}
      - {name: lr, reference: lr}
      - {name: opt, reference: opt}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                command: [sh, -c, "echo ${trialParameters.x} ${trialParameters.y} ${trialParameters.lr} ${trialParameters.opt}"]
"#;

/// Writes the experiment `big` with `n` finished trials into the store at `dir`.
fn fill(dir: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let store = SqliteStore::open(&dir.join("kestrel.db"))?;
    let spec = kestrel_core::parse_experiment(YAML, &kestrel_algorithms::Catalog)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let t0 = Timestamp::from_second(1_760_000_000)?;
    let mut rec = ExperimentRecord::new(spec, YAML.into(), 1, None, t0);
    rec.status.state = kestrel_core::ExperimentState::Succeeded;
    store.create_experiment(&rec)?;
    let mut rng = StdRng::seed_from_u64(1);
    let opts = ["sgd", "adam", "rmsprop"];
    for i in 0..n {
        let (x, y): (f64, f64) = (rng.random(), rng.random());
        let lr = 10f64.powf(-4.0 * rng.random::<f64>());
        let opt = opts[rng.random_range(0..3)];
        let loss = (x - 0.3).powi(2) + (y - 0.6).powi(2) + 0.1 * (lr.log10() + 2.0).abs();
        let created = t0.checked_add(jiff::SignedDuration::from_millis(i as i64 * 100))?;
        let a = [
            ("x".to_string(), Value::Double(x)),
            ("y".to_string(), Value::Double(y)),
            ("lr".to_string(), Value::Double(lr)),
            ("opt".to_string(), Value::Str(opt.into())),
        ]
        .into_iter()
        .collect();
        let mut t = TrialRecord::created("big", format!("big-{i:06}"), i as u64, a, created);
        store.insert_trial(&t)?;
        let logs: Vec<MetricLog> = (1..=3)
            .map(|k| MetricLog {
                time: created,
                name: "loss".into(),
                value: (loss + 1.0 / k as f64).to_string(),
            })
            .collect();
        store.append_metrics(&t.name, &logs)?;
        t.state = TrialState::Succeeded;
        t.reason = "TrialSucceeded".into();
        t.started_at = Some(created);
        t.completed_at = Some(created);
        t.objective = Some(loss + 1.0 / 3.0);
        t.observation = vec![MetricObservation {
            name: "loss".into(),
            min: Some(loss + 1.0 / 3.0),
            max: Some(loss + 1.0),
            latest: (loss + 1.0 / 3.0).to_string(),
        }];
        store.update_trial(&t, TrialState::Created)?;
    }
    Ok(())
}

fn eval(tab: &Tab, js: &str) -> anyhow::Result<serde_json::Value> {
    Ok(tab
        .evaluate(js, false)?
        .value
        .unwrap_or(serde_json::Value::Null))
}

/// Seconds from `start` until `js` is true (60 s at most).
fn until(tab: &Tab, js: &str, start: Instant) -> anyhow::Result<f64> {
    loop {
        if eval(tab, js)? == serde_json::Value::Bool(true) {
            return Ok(start.elapsed().as_secs_f64());
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "never: {js}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the benchmark and prints one JSON line.
pub fn run(
    n: usize,
    kestrel: PathBuf,
    chromium: PathBuf,
    screenshot: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let filled = Instant::now();
    fill(dir.path(), n)?;
    let fill_s = filled.elapsed().as_secs_f64();
    let mut server = Command::new(&kestrel)
        .args(["dashboard", "--listen", "127.0.0.1:0", "--store"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = server.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| anyhow::anyhow!("no URL in {line:?}"))?
        .trim_end_matches('/')
        .to_string();
    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(chromium))
            .sandbox(false)
            .window_size(Some((1440, 900)))
            .build()?,
    )?;
    let tab = browser.new_tab()?;
    tab.navigate_to(&format!("{url}/"))?;
    tab.wait_until_navigated()?;
    let drawn = |sel: &str| {
        format!(
            "Number((document.querySelector('{sel}') || {{dataset: {{}}}}).dataset.points) === {n}"
        )
    };
    let start = Instant::now();
    tab.navigate_to(&format!("{url}/#/e/big"))?;
    let history = until(&tab, &drawn("#history"), start)?;
    if let Some(path) = &screenshot {
        let jpeg = tab.capture_screenshot(
            headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption::Jpeg,
            Some(55),
            None,
            true,
        )?;
        std::fs::write(path, jpeg)?;
    }
    let mut tabs = serde_json::Map::new();
    for (name, check) in [
        (
            "Trials",
            "document.querySelectorAll('#trials tbody tr').length === 100".to_string(),
        ),
        ("Parallel coordinates", drawn("#parallel")),
        (
            "Slices",
            format!(
                "[...document.querySelectorAll('canvas.slice')].every(c => Number(c.dataset.points) === {n})"
            ),
        ),
        ("Contour", drawn("#contour")),
        (
            "Importance",
            "Number((document.querySelector('#importance') || {dataset: {}}).dataset.points) === 4"
                .to_string(),
        ),
        (
            "Intermediate values",
            format!(
                "Number((document.querySelector('#intermediate') || {{dataset: {{}}}}).dataset.points) === {}",
                3 * n
            ),
        ),
        ("History", drawn("#history")),
    ] {
        let t = Instant::now();
        eval(
            &tab,
            &format!(
                "[...document.querySelectorAll('.tabs button')].find(b => b.textContent === '{name}').click()"
            ),
        )?;
        tabs.insert(name.to_string(), serde_json::json!(until(&tab, &check, t)?));
    }
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "{}",
        serde_json::json!({
            "bench": "dashboard",
            "trials": n,
            "fill_store_s": fill_s,
            "experiment_page_s": history,
            "tab_s": tabs,
        })
    );
    Ok(())
}
