//! Objective logs read from another DBManager: what `GetEarlyStoppingRules` does when its
//! `db_manager_address` names a DBManager that is not this server (Katib's medianstop
//! service reads every trial's logs from that address).
//!
//! The address comes from the caller, so everything about the fetch is bounded: the
//! address's length and form, the time to connect and to answer, the number of calls in
//! flight, the size of each reply and the values kept in all.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kestrel_proto::katib::GetObservationLogRequest;
use kestrel_proto::katib::db_manager_client::DbManagerClient;
use tonic::Status;
use tonic::transport::{Channel, Endpoint, Uri};

/// Longest `db_manager_address` dialled (a DNS name is at most 253 bytes).
pub const MAX_ADDRESS: usize = 512;
/// Calls to the other DBManager in flight at once.
const CONCURRENT_CALLS: usize = 8;
/// Largest reply taken from the other DBManager.
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;
/// Most values kept over all trials of one request (40 MB of numbers).
pub const MAX_VALUES: usize = 5_000_000;
/// Time to connect to the other DBManager.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for all of one request's reads.
const DEADLINE: Duration = Duration::from_secs(60);

/// Where `db_manager_address` points.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// This server's own DBManager (the address is empty or names this server's port on
    /// a local address): read the store.
    Own,
    /// Another DBManager, at this URI.
    Remote(Uri),
}

/// Reads `address` (`host:port` or an `http(s)://` URL) against the address this server
/// listens on.
pub fn target(address: &str, own: Option<SocketAddr>) -> Result<Target, Status> {
    let address = address.trim();
    if address.is_empty() {
        return Ok(Target::Own);
    }
    if address.len() > MAX_ADDRESS {
        return Err(Status::invalid_argument(format!(
            "db_manager_address: {} bytes (at most {MAX_ADDRESS})",
            address.len()
        )));
    }
    let url = kestrel_metrics_collector::dbmanager::url(address);
    let uri: Uri = url.parse().map_err(|e| {
        Status::invalid_argument(format!(
            "db_manager_address: {address:?} is no address: {e}"
        ))
    })?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let (Some(host), true) = (uri.host(), scheme_ok) else {
        return Err(Status::invalid_argument(format!(
            "db_manager_address: {address:?} is not host:port or an http(s) URL"
        )));
    };
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| {
            ip.is_loopback() || ip.is_unspecified() || own.is_some_and(|o| o.ip() == ip)
        });
    if local && own.is_some_and(|o| o.port() == port) {
        Ok(Target::Own)
    } else {
        Ok(Target::Remote(uri))
    }
}

/// The numeric values of `metric` that the DBManager at `uri` holds for each of `trials`,
/// in its order (Katib's DBManager answers in time order). Values that are no number
/// (`unavailable`) are left out, as from the store.
pub async fn objective_values(
    uri: Uri,
    trials: Vec<String>,
    metric: String,
) -> Result<Vec<Vec<f64>>, Status> {
    if trials.is_empty() {
        return Ok(Vec::new());
    }
    let shown = uri.to_string();
    let unreachable =
        |e: &dyn std::fmt::Display| Status::unavailable(format!("db_manager_address {shown}: {e}"));
    let channel = Endpoint::from(uri.clone())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(DEADLINE)
        .connect()
        .await
        .map_err(|e| unreachable(&e))?;
    let client = DbManagerClient::new(channel).max_decoding_message_size(MAX_REPLY_BYTES);
    let read = async {
        let mut kept = 0usize;
        futures::stream::iter(trials)
            .map(|trial| read_one(client.clone(), trial, metric.clone()))
            .buffered(CONCURRENT_CALLS)
            .map_err(|s| unreachable(&format!("{} ({:?})", s.message(), s.code())))
            .and_then(|values| {
                kept += values.len();
                let over = kept > MAX_VALUES;
                async move {
                    if over {
                        Err(Status::resource_exhausted(format!(
                            "the trials' logs hold over {MAX_VALUES} values of the objective"
                        )))
                    } else {
                        Ok(values)
                    }
                }
            })
            .try_collect::<Vec<_>>()
            .await
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .map_err(|_| unreachable(&format!("no answer within {DEADLINE:?}")))?
}

async fn read_one(
    mut client: DbManagerClient<Channel>,
    trial: String,
    metric: String,
) -> Result<Vec<f64>, Status> {
    let reply = client
        .get_observation_log(GetObservationLogRequest {
            trial_name: trial,
            metric_name: metric.clone(),
            start_time: String::new(),
            end_time: String::new(),
        })
        .await?
        .into_inner();
    Ok(reply
        .observation_log
        .map(|o| o.metric_logs)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| l.metric)
        .filter(|m| m.name == metric)
        .filter_map(|m| m.value.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_this_server_only_on_its_port_and_a_local_host() {
        let own: SocketAddr = "0.0.0.0:6789".parse().unwrap_or_else(|_| unreachable!());
        let own = Some(own);
        for (address, is_own) in [
            ("", true),
            ("  ", true),
            ("localhost:6789", true),
            ("127.0.0.1:6789", true),
            ("[::1]:6789", true),
            ("http://127.0.0.1:6789", true),
            ("0.0.0.0:6789", true),
            ("127.0.0.1:6790", false),
            ("katib-db-manager.kubeflow:6789", false),
            ("10.0.0.7:6789", false),
            ("https://db.example:443", false),
        ] {
            let t = target(address, own).unwrap_or_else(|e| panic!("{address}: {e}"));
            assert_eq!(t == Target::Own, is_own, "{address}");
        }
        // Without a known listener only the empty address is this server.
        assert!(matches!(
            target("127.0.0.1:6789", None),
            Ok(Target::Remote(_))
        ));
    }

    #[test]
    fn addresses_that_cannot_be_dialled_are_refused_naming_the_field() {
        for address in [
            "ftp://host:21",
            "http://",
            "a b:1",
            &"x".repeat(MAX_ADDRESS + 1),
        ] {
            let e = target(address, None).expect_err(address);
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{address}");
            assert!(
                e.message().starts_with("db_manager_address: "),
                "{}",
                e.message()
            );
        }
    }
}
