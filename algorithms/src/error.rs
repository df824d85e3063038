//! Errors of the algorithms crate.

/// One problem with one `algorithmSettings` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// Index in `algorithmSettings`, when the problem is with a given entry.
    pub index: Option<usize>,
    /// What is wrong (names the setting and the bad value).
    pub message: String,
}

/// Why an algorithm could not be built or could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AlgoError {
    /// No algorithm has this name.
    #[error("unknown algorithm {name:?} (available: {available})")]
    UnknownAlgorithm {
        /// The requested name.
        name: String,
        /// Comma-separated available names.
        available: String,
    },
    /// Some settings are unknown or have bad values.
    #[error("invalid algorithm settings: {}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))]
    InvalidSettings(Vec<SettingError>),
    /// The search space does not suit this algorithm (e.g. a continuous double for grid).
    #[error("{path}: {message}")]
    InvalidSpace {
        /// Field path of the offending part of the spec.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The algorithm failed on a valid request (a bug or numerical breakdown).
    #[error("algorithm failed: {0}")]
    Internal(String),
}
