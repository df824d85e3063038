//! `kestrel stop NAME`: stop a running experiment; its running trials are killed and it
//! ends as Stopped. With `--server`, on that server; otherwise the `kestrel run` process
//! driving it on this machine is asked to stop (as Ctrl-C in its terminal would).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kestrel_proto::manager as pb;

use super::UsageError;
use crate::remote::{self, ServerArgs};
use crate::store::StoreArgs;

/// Arguments of `kestrel stop`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Seconds to wait for a local experiment to be recorded as stopped.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    wait: u64,
}

/// Stops the experiment and prints its final status.
pub fn run(mut a: Args) -> anyhow::Result<ExitCode> {
    crate::source::settle(&a.store, &mut a.server)?;
    if a.server.server.is_none() {
        return stop_local(&a);
    }
    let rt = remote::runtime()?;
    let info = rt.block_on(async {
        let mut c = remote::connect(&a.server).await?;
        c.stop_experiment(pb::ExperimentRef {
            name: a.name.clone(),
        })
        .await
        .map_err(remote::status_error)
        .map(tonic::Response::into_inner)
    })?;
    out!(
        "experiment {} is {} ({}): {}",
        info.name,
        info.state,
        info.reason,
        info.message
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks the local process that runs the experiment to stop, then waits for the store to
/// record the outcome.
fn stop_local(a: &Args) -> anyhow::Result<ExitCode> {
    let (store, dir) = a.store.open_read_only()?;
    let rec = match &store {
        Some(s) => s.experiment(&a.name)?,
        None => None,
    };
    let rec = super::require(rec, &a.name, &dir)?;
    let Some(store) = store else {
        return Ok(ExitCode::SUCCESS);
    };
    if rec.status.state.is_terminal() {
        return Err(UsageError(format!(
            "experiment {} is not running ({})",
            a.name, rec.status.state
        ))
        .into());
    }
    // A wait too long to represent is no deadline at all.
    let deadline = Instant::now().checked_add(Duration::from_secs(a.wait));
    match ask_and_wait(&*store, &a.name, deadline)? {
        (Some(r), _) => {
            out!(
                "experiment {} is {} ({}): {}",
                a.name,
                r.status.state,
                r.status.reason,
                r.status.message
            );
            Ok(ExitCode::SUCCESS)
        }
        (None, holder) => anyhow::bail!(
            "asked {holder} to stop; experiment {} is not recorded as stopped after {} s",
            a.name,
            a.wait
        ),
    }
}

/// Asks the local process that holds the lease of experiment `name` to stop, then waits
/// until the store records a final state or `deadline` (if any) passes: that record, or
/// `None` when the deadline came first, with the holder described. A usage error when no
/// live process holds the lease.
pub fn ask_and_wait(
    store: &dyn kestrel_store::Store,
    name: &str,
    deadline: Option<Instant>,
) -> anyhow::Result<(Option<kestrel_core::ExperimentRecord>, String)> {
    let Some(holder) = kestrel_controller::lease::live_holder(store, name)? else {
        let state = store
            .experiment(name)?
            .map_or("gone".to_string(), |r| r.status.state.to_string());
        return Err(UsageError(format!(
            "no process is running experiment {name} (it is {state}; `kestrel resume {name}` continues it)"
        ))
        .into());
    };
    kestrel_controller::lease::ask_to_stop(&holder).map_err(UsageError)?;
    let described = kestrel_controller::lease::describe(&holder);
    loop {
        let now = store.experiment(name)?;
        if let Some(r) = now.filter(|r| r.status.state.is_terminal()) {
            return Ok((Some(r), described));
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Ok((None, described));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
