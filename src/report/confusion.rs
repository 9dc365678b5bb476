//! 8x8 source-by-target matrices of each metric per method, as CSV and heatmaps.

use std::path::{Path, PathBuf};

use crate::emotion::Emotion;
use crate::plots::{heatmap, ColorMap, HeatmapSpec};
use crate::score::ScoreResult;

use super::{write_text, ReportError};

/// A metric shown as a matrix: name, axis label, value range, extractor.
struct MatrixMetric {
    name: &'static str,
    label: &'static str,
    range: (f64, f64),
    value: fn(&crate::score::ScoreRow) -> f64,
}

const METRICS: [MatrixMetric; 4] = [
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
pub fn matrix(
    rows: &[&crate::score::ScoreRow],
    value: fn(&crate::score::ScoreRow) -> f64,
) -> Vec<Vec<f64>> {
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

/// Writes `<dir>/<method>_<metric>.{csv,png,svg}` for every method and metric.
pub fn write_confusion(
    dir: &Path,
    result: &ScoreResult,
    notes: &[String],
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    let names: Vec<String> = Emotion::ALL.iter().map(|e| e.name().to_string()).collect();
    for (method, rows) in crate::score::by_method(&result.rows) {
        for mm in &METRICS {
            let m = matrix(&rows, mm.value);
            let mut csv: String = notes.iter().map(|n| format!("# {n}\n")).collect();
            csv.push_str(&format!("source\\target,{}\n", names.join(",")));
            for (i, row) in m.iter().enumerate() {
                let cells: Vec<String> = row
                    .iter()
                    .map(|v| {
                        if v.is_nan() {
                            String::new()
                        } else {
                            v.to_string()
                        }
                    })
                    .collect();
                csv.push_str(&format!("{},{}\n", names[i], cells.join(",")));
            }
            let stem = dir.join(format!("{method}_{}", mm.name));
            let p = stem.with_extension("csv");
            write_text(&p, &csv)?;
            written.push(p);
            let spec = HeatmapSpec {
                title: format!("{method}: {} by source and target emotion", mm.label),
                subtitle: notes.first().cloned().unwrap_or_default(),
                values: m,
                row_labels: names.clone(),
                col_labels: names.clone(),
                row_title: "source emotion".into(),
                col_title: "target emotion".into(),
                colorbar_label: mm.label.into(),
                range: mm.range,
                decimals: 1,
                colormap: ColorMap::Viridis,
                ..Default::default()
            };
            let files = heatmap(&spec, &stem).map_err(|e| ReportError {
                path: stem.clone(),
                message: e.to_string(),
            })?;
            written.extend(files);
        }
    }
    Ok(written)
}
