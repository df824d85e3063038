//! Load test of the gRPC Suggestion service: an in-process `kestrel serve` on 127.0.0.1:0,
//! `clients` concurrent clients (one connection each) sending GetSuggestions requests that
//! carry a `trials`-long finished history on a 10-D space; prints p50/p99/max latency,
//! throughput and the number of errors (which must be 0).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kestrel_proto::katib::suggestion_client::SuggestionClient;
use kestrel_proto::katib::{self as pb, trial_status::TrialConditionType};
use kestrel_proto::raw::RawSuggestionsRequest;
use kestrel_server::{RunConfig, Security, serve};
use kestrel_store::mem::MemStore;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn experiment(algorithm: &str) -> pb::Experiment {
    let parameters = (0..10)
        .map(|i| pb::ParameterSpec {
            name: format!("x{i}"),
            parameter_type: pb::ParameterType::Double.into(),
            feasible_space: Some(pb::FeasibleSpace {
                min: "-5".into(),
                max: "5".into(),
                ..Default::default()
            }),
        })
        .collect();
    pb::Experiment {
        name: "load".into(),
        spec: Some(pb::ExperimentSpec {
            parameter_specs: Some(pb::experiment_spec::ParameterSpecs { parameters }),
            objective: Some(pb::ObjectiveSpec {
                r#type: pb::ObjectiveType::Minimize.into(),
                objective_metric_name: "loss".into(),
                ..Default::default()
            }),
            algorithm: Some(pb::AlgorithmSpec {
                algorithm_name: algorithm.into(),
                algorithm_settings: vec![],
            }),
            parallel_trial_count: 10,
            max_trial_count: 100_000,
            ..Default::default()
        }),
    }
}

fn history(n: usize) -> Vec<pb::Trial> {
    let mut rng = StdRng::seed_from_u64(1);
    (0..n)
        .map(|i| {
            let xs: Vec<f64> = (0..10).map(|_| rng.random_range(-5.0..5.0)).collect();
            let loss: f64 = xs.iter().map(|x| x * x).sum();
            pb::Trial {
                name: format!("load-{i:06}"),
                spec: Some(pb::TrialSpec {
                    parameter_assignments: Some(pb::trial_spec::ParameterAssignments {
                        assignments: xs
                            .iter()
                            .enumerate()
                            .map(|(j, x)| pb::ParameterAssignment {
                                name: format!("x{j}"),
                                value: x.to_string(),
                            })
                            .collect(),
                    }),
                    ..Default::default()
                }),
                status: Some(pb::TrialStatus {
                    start_time: "2026-11-23T10:00:00Z".into(),
                    completion_time: "2026-11-23T10:01:00Z".into(),
                    condition: TrialConditionType::Succeeded.into(),
                    observation: Some(pb::Observation {
                        metrics: vec![pb::Metric {
                            name: "loss".into(),
                            value: loss.to_string(),
                        }],
                    }),
                }),
            }
        })
        .collect()
}

/// This process's resident memory, its peak so far, and the anonymous part of the
/// resident memory (heap and stacks; the rest is the binary's code and data as mapped from
/// its file, paged in as code paths first run), in MiB, from /proc/self/status; `None`
/// elsewhere.
fn rss_mib() -> Option<(f64, f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?, field("RssAnon:")?))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Median milliseconds of `f` over `reps` runs.
fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    percentile(&v, 0.5)
}

