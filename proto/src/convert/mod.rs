//! Conversions between wire messages and `kestrel-core` types. Everything that arrives
//! over gRPC passes through here before any algorithm or store sees it, and every refusal
//! is a [`ConvertError`] listing the offending fields by their path in the message.

pub mod katib;
pub mod manager;

use kestrel_core::{FieldError, SpecError, Timestamp};

/// Why a message was refused. Maps to gRPC `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// One or more fields are missing or hold unusable values.
    #[error("{}", render(.0))]
    Invalid(Vec<FieldError>),
}

impl ConvertError {
    /// A refusal of one field.
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConvertError::Invalid(vec![FieldError::new(path, message)])
    }

    /// The refused fields.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            ConvertError::Invalid(v) => v,
        }
    }
}

fn render(errs: &[FieldError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<ConvertError> for tonic::Status {
    fn from(e: ConvertError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// Re-roots the errors of a spec check at `prefix` (paths rewritten by `rename`).
pub(crate) fn spec_error(e: &SpecError, rename: impl Fn(&str) -> String) -> ConvertError {
    ConvertError::Invalid(
        e.field_errors()
            .into_iter()
            .map(|f| FieldError::new(rename(&f.path), f.message))
            .collect(),
    )
}

/// An RFC 3339 time, or `None` for the empty string.
pub fn time(s: &str, path: &str) -> Result<Option<Timestamp>, ConvertError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim()
        .parse::<Timestamp>()
        .map(Some)
        .map_err(|e| ConvertError::field(path, format!("{s:?} is not an RFC 3339 time ({e})")))
}

/// A time in RFC 3339 (UTC, fractional seconds only when present), or "" for none.
pub fn time_string(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
