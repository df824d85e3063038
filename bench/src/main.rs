//! `kestrel-bench`: runs kestrel's algorithms on the benchmark functions (one trial at a
//! time, as a sequential ask/tell loop) and measures ask latency; prints JSON lines that
//! `bench/report.py` compares with Optuna's (from `bench/optuna_bench.py`). Run both
//! through `bench/run.sh`.

mod dashboard;
mod functions;
mod load;
mod stopping;

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use kestrel_algorithms::{SuggestRequest, build};
use kestrel_core::{AlgorithmSpec, ObjectiveType, SearchSpace, Timestamp, TrialRecord, TrialState};
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

#[derive(Parser)]
#[command(about = "kestrel search-quality and latency benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Best value found per function x method x seed.
    Quality {
        /// Seeds per function and method.
        #[arg(long, default_value_t = 10)]
        seeds: u64,
        /// Comma-separated algorithm names.
        #[arg(
            long,
            default_value = "random,sobol,tpe,multivariate-tpe,bayesianoptimization,cmaes,cmaes:surrogate=lq"
        )]
        methods: String,
        /// Comma-separated function names (default: all).
        #[arg(long)]
        functions: Option<String>,
    },
    /// Diagnostics: the next proposal for a fixed history of a benchmark function (JSON
    /// lines `{"x0": .., .., "y": ..}` on stdin), once per seed, to compare with another
    /// implementation on the same history.
    Propose {
        /// Benchmark function whose space is used.
        #[arg(long, default_value = "branin")]
        function: String,
        /// Algorithm name.
        #[arg(long, default_value = "multivariate-tpe")]
        method: String,
        /// Number of seeds (one proposal each).
        #[arg(long, default_value_t = 200)]
        seeds: u64,
    },
    /// Concurrent gRPC GetSuggestions clients against an in-process server.
    Load {
        /// Concurrent clients (one connection each).
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Requests per client.
        #[arg(long, default_value_t = 25)]
        requests: usize,
        /// Finished trials carried by every request.
        #[arg(long, default_value_t = 1000)]
        trials: usize,
        /// Comma-separated algorithm names.
        #[arg(long, default_value = "random,multivariate-tpe")]
        methods: String,
        /// `typed`: the generated client encodes the whole request on every call (a client
        /// that builds its request each time); `encoded`: the client sends trials it has
        /// encoded once (the service's own time, plus the transport).
        #[arg(long, default_value = "typed", value_parser = ["typed", "encoded"])]
        client: String,
        /// Seconds after the load before the resident memory is read again (the history
        /// cache forgets an idle experiment within 90 s).
        #[arg(long, default_value_t = 2)]
        settle: u64,
        /// Before each algorithm's load, one request from one client, so that the memory
        /// "before" is that of a server that has served.
        #[arg(long)]
        warm_up: bool,
    },
    /// Time the web dashboard's experiment page over an experiment of `trials` finished
    /// trials, in headless Chromium.
    Dashboard {
        /// Finished trials of the experiment.
        #[arg(long, default_value_t = 10_000)]
        trials: usize,
        /// The kestrel binary serving the dashboard.
        #[arg(long, default_value = "target/release/kestrel")]
        kestrel: std::path::PathBuf,
        /// The browser.
        #[arg(long, default_value = "/usr/bin/chromium")]
        chromium: std::path::PathBuf,
        /// Save a JPEG of the experiment page here once drawn.
        #[arg(long)]
        screenshot: Option<std::path::PathBuf>,
    },
    /// Where one GetSuggestions request's time goes, in process: encoding, decoding,
    /// conversion and the algorithm (median of `reps`).
    Phases {
        /// Finished trials carried by the request.
        #[arg(long, default_value_t = 1000)]
        trials: usize,
        /// Comma-separated algorithm names.
        #[arg(long, default_value = "random,multivariate-tpe")]
        methods: String,
        /// Repetitions per phase.
        #[arg(long, default_value_t = 30)]
        reps: usize,
    },
    /// The median-stop rule as Katib applies it against kestrel's `rule: median`,
    /// replayed over the learning curves recorded by `bench/early_stopping.py`.
    StoppingReplay {
        /// The recording (its `none` runs' curves are replayed).
        #[arg(long, default_value = "bench/results/early_stopping.jsonl")]
        curves: std::path::PathBuf,
        /// Random orders of the curves replayed.
        #[arg(long, default_value_t = 2000)]
        orders: u64,
        /// `min_trials_required`.
        #[arg(long, default_value_t = 3)]
        min_trials: usize,
        /// `start_step`.
        #[arg(long, default_value_t = 2)]
        start_step: usize,
    },
    /// Median time of one ask after N completed trials on a 10-D space.
    Latency {
        /// Comma-separated history sizes.
        #[arg(long, default_value = "100,500,1000")]
        sizes: String,
        /// Comma-separated algorithm names.
        #[arg(long, default_value = "tpe,multivariate-tpe")]
        methods: String,
        /// Asks timed per size.
        #[arg(long, default_value_t = 15)]
        reps: u64,
    },
}

/// An algorithm by name, optionally with settings: `name:key=value:key=value` (for
/// trying settings from the command line; the full string labels the results).
fn spec(method: &str) -> AlgorithmSpec {
    let mut parts = method.split(':');
    let name = parts.next().unwrap_or_default().to_string();
    let settings = parts
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    AlgorithmSpec { name, settings }
}

/// A request for one proposal (trial `first_index`) in a minimisation benchmark.
fn ask_one<'a>(
    space: &'a SearchSpace,
    history: &'a [TrialRecord],
    seed: u64,
    first_index: u64,
) -> SuggestRequest<'a> {
    SuggestRequest {
        space,
        objective: ObjectiveType::Minimize,
        history,
        count: 1,
        seed,
        first_index,
        encoded: None,
    }
}

