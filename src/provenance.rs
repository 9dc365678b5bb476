//! What produced an output: tool version, git commit, command line, options, seed, weights.
//! Written beside every run folder and report; contains no timestamps so that reruns are
//! byte-identical.

use serde::Serialize;

/// emobench's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (`unknown` outside a git checkout), with `-dirty` when
/// the tree had uncommitted changes.
pub const GIT_COMMIT: &str = env!("EMOBENCH_GIT_COMMIT");

/// A weight file and its digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightFile {
    /// Role (e.g. "predictor").
    pub role: String,
    /// Path as given, or a description for generated weights.
    pub path: String,
    /// SHA-256 of the file; empty for generated stand-ins.
    pub sha256: String,
    /// True when the weights are a seeded stand-in, not a trained model.
    pub stand_in: bool,
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
