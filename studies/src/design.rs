//! The 2AFC trial design: which participant sees which (source, target) pair, edited by the
//! reference method and which baseline, on which side, and where the attention checks fall.
//!
//! Balance, as even as the counts allow:
//! - real trials are dealt from one stream built in rounds, each round one trial per compared
//!   method in a shuffled order, so over the whole study and within every participant the methods'
//!   counts differ by at most one (two within a participant whose slice starts mid-round);
//! - each method cycles through a reshuffled deck of its (source, target) conditions, so every
//!   condition is used for that method `floor` or `ceil` of its share;
//! - a participant never sees the same (source, target) twice when the study has enough
//!   conditions (repaired by swapping with another participant's trial of the same method);
//! - the reference image is on the left in `floor(n/2)` or `ceil(n/2)` of a participant's real
//!   trials, and the correct image likewise for the checks;
//! - checks sit at uniformly random positions with no two in a row, each pair once per participant.
//!
//! Everything is sorted before any random draw, so the output depends only on the seed and on the
//! set of files, not on the order the file system lists them in.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::{is_safe_name, Study, StudyConfig};
use super::ingest::{Kind, Side};
use super::{io_err, sha256_hex, Result, StudyError};
use emobench_core::emotion::{Emotion, Valence};
use emobench_core::table1::Subset;

/// A source image known to the design.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    /// Source id (folder name in the run folders).
    pub id: String,
    /// Its emotion, if sources.csv gives one.
    pub emotion: Option<Emotion>,
}

/// One row of `trials.csv`: one trial of one participant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrialRow {
    /// Participant (trial-set) id, e.g. `p001`.
    pub participant: String,
    /// 1-based position in the participant's sequence.
    pub trial: u32,
    /// `real` or `check`.
    pub kind: Kind,
    /// Source id (the check id for checks).
    pub source_id: String,
    /// Source emotion, empty if unknown or for checks.
    pub source_emotion: Option<Emotion>,
    /// Target emotion named in the question.
    pub target: Emotion,
    /// `to-positive` or `to-negative` (valence of the target).
    pub direction: Subset,
    /// The compared baseline (empty for checks).
    pub compared_method: String,
    /// Method shown on the left (`check-a`/`check-b` for checks).
    pub left_method: String,
    /// Method shown on the right.
    pub right_method: String,
    /// Left image, relative to the design folder (`images/<hash>.png`).
    pub left_image: String,
    /// Right image.
    pub right_image: String,
    /// For checks: the side of the correct image; empty for real trials.
    pub correct_side: Option<Side>,
}

/// One row of `images.csv`, the manifest of every image the page shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRow {
    /// Path inside the design folder.
    pub file: String,
    /// SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// `real` or `check`.
    pub role: String,
    /// Method (or `check`).
    pub method: String,
    /// Source id or check id.
    pub source_id: String,
    /// Target emotion (empty for check images).
    pub target: String,
    /// Where it was copied from.
    pub original: String,
}

/// Counts that show the balance of a design.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct DesignSummary {
    /// Participants (trial sets).
    pub participants: u32,
    /// Real trials per participant.
    pub real_trials_per_participant: u32,
    /// Check trials per participant.
    pub checks_per_participant: u32,
    /// Real trials per compared method.
    pub trials_per_method: BTreeMap<String, u64>,
    /// Available (source, target) conditions per compared method.
    pub conditions_per_method: BTreeMap<String, u64>,
    /// Real trials per direction (`to-positive`, `to-negative`).
    pub trials_per_direction: BTreeMap<String, u64>,
    /// Smallest and largest number of uses of one condition, per method.
    pub condition_use_range: BTreeMap<String, (u64, u64)>,
    /// Participants who see some (source, target) twice (0 unless conditions run short).
    pub participants_with_repeats: u64,
    /// Image files in the manifest.
    pub images: u64,
}

/// A design as written to (and read back from) a design folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Design {
    /// The study definition it was made from.
    pub study: StudyConfig,
    /// The trial table.
    #[serde(skip)]
    pub trials: Vec<TrialRow>,
    /// Balance counts.
    pub summary: DesignSummary,
}

