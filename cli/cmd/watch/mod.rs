//! `kestrel watch NAME`: a live terminal view of an experiment: counts, the best so far
//! over time, the selected trial's learning curve, and its trials (running ones with
//! their newest value), which can be scrolled, sorted and selected; the experiment can be
//! stopped or deleted from it. Updates come from the server's event stream (reconnecting
//! when it drops) or by polling the local store. `--once`, or output that is not a
//! terminal, prints the current table instead. `NO_COLOR` turns colours off.

mod view;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kestrel_core::{MetricLog, TrialCounts};
use kestrel_proto::convert::manager as conv;
use kestrel_proto::manager::{self as pb, event::Kind};
use ratatui::crossterm::event::{self, Event};

use crate::output;
use crate::remote::{self, ServerArgs};
use crate::source::{self, Snapshot};
use crate::store::StoreArgs;
use view::{Action, View};

/// Arguments of `kestrel watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the current state once as a table and exit.
    #[arg(long)]
    once: bool,
}

/// What the producers send the screen.
enum Msg {
    /// The experiment and its trials as they are now.
    Snap(Box<Snapshot>),
    /// Reports of the trials the view asked for.
    Logs(BTreeMap<String, Vec<MetricLog>>),
    /// A problem (connection lost, store unreadable); `None` clears it.
    Note(Option<String>),
}

/// The trials whose reports the view wants, shared with the producers.
type Wanted = Arc<Mutex<Vec<String>>>;

