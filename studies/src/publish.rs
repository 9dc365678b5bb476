//! Writes a design folder: `trials.csv`, `images.csv`, `images/`, `design.json`, the web page,
//! the crowd manifests and `metadata.json`.

use std::path::Path;

use super::config::Study;
use super::design::{plan_design, Design, DesignInputs};
use super::{atomic_write, io_err, write_csv, write_metadata, Result, StudyError};

/// Builds the design from the run folders and the study ([`plan_design`]) and writes the design
/// folder `inputs.out`. Images already there (same content, same name) are not rewritten.
pub fn make_design(study: &Study, inputs: &DesignInputs) -> Result<Design> {
    let plan = plan_design(study, inputs)?;
    let out = &inputs.out;
    for img in &plan.images {
        let dest = out.join(&img.file);
        if !dest.is_file() {
            let src = Path::new(&img.original);
            let bytes = std::fs::read(src).map_err(io_err(src))?;
            atomic_write(&dest, &bytes)?;
        }
    }
    write_csv(&out.join("trials.csv"), &plan.design.trials)?;
    write_csv(&out.join("images.csv"), &plan.images)?;
    let json =
        serde_json::to_string_pretty(&plan.design).map_err(|source| StudyError::Serialize {
            what: "design",
            source,
        })?;
    atomic_write(&out.join("design.json"), json.as_bytes())?;
    super::web::write_page(&plan.design, out)?;
    super::manifests::write_manifests(&plan.design, out)?;
    write_metadata(
        out,
        "trials design",
        serde_json::json!({
            "runs": inputs.runs.display().to_string(),
            "study": study.path.display().to_string(),
            "out": out.display().to_string(),
        }),
        Some(study.config.seed),
        &plan.inputs,
    )?;
    Ok(plan.design)
}