/// Reads `sources.csv` with the core's reader, so a design accepts exactly the tables `edit` and
/// `score` accept.
pub fn read_sources(path: &Path) -> Result<Vec<Source>> {
    Ok(emobench_core::sources::read_sources(path)?
        .into_iter()
        .map(|s| Source {
            id: s.id,
            emotion: s.emotion,
        })
        .collect())
}

/// The (source id, target) pairs for which `runs/<method>/<source>/<target>.png` exists.
pub fn scan_method(runs: &Path, method: &str) -> Result<BTreeSet<(String, Emotion)>> {
    let dir = runs.join(method);
    let mut out = BTreeSet::new();
    let rd = std::fs::read_dir(&dir).map_err(io_err(&dir))?;
    for entry in rd {
        let entry = entry.map_err(io_err(&dir))?;
        let p = entry.path();
        if !p.is_dir() {
            continue;
        }
        let sid = entry.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(&p).map_err(io_err(&p))? {
            let f = f.map_err(io_err(&p))?;
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".png") {
                if let Ok(t) = stem.parse::<Emotion>() {
                    out.insert((sid.clone(), t));
                }
            }
        }
    }
    Ok(out)
}

/// Finds the sources for a design: the study's `sources`, else `sources.csv` beside or inside the
/// runs folder, else the source folders of the reference method (emotion unknown).
pub fn find_sources(
    study: &Study,
    runs: &Path,
    reference_pairs: &BTreeSet<(String, Emotion)>,
) -> Result<(Vec<Source>, Option<PathBuf>)> {
    let candidates: Vec<PathBuf> = match &study.config.sources {
        Some(p) => vec![study.dir().join(p)],
        None => {
            let mut v = vec![runs.join("sources.csv")];
            if let Some(parent) = runs.parent() {
                v.push(parent.join("sources.csv"));
            }
            v
        }
    };
    for c in &candidates {
        if c.is_file() {
            return Ok((read_sources(c)?, Some(c.clone())));
        }
    }
    if study.config.sources.is_some() {
        return Err(StudyError::Config {
            path: study.path.clone(),
            message: format!("sources file {} not found", candidates[0].display()),
        });
    }
    let ids: BTreeSet<String> = reference_pairs.iter().map(|(s, _)| s.clone()).collect();
    Ok((
        ids.into_iter()
            .map(|id| Source { id, emotion: None })
            .collect(),
        None,
    ))
}

/// Direction label of a target emotion.
pub fn direction(target: Emotion) -> Subset {
    match target.valence() {
        Valence::Positive => Subset::ToPositive,
        Valence::Negative => Subset::ToNegative,
    }
}

#[derive(Clone, Debug)]
struct Item {
    method: usize,
    cond: usize,
}

/// Chooses `k` positions in `0..total` uniformly among the placements with no two adjacent.
fn spaced_positions(rng: &mut ChaCha8Rng, total: usize, k: usize) -> Vec<usize> {
    if k == 0 {
        return Vec::new();
    }
    // Bijection: k-subsets of 0..(total-k+1) map to non-adjacent k-subsets of 0..total by adding
    // each element's rank.
    let mut pick = rand::seq::index::sample(rng, total - k + 1, k).into_vec();
    pick.sort_unstable();
    pick.iter().enumerate().map(|(i, p)| p + i).collect()
}

/// A list of `n` booleans ("reference/correct on the left") with `n/2` true, the odd one decided
/// at random, then shuffled.
fn balanced_sides(rng: &mut ChaCha8Rng, n: usize) -> Vec<bool> {
    let mut left = n / 2;
    if n % 2 == 1 && rng.gen_bool(0.5) {
        left += 1;
    }
    let mut v: Vec<bool> = (0..n).map(|i| i < left).collect();
    v.shuffle(rng);
    v
}

/// What `design` needs besides the study: the run folders and where to write.
#[derive(Debug, Clone)]
pub struct DesignInputs {
    /// `runs/` folder.
    pub runs: PathBuf,
    /// Output design folder.
    pub out: PathBuf,
}

