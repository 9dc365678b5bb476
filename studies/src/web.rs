//! Writes the web experiment page into a design folder: `index.html`, `experiment.js`,
//! `style.css` (copied from `studies/web/`, embedded in the binary) and `study.js`, which holds
//! the study settings and every participant's trial list. Loading the list from a script rather
//! than with `fetch` keeps the page working from `file://`.

use std::path::Path;

use super::design::{by_participant, Design, TrialRow};
use super::ingest::{Side, FIELD_SEP, TRIAL_SEP};
use super::{atomic_write, Result, StudyError};

/// The page, as shipped in `studies/web/`.
pub const INDEX_HTML: &str = include_str!("../web/index.html");
/// The page's script.
pub const EXPERIMENT_JS: &str = include_str!("../web/experiment.js");
/// The page's style sheet.
pub const STYLE_CSS: &str = include_str!("../web/style.css");

/// Encodes a participant's trials in the compact form the page and the MTurk `trials` input field
/// use (decoded by `ingest`): `trial|kind|source_id|source_emotion|target|left_method|right_method|left_image|right_image|correct_side`
/// per trial, joined with `;`.
pub fn encode_trials(trials: &[&TrialRow]) -> Result<String> {
    let mut parts = Vec::with_capacity(trials.len());
    for t in trials {
        let fields = [
            t.trial.to_string(),
            t.kind.name().to_string(),
            t.source_id.clone(),
            t.source_emotion
                .map(|e| e.name())
                .unwrap_or_default()
                .to_string(),
            t.target.name().to_string(),
            t.left_method.clone(),
            t.right_method.clone(),
            t.left_image.clone(),
            t.right_image.clone(),
            t.correct_side
                .map(Side::name)
                .unwrap_or_default()
                .to_string(),
        ];
        for f in &fields {
            if f.contains(FIELD_SEP) || f.contains(TRIAL_SEP) || f.contains('"') || f.contains('$')
            {
                return Err(StudyError::Design(format!(
                    "participant {} trial {}: value '{}' contains a reserved character (| ; \" $)",
                    t.participant, t.trial, f
                )));
            }
        }
        parts.push(fields.join(&FIELD_SEP.to_string()));
    }
    Ok(parts.join(&TRIAL_SEP.to_string()))
}

/// Writes the page and `study.js` into `out`.
pub fn write_page(design: &Design, out: &Path) -> Result<()> {
    let cfg = &design.study;
    let mut sets = serde_json::Map::new();
    for (pid, trials) in by_participant(&design.trials) {
        sets.insert(pid, serde_json::Value::String(encode_trials(&trials)?));
    }
    let study = serde_json::json!({
        "name": cfg.name,
        "question": cfg.question,
        "platform": cfg.platform.to_string(),
        "venue": cfg.venue,
        "image_base_url": cfg.image_base_url,
        "post_url": cfg.post_url,
        "completion_code": cfg.prolific.completion_code,
        "mturk_submit_url": cfg.mturk.submit_url,
        "sets": sets,
    });
    let js = format!(
        "/* Written by `emobench trials design`; do not edit (rerun the design instead). */\nwindow.EMOBENCH_STUDY = {};\n",
        serde_json::to_string(&study).map_err(|source| StudyError::Serialize {
            what: "study",
            source,
        })?
    );
    atomic_write(&out.join("study.js"), js.as_bytes())?;
    atomic_write(&out.join("index.html"), INDEX_HTML.as_bytes())?;
    atomic_write(&out.join("experiment.js"), EXPERIMENT_JS.as_bytes())?;
    atomic_write(&out.join("style.css"), STYLE_CSS.as_bytes())?;
    Ok(())
}

/// The page as one self-contained HTML document (style and script inlined), with `study_js`
/// placed where `study.js` would load. Used for the MTurk HTMLQuestion template.
pub fn inline_page(study_js: &str) -> String {
    INDEX_HTML
        .replace(
            "<link rel=\"stylesheet\" href=\"style.css\">",
            &format!("<style>\n{STYLE_CSS}</style>"),
        )
        .replace(
            "<script src=\"study.js\"></script>",
            &format!("<script>\n{study_js}</script>"),
        )
        .replace(
            "<script src=\"experiment.js\"></script>",
            &format!("<script>\n{EXPERIMENT_JS}</script>"),
        )
}

/// Draws an instructed-response attention-check image (320 x 320 PNG): `lines` of large text on a
/// plain background. The shipped pairs (`studies/checks/`) put "Choose this image" on the correct
/// image and "Do not choose this image" on the other, which makes the answer obvious to anyone
/// who looks, whatever emotion is named.
pub fn write_check_image(path: &Path, lines: &[&str], background: (u8, u8, u8)) -> Result<()> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    reports::plots::register_fonts();
    let err = |m: String| StudyError::Plot {
        path: path.to_path_buf(),
        message: m,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(super::io_err(d))?;
    }
    let root = BitMapBackend::new(path, (320, 320)).into_drawing_area();
    root.fill(&RGBColor(background.0, background.1, background.2))
        .map_err(|e| err(e.to_string()))?;
    let n = lines.len() as i32;
    for (i, l) in lines.iter().enumerate() {
        let y = 160 - (n - 1) * 24 + i as i32 * 48;
        root.draw(&Text::new(
            l.to_string(),
            (160, y),
            (reports::plots::FONT, 34.0)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))
}
