//! The paper's study figures: Fig. 5 (preference per baseline with SE bars and the 50% chance
//! line), Fig. S7 (rows overall / to-positive / to-negative, columns venues), Fig. S8 (average
//! source-by-target preference matrix) and Fig. S9 (one matrix per baseline). Each is written as
//! PNG and SVG. Error bars are 1 SE across participants' own shares.

use std::path::{Path, PathBuf};

use super::analysis::Analysis;
use super::{Result, StudyError};
use emobench_core::emotion::Emotion;
use emobench_core::table1::Subset;
use reports::plots::{
    bar_chart, bar_grid, heatmap, heatmap_grid, BarChartSpec, BarSeries, ColorMap, HeatmapSpec,
    PlotError,
};

fn plot_err(e: PlotError) -> StudyError {
    match e {
        PlotError::Io { path, source } => StudyError::Io { path, source },
        PlotError::Draw { path, message } => StudyError::Plot { path, message },
        PlotError::Spec(m) => StudyError::Plot {
            path: PathBuf::new(),
            message: m,
        },
    }
}

fn groups(a: &Analysis) -> Vec<String> {
    let mut g: Vec<String> = Vec::new();
    for r in &a.preferences {
        if r.baseline != "all" && !g.contains(&r.baseline) {
            g.push(r.baseline.clone());
        }
    }
    g.push("all".into());
    g
}

fn panel(a: &Analysis, subset: &str, venue: &str, title: String) -> BarChartSpec {
    let gs = groups(a);
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for g in &gs {
        match a
            .preferences
            .iter()
            .find(|r| &r.baseline == g && r.subset == subset && r.venue == venue)
        {
            Some(r) => {
                values.push(100.0 * r.preference);
                errors.push(100.0 * r.se_participants);
            }
            None => {
                values.push(f64::NAN);
                errors.push(f64::NAN);
            }
        }
    }
    BarChartSpec {
        title,
        groups: gs,
        series: vec![BarSeries {
            name: "preference".into(),
            values,
            errors,
        }],
        x_label: "compared baseline".into(),
        y_label: format!("% choosing {}", a.summary.options.reference),
        y_range: (0.0, 100.0),
        reference_line: Some((50.0, "chance (50%)".into())),
        value_labels: Some(1),
        size: (900, 560),
    }
}

fn matrix_spec(a: &Analysis, baseline: &str, title: String) -> HeatmapSpec {
    let mut values = vec![vec![f64::NAN; 8]; 8];
    let (mut k, mut n) = (0u64, 0u64);
    for c in a.matrices.iter().filter(|c| c.baseline == baseline) {
        let (Ok(s), Ok(t)) = (
            c.source_emotion.parse::<Emotion>(),
            c.target.parse::<Emotion>(),
        ) else {
            continue;
        };
        if c.trials > 0 {
            values[s.emoset_index()][t.emoset_index()] = 100.0 * c.preference;
        }
        k += c.reference_chosen;
        n += c.trials;
    }
    let names: Vec<String> = Emotion::ALL.iter().map(|e| e.to_string()).collect();
    HeatmapSpec {
        title,
        subtitle: if n > 0 {
            format!(
                "average preference {:.1}% ({} trials)",
                100.0 * k as f64 / n as f64,
                n
            )
        } else {
            "no trials with a known source emotion".into()
        },
        values,
        row_labels: names.clone(),
        col_labels: names,
        row_title: "source emotion".into(),
        col_title: "target emotion".into(),
        colorbar_label: "% ref.".into(),
        range: (0.0, 100.0),
        decimals: 0,
        colormap: ColorMap::Diverging,
        cell: (84, 44),
    }
}

/// Draws all figures into `dir`; returns the files written.
pub fn draw_all(a: &Analysis, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut venues: Vec<String> = Vec::new();
    for r in &a.preferences {
        if !venues.contains(&r.venue) {
            venues.push(r.venue.clone());
        }
    }
    let main_venue = if venues.iter().any(|v| v == "all") {
        "all".to_string()
    } else {
        venues.first().cloned().unwrap_or_default()
    };
    let reference = &a.summary.options.reference;
    let fig5 = panel(
        a,
        "overall",
        &main_venue,
        format!("Preference for {reference} over each baseline (mean ± SE)"),
    );
    out.extend(bar_chart(&fig5, &dir.join("fig5_preferences")).map_err(plot_err)?);

    let panel_venues: Vec<&String> = venues.iter().filter(|v| v.as_str() != "all").collect();
    let mut panels = Vec::new();
    for s in Subset::STUDY.map(Subset::name) {
        for v in &panel_venues {
            panels.push(panel(a, s, v, format!("{s}, {v}")));
        }
    }
    out.extend(
        bar_grid(
            &panels,
            panel_venues.len().max(1),
            &format!("Preference for {reference} by direction and venue (mean ± SE)"),
            (760, 460),
            &dir.join("figS7_breakdown"),
        )
        .map_err(plot_err)?,
    );

    out.extend(
        heatmap(
            &matrix_spec(
                a,
                "all",
                format!("{reference} vs all baselines: % choosing {reference}"),
            ),
            &dir.join("figS8_matrix_average"),
        )
        .map_err(plot_err)?,
    );
    let per: Vec<HeatmapSpec> = groups(a)
        .iter()
        .filter(|g| g.as_str() != "all")
        .map(|g| matrix_spec(a, g, format!("vs {g}")))
        .collect();
    if !per.is_empty() {
        out.extend(
            heatmap_grid(
                &per,
                3,
                &format!("% choosing {reference}, per baseline (rows: source, columns: target)"),
                &dir.join("figS9_matrices_per_baseline"),
            )
            .map_err(plot_err)?,
        );
    }
    Ok(out)
}
