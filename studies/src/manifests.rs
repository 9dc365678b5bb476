//! Crowd-platform manifests from the same trial table as the web page:
//! - `mturk/batch_input.csv` (one row per trial set: `set`, `trials`) and `mturk/template.html`,
//!   an HTMLQuestion layout whose `${set}` and `${trials}` MTurk fills from the batch CSV; the page
//!   posts `assignmentId`, `choice_NNN` and `rt_NNN` to the configured submit URL, which come back
//!   as `Answer.choice_NNN` / `Answer.rt_NNN` in the batch results that `trials analyse` reads;
//! - `mturk/external_question.xml` for hosting the page yourself (ExternalQuestion);
//! - `prolific/study.md`, the study description and URL to paste into Prolific.

use std::path::Path;

use super::config::Platform;
use super::design::{by_participant, Design};
use super::web::{encode_trials, inline_page};
use super::{atomic_write, write_records, Result, StudyError};

/// Writes the MTurk and Prolific manifests into `out/mturk` and `out/prolific`.
pub fn write_manifests(design: &Design, out: &Path) -> Result<()> {
    let cfg = &design.study;
    let header = vec!["set".to_string(), "trials".to_string()];
    let mut rows = Vec::new();
    for (pid, trials) in by_participant(&design.trials) {
        rows.push(vec![pid, encode_trials(&trials)?]);
    }
    write_records(&out.join("mturk/batch_input.csv"), &header, &rows)?;

    let inline = serde_json::json!({
        "question": cfg.question,
        "image_base_url": cfg.image_base_url,
        "submit_url": cfg.mturk.submit_url,
        "post_url": cfg.post_url,
    });
    let inline_text = serde_json::to_string(&inline).map_err(|source| StudyError::Serialize {
        what: "inline page data",
        source,
    })?;
    // MTurk replaces ${set} and ${trials} with the batch row's values before serving the page.
    let study_js = format!(
        "var EMOBENCH_INLINE_CONFIG = {inline_text};\nwindow.EMOBENCH_INLINE = {{ set: \"${{set}}\", trials: \"${{trials}}\", image_base_url: EMOBENCH_INLINE_CONFIG.image_base_url, question: EMOBENCH_INLINE_CONFIG.question, submit_url: EMOBENCH_INLINE_CONFIG.submit_url, post_url: EMOBENCH_INLINE_CONFIG.post_url }};\nwindow.EMOBENCH_STUDY = {{ platform: \"mturk\", venue: {venue}, question: EMOBENCH_INLINE_CONFIG.question, post_url: EMOBENCH_INLINE_CONFIG.post_url }};\n",
        venue = serde_json::to_string(&cfg.venue).map_err(|source| StudyError::Serialize {
            what: "venue",
            source,
        })?
    );
    let page = inline_page(&study_js);
    atomic_write(&out.join("mturk/template.html"), page.as_bytes())?;

    let base = if cfg.image_base_url.is_empty() {
        "https://YOUR-HOST/PATH/".to_string()
    } else {
        cfg.image_base_url.clone()
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- One HIT per trial set: replace SET with a value of the `set` column of batch_input.csv. The page must be served over HTTPS from the folder holding index.html, study.js and images/. -->\n<ExternalQuestion xmlns=\"http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd\">\n  <ExternalURL>{base}index.html?platform=mturk&amp;set=SET</ExternalURL>\n  <FrameHeight>0</FrameHeight>\n</ExternalQuestion>\n"
    );
    atomic_write(&out.join("mturk/external_question.xml"), xml.as_bytes())?;

    let n_sets = rows.len();
    let per = design.summary.real_trials_per_participant + design.summary.checks_per_participant;
    let minutes = cfg
        .prolific
        .estimated_minutes
        .unwrap_or_else(|| ((per as f64 * 4.0) / 60.0).ceil() as u32 + 2);
    let mut md = format!(
        "# {name}: Prolific study\n\n## Description for participants\n\nYou will see {per} pairs of images, one pair at a time, each with the name of an emotion. For each pair, choose the image that more strongly evokes that emotion (mouse or keyboard). A few pairs check attention. It takes about {minutes} minutes.\n\n## Settings\n\n- Study URL (host this design folder over HTTPS): `{base}index.html?platform=prolific&PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}&SESSION_ID={{{{%SESSION_ID%}}}}`\n- Completion: redirect with code `{code}` (the page redirects to `https://app.prolific.com/submissions/complete?cc={code}`).\n- Places: {n_sets} (one per trial set).\n- Estimated time: {minutes} minutes.\n",
        name = cfg.name,
        code = if cfg.prolific.completion_code.is_empty() { "SET-A-CODE-IN-STUDY.TOML" } else { &cfg.prolific.completion_code },
    );
    if !cfg.prolific.reward.is_empty() {
        md += &format!("- Reward: {}\n", cfg.prolific.reward);
    }
    md += "\nA participant's trial set is chosen from their PROLIFIC_PID by a fixed hash, so a reload shows the same trials; sets are therefore balanced only on average. For exact balance, give each participant a link with `&set=<id>` (ids in `trials.csv`).\n\nThe page offers the responses as a CSV download and, if `post_url` is set in study.toml, POSTs the same CSV there. Feed the files to `emobench trials analyse --design <this folder> --responses FILE...`.\n";
    if cfg.platform == Platform::Prolific && cfg.prolific.completion_code.is_empty() {
        md += "\n**Warning:** study.toml has no `[prolific] completion_code`.\n";
    }
    atomic_write(&out.join("prolific/study.md"), md.as_bytes())?;
    Ok(())
}
