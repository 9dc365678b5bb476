//! Writes the 8x8 source-by-target matrices of each metric per method (computed by
//! `emobench_core::confusion`) as CSV and heatmaps.

use std::path::{Path, PathBuf};

use crate::plots::{heatmap, ColorMap, HeatmapSpec};
use emobench_core::confusion::{matrix, METRICS};
use emobench_core::emotion::Emotion;
use emobench_core::number::shortest_or_empty;
use emobench_core::score::ScoreResult;

use super::{write_text, ReportError, ReportNotes};

/// Writes `<dir>/<method>_<metric>.{csv,png,svg}` for every method and metric.
pub fn write_confusion(
    dir: &Path,
    result: &ScoreResult,
    notes: &ReportNotes,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    let names: Vec<String> = Emotion::ALL.iter().map(|e| e.name().to_string()).collect();
    for (method, rows) in emobench_core::score::by_method(&result.rows) {
        for mm in &METRICS {
            let m = matrix(&rows, mm.value);
            // The last column names the predictor, so a matrix read alone cannot pass for a
            // trained classifier's when it is the stand-in's.
            let mut csv = format!("source\\target,{},predictor\n", names.join(","));
            for (i, row) in m.iter().enumerate() {
                let cells: Vec<String> = row.iter().map(|v| shortest_or_empty(*v)).collect();
                csv.push_str(&format!(
                    "{},{},{}\n",
                    names[i],
                    cells.join(","),
                    notes.predictor
                ));
            }
            let stem = dir.join(format!("{method}_{}", mm.name));
            let p = stem.with_extension("csv");
            write_text(&p, &csv)?;
            written.push(p);
            let spec = HeatmapSpec {
                title: format!("{method}: {} by source and target emotion", mm.label),
                subtitle: notes.lines.first().cloned().unwrap_or_default(),
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
            let files = heatmap(&spec, &stem)?;
            written.extend(files);
        }
    }
    Ok(written)
}
