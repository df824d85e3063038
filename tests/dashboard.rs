//! The web dashboard in a real browser: headless Chromium (Debian's `chromium`) driven over
//! the DevTools protocol loads every page of a finished and of a running experiment served
//! by `kestrel dashboard`, checks that each plot drew the right number of points and that
//! live updates arrive, and saves screenshots under `target/dashboard-screenshots/`.
//! Skipped when no Chromium is installed, except in CI (`KESTREL_CI`).

// Test harness: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

use crate::util::*;

/// A two-parameter experiment (x, y and a choice) whose trials report `loss` `reports`
/// times, sleeping `pause` seconds between reports.
fn experiment(name: &str, trials: usize, parallel: usize, pause: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  maxTrialCount: {trials}
  parallelTrialCount: {parallel}
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
    - {{name: lr, parameterType: double, feasibleSpace: {{min: "0.001", max: "1", distribution: logUniform}}}}
    - {{name: opt, parameterType: categorical, feasibleSpace: {{list: [sgd, adam]}}}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {{name: x, reference: x}}
      - {{name: lr, reference: lr}}
      - {{name: opt, reference: opt}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                command:
                  - sh
                  - -c
                  - |
                    echo "training with opt=${{trialParameters.opt}} lr=${{trialParameters.lr}}"
                    for i in 1 2 3; do
                      awk "BEGIN {{ print \"loss=\" (${{trialParameters.x}} - 0.3)^2 + 1/$i }}"
                      sleep {pause}
                    done
"#
    )
}

fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|c| which(c));
    if found.is_none() {
        assert!(
            std::env::var_os("KESTREL_CI").is_none(),
            "Chromium is required in CI"
        );
        eprintln!("skipped: no chromium installed");
    }
    found
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

/// `kestrel dashboard` on a free port; its URL (without the trailing `/`).
fn dashboard(k: &Kestrel) -> (Served, String) {
    let served = Served::spawn(k, &["dashboard", "--listen", "127.0.0.1:0"], &[]);
    let url = served.url.trim_end_matches('/').to_string();
    (served, url)
}

