//! The iteration ablation's files (the paper's Fig. S11): `iterations.csv` (one row per cap,
//! subset and method), the four metrics against the cap as `iterations.{png,svg}`, and
//! `iterations.json`, what produced them.

use std::path::{Path, PathBuf};

use serde::Serialize;

use emobench_core::table1::{Subset, Summary};

use crate::plots::lines::padded_range;
use crate::plots::{line_grid, LineChartSpec, LineSeries, PlotError};
use crate::{write_json, write_text, ReportError};

/// `iterations.csv`: header first, then for each cap (ascending) its summaries as given
/// (subsets in report order, methods within). Floats in shortest round-trip form.
pub fn iterations_csv(by_cap: &[(usize, Vec<Summary>)]) -> String {
    let mut s = String::from("cap,subset,method,n,emr,esr,enrd,ess,ssim,l1\n");
    for (cap, summaries) in by_cap {
        for m in summaries {
            s.push_str(&format!(
                "{cap},{},{},{},{},{},{},{},{},{}\n",
                m.subset.name(),
                m.method,
                m.n,
                m.emr,
                m.esr,
                m.enrd,
                m.ess,
                m.ssim,
                m.l1
            ));
        }
    }
    s
}

/// A panel: title, y axis title, the value plotted.
type Panel = (&'static str, &'static str, fn(&Summary) -> f64);

/// The four panels, in the paper's order.
const METRICS: [Panel; 4] = [
    ("EMR", "EMR %", |s| s.emr),
    ("ESR", "ESR %", |s| s.esr),
    ("ENRD", "ENRD (0-255)", |s| s.enrd),
    ("ESS", "ESS (0-255)", |s| s.ess),
];

/// One line per (method, subset) that has rows: the subset's name, prefixed by the method's
/// when there are several methods.
fn series_keys(by_cap: &[(usize, Vec<Summary>)]) -> Vec<(String, Subset)> {
    let mut keys: Vec<(String, Subset)> = Vec::new();
    for subset in Subset::ALL {
        for (_, summaries) in by_cap {
            for m in summaries.iter().filter(|m| m.subset == subset) {
                if !keys.iter().any(|(k, s)| *k == m.method && *s == subset) {
                    keys.push((m.method.clone(), subset));
                }
            }
        }
    }
    keys
}

/// Draws EMR, ESR, ENRD and ESS against the cap (2 x 2 panels) to `<stem>.png` and `<stem>.svg`.
pub fn iterations_figure(
    by_cap: &[(usize, Vec<Summary>)],
    cap_option: &str,
    stem: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let keys = series_keys(by_cap);
    if keys.is_empty() {
        return Err(PlotError::Spec("no scored outputs to plot".into()));
    }
    let several = keys.iter().any(|(m, _)| *m != keys[0].0);
    let caps: Vec<f64> = by_cap.iter().map(|(c, _)| *c as f64).collect();
    let lo = caps.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = caps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let panels: Vec<LineChartSpec> = METRICS
        .iter()
        .map(|(title, y_label, value)| {
            let series: Vec<LineSeries> = keys
                .iter()
                .map(|(method, subset)| LineSeries {
                    name: if several {
                        format!("{method} {}", subset.name())
                    } else {
                        subset.name().to_string()
                    },
                    points: by_cap
                        .iter()
                        .map(|(cap, summaries)| {
                            let y = summaries
                                .iter()
                                .find(|m| m.method == *method && m.subset == *subset)
                                .map_or(f64::NAN, value);
                            (*cap as f64, y)
                        })
                        .collect(),
                })
                .collect();
            let y_range = if y_label.ends_with('%') {
                (0.0, 100.0)
            } else {
                padded_range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)))
            };
            LineChartSpec {
                title: title.to_string(),
                series,
                x_label: format!("cap ({cap_option})"),
                y_label: y_label.to_string(),
                x_range: (lo - 0.5, hi + 0.5),
                y_range,
                integer_x: true,
                ..LineChartSpec::default()
            }
        })
        .collect();
    line_grid(
        &panels,
        2,
        &format!("Metrics against the critic's iteration cap ({cap_option})"),
        (640, 420),
        stem,
    )
}

/// Writes `iterations.csv`, `iterations.png`, `iterations.svg` and `iterations.json` (the
/// metadata) into `out`; returns the paths written.
pub fn write_iterations_report<M: Serialize>(
    out: &Path,
    by_cap: &[(usize, Vec<Summary>)],
    cap_option: &str,
    metadata: &M,
) -> Result<Vec<PathBuf>, ReportError> {
    let csv = out.join("iterations.csv");
    write_text(&csv, &iterations_csv(by_cap))?;
    let mut written = vec![csv];
    written.extend(iterations_figure(
        by_cap,
        cap_option,
        &out.join("iterations"),
    )?);
    let meta = out.join("iterations.json");
    write_json(&meta, metadata)?;
    written.push(meta);
    Ok(written)
}