/// Where one request's time goes, measured in process (no network): the client's
/// encoding, the server's decoding, the conversion of the experiment and of the trials,
/// and the algorithm; one JSON line per algorithm.
pub fn phases(trials: usize, algorithms: &str, reps: usize) -> anyhow::Result<()> {
    use kestrel_proto::convert::katib as conv;
    use prost::Message;
    let history = history(trials);
    for algorithm in algorithms.split(',').map(str::trim) {
        let req = pb::GetSuggestionsRequest {
            experiment: Some(experiment(algorithm)),
            trials: history.clone(),
            current_request_number: 1,
            total_request_number: history.len() as i32 + 1,
        };
        let bytes = req.encode_to_vec();
        let encode = median_ms(reps, || {
            std::hint::black_box(req.encode_to_vec());
        });
        let decode = median_ms(reps, || {
            std::hint::black_box(pb::GetSuggestionsRequest::decode(&bytes[..]).ok());
        });
        let call = conv::Call::Suggest { with_trials: true };
        let problem =
            conv::problem_for(req.experiment.as_ref(), &kestrel_algorithms::Catalog, call)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        let experiment_ms = median_ms(reps, || {
            std::hint::black_box(
                conv::problem_for(req.experiment.as_ref(), &kestrel_algorithms::Catalog, call).ok(),
            );
        });
        let records = conv::trials(&problem, &req.trials).map_err(|e| anyhow::anyhow!("{e}"))?;
        let trials_ms = median_ms(reps, || {
            std::hint::black_box(conv::trials(&problem, &req.trials).ok());
        });
        let ask = || {
            kestrel_suggestion::get_suggestions(&kestrel_suggestion::GetSuggestions {
                problem: &problem,
                trials: &records,
                count: 1,
                seed: 1,
                first_index: None,
                prior: &[],
                encoded: None,
            })
        };
        let suggest = median_ms(reps, || {
            std::hint::black_box(ask().ok());
        });
        // What a server does with a request whose history it has seen: the raw decoding
        // (trials left encoded), then the whole answer with the history cache warm.
        let shared = prost::bytes::Bytes::from(bytes.clone());
        let raw_decode = median_ms(reps, || {
            std::hint::black_box(RawSuggestionsRequest::decode(shared.clone()).ok());
        });
        let raw = RawSuggestionsRequest::decode(shared.clone())?;
        let answer = || kestrel_suggestion::grpc::answer(raw.clone());
        answer().map_err(|e| anyhow::anyhow!("{e}"))?;
        let answer_warm = median_ms(reps, || {
            std::hint::black_box(answer().ok());
        });
        println!(
            "{}",
            serde_json::json!({
                "bench": "phases",
                "algorithm": algorithm,
                "trials": trials,
                "request_bytes": bytes.len(),
                "client_encode_ms": encode,
                "server_decode_ms": decode,
                "convert_experiment_ms": experiment_ms,
                "convert_trials_ms": trials_ms,
                "suggest_ms": suggest,
                "server_decode_encoded_trials_ms": raw_decode,
                "answer_with_history_seen_ms": answer_warm,
            })
        );
    }
    Ok(())
}

/// One load-test client: the generated one, or one that sends trials encoded once.
enum Client {
    Typed(SuggestionClient<tonic::transport::Channel>),
    Encoded(
        tonic::client::Grpc<tonic::transport::Channel>,
        Option<Box<RawSuggestionsRequest>>,
    ),
}

impl Client {
    fn new(channel: tonic::transport::Channel, encoded: bool) -> Self {
        if encoded {
            let grpc = tonic::client::Grpc::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20);
            Client::Encoded(grpc, None)
        } else {
            Client::Typed(
                SuggestionClient::new(channel)
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20),
            )
        }
    }

    /// Sends `req`; the time from the call to the reply (the client's copy of its request
    /// is made before the clock starts).
    async fn call(
        &mut self,
        req: &pb::GetSuggestionsRequest,
    ) -> (Duration, Result<pb::GetSuggestionsReply, tonic::Status>) {
        match self {
            Client::Typed(c) => {
                let r = req.clone();
                let t = Instant::now();
                let reply = c.get_suggestions(r).await.map(tonic::Response::into_inner);
                (t.elapsed(), reply)
            }
            Client::Encoded(grpc, raw) => {
                let r = raw
                    .get_or_insert_with(|| {
                        Box::new(RawSuggestionsRequest::from_decoded(req.clone()))
                    })
                    .as_ref()
                    .clone();
                let t = Instant::now();
                let reply = async {
                    grpc.ready()
                        .await
                        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                        "/api.v1.beta1.Suggestion/GetSuggestions",
                    );
                    let codec = tonic_prost::ProstCodec::<
                        RawSuggestionsRequest,
                        pb::GetSuggestionsReply,
                    >::default();
                    grpc.unary(tonic::Request::new(r), path, codec)
                        .await
                        .map(tonic::Response::into_inner)
                }
                .await;
                (t.elapsed(), reply)
            }
        }
    }
}