/// Headless Chromium at 1280x900.
fn browser(chrome: PathBuf) -> Browser {
    Browser::new(
        LaunchOptions::default_builder()
            .path(Some(chrome))
            .sandbox(false)
            .window_size(Some((1280, 900)))
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn eval(tab: &Tab, js: &str) -> Value {
    tab.evaluate(js, false)
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .value
        .unwrap_or(Value::Null)
}

/// Waits until `js` evaluates to `want` (20 s at most).
fn wait_eq(tab: &Tab, js: &str, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = eval(tab, js);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{js}: {got} (wanted {want})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `data-points` of the plot `selector`, as a number once drawn.
fn points(selector: &str) -> String {
    format!("Number((document.querySelector('{selector}') || {{dataset: {{}}}}).dataset.points)")
}

fn click_tab(tab: &Tab, name: &str) {
    eval(
        tab,
        &format!(
            "[...document.querySelectorAll('.tabs button')].find(b => b.textContent === '{name}').click()"
        ),
    );
}

fn shot(tab: &Tab, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("dashboard-screenshots"))
        .unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

#[test]
fn the_dashboard_shows_a_finished_and_a_running_experiment_in_a_browser() {
    let Some(chrome) = chromium() else { return };
    let k = Kestrel::new();
    let done = k.write("done.yaml", &experiment("finished", 12, 4, "0"));
    assert_code(&k.run(&["run", done.to_str().unwrap()]), 0);
    let (_server, url) = dashboard(&k);
    let browser = browser(chrome);
    let tab = browser.new_tab().unwrap();

    // The list: one experiment, Succeeded.
    tab.navigate_to(&format!("{url}/")).unwrap();
    wait_eq(
        &tab,
        "document.querySelectorAll('#experiments tbody tr').length",
        1.into(),
    );
    assert!(
        eval(&tab, "document.body.innerText")
            .as_str()
            .unwrap()
            .contains("Succeeded")
    );
    shot(&tab, "list");

    // The experiment: every plot holds its 12 trials (36 reports for the curves).
    tab.navigate_to(&format!("{url}/#/e/finished")).unwrap();
    wait_eq(&tab, &points("#history"), 12.into());
    shot(&tab, "history");
    click_tab(&tab, "Parallel coordinates");
    wait_eq(&tab, &points("#parallel"), 12.into());
    click_tab(&tab, "Importance");
    wait_eq(&tab, &points("#importance"), 3.into());
    shot(&tab, "importance");
    click_tab(&tab, "Slices");
    wait_eq(
        &tab,
        "[...document.querySelectorAll('canvas.slice')].map(c => Number(c.dataset.points)).join(',')",
        "12,12,12".into(),
    );
    click_tab(&tab, "Contour");
    wait_eq(&tab, &points("#contour"), 12.into());
    click_tab(&tab, "Intermediate values");
    wait_eq(&tab, &points("#intermediate"), 36.into());
    shot(&tab, "intermediate");
    click_tab(&tab, "Trials");
    wait_eq(
        &tab,
        "document.querySelectorAll('#trials tbody tr').length",
        12.into(),
    );
    // Sorted by the objective, best first: the first row is the best trial.
    let doc = k.get("finished");
    let best = doc["bestTrial"].as_str().unwrap().to_string();
    wait_eq(
        &tab,
        "document.querySelector('#trials tbody tr td:nth-child(2)').innerText",
        best.clone().into(),
    );
    click_tab(&tab, "YAML");
    assert!(
        eval(&tab, "document.querySelector('#yaml').innerText")
            .as_str()
            .unwrap()
            .contains("name: finished")
    );

    // A trial: its curve has its three reports, its output is shown.
    tab.navigate_to(&format!("{url}/#/e/finished/t/{best}"))
        .unwrap();
    wait_eq(&tab, &points("#trial-curve"), 3.into());
    wait_eq(
        &tab,
        "document.querySelector('#trial-log').innerText.includes('training with opt=')",
        true.into(),
    );
    shot(&tab, "trial");

    // A running experiment: updates arrive as its trials finish, without reloading.
    let slow = k.write("slow.yaml", &experiment("running", 8, 2, "1"));
    let mut run = k.spawn_run(&slow);
    let doc = k.wait_doc("running", &[], "a running trial", |d| {
        trials(d).iter().any(|t| t["state"] == "Running")
    });
    let first = trials(&doc)
        .iter()
        .find(|t| t["state"] == "Running")
        .and_then(|t| t["name"].as_str())
        .unwrap()
        .to_string();
    // The list shows it running; its running trial's page shows the output so far.
    tab.navigate_to(&format!("{url}/")).unwrap();
    wait_eq(
        &tab,
        "[...document.querySelectorAll('#experiments .badge')].map(b => b.innerText).includes('Running')",
        true.into(),
    );
    tab.navigate_to(&format!("{url}/#/e/running/t/{first}"))
        .unwrap();
    wait_eq(
        &tab,
        "document.querySelector('#trial-log').innerText.includes('training with opt=')",
        true.into(),
    );
    shot(&tab, "running-trial");
    tab.navigate_to(&format!("{url}/#/e/running")).unwrap();
    wait_eq(
        &tab,
        "document.querySelector('#head .badge').innerText",
        "Running".into(),
    );
    click_tab(&tab, "Trials");
    let before = eval(&tab, "Number(document.body.dataset.updates)");
    wait_eq(
        &tab,
        "document.querySelectorAll('#trials tbody tr').length",
        8.into(),
    );
    assert!(eval(&tab, "Number(document.body.dataset.updates)").as_f64() > before.as_f64());
    click_tab(&tab, "History");
    wait_eq(&tab, &points("#history"), 8.into());
    wait_eq(
        &tab,
        "document.querySelector('#head .badge').innerText",
        "Succeeded".into(),
    );
    shot(&tab, "running");
    assert!(run.wait().unwrap().success());
}

/// A DARTS experiment and one succeeded trial that reported a genotype, written into the
/// store directly (running the real search takes minutes).
fn store_darts_experiment(k: &Kestrel) -> String {
    use kestrel_core::{ExperimentRecord, MetricObservation, Timestamp, TrialRecord, TrialState};
    use kestrel_store::Store;
    let yaml = std::fs::read_to_string(examples().join("nas/darts-cpu.yaml")).unwrap();
    let spec = kestrel_core::parse_experiment(&yaml, &kestrel_algorithms::Catalog).unwrap();
    let name = spec.name.clone();
    let store =
        kestrel_store::sqlite::SqliteStore::open(&k.store.path().join("kestrel.db")).unwrap();
    let t0 = Timestamp::from_second(1_760_000_000).unwrap();
    store
        .create_experiment(&ExperimentRecord::new(spec, yaml, 1, None, t0))
        .unwrap();
    let mut t = TrialRecord::created(&name, format!("{name}-a"), 0, Default::default(), t0);
    store.insert_trial(&t).unwrap();
    let genotype = "Genotype(normal=[[('sep_convolution_3x3',0),('skip_connection',1)],[('max_pooling_3x3',0),('sep_convolution_3x3',2)]],normal_concat=range(2,4),reduce=[[('max_pooling_3x3',0),('max_pooling_3x3',1)],[('skip_connection',2),('max_pooling_3x3',1)]],reduce_concat=range(2,4))";
    t.state = TrialState::Succeeded;
    t.observation = vec![MetricObservation {
        name: "Best-Genotype".into(),
        min: None,
        max: None,
        latest: genotype.into(),
    }];
    store.update_trial(&t, TrialState::Created).unwrap();
    name
}

#[test]
fn a_darts_experiment_shows_its_cells_in_light_and_dark() {
    let Some(chrome) = chromium() else { return };
    let k = Kestrel::new();
    let name = store_darts_experiment(&k);
    let (_server, url) = dashboard(&k);
    let browser = browser(chrome);
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&format!("{url}/#/e/{name}")).unwrap();
    // A DARTS page opens on its genotype: two cells of two nodes, two edges each.
    wait_eq(&tab, &points("canvas[data-cell=normal]"), 4.into());
    wait_eq(&tab, &points("canvas[data-cell=reduce]"), 4.into());
    shot(&tab, "darts-light");
    eval(&tab, "document.getElementById('theme').click()");
    wait_eq(
        &tab,
        "document.documentElement.dataset.theme",
        "dark".into(),
    );
    wait_eq(&tab, &points("canvas[data-cell=normal]"), 4.into());
    shot(&tab, "darts-dark");
}

/// One HTTP/1.1 request to `base` (`http://HOST:PORT`); the status and the body.
pub fn http(base: &str, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n"
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn kestrel_serve_serves_the_dashboard_whose_stop_button_stops_the_experiment() {
    let k = Kestrel::new();
    let served = Served::start(&k, &["--dashboard", "127.0.0.1:0"]);
    let server = served.url.clone();
    let line = served
        .next_line(Duration::from_secs(20))
        .expect("a dashboard line");
    let board = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    let slow = k.write("slow.yaml", &experiment("served", 4, 2, "30"));
    let sub = k.run(&["submit", slow.to_str().unwrap(), "--server", &server]);
    assert_code(&sub, 0);
    k.wait_doc("served", &["--server", &server], "a running trial", |d| {
        trials(d).iter().any(|t| t["state"] == "Running")
    });
    let (status, body) = http(&board, "GET", "/api/experiments", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"name\":\"served\"") && body.contains("Running"),
        "{body}"
    );
    // Without the page's header the action is refused; with it the server stops it.
    let (status, _) = http(&board, "POST", "/api/experiments/served/stop", &[]);
    assert_eq!(status, 403);
    let (status, body) = http(
        &board,
        "POST",
        "/api/experiments/served/stop",
        &["x-kestrel-action: 1"],
    );
    assert_eq!(status, 200, "{body}");
    let doc = k.wait_doc("served", &["--server", &server], "Stopped", |d| {
        d["status"]["state"] == "Stopped"
    });
    assert!(trials(&doc).iter().all(|t| t["state"] != "Running"));
    // Stopped, it can be deleted from the page.
    let (status, body) = http(
        &board,
        "DELETE",
        "/api/experiments/served",
        &["x-kestrel-action: 1"],
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(&board, "GET", "/api/experiments/served", &[]);
    assert_eq!(status, 404);
}