/// Watches the experiment.
pub fn run(mut a: Args) -> anyhow::Result<ExitCode> {
    source::settle(&a.store, &mut a.server)?;
    if a.once || !std::io::stdout().is_terminal() {
        let (rec, trials) = source::experiment(&a.store, &a.server, &a.name)?;
        print_plain(&(rec, trials))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Fail before taking over the terminal when the experiment does not exist.
    let first = source::experiment(&a.store, &a.server, &a.name)?;
    let (tx, rx) = std_mpsc::channel::<Msg>();
    let wanted: Wanted = Arc::default();
    let rt = remote::runtime()?;
    let producers = if a.server.server.is_some() {
        vec![
            rt.spawn(stream_server(a.server.clone(), a.name.clone(), tx.clone())),
            rt.spawn(poll_server_logs(a.server.clone(), wanted.clone(), tx)),
        ]
    } else {
        vec![rt.spawn(poll_store(
            a.store.clone(),
            a.name.clone(),
            wanted.clone(),
            tx,
        ))]
    };
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let result = ui(&a, &rt, first, &rx, &wanted, View::new(color));
    for p in producers {
        p.abort();
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

fn print_plain((rec, trials): &Snapshot) -> anyhow::Result<()> {
    let exp = &rec.spec;
    out!(
        "Experiment {} {} ({}); {}",
        rec.name(),
        rec.status.state,
        rec.status.reason,
        output::counts_line(&TrialCounts::of(trials))
    );
    out!("Best: {}", output::best_line(exp, trials));
    if !trials.is_empty() {
        let view = output::TrialsView {
            limit: Some(20),
            ..Default::default()
        };
        out!("{}", output::trials_table(exp, trials, &view));
    }
    Ok(())
}

/// Reads the local store (opened once) every half second: the experiment, and the reports
/// of the trials the view wants.
async fn poll_store(store: StoreArgs, name: String, wanted: Wanted, tx: std_mpsc::Sender<Msg>) {
    let opened = match tokio::task::spawn_blocking(move || store.open_read_only()).await {
        Ok(Ok((Some(s), _))) => s,
        Ok(Ok((None, dir))) => {
            let _ = tx.send(Msg::Note(Some(format!("no store in {}", dir.display()))));
            return;
        }
        Ok(Err(e)) => {
            let _ = tx.send(Msg::Note(Some(format!("{e:#}"))));
            return;
        }
        Err(e) => {
            let _ = tx.send(Msg::Note(Some(e.to_string())));
            return;
        }
    };
    loop {
        let (store, name) = (opened.clone(), name.clone());
        let names = wanted.lock().map(|w| w.clone()).unwrap_or_default();
        let read = tokio::task::spawn_blocking(move || -> Result<Vec<Msg>, String> {
            let rec = store
                .experiment(&name)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("experiment {name:?} is gone from the store"))?;
            let trials = store.trials(&name).map_err(|e| e.to_string())?;
            let mut logs = BTreeMap::new();
            for n in names {
                let l = store.metrics(&n, None).map_err(|e| e.to_string())?;
                logs.insert(n, l);
            }
            Ok(vec![Msg::Snap(Box::new((rec, trials))), Msg::Logs(logs)])
        })
        .await;
        let msgs = match read {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => vec![Msg::Note(Some(e))],
            Err(e) => vec![Msg::Note(Some(e.to_string()))],
        };
        for m in msgs {
            if tx.send(m).is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Follows the server's event stream; when the connection drops (a server restart),
/// says so and reconnects, starting again from a full read of the experiment. A finished
/// experiment's stream ends at once; it is read again every few seconds, quietly (it may
/// be continued).
async fn stream_server(server: ServerArgs, name: String, tx: std_mpsc::Sender<Msg>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let why = match follow(&server, &name, &tx).await {
            Ok(true) => {
                backoff = Duration::from_millis(500);
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Ok(false) => "the server ended the stream".to_string(),
            Err(e) => format!("{e:#}"),
        };
        let url = server.server.as_deref().unwrap_or_default();
        let note = format!("reconnecting to {url}… ({why})");
        if tx.send(Msg::Note(Some(note))).is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection: a full read, then events until the stream ends (`Ok(true)` when the
/// experiment has finished) or fails.
async fn follow(
    server: &ServerArgs,
    name: &str,
    tx: &std_mpsc::Sender<Msg>,
) -> anyhow::Result<bool> {
    let mut c = remote::connect(server).await?;
    let mut snap = remote::get(&mut c, name).await?;
    let mut stream = c
        .watch_experiment(pb::ExperimentRef { name: name.into() })
        .await
        .map_err(remote::status_error)?
        .into_inner();
    if tx.send(Msg::Note(None)).is_err() || tx.send(Msg::Snap(Box::new(snap.clone()))).is_err() {
        return Ok(true);
    }
    while let Some(ev) = stream.message().await.map_err(remote::status_error)? {
        match ev.kind {
            Some(Kind::Experiment(info)) => {
                let rec =
                    conv::experiment_record(&info, &snap.0.source, &kestrel_algorithms::Catalog)
                        .map_err(|e| anyhow::anyhow!("unreadable event: {e}"))?;
                snap.0.status = rec.status;
            }
            Some(Kind::Trial(t)) => {
                let t = conv::trial_record(&t, name, &snap.0.spec.space)
                    .map_err(|e| anyhow::anyhow!("unreadable event: {e}"))?;
                match snap.1.iter_mut().find(|x| x.name == t.name) {
                    Some(x) => *x = t,
                    None => snap.1.push(t),
                }
            }
            None => {}
        }
        if tx.send(Msg::Snap(Box::new(snap.clone()))).is_err() {
            return Ok(true);
        }
    }
    Ok(snap.0.status.state.is_terminal())
}

/// Reads the reports of the trials the view wants from the server every second, over one
/// connection (made again after a failure).
async fn poll_server_logs(server: ServerArgs, wanted: Wanted, tx: std_mpsc::Sender<Msg>) {
    let mut client: Option<remote::LogClient> = None;
    loop {
        let names = wanted.lock().map(|w| w.clone()).unwrap_or_default();
        if !names.is_empty() {
            if client.is_none() {
                client = remote::log_client(&server).await.ok();
            }
            if let Some(c) = client.as_mut() {
                match remote::read_logs(c, &names).await {
                    Ok(logs) => {
                        if tx.send(Msg::Logs(logs)).is_err() {
                            return;
                        }
                    }
                    // The stream's task reports a lost server; connect again next time.
                    Err(_) => client = None,
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn ui(
    a: &Args,
    rt: &tokio::runtime::Runtime,
    mut snap: Snapshot,
    rx: &std_mpsc::Receiver<Msg>,
    wanted: &Wanted,
    mut view: View,
) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        loop {
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Msg::Snap(s) => snap = *s,
                    Msg::Logs(l) => view.logs = l,
                    Msg::Note(n) => view.note = n,
                }
            }
            if let Ok(mut w) = wanted.lock() {
                *w = view.wanted(&snap);
            }
            terminal.draw(|f| view::draw(f, &snap, &mut view))?;
            if event::poll(Duration::from_millis(250))?
                && let Event::Key(k) = event::read()?
            {
                match view.on_key(k, &snap) {
                    Action::None => {}
                    Action::Quit => return Ok(()),
                    Action::Stop => view.note = Some(act(a, rt, Action::Stop)),
                    Action::Delete => {
                        let outcome = act(a, rt, Action::Delete);
                        if outcome.starts_with("deleted") {
                            return Ok(());
                        }
                        view.note = Some(outcome);
                    }
                }
            }
        }
    })();
    ratatui::restore();
    result
}

/// Stops or deletes the experiment; the outcome in words.
fn act(a: &Args, rt: &tokio::runtime::Runtime, action: Action) -> String {
    let name = a.name.clone();
    let result: anyhow::Result<String> = match (action, a.server.server.is_some()) {
        (Action::Stop, true) => rt.block_on(async {
            let mut c = remote::connect(&a.server).await?;
            c.stop_experiment(pb::ExperimentRef { name: name.clone() })
                .await
                .map_err(remote::status_error)?;
            Ok(format!("asked the server to stop {name}"))
        }),
        (Action::Delete, true) => rt.block_on(async {
            let mut c = remote::connect(&a.server).await?;
            c.delete_experiment(pb::ExperimentRef { name: name.clone() })
                .await
                .map_err(remote::status_error)?;
            Ok(format!("deleted {name}"))
        }),
        (Action::Stop, false) => (|| {
            let (store, _) = a.store.open_read_only()?;
            let holder = match store {
                Some(s) => kestrel_controller::lease::live_holder(&*s, &name)?,
                None => None,
            };
            let holder = holder.ok_or_else(|| anyhow::anyhow!("no process is running {name}"))?;
            kestrel_controller::lease::ask_to_stop(&holder).map_err(anyhow::Error::msg)?;
            Ok(format!(
                "asked {} to stop",
                kestrel_controller::lease::describe(&holder)
            ))
        })(),
        (Action::Delete, false) => {
            super::delete::delete_local(&a.store, &name).map(|()| format!("deleted {name}"))
        }
        _ => Ok(String::new()),
    };
    result.unwrap_or_else(|e| format!("{e:#}"))
}
