//! `kestrel stop NAME --server URL`: stop a running experiment on a server; its running
//! trials are killed and it ends as Stopped. (An experiment run by `kestrel run` is
//! stopped with Ctrl-C in its terminal.)

use std::process::ExitCode;

use kestrel_proto::manager as pb;

use super::UsageError;
use crate::remote::{self, ServerArgs};

/// Arguments of `kestrel stop`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Stops the experiment and prints its final status.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.server.server.is_none() {
        return Err(UsageError(
            "stop needs a server (--server URL or KESTREL_SERVER); an experiment started with `kestrel run` stops with Ctrl-C".into(),
        )
        .into());
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
