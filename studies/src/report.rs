//! `trials analyse` end to end: response files are ingested, cleaned and analysed
//! ([`analyse_files`]), then written as CSV tables, Markdown, figures and metadata.

use std::path::{Path, PathBuf};

use emobench_core::number::{shortest, shortest_or_empty};

use super::analysis::{analyse, AnalyseOptions, Analysis};
use super::cleaning::{apply_attention_rule, report};
use super::ingest::{ingest_files, Response};
use super::{atomic_write, write_csv, Result, StudyError};

/// Reads response files, cleans them and analyses them; writes everything into `out` when given.
pub fn analyse_files(
    files: &[PathBuf],
    opts: &AnalyseOptions,
    out: Option<&Path>,
    extra_inputs: &[PathBuf],
) -> Result<Analysis> {
    let (responses, log) = ingest_files(files, &opts.venue)?;
    let cleaned = apply_attention_rule(&responses, opts.max_check_errors);
    let cleaning = report(
        &log,
        &responses,
        &cleaned,
        opts.max_check_errors,
        &opts.reference,
    );
    let mut a = analyse(&cleaned.real, &cleaned.participants, cleaning, opts)?;
    if let Some(dir) = out {
        let mut inputs: Vec<PathBuf> = files.to_vec();
        inputs.extend_from_slice(extra_inputs);
        write_outputs(&mut a, &cleaned.real, dir, &inputs)?;
    }
    Ok(a)
}

fn write_outputs(
    a: &mut Analysis,
    real: &[Response],
    dir: &Path,
    inputs: &[PathBuf],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(super::io_err(dir))?;
    let mut outputs = Vec::new();
    let mut put = |p: PathBuf| outputs.push(p.display().to_string());

    let cj = serde_json::to_string_pretty(&a.cleaning).map_err(|source| StudyError::Serialize {
        what: "cleaning report",
        source,
    })?;
    atomic_write(&dir.join("cleaning.json"), cj.as_bytes())?;
    put(dir.join("cleaning.json"));
    atomic_write(
        &dir.join("cleaning.md"),
        a.cleaning.to_markdown().as_bytes(),
    )?;
    put(dir.join("cleaning.md"));
    super::ingest::write_tidy(&dir.join("responses_clean.csv"), real)?;
    put(dir.join("responses_clean.csv"));

    let header: Vec<String> = [
        "baseline",
        "subset",
        "venue",
        "participants",
        "trials",
        "reference_chosen",
        "preference",
        "mean_participant_share",
        "se_participants",
        "se_trials",
        "wilson_low",
        "wilson_high",
        "cp_low",
        "cp_high",
        "p_binomial",
        "p_holm",
        "boot_low",
        "boot_high",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows: Vec<Vec<String>> = a
        .preferences
        .iter()
        .map(|r| {
            vec![
                r.baseline.clone(),
                r.subset.clone(),
                r.venue.clone(),
                r.participants.to_string(),
                r.trials.to_string(),
                r.reference_chosen.to_string(),
                shortest_or_empty(r.preference),
                shortest_or_empty(r.mean_participant_share),
                shortest_or_empty(r.se_participants),
                shortest_or_empty(r.se_trials),
                shortest_or_empty(r.wilson_low),
                shortest_or_empty(r.wilson_high),
                shortest_or_empty(r.cp_low),
                shortest_or_empty(r.cp_high),
                shortest(r.p_binomial),
                shortest(r.p_holm),
                shortest_or_empty(r.boot_low),
                shortest_or_empty(r.boot_high),
            ]
        })
        .collect();
    super::write_records(&dir.join("preferences.csv"), &header, &rows)?;
    put(dir.join("preferences.csv"));

    let mrows: Vec<Vec<String>> = a
        .matrices
        .iter()
        .map(|c| {
            vec![
                c.baseline.clone(),
                c.source_emotion.clone(),
                c.target.clone(),
                c.trials.to_string(),
                c.reference_chosen.to_string(),
                shortest_or_empty(c.preference),
            ]
        })
        .collect();
    let mh: Vec<String> = [
        "baseline",
        "source_emotion",
        "target",
        "trials",
        "reference_chosen",
        "preference",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    super::write_records(&dir.join("matrices.csv"), &mh, &mrows)?;
    put(dir.join("matrices.csv"));
    write_csv(&dir.join("bradley_terry.csv"), &a.bradley_terry)?;
    put(dir.join("bradley_terry.csv"));
    write_csv(&dir.join("participants.csv"), &a.participants)?;
    put(dir.join("participants.csv"));

    let md = tables_markdown(a);
    atomic_write(&dir.join("report.md"), md.as_bytes())?;
    put(dir.join("report.md"));
    if a.summary.options.figures {
        for p in super::figures::draw_all(a, dir)? {
            put(p);
        }
    }
    a.summary.outputs = outputs;
    let sj = serde_json::to_string_pretty(&a.summary).map_err(|source| StudyError::Serialize {
        what: "summary",
        source,
    })?;
    atomic_write(&dir.join("summary.json"), sj.as_bytes())?;
    super::write_metadata(
        dir,
        "trials analyse",
        serde_json::to_value(&a.summary.options).map_err(|source| StudyError::Serialize {
            what: "options",
            source,
        })?,
        Some(a.summary.options.seed),
        inputs,
    )
}

fn pct(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{:.1}", 100.0 * v)
    }
}

/// The tables of the report as Markdown.
pub fn tables_markdown(a: &Analysis) -> String {
    let s = &a.summary;
    let mut out = format!(
        "# 2AFC preference for {}\n\nParticipants kept {} of {}; {} real trials analysed. Overall preference {}% (SE {} across participants, bootstrap {}-{}%, p = {:.3e}). ICC {:.3}; split-half r {:.3} (Spearman-Brown {:.3}, {} cells); mean left share {}%, {} kept participants side-biased at p < .05.\n\n",
        s.options.reference,
        s.participants_kept,
        s.participants_seen,
        s.trials_analysed,
        pct(s.preference),
        pct(s.se_participants),
        pct(s.boot_interval.0),
        pct(s.boot_interval.1),
        s.p_binomial,
        s.icc,
        s.split_half_r,
        s.split_half_spearman_brown,
        s.split_half_cells,
        pct(s.mean_left_share),
        s.side_biased_participants
    );
    out += "## Preferences (%)\n\n| baseline | subset | venue | participants | trials | preference | SE (participants) | SE (trials) | Wilson 95% | Clopper-Pearson 95% | bootstrap 95% | p | p (Holm) |\n|---|---|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|\n";
    for r in &a.preferences {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}-{} | {}-{} | {}-{} | {:.3e} | {:.3e} |\n",
            r.baseline,
            r.subset,
            r.venue,
            r.participants,
            r.trials,
            pct(r.preference),
            pct(r.se_participants),
            pct(r.se_trials),
            pct(r.wilson_low),
            pct(r.wilson_high),
            pct(r.cp_low),
            pct(r.cp_high),
            pct(r.boot_low),
            pct(r.boot_high),
            r.p_binomial,
            r.p_holm
        );
    }
    out += "\n## Bradley-Terry ranking\n\n| rank | method | log-strength | bootstrap 95% | P(preferred over reference) |\n|---:|---|---:|---|---:|\n";
    for r in &a.bradley_terry {
        out += &format!(
            "| {} | {} | {:.3} | {:.3} to {:.3} | {:.3} |\n",
            r.rank, r.method, r.log_strength, r.boot_low, r.boot_high, r.p_over_reference
        );
    }
    out
}
