//! Participant-clustered bootstrap: whole participants are resampled with replacement, so the
//! interval reflects that one person's 100 answers are not 100 independent judgments.
//!
//! Each resample `b` draws from its own ChaCha8 stream (`seed`, stream `b`), so results are the
//! same whatever the number of threads.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::stats::quantile_sorted;

/// Per-participant counts for `groups` cells: `counts[p][2 g]` = reference chosen in group g,
/// `counts[p][2 g + 1]` = real trials in group g.
#[derive(Debug, Clone)]
pub struct ClusterCounts {
    /// Number of groups (cells) each participant has counts for.
    pub groups: usize,
    /// Flattened rows, one per participant, `2 * groups` entries each.
    pub counts: Vec<u32>,
}

impl ClusterCounts {
    /// Number of participants (clusters).
    pub fn participants(&self) -> usize {
        if self.groups == 0 {
            0
        } else {
            self.counts.len() / (2 * self.groups)
        }
    }
}

/// Draws `resamples` participant resamples and returns, per resample, the pooled share of each
/// group (NaN where the resample has no trial in that group): `out[b][g]`.
pub fn resample_shares(data: &ClusterCounts, resamples: usize, seed: u64) -> Vec<Vec<f64>> {
    let k = data.participants();
    let g2 = 2 * data.groups;
    (0..resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(b as u64 + 1);
            let mut acc = vec![0u64; g2];
            if k > 0 {
                for _ in 0..k {
                    let p = rng.gen_range(0..k);
                    let row = &data.counts[p * g2..(p + 1) * g2];
                    for (a, c) in acc.iter_mut().zip(row) {
                        *a += u64::from(*c);
                    }
                }
            }
            (0..data.groups)
                .map(|g| {
                    let n = acc[2 * g + 1];
                    if n == 0 {
                        f64::NAN
                    } else {
                        acc[2 * g] as f64 / n as f64
                    }
                })
                .collect()
        })
        .collect()
}

/// Percentile interval (type-7 quantiles at `alpha/2` and `1 - alpha/2`) of each group across
/// resamples, ignoring NaN resamples.
pub fn percentile_intervals(shares: &[Vec<f64>], groups: usize, alpha: f64) -> Vec<(f64, f64)> {
    (0..groups)
        .map(|g| {
            let mut v: Vec<f64> = shares
                .iter()
                .map(|s| s[g])
                .filter(|x| !x.is_nan())
                .collect();
            v.sort_by(f64::total_cmp);
            (
                quantile_sorted(&v, alpha / 2.0),
                quantile_sorted(&v, 1.0 - alpha / 2.0),
            )
        })
        .collect()
}

/// Generic clustered bootstrap of any statistic of a resampled list of cluster indices; used for
/// the Bradley-Terry intervals. Returns one value vector per resample.
pub fn resample_indices<T, F>(clusters: usize, resamples: usize, seed: u64, stat: F) -> Vec<T>
where
    T: Send,
    F: Fn(&[usize]) -> T + Sync,
{
    (0..resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(b as u64 + 1);
            let idx: Vec<usize> = (0..clusters).map(|_| rng.gen_range(0..clusters)).collect();
            stat(&idx)
        })
        .collect()
}
