//! Run folders: `runs/<method>/<source_id>/<target>.png` plus `runs/<method>/run.json`, the job
//! list for an edit, deterministic sharding, and per-job seeds.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::emotion::{Conditions, Emotion};
use crate::sources::SourceImage;

/// `--shard i/n`: this process does the jobs whose index is `i` modulo `n` (0-based `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    /// This shard's index, `0 <= index < count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

/// A malformed `--shard` value.
#[derive(Debug, thiserror::Error)]
#[error("--shard '{0}': expected i/n with 0 <= i < n (e.g. 0/4; Slurm: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")]
pub struct ShardError(pub String);

impl std::str::FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ShardError(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let index: usize = i.trim().parse().map_err(|_| err())?;
        let count: usize = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    /// True when job number `job` belongs to this shard.
    pub fn owns(&self, job: usize) -> bool {
        job % self.count == self.index
    }
}

/// One (source, target) edit and where its output goes.
#[derive(Debug, Clone)]
pub struct Job {
    /// The source row.
    pub source: SourceImage,
    /// Target emotion.
    pub target: Emotion,
    /// Output path inside the run folder.
    pub output: PathBuf,
}

/// The method folders of a runs folder (`runs/<method>/`), sorted; hidden folders are not methods.
pub fn method_folders(runs: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(runs)?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Output path of one edit.
pub fn output_path(method_dir: &Path, source_id: &str, target: Emotion) -> PathBuf {
    method_dir
        .join(source_id)
        .join(format!("{}.png", target.name()))
}

/// All jobs in a fixed order (sources as listed, targets in EmoSet order), so shard membership does
/// not depend on the machine or on which outputs already exist.
pub fn jobs(sources: &[SourceImage], conditions: &Conditions, method_dir: &Path) -> Vec<Job> {
    sources
        .iter()
        .flat_map(|s| {
            conditions.targets(s.emotion).into_iter().map(|t| Job {
                source: s.clone(),
                target: t,
                output: output_path(method_dir, &s.id, t),
            })
        })
        .collect()
}

/// A seed for one (source, target) pair derived from the run seed, so each output is the same
/// whichever shard or order produced it.
pub fn job_seed(seed: u64, source_id: &str, target: Emotion) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(source_id.as_bytes());
    h.update([0]);
    h.update(target.name().as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_jobs() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for job in 0..20 {
            assert_eq!(shards.iter().filter(|s| s.owns(job)).count(), 1);
        }
        assert!("3/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        assert_eq!(
            "1/4".parse::<Shard>().ok(),
            Some(Shard { index: 1, count: 4 })
        );
    }

    #[test]
    fn job_seeds_are_stable_and_distinct() {
        assert_eq!(
            job_seed(1, "a", Emotion::Awe),
            job_seed(1, "a", Emotion::Awe)
        );
        assert_ne!(
            job_seed(1, "a", Emotion::Awe),
            job_seed(1, "a", Emotion::Fear)
        );
        assert_ne!(
            job_seed(1, "a", Emotion::Awe),
            job_seed(2, "a", Emotion::Awe)
        );
    }
}
