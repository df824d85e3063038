//! Who may write results through Katib's services. A trial kestrel runs gets its own
//! secret (`KESTREL_TRIAL_TOKEN`); reports and status changes about it are accepted only
//! with that secret or the server's token, and only while it runs, so no other local
//! process can forge or erase its results. Trials kestrel does not run (Katib's own, an
//! external tool's) stay open as in Katib, whose collectors send no credentials, unless
//! the server is started with `--katib-auth token`.

use std::sync::Arc;

use kestrel_core::{TrialRecord, TrialState};
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Access to Katib's services for trials kestrel does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KatibAccess {
    /// Anyone (Katib's behaviour).
    #[default]
    Open,
    /// Only with the server's token.
    Token,
}

/// What a request wants to do to a trial's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Add observation logs (ReportObservationLog).
    Report,
    /// Mark it early stopped (SetTrialStatus).
    SetStatus,
    /// Remove its observation logs (DeleteObservationLog).
    Delete,
}

/// The server's write policy for Katib's services.
#[derive(Debug, Clone, Default)]
pub struct Access {
    token: Option<Arc<str>>,
    katib: KatibAccess,
    open_push: bool,
}

/// Compares in time independent of where the first difference is.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(md: &MetadataMap) -> Option<String> {
    md.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

impl Access {
    /// The policy of a server with `token` (if any) and `katib` access for other trials.
    pub fn new(token: Option<&str>, katib: KatibAccess) -> Self {
        Access {
            token: token.map(Arc::from),
            katib,
            open_push: false,
        }
    }

    /// Also takes reports about a running kestrel trial that uses the Push collector
    /// without its credential, as Katib's SDK (`report_metrics`) sends none; any local
    /// caller can then report for such a trial while it runs.
    pub fn with_open_push(mut self, open: bool) -> Self {
        self.open_push = open;
        self
    }

    /// Whether credential-less Push reports are taken (see [`Access::with_open_push`]).
    pub fn open_push(&self) -> bool {
        self.open_push
    }

    /// Whether a request carrying `given` may make this server dial another DBManager
    /// (`GetEarlyStoppingRules` with a `db_manager_address`): anyone, as in Katib, unless
    /// the server closes Katib's services with its token.
    pub fn may_dial(&self, given: Option<&str>) -> Result<(), Status> {
        let server =
            matches!((&self.token, given), (Some(t), Some(g)) if same(t.as_bytes(), g.as_bytes()));
        match self.katib {
            KatibAccess::Open => Ok(()),
            KatibAccess::Token if server => Ok(()),
            KatibAccess::Token => Err(Status::unauthenticated(
                "db_manager_address: dialling another DBManager needs this server's token (--katib-auth token)",
            )),
        }
    }

    /// Whether a request carrying `given` may `what` the results of trial `name`, which
    /// is `trial` when kestrel runs it.
    pub fn check(
        &self,
        given: Option<&str>,
        name: &str,
        trial: Option<&TrialRecord>,
        what: Write,
    ) -> Result<(), Status> {
        let server =
            matches!((&self.token, given), (Some(t), Some(g)) if same(t.as_bytes(), g.as_bytes()));
        if server {
            return Ok(());
        }
        let Some(t) = trial else {
            return match self.katib {
                KatibAccess::Open => Ok(()),
                KatibAccess::Token => Err(Status::unauthenticated(
                    "this server requires its token for Katib's services (--katib-auth token)",
                )),
            };
        };
        if what == Write::Delete {
            return Err(Status::permission_denied(format!(
                "the observation logs of kestrel trial {name:?} are removed with its experiment; only the server token may delete them"
            )));
        }
        if t.state != TrialState::Running {
            return Err(Status::failed_precondition(format!(
                "kestrel trial {name:?} is {}: its results are final",
                t.state
            )));
        }
        match (given, &t.credential) {
            (Some(g), Some(stored)) if kestrel_controller::credentials::verify(g, stored) => Ok(()),
            _ => Err(Status::unauthenticated(format!(
                "kestrel trial {name:?}: writes need its credential (the {} it was started with) or the server token",
                kestrel_controller::credentials::ENV
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_core::Timestamp;

    fn trial(state: TrialState, secret: &str) -> TrialRecord {
        let mut t = TrialRecord::created(
            "e",
            "e-1".into(),
            0,
            Default::default(),
            Timestamp::UNIX_EPOCH,
        );
        t.state = state;
        t.credential = Some(kestrel_controller::credentials::hash(secret));
        t
    }

    #[test]
    fn table() {
        use Write::*;
        use tonic::Code::*;
        let running = trial(TrialState::Running, "trial-secret");
        let done = trial(TrialState::Succeeded, "trial-secret");
        let open = Access::new(Some("server"), KatibAccess::Open);
        let closed = Access::new(Some("server"), KatibAccess::Token);
        let no_token = Access::new(None, KatibAccess::Open);
        // (policy, credential given, kestrel's trial, what) -> refusal code
        type Row<'a> = (
            &'a Access,
            Option<&'a str>,
            Option<&'a TrialRecord>,
            Write,
            Option<tonic::Code>,
        );
        let rows: Vec<Row<'_>> = vec![
            (&open, None, None, Report, None),
            (&open, None, None, Delete, None),
            (&closed, None, None, Report, Some(Unauthenticated)),
            (&closed, Some("server"), None, Report, None),
            (&open, None, Some(&running), Report, Some(Unauthenticated)),
            (
                &open,
                Some("guess"),
                Some(&running),
                SetStatus,
                Some(Unauthenticated),
            ),
            (&open, Some("trial-secret"), Some(&running), Report, None),
            (&open, Some("trial-secret"), Some(&running), SetStatus, None),
            (
                &open,
                Some("trial-secret"),
                Some(&running),
                Delete,
                Some(PermissionDenied),
            ),
            (
                &open,
                Some("trial-secret"),
                Some(&done),
                Report,
                Some(FailedPrecondition),
            ),
            (&open, Some("server"), Some(&done), Delete, None),
            (
                &no_token,
                Some(""),
                Some(&running),
                Report,
                Some(Unauthenticated),
            ),
        ];
        for (i, (policy, given, t, what, want)) in rows.into_iter().enumerate() {
            let got = policy.check(given, "e-1", t, what).err().map(|s| s.code());
            assert_eq!(got, want, "row {i}");
        }
    }
}