/// `clients` concurrent clients, each on its own connection, sending `req` `requests` times;
/// the times of the right answers and the count of the others.
async fn round(
    url: &str,
    req: &pb::GetSuggestionsRequest,
    clients: usize,
    requests: usize,
    encoded: bool,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, req) = (url.to_string(), req.clone());
        tasks.push(tokio::spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(url)?
                .connect()
                .await?;
            let mut c = Client::new(channel, encoded);
            let mut times = Vec::with_capacity(requests);
            let mut errors = 0usize;
            for _ in 0..requests {
                let (t, reply) = c.call(&req).await;
                match reply {
                    Ok(r) if r.parameter_assignments.len() == 1 => times.push(t),
                    Ok(_) | Err(_) => errors += 1,
                }
            }
            Ok::<_, anyhow::Error>((times, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (times, e) = t.await??;
        all.extend(times);
        errors += e;
    }
    Ok((all, errors))
}

/// Runs the load test and prints one JSON line per algorithm. With `warm_up`, one client
/// sends one request of the algorithm, and the server rests for two seconds, before the
/// memory before the load is read: "before" is then a server that has served (its code
/// paged in, its threads' allocator state made), not a process that has answered nothing.
pub fn run(
    clients: usize,
    requests: usize,
    trials: usize,
    algorithms: &str,
    encoded: bool,
    settle: Duration,
    warm_up: bool,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let runs = std::env::temp_dir().join("kestrel-bench-load-runs");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(MemStore::default()),
            RunConfig {
                runs_dir: runs,
                grace: Duration::from_secs(1),
                tick: Duration::from_millis(200),
                executor: "local".into(),
                kubernetes: Default::default(),
                db_manager: None,
            },
            Security::default(),
            async {
                let _ = stop_rx.await;
            },
        ));
        let trials = history(trials);
        for algorithm in algorithms.split(',').map(str::trim) {
            let req = pb::GetSuggestionsRequest {
                experiment: Some(experiment(algorithm)),
                trials: trials.clone(),
                current_request_number: 1,
                total_request_number: trials.len() as i32 + 1,
            };
            if warm_up {
                round(&url, &req, 1, 1, encoded).await?;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            // The clients' template request exists before and after: not the server's.
            let before = rss_mib();
            let started = Instant::now();
            let (mut all, errors) = round(&url, &req, clients, requests, encoded).await?;
            let wall = started.elapsed().as_secs_f64();
            let peak = rss_mib();
            // Memory once the load is over and the server idles.
            tokio::time::sleep(settle).await;
            let after = rss_mib();
            all.sort();
            println!(
                "{}",
                serde_json::json!({
                    "bench": "load",
                    "algorithm": algorithm,
                    "clients": clients,
                    "client": if encoded { "encoded" } else { "typed" },
                    "requests": clients * requests,
                    "trials": trials.len(),
                    "p50_ms": percentile(&all, 0.5),
                    "p99_ms": percentile(&all, 0.99),
                    "max_ms": percentile(&all, 1.0),
                    "throughput_rps": all.len() as f64 / wall,
                    "errors": errors,
                    "rss_before_mib": before.map(|r| r.0),
                    "rss_peak_mib": peak.map(|r| r.1),
                    "rss_after_mib": after.map(|r| r.0),
                    "anon_before_mib": before.map(|r| r.2),
                    "anon_after_mib": after.map(|r| r.2),
                    "settle_s": settle.as_secs_f64(),
                    "warm_up": warm_up,
                })
            );
        }
        let _ = stop_tx.send(());
        server.await??;
        Ok(())
    })
}
