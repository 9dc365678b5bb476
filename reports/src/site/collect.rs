//! Reads what `score`, `edit`, `trials analyse` and `iterations` wrote into the page's model;
//! nothing is written here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use emobench_core::emotion::Emotion;
use emobench_core::runs::{method_folders, output_path};
use emobench_core::sources::read_sources;
use emobench_core::table1::PAPER_TABLE1;

use super::error::SiteError;
use super::model::{
    Asset, CsvTable, Gallery, GalleryCell, GalleryRow, IterationsSection, RunRecord, ScoreLine,
    ScoreSection, Site, SiteInputs, StudySection, TableRow, Trace, TracePass,
};

/// The study's figures, in the paper's order, with their captions.
const STUDY_FIGURES: [(&str, &str); 4] = [
    (
        "fig5_preferences",
        "Fig. 5: preference for the reference method against each baseline",
    ),
    (
        "figS7_breakdown",
        "Fig. S7: preferences by subset and venue",
    ),
    (
        "figS8_matrix_average",
        "Fig. S8: preference by source and target emotion, averaged over baselines",
    ),
    (
        "figS9_matrices_per_baseline",
        "Fig. S9: preference by source and target emotion, per baseline",
    ),
];

/// Characters allowed in element ids and site paths built from names; other characters become
/// `_` (method names and source ids are restricted to safe characters already).
pub(crate) fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The id of a per-image score row.
fn score_anchor(section: &str, method: &str, source: &str, target: &str) -> String {
    format!(
        "score-{}-{}-{}-{}",
        slug(section),
        slug(method),
        slug(source),
        slug(target)
    )
}