fn record(index: u64, a: kestrel_core::Assignments, y: f64) -> TrialRecord {
    let mut t = TrialRecord::created(
        "bench",
        format!("bench-{index}"),
        index,
        a,
        Timestamp::UNIX_EPOCH,
    );
    t.state = TrialState::Succeeded;
    t.objective = Some(y);
    t
}

fn quality(seeds: u64, methods: &str, only: Option<&str>) -> anyhow::Result<()> {
    for f in functions::all()
        .into_iter()
        .filter(|f| only.is_none_or(|o| o.split(',').any(|n| n == f.name)))
    {
        for method in methods.split(',') {
            let algo = build(&spec(method), &f.space, None)
                .with_context(|| format!("building {method}"))?;
            for seed in 0..seeds {
                let started = Instant::now();
                let mut history: Vec<TrialRecord> = Vec::with_capacity(f.budget);
                let mut best = f64::INFINITY;
                for k in 0..f.budget as u64 {
                    let req = ask_one(&f.space, &history, seed, k);
                    let p = algo.suggest(&req)?.proposals.pop().context("no proposal")?;
                    let y = (f.eval)(&p.assignments);
                    best = best.min(y);
                    history.push(record(k, p.assignments, y));
                }
                let regret = (best - f.optimum).max(1e-12);
                println!(
                    "{}",
                    json!({"kind": "quality", "impl": "kestrel", "method": method, "function": f.name, "seed": seed,
                           "budget": f.budget, "best": best, "log10_regret": regret.log10(),
                           "seconds": started.elapsed().as_secs_f64()})
                );
            }
        }
    }
    Ok(())
}

fn latency(sizes: &str, methods: &str, reps: u64) -> anyhow::Result<()> {
    let space = SearchSpace {
        params: (0..10)
            .map(|i| kestrel_core::ParamSpec {
                name: format!("x{i}"),
                domain: kestrel_core::Domain::Double {
                    min: 0.0,
                    max: 1.0,
                    step: None,
                    distribution: kestrel_core::Distribution::Uniform,
                },
            })
            .collect(),
    };
    for size in sizes.split(',') {
        let n: u64 = size
            .trim()
            .parse()
            .with_context(|| format!("size {size:?}"))?;
        let mut rng = StdRng::seed_from_u64(n);
        let history: Vec<TrialRecord> = (0..n)
            .map(|i| {
                let a = space
                    .params
                    .iter()
                    .map(|p| (p.name.clone(), kestrel_core::Value::Double(rng.random())))
                    .collect();
                record(i, a, rng.random())
            })
            .collect();
        for method in methods.split(',') {
            let mut settings = spec(method);
            settings
                .settings
                .push(("n_startup_trials".into(), "0".into()));
            let algo =
                build(&settings, &space, None).or_else(|_| build(&spec(method), &space, None))?;
            let mut ms: Vec<f64> = (0..reps)
                .map(|r| {
                    let req = ask_one(&space, &history, r, n + r);
                    let t = Instant::now();
                    let out = algo.suggest(&req);
                    let dt = t.elapsed().as_secs_f64() * 1e3;
                    out.map(|_| dt)
                })
                .collect::<Result<_, _>>()?;
            ms.sort_by(f64::total_cmp);
            println!(
                "{}",
                json!({"kind": "latency", "impl": "kestrel", "method": method, "n": n, "ms": ms[ms.len() / 2]})
            );
        }
    }
    Ok(())
}

fn propose(function: &str, method: &str, seeds: u64) -> anyhow::Result<()> {
    let f = functions::all()
        .into_iter()
        .find(|f| f.name == function)
        .context("unknown function")?;
    let mut history = Vec::new();
    for (i, line) in std::io::stdin().lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let a = f
            .space
            .params
            .iter()
            .map(|p| {
                Ok((
                    p.name.clone(),
                    kestrel_core::Value::Double(v[&p.name].as_f64().context("number")?),
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        history.push(record(i as u64, a, v["y"].as_f64().context("y")?));
    }
    let algo = build(&spec(method), &f.space, None)?;
    for seed in 0..seeds {
        let req = ask_one(&f.space, &history, seed, history.len() as u64);
        let p = algo.suggest(&req)?.proposals.pop().context("no proposal")?;
        let out: serde_json::Map<String, serde_json::Value> = p
            .assignments
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.to_string())))
            .collect();
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Quality {
            seeds,
            methods,
            functions,
        } => quality(seeds, &methods, functions.as_deref()),
        Cmd::Latency {
            sizes,
            methods,
            reps,
        } => latency(&sizes, &methods, reps),
        Cmd::Propose {
            function,
            method,
            seeds,
        } => propose(&function, &method, seeds),
        Cmd::Load {
            clients,
            requests,
            trials,
            methods,
            client,
            settle,
            warm_up,
        } => load::run(
            clients,
            requests,
            trials,
            &methods,
            client == "encoded",
            Duration::from_secs(settle),
            warm_up,
        ),
        Cmd::Dashboard {
            trials,
            kestrel,
            chromium,
            screenshot,
        } => dashboard::run(trials, kestrel, chromium, screenshot),
        Cmd::StoppingReplay {
            curves,
            orders,
            min_trials,
            start_step,
        } => stopping::run(&curves, orders, min_trials, start_step),
        Cmd::Phases {
            trials,
            methods,
            reps,
        } => load::phases(trials, &methods, reps),
    }
}

/// The allocator of `kestrel` itself (see `cli/main.rs`), so the load test measures the
/// server's memory as the real binary has it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