/// A design and what writing it needs: the image manifest (each row names the file it copies) and
/// the input files its metadata lists.
#[derive(Debug, Clone)]
pub struct DesignPlan {
    /// The trials and their balance.
    pub design: Design,
    /// Every image the page shows, content-addressed (`images/<hash>.<ext>`).
    pub images: Vec<ImageRow>,
    /// The study, checks, sources and run.json files the design was made from.
    pub inputs: Vec<PathBuf>,
}

/// Builds the design from the run folders and the study; writes nothing (the `publish` module
/// writes the design folder).
pub fn plan_design(study: &Study, inputs: &DesignInputs) -> Result<DesignPlan> {
    let cfg = &study.config;
    let runs = &inputs.runs;
    let mut methods: Vec<String> = cfg.compared.clone();
    methods.sort();
    methods.dedup();

    let ref_pairs = scan_method(runs, &cfg.reference)?;
    let (sources, sources_path) = find_sources(study, runs, &ref_pairs)?;
    let emo_of: HashMap<&str, Option<Emotion>> =
        sources.iter().map(|s| (s.id.as_str(), s.emotion)).collect();

    // Conditions usable for each method: both images exist and the target is in the study's set.
    let mut conds: Vec<(String, Emotion)> = Vec::new();
    let mut cond_index: HashMap<(String, Emotion), usize> = HashMap::new();
    let mut per_method: Vec<Vec<usize>> = Vec::new();
    for m in &methods {
        let pairs = scan_method(runs, m)?;
        let mut list = Vec::new();
        for (sid, t) in pairs.intersection(&ref_pairs) {
            let Some(emo) = emo_of.get(sid.as_str()) else {
                continue;
            };
            if !study.conditions.targets(*emo).contains(t) {
                continue;
            }
            let key = (sid.clone(), *t);
            let idx = *cond_index.entry(key.clone()).or_insert_with(|| {
                conds.push(key);
                conds.len() - 1
            });
            list.push(idx);
        }
        if list.is_empty() {
            return Err(StudyError::Design(format!(
                "no (source, target) pair has images from both '{}' and '{}' under {} for conditions '{}'",
                cfg.reference,
                m,
                runs.display(),
                cfg.conditions
            )));
        }
        per_method.push(list);
    }
    for s in &sources {
        if !is_safe_name(&s.id) {
            return Err(StudyError::Design(format!(
                "source id '{}' is not filesystem-safe",
                s.id
            )));
        }
    }

    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let n_part = cfg.participants as usize;
    let n_real = cfg.trials_per_participant as usize;
    let total_real = n_part * n_real;

    // The stream of real trials, in rounds of one per method.
    let mut decks: Vec<Vec<usize>> = vec![Vec::new(); methods.len()];
    let mut stream: Vec<Item> = Vec::with_capacity(total_real);
    let mut order: Vec<usize> = (0..methods.len()).collect();
    while stream.len() < total_real {
        order.shuffle(&mut rng);
        for &m in &order {
            if stream.len() == total_real {
                break;
            }
            if decks[m].is_empty() {
                let mut d = per_method[m].clone();
                d.shuffle(&mut rng);
                d.reverse();
                decks[m] = d;
            }
            if let Some(c) = decks[m].pop() {
                stream.push(Item { method: m, cond: c });
            }
        }
    }
    let repeats = if n_real <= conds.len() {
        repair_repeats(&mut stream, n_part, n_real)
    } else {
        // Fewer conditions than trials: every participant necessarily sees some twice.
        n_part as u64
    };

    // Check images and real images go into one content-addressed folder so file names reveal
    // nothing about the method.
    let mut images: BTreeMap<String, ImageRow> = BTreeMap::new();
    let mut path_to_file: HashMap<PathBuf, String> = HashMap::new();
    let mut add_image =
        |src: &Path, role: &str, method: &str, sid: &str, target: &str| -> Result<String> {
            if let Some(f) = path_to_file.get(src) {
                return Ok(f.clone());
            }
            let bytes = std::fs::read(src).map_err(io_err(src))?;
            let sha = sha256_hex(&bytes);
            let ext = src
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_else(|| "png".into());
            let file = format!("images/{}.{}", &sha[..16], ext);
            images.entry(file.clone()).or_insert_with(|| ImageRow {
                file: file.clone(),
                sha256: sha,
                bytes: bytes.len() as u64,
                role: role.into(),
                method: method.into(),
                source_id: sid.into(),
                target: target.into(),
                original: src.display().to_string(),
            });
            path_to_file.insert(src.to_path_buf(), file.clone());
            Ok(file)
        };

    let width = n_part.to_string().len().max(3);
    let n_checks = cfg.checks_per_participant as usize;
    let mut check_order: Vec<usize> = (0..study.checks.len()).collect();
    check_order.sort_by(|&a, &b| study.checks[a].id.cmp(&study.checks[b].id));
    let mut trials = Vec::with_capacity(n_part * (n_real + n_checks));
    let pb = super::progress(n_part as u64, "design");
    for p in 0..n_part {
        let pid = format!("p{:0width$}", p + 1);
        let mut items: Vec<Item> = stream[p * n_real..(p + 1) * n_real].to_vec();
        items.shuffle(&mut rng);
        let sides = balanced_sides(&mut rng, n_real);
        let mut chosen = check_order.clone();
        chosen.shuffle(&mut rng);
        chosen.truncate(n_checks);
        let check_sides = balanced_sides(&mut rng, n_checks);
        let total = n_real + n_checks;
        let positions: HashSet<usize> = spaced_positions(&mut rng, total, n_checks)
            .into_iter()
            .collect();
        let (mut ri, mut ci) = (0usize, 0usize);
        for pos in 0..total {
            let row = if positions.contains(&pos) {
                let c = &study.checks[chosen[ci]];
                let correct_left = check_sides[ci];
                ci += 1;
                let fa = add_image(&c.image_a, "check", "check", &c.id, "")?;
                let fb = add_image(&c.image_b, "check", "check", &c.id, "")?;
                // `a_left`: image a is shown on the left.
                let a_left = correct_left == (c.correct == "a");
                let (lm, rm, li, rimg) = if a_left {
                    ("check-a", "check-b", fa, fb)
                } else {
                    ("check-b", "check-a", fb, fa)
                };
                TrialRow {
                    participant: pid.clone(),
                    trial: pos as u32 + 1,
                    kind: Kind::Check,
                    source_id: c.id.clone(),
                    source_emotion: None,
                    target: c.target,
                    direction: direction(c.target),
                    compared_method: String::new(),
                    left_method: lm.into(),
                    right_method: rm.into(),
                    left_image: li,
                    right_image: rimg,
                    correct_side: Some(if correct_left {
                        Side::Left
                    } else {
                        Side::Right
                    }),
                }
            } else {
                let it = &items[ri];
                let ref_left = sides[ri];
                ri += 1;
                let (sid, t) = &conds[it.cond];
                let m = &methods[it.method];
                let emo = emo_of.get(sid.as_str()).copied().flatten();
                let fref = add_image(
                    &runs.join(&cfg.reference).join(sid).join(format!("{t}.png")),
                    "real",
                    &cfg.reference,
                    sid,
                    t.name(),
                )?;
                let fm = add_image(
                    &runs.join(m).join(sid).join(format!("{t}.png")),
                    "real",
                    m,
                    sid,
                    t.name(),
                )?;
                let (lm, rm, li, rimg) = if ref_left {
                    (cfg.reference.clone(), m.clone(), fref, fm)
                } else {
                    (m.clone(), cfg.reference.clone(), fm, fref)
                };
                TrialRow {
                    participant: pid.clone(),
                    trial: pos as u32 + 1,
                    kind: Kind::Real,
                    source_id: sid.clone(),
                    source_emotion: emo,
                    target: *t,
                    direction: direction(*t),
                    compared_method: m.clone(),
                    left_method: lm,
                    right_method: rm,
                    left_image: li,
                    right_image: rimg,
                    correct_side: None,
                }
            };
            trials.push(row);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();

    let mut summary = DesignSummary {
        participants: cfg.participants,
        real_trials_per_participant: cfg.trials_per_participant,
        checks_per_participant: cfg.checks_per_participant,
        participants_with_repeats: repeats,
        images: images.len() as u64,
        ..Default::default()
    };
    let mut uses: Vec<HashMap<usize, u64>> = vec![HashMap::new(); methods.len()];
    for it in &stream {
        *uses[it.method].entry(it.cond).or_default() += 1;
        *summary
            .trials_per_method
            .entry(methods[it.method].clone())
            .or_default() += 1;
        *summary
            .trials_per_direction
            .entry(direction(conds[it.cond].1).name().to_string())
            .or_default() += 1;
    }
    for (m, name) in methods.iter().enumerate() {
        summary
            .conditions_per_method
            .insert(name.clone(), per_method[m].len() as u64);
        let lo = per_method[m]
            .iter()
            .map(|c| uses[m].get(c).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        let hi = uses[m].values().copied().max().unwrap_or(0);
        summary.condition_use_range.insert(name.clone(), (lo, hi));
    }

    let design = Design {
        study: cfg.clone(),
        trials,
        summary,
    };
    let mut inputs_list = vec![study.path.clone(), study.checks_path.clone()];
    if let Some(p) = sources_path {
        inputs_list.push(p);
    }
    inputs_list.extend(
        std::iter::once(&cfg.reference)
            .chain(methods.iter())
            .map(|m| runs.join(m).join("run.json"))
            .filter(|p| p.is_file()),
    );
    Ok(DesignPlan {
        design,
        images: images.into_values().collect(),
        inputs: inputs_list,
    })
}

/// Swaps trials between participants so nobody sees one (source, target) twice; a swap exchanges
/// two trials of the same method, so all balance counts stay as they were. Returns the number of
/// participants left with a repeat (when the conditions are too few).
fn repair_repeats(stream: &mut [Item], n_part: usize, n_real: usize) -> u64 {
    let slice_of = |i: usize| i / n_real;
    let mut left = 0;
    for p in 0..n_part {
        let range = p * n_real..(p + 1) * n_real;
        let mut seen: HashSet<usize> = HashSet::new();
        let mut unresolved = false;
        for i in range.clone() {
            if seen.insert(stream[i].cond) {
                continue;
            }
            // Look for a trial elsewhere with the same method whose condition is new here and
            // whose owner does not already hold our condition.
            // The search is bounded to nearby participants so large designs stay linear.
            let window = 50 * n_real;
            let after = range.end..stream.len().min(range.end + window);
            let before = range.start.saturating_sub(window)..range.start;
            let mut found = None;
            for j in after.chain(before) {
                if stream[j].method != stream[i].method || seen.contains(&stream[j].cond) {
                    continue;
                }
                let q = slice_of(j);
                let qr = q * n_real..(q + 1) * n_real;
                if stream[qr]
                    .iter()
                    .enumerate()
                    .any(|(o, it)| o + q * n_real != j && it.cond == stream[i].cond)
                {
                    continue;
                }
                found = Some(j);
                break;
            }
            match found {
                Some(j) => {
                    stream.swap(i, j);
                    seen.insert(stream[i].cond);
                }
                None => unresolved = true,
            }
        }
        if unresolved {
            left += 1;
        }
    }
    left
}

/// Reads a design folder written by `publish::make_design`.
pub fn load_design(dir: &Path) -> Result<Design> {
    let jp = dir.join("design.json");
    let text = std::fs::read_to_string(&jp).map_err(io_err(&jp))?;
    let mut design: Design = serde_json::from_str(&text).map_err(|source| StudyError::Json {
        path: jp.clone(),
        source,
    })?;
    let tp = dir.join("trials.csv");
    let bytes = std::fs::read(&tp).map_err(io_err(&tp))?;
    let mut rdr = csv::Reader::from_reader(super::ingest::strip_bom(&bytes));
    for (i, r) in rdr.deserialize::<TrialRow>().enumerate() {
        design.trials.push(r.map_err(|source| StudyError::CsvFile {
            path: tp.clone(),
            line: i as u64 + 2,
            source,
        })?);
    }
    Ok(design)
}

/// Trials grouped by participant, in trial order.
pub fn by_participant(trials: &[TrialRow]) -> BTreeMap<String, Vec<&TrialRow>> {
    let mut m: BTreeMap<String, Vec<&TrialRow>> = BTreeMap::new();
    for t in trials {
        m.entry(t.participant.clone()).or_default().push(t);
    }
    for v in m.values_mut() {
        v.sort_by_key(|t| t.trial);
    }
    m
}
