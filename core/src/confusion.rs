//! 8x8 source-by-target matrices of each metric per method: the mean of a metric over the rows of
//! each (source emotion, target) cell, in EmoSet order.

use crate::score::ScoreRow;

/// A metric shown as a matrix: name, axis label, value range, extractor.
pub struct MatrixMetric {
    /// File-name part, e.g. `emr`.
    pub name: &'static str,
    /// Axis / colour-bar label.
    pub label: &'static str,
    /// Colour range.
    pub range: (f64, f64),
    /// The per-row value averaged in each cell.
    pub value: fn(&ScoreRow) -> f64,
}

/// The four Table-1 metrics as matrices.
pub const METRICS: [MatrixMetric; 4] = [
    MatrixMetric {
        name: "emr",
        label: "EMR %",
        range: (0.0, 100.0),
        value: |r| 100.0 * f64::from(u8::from(r.m.emr)),
    },
    MatrixMetric {
        name: "esr",
        label: "ESR %",
        range: (0.0, 100.0),
        value: |r| 100.0 * f64::from(u8::from(r.m.esr)),
    },
    MatrixMetric {
        name: "enrd",
        label: "ENRD (0-255)",
        range: (0.0, 60.0),
        value: |r| r.m.enrd,
    },
    MatrixMetric {
        name: "ess",
        label: "ESS (0-255)",
        range: (0.0, 60.0),
        value: |r| r.m.ess,
    },
];

/// Mean of `value` per (source emotion, target) in EmoSet order; NaN where there are no rows.
pub fn matrix(rows: &[&ScoreRow], value: fn(&ScoreRow) -> f64) -> Vec<Vec<f64>> {
    let mut sum = [[0f64; 8]; 8];
    let mut n = [[0usize; 8]; 8];
    for r in rows {
        if let Some(s) = r.source_emotion {
            let (i, j) = (s.emoset_index(), r.target.emoset_index());
            sum[i][j] += value(r);
            n[i][j] += 1;
        }
    }
    (0..8)
        .map(|i| {
            (0..8)
                .map(|j| {
                    if n[i][j] == 0 {
                        f64::NAN
                    } else {
                        sum[i][j] / n[i][j] as f64
                    }
                })
                .collect()
        })
        .collect()
}

/// The number of rows in each (source emotion, target) cell, in EmoSet order.
pub fn cell_counts(rows: &[&ScoreRow]) -> [[usize; 8]; 8] {
    let mut n = [[0usize; 8]; 8];
    for r in rows {
        if let Some(s) = r.source_emotion {
            n[s.emoset_index()][r.target.emoset_index()] += 1;
        }
    }
    n
}
