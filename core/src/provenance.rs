//! What produced an output: tool version, git commit, command line, options, seed, weights.
//! Written beside every run folder and report; contains no timestamps so that reruns are
//! byte-identical.

use serde::Serialize;

/// emobench's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (`unknown` outside a git checkout), with `-dirty` when
/// the tree had uncommitted changes.
pub const GIT_COMMIT: &str = env!("EMOBENCH_GIT_COMMIT");

pub use models::weights::file::{sha256_file, sha256_hex, WeightFile};

/// The `run.json` / `report.json` record of a predictor's weights (the stand-in says so).
pub fn predictor_weight_file(src: &crate::predictor::PredictorSource) -> WeightFile {
    match src {
        crate::predictor::PredictorSource::File { path, sha256 } => WeightFile {
            role: "predictor".into(),
            path: path.clone(),
            sha256: sha256.clone(),
            stand_in: false,
        },
        crate::predictor::PredictorSource::StandIn { seed } => WeightFile {
            role: "predictor".into(),
            path: format!("stand-in: ResNet-18, ChaCha8 seed {seed}"),
            sha256: String::new(),
            stand_in: true,
        },
    }
}

/// Header common to every metadata file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    /// Always "emobench".
    pub tool: &'static str,
    /// Crate version.
    pub version: &'static str,
    /// Build commit.
    pub git_commit: &'static str,
    /// The subcommand and its arguments as given.
    pub command: Vec<String>,
}

impl Provenance {
    /// Provenance for the running process.
    pub fn current() -> Self {
        Self {
            tool: "emobench",
            version: VERSION,
            git_commit: GIT_COMMIT,
            command: std::env::args().skip(1).collect(),
        }
    }
}
