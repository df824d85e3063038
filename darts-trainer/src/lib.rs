//! kestrel-darts-trainer: the trial program of a DARTS experiment.
//!
//! DARTS (Liu, Simonyan and Yang, 2019) relaxes the choice of an operation on each edge of
//! a cell into a softmax-weighted sum over every candidate, learns those architecture
//! weights (alpha) by gradient descent on validation data while the ordinary weights learn
//! on training data, and finally keeps the strongest two incoming edges of each node with
//! their strongest operation. This crate does that with candle on the CPU, on the 8×8
//! handwritten-digits images kestrel's examples ship with.
//!
//! # Layout
//! - [`args`]: Katib's trial arguments (`--algorithm-settings`, `--search-space`,
//!   `--num-layers`) read into typed settings.
//! - [`data`]: the digits images, split into train, validation (for alpha) and test.
//! - [`ops`]: the candidate operations and the layers they are built from.
//! - [`model`]: the supernet (mixed operations everywhere) and the fixed network a
//!   genotype describes, built from one cell layout.
//! - [`genotype`]: deriving, printing (Katib's format), parsing and drawing genotypes.
//! - [`train`]: the bi-level search (first or second order) and training from scratch.
//!
//! Built out of the default workspace build (`cargo build -p kestrel-darts-trainer`).

pub mod args;
pub mod data;
pub mod genotype;
pub mod model;
pub mod ops;
pub mod params;
pub mod train;

/// Errors of the trainer.
#[derive(Debug, thiserror::Error)]
pub enum DartsError {
    /// A trial argument is malformed.
    #[error("{flag}: {message}")]
    Arg {
        /// The flag or setting at fault.
        flag: String,
        /// What is wrong.
        message: String,
    },
    /// The dataset could not be read.
    #[error("dataset {path}: {message}")]
    Data {
        /// Where it was read from.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result alias of the trainer.
pub type Result<T> = std::result::Result<T, DartsError>;
