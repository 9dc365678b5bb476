//! One library call per command: each composes the core's computation with the writers of
//! `reports`, so the command line only parses, validates and prints.

use std::path::{Path, PathBuf};

use anyhow::Context;
use emobench_core::edit::{run_edit, EditConfig, EditSummary};
use emobench_core::imgproc::resize::ResizeFilter;
use emobench_core::predictor::{Prediction, Predictor};
use emobench_core::score::{
    load_for_metrics, report_notes, score, ScoreConfig, ScoreMetadata, ScoreResult,
};

/// Every method this build can run: the baselines, then EmoEditor.
pub fn registry() -> emobench_core::edit::registry::Registry {
    let mut r = baselines::registry::builtin();
    // EmoEditor's name is not a baseline's, so registering cannot collide.
    let _ = r.register(emoeditor::entry());
    r
}

/// `emobench edit`: runs `cfg` with the method it names.
pub fn edit(cfg: &EditConfig) -> anyhow::Result<EditSummary> {
    Ok(run_edit(cfg, &registry())?)
}

/// `emobench score`: scores `cfg` with `predictor` and writes the report into `out`; returns the
/// result and the notes printed at the top of the report.
pub fn score_and_report(
    cfg: &ScoreConfig,
    predictor: &Predictor,
    out: &Path,
) -> anyhow::Result<(ScoreResult, Vec<String>)> {
    let result = score(cfg, predictor)?;
    let notes = reports::ReportNotes {
        lines: report_notes(predictor, cfg),
        predictor: predictor.source().label(),
    };
    let meta = ScoreMetadata::new(cfg, predictor, &result)
        .with_context(|| cfg.sources.display().to_string())?;
    reports::write_score_report(out, &result, &notes, &meta)?;
    Ok((result, notes.lines))
}

/// `emobench report`: the HTML page of `inputs` in `out`.
pub fn report(
    inputs: &reports::site::SiteInputs,
    out: &Path,
) -> anyhow::Result<reports::site::SiteSummary> {
    let p = emobench_core::provenance::Provenance::current();
    let line = format!(
        "Made by {} {} (commit {}): {} {}",
        p.tool,
        p.version,
        p.git_commit,
        p.tool,
        p.command.join(" ")
    );
    Ok(reports::site::build_site(inputs, out, line)?)
}

/// One image's prediction from `emobench predict`, and where its Grad-CAM overlay went.
#[derive(Debug)]
pub struct Predicted {
    /// The image.
    pub image: PathBuf,
    /// The predictor's distribution and argmax.
    pub prediction: Prediction,
    /// The overlay written, when asked for.
    pub overlay: Option<PathBuf>,
}

/// `emobench predict`: the predictor's distribution for each image, and with `cam_out` a Grad-CAM
/// overlay `<stem>_gradcam.png` per image in that folder.
pub fn predict(
    predictor: &Predictor,
    filter: ResizeFilter,
    images: &[PathBuf],
    cam_out: Option<&Path>,
) -> anyhow::Result<Vec<Predicted>> {
    let mut out = Vec::with_capacity(images.len());
    for path in images {
        let img = load_for_metrics(path, filter)?;
        let (prediction, cam) = predictor
            .predict_with_cam(&[&img])?
            .pop()
            .context("predictor returned nothing")?;
        let overlay = match cam_out {
            Some(dir) => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into());
                let file = dir.join(format!("{stem}_gradcam.png"));
                emobench_core::image_io::save_png_atomic(
                    &file,
                    &reports::overlay::cam_overlay(&img, &cam, 0.5),
                )?;
                Some(file)
            }
            None => None,
        };
        out.push(Predicted {
            image: path.clone(),
            prediction,
            overlay,
        });
    }
    Ok(out)
}

/// `emobench iterations`: derives and scores every cap of `cfg` from its runs, writes the
/// ablation's files into `out` and, with `write_runs`, each cap's run folder under
/// `out/runs/cap-<k>/`; returns the result and the report notes.
pub fn iterations_and_report(
    cfg: &emoeditor::iterations::IterationsConfig,
    predictor: &Predictor,
    out: &Path,
    write_runs: bool,
) -> anyhow::Result<(emoeditor::iterations::IterationsResult, Vec<String>)> {
    use emoeditor::iterations::{iterations, write_derived_runs, IterationsMetadata, CAP_OPTION};
    let result = iterations(cfg, predictor)?;
    let runs_dir = out.join("runs");
    if write_runs {
        write_derived_runs(&result, &runs_dir)?;
    }
    let meta = IterationsMetadata::new(cfg, predictor, &result, write_runs.then_some(&*runs_dir))
        .with_context(|| cfg.score.sources.display().to_string())?;
    reports::iterations::write_iterations_report(out, &result.by_cap, CAP_OPTION, &meta)?;
    Ok((result, report_notes(predictor, &cfg.score)))
}