fn read_text(path: &Path) -> Result<String, SiteError> {
    std::fs::read_to_string(path).map_err(|source| SiteError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json(path: &Path) -> Result<Value, SiteError> {
    serde_json::from_str(&read_text(path)?).map_err(|source| SiteError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_csv(path: &Path) -> Result<CsvTable, SiteError> {
    let err = |source| SiteError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut r = csv::Reader::from_path(path).map_err(err)?;
    let header = r
        .headers()
        .map_err(err)?
        .iter()
        .map(str::to_string)
        .collect();
    let rows = r
        .records()
        .map(|rec| rec.map(|rec| rec.iter().map(str::to_string).collect()))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    Ok(CsvTable { header, rows })
}

fn files_in(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, SiteError> {
    let rd = std::fs::read_dir(dir).map_err(|source| SiteError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == extension))
        .collect();
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Collects the page's model; `provenance` says what is building it.
pub(crate) fn collect(inputs: &SiteInputs, provenance: String) -> Result<Site, SiteError> {
    let mut site = Site {
        provenance,
        ..Site::default()
    };
    for (i, dir) in inputs.scores.iter().enumerate() {
        let section = score_section(dir, i, &mut site.assets)?;
        if section.stand_in {
            site.stand_ins.push(format!(
                "scores in {}: {}",
                section.label,
                section.notes.first().cloned().unwrap_or_default()
            ));
        }
        site.scores.push(section);
    }
    if let Some(runs) = &inputs.runs {
        let sources = sources_table(inputs, runs)?;
        let (gallery, traces) = gallery(
            runs,
            &sources,
            &site.scores,
            inputs.thumbnail,
            &mut site.assets,
        )?;
        site.gallery = Some(gallery);
        site.traces = traces;
        site.runs = run_records(runs, &mut site.assets)?;
        for r in &site.runs {
            for (role, path, _, stand_in) in &r.weights {
                if *stand_in {
                    site.stand_ins.push(format!(
                        "run {}: the {role} ({path}) is a stand-in",
                        r.method
                    ));
                }
            }
        }
    }
    if let Some(dir) = &inputs.study {
        site.study = Some(study_section(dir, &mut site.assets)?);
    }
    for (i, dir) in inputs.iterations.iter().enumerate() {
        site.iterations
            .push(iterations_section(dir, i, &mut site.assets)?);
    }
    Ok(site)
}

fn score_section(
    dir: &Path,
    index: usize,
    assets: &mut Vec<Asset>,
) -> Result<ScoreSection, SiteError> {
    let missing = |what: &str| SiteError::Missing {
        flag: "--scores",
        path: dir.to_path_buf(),
        what: what.into(),
        writer: "score",
    };
    for f in ["table1.json", "report.json", "scores.csv"] {
        if !dir.join(f).is_file() {
            return Err(missing(f));
        }
    }
    let label = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let slug = format!(
        "{}{}",
        slug(&label),
        if index == 0 {
            String::new()
        } else {
            format!("-{index}")
        }
    );
    let table1 = read_json(&dir.join("table1.json"))?;
    let report = read_json(&dir.join("report.json"))?;
    let notes = table1["notes"]
        .as_array()
        .map(|a| a.iter().map(str_of).collect())
        .unwrap_or_default();
    let stand_in = report["predictor"]["stand_in"].as_bool().unwrap_or(false);
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let table = table1["measured"]
        .as_array()
        .ok_or_else(|| missing("table1.json: measured"))?
        .iter()
        .map(|r| TableRow {
            subset: str_of(&r["subset"]),
            method: str_of(&r["method"]),
            n: r["n"].as_u64(),
            emr: num(&r["emr"]),
            esr: num(&r["esr"]),
            enrd: num(&r["enrd"]),
            ess: num(&r["ess"]),
            ssim: r["ssim"].as_f64(),
            l1: r["l1"].as_f64(),
        })
        .collect();
    let paper = PAPER_TABLE1
        .iter()
        .map(|p| TableRow {
            subset: "cross-valence".into(),
            method: format!("{} ({})", p.paper_name, p.method),
            n: Some(2016),
            emr: p.emr,
            esr: p.esr,
            enrd: p.enrd,
            ess: p.ess,
            ssim: None,
            l1: None,
        })
        .collect();
    let base = format!("scores/{slug}");
    let mut files = Vec::new();
    for f in [
        "scores.csv",
        "missing.csv",
        "table1.csv",
        "table1.md",
        "table1.tex",
        "table1.json",
        "report.json",
    ] {
        if dir.join(f).is_file() {
            let to = format!("{base}/{f}");
            assets.push(Asset {
                from: dir.join(f),
                to: to.clone(),
                thumbnail: None,
            });
            files.push((f.to_string(), to));
        }
    }
    let mut confusion = Vec::new();
    let cdir = dir.join("confusion");
    if cdir.is_dir() {
        for png in files_in(&cdir, "png")? {
            let stem = png
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (method, metric) = stem.rsplit_once('_').unwrap_or((stem.as_str(), ""));
            let to = format!("{base}/confusion/{}", file_name(&png));
            confusion.push((method.to_string(), metric.to_uppercase(), to.clone()));
            assets.push(Asset {
                from: png,
                to,
                thumbnail: None,
            });
        }
    }
    let csv = read_csv(&dir.join("scores.csv"))?;
    let col = |name: &str| csv.header.iter().position(|h| h == name);
    let cols: Vec<Option<usize>> = [
        "method",
        "source_id",
        "source_emotion",
        "target",
        "p_gen_target",
        "argmax_gen",
        "emr",
        "esr",
        "enrd",
        "ess",
        "ssim",
        "l1",
    ]
    .iter()
    .map(|c| col(c))
    .collect();
    if cols[..4].iter().any(Option::is_none) {
        return Err(missing(
            "scores.csv: method, source_id, source_emotion, target columns",
        ));
    }
    let rows = csv
        .rows
        .iter()
        .map(|r| {
            let get = |i: usize| cols[i].and_then(|c| r.get(c)).cloned().unwrap_or_default();
            ScoreLine {
                method: get(0),
                source_id: get(1),
                source_emotion: get(2),
                target: get(3),
                p_gen_target: get(4),
                argmax_gen: get(5),
                emr: get(6),
                esr: get(7),
                enrd: get(8),
                ess: get(9),
                ssim: get(10),
                l1: get(11),
            }
        })
        .collect();
    Ok(ScoreSection {
        label,
        slug,
        notes,
        stand_in,
        report_json: serde_json::to_string_pretty(&report).unwrap_or_default(),
        files,
        table,
        paper,
        confusion,
        rows,
    })
}

/// The sources table: `--sources`, else the one the first score report names, else
/// `sources.csv` beside the runs folder.
fn sources_table(inputs: &SiteInputs, runs: &Path) -> Result<PathBuf, SiteError> {
    if let Some(p) = &inputs.sources {
        return Ok(p.clone());
    }
    for dir in &inputs.scores {
        if let Ok(report) = read_json(&dir.join("report.json")) {
            if let Some(p) = report["sources"]["path"].as_str() {
                if Path::new(p).is_file() {
                    return Ok(PathBuf::from(p));
                }
            }
        }
    }
    let beside = runs.parent().map(|p| p.join("sources.csv"));
    match beside {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(SiteError::NoSources {
            runs: runs.to_path_buf(),
        }),
    }
}

fn gallery(
    runs: &Path,
    sources: &Path,
    scores: &[ScoreSection],
    thumbnail: u32,
    assets: &mut Vec<Asset>,
) -> Result<(Gallery, Vec<Trace>), SiteError> {
    let table = read_sources(sources).map_err(|source| SiteError::Sources {
        path: sources.to_path_buf(),
        source,
    })?;
    let methods = method_folders(runs).map_err(|source| SiteError::Read {
        path: runs.to_path_buf(),
        source,
    })?;
    // Images link to the first score section's rows.
    let scored: HashMap<(String, String, String), String> = scores
        .first()
        .map(|s| {
            s.rows
                .iter()
                .map(|r| {
                    (
                        (r.method.clone(), r.source_id.clone(), r.target.clone()),
                        score_anchor(&s.slug, &r.method, &r.source_id, &r.target),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut traces = Vec::new();
    for s in &table {
        let mut source_image = None;
        for target in Emotion::ALL {
            let mut cells = Vec::with_capacity(methods.len());
            for m in &methods {
                let p = output_path(&runs.join(m), &s.id, target);
                if !p.is_file() {
                    cells.push(None);
                    continue;
                }
                let image = format!("img/{}/{}/{}.jpg", slug(m), slug(&s.id), target.name());
                assets.push(Asset {
                    from: p.clone(),
                    to: image.clone(),
                    thumbnail: Some(thumbnail),
                });
                let trace_path = p.with_extension("trace.json");
                let trace_anchor = if trace_path.is_file() {
                    let t = trace(&trace_path, m, &s.id, target.name())?;
                    let anchor = t.anchor.clone();
                    traces.push(t);
                    Some(anchor)
                } else {
                    None
                };
                let key = (m.clone(), s.id.clone(), target.name().to_string());
                cells.push(Some(GalleryCell {
                    image,
                    score_anchor: scored.get(&key).cloned(),
                    trace_anchor,
                }));
            }
            if cells.iter().all(Option::is_none) {
                continue;
            }
            if source_image.is_none() && s.path.is_file() {
                let to = format!("img/sources/{}.jpg", slug(&s.id));
                assets.push(Asset {
                    from: s.path.clone(),
                    to: to.clone(),
                    thumbnail: Some(thumbnail),
                });
                source_image = Some(to);
            }
            rows.push(GalleryRow {
                source_id: s.id.clone(),
                source_emotion: s.emotion.map(|e| e.name().to_string()).unwrap_or_default(),
                target: target.name().to_string(),
                source_image: source_image.clone(),
                cells,
            });
        }
    }
    // A method folder with no images (LMS after its instruction stage) gets no column.
    let used: Vec<bool> = (0..methods.len())
        .map(|k| rows.iter().any(|r| r.cells[k].is_some()))
        .collect();
    let keep = |v: Vec<Option<GalleryCell>>| -> Vec<Option<GalleryCell>> {
        v.into_iter()
            .zip(&used)
            .filter_map(|(c, u)| u.then_some(c))
            .collect()
    };
    let rows = rows
        .into_iter()
        .map(|r| GalleryRow {
            cells: keep(r.cells),
            ..r
        })
        .collect();
    let methods = methods
        .into_iter()
        .zip(&used)
        .filter_map(|(m, u)| u.then_some(m))
        .collect();
    Ok((Gallery { methods, rows }, traces))
}

fn trace(path: &Path, method: &str, source: &str, target: &str) -> Result<Trace, SiteError> {
    let v = read_json(path)?;
    let bad = || SiteError::Missing {
        flag: "--runs",
        path: path.to_path_buf(),
        what: "passes".into(),
        writer: "edit",
    };
    let order: Vec<String> = v["class_order"]
        .as_array()
        .map(|a| a.iter().map(str_of).collect())
        .unwrap_or_default();
    let steps = v["train_steps_per_pass"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kept = v["kept"].as_u64().unwrap_or(0);
    let passes = v["passes"]
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let pass = p["pass"].as_u64().unwrap_or(i as u64 + 1);
            let predicted = p["predicted"]
                .as_u64()
                .and_then(|k| order.get(k as usize).cloned())
                .unwrap_or_else(|| str_of(&p["predicted"]));
            TracePass {
                pass,
                t: steps.get(i).and_then(Value::as_i64),
                ssim: p["ssim"].as_f64().unwrap_or(f64::NAN),
                predicted,
                target_prob: p["target_prob"].as_f64().unwrap_or(f64::NAN),
                accepted: p["accepted"].as_bool().unwrap_or(false),
                // Image k of the trace is pass k's output (image 0 is the source).
                kept: pass == kept,
            }
        })
        .collect();
    Ok(Trace {
        anchor: format!("trace-{}-{}-{}", slug(method), slug(source), slug(target)),
        method: method.into(),
        source_id: source.into(),
        target: target.into(),
        profile: str_of(&v["profile"]),
        stopped: str_of(&v["stopped"]),
        kept,
        passes,
    })
}

fn run_records(runs: &Path, assets: &mut Vec<Asset>) -> Result<Vec<RunRecord>, SiteError> {
    let mut out = Vec::new();
    let methods = method_folders(runs).map_err(|source| SiteError::Read {
        path: runs.to_path_buf(),
        source,
    })?;
    for m in methods {
        let p = runs.join(&m).join("run.json");
        if !p.is_file() {
            continue;
        }
        let v = read_json(&p)?;
        let file = format!("runs/{}/run.json", slug(&m));
        assets.push(Asset {
            from: p,
            to: file.clone(),
            thumbnail: None,
        });
        let weights = v["weights"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|w| {
                        (
                            str_of(&w["role"]),
                            str_of(&w["path"]),
                            str_of(&w["sha256"]),
                            w["stand_in"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(RunRecord {
            method: str_of(&v["method"]),
            version: str_of(&v["version"]),
            commit: str_of(&v["git_commit"]),
            seed: str_of(&v["seed"]),
            parameters: serde_json::to_string_pretty(&v["parameters"]).unwrap_or_default(),
            weights,
            file,
            json: serde_json::to_string_pretty(&v).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Copies every file of `dir` with one of `extensions` under `base`; returns (name, site path).
fn copy_files(
    dir: &Path,
    extensions: &[&str],
    base: &str,
    assets: &mut Vec<Asset>,
) -> Result<Vec<(String, String)>, SiteError> {
    let mut files = Vec::new();
    for ext in extensions {
        for p in files_in(dir, ext)? {
            let name = file_name(&p);
            let to = format!("{base}/{name}");
            assets.push(Asset {
                from: p,
                to: to.clone(),
                thumbnail: None,
            });
            files.push((name, to));
        }
    }
    Ok(files)
}

fn study_section(dir: &Path, assets: &mut Vec<Asset>) -> Result<StudySection, SiteError> {
    if !dir.join("preferences.csv").is_file() {
        return Err(SiteError::Missing {
            flag: "--study",
            path: dir.to_path_buf(),
            what: "preferences.csv".into(),
            writer: "trials analyse",
        });
    }
    let files = copy_files(dir, &["csv", "json", "md", "svg"], "study", assets)?;
    let mut figures = Vec::new();
    for (stem, caption) in STUDY_FIGURES {
        let png = dir.join(format!("{stem}.png"));
        if png.is_file() {
            let to = format!("study/{stem}.png");
            assets.push(Asset {
                from: png,
                to: to.clone(),
                thumbnail: None,
            });
            figures.push((caption.to_string(), to));
        }
    }
    let cleaning = if dir.join("cleaning.md").is_file() {
        read_text(&dir.join("cleaning.md"))?
    } else {
        String::new()
    };
    Ok(StudySection {
        figures,
        cleaning,
        preferences: read_csv(&dir.join("preferences.csv"))?,
        files,
    })
}

fn iterations_section(
    dir: &Path,
    index: usize,
    assets: &mut Vec<Asset>,
) -> Result<IterationsSection, SiteError> {
    let csvs = files_in(dir, "csv")?;
    let Some(first) = csvs.first() else {
        return Err(SiteError::Missing {
            flag: "--iterations",
            path: dir.to_path_buf(),
            what: "a CSV".into(),
            writer: "iterations",
        });
    };
    let table = read_csv(first)?;
    let base = format!("iterations/{index}");
    let files = copy_files(dir, &["csv", "json", "svg"], &base, assets)?;
    let figures = copy_files(dir, &["png"], &base, assets)?
        .into_iter()
        .map(|(_, to)| to)
        .collect();
    Ok(IterationsSection {
        label: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        figures,
        table,
        files,
    })
}

/// The id of the per-image scores row of (section, method, source, target), for the HTML.
pub(crate) fn row_anchor(section: &ScoreSection, r: &ScoreLine) -> String {
    score_anchor(&section.slug, &r.method, &r.source_id, &r.target)
}
