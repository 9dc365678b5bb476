//! The statistics of `trials analyse`: from kept real trials to the paper's numbers (the
//! `report` module writes them as tables and figures).
//!
//! Preference = share of kept real trials in which the reference method was chosen. It is given
//! with two standard errors: across participants' own shares (`se_participants`, the honest one
//! when each person answers many trials; used for the error bars) and across trials
//! (`se_trials`, which treats every answer as independent). Holm's correction runs over the
//! baselines within each (subset, venue); the `all` rows are not part of a family.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::bootstrap::{percentile_intervals, resample_indices, resample_shares, ClusterCounts};
use super::cleaning::{baseline_of, CleaningReport, ParticipantStatus};
use super::ingest::{Response, Side};
use super::stats;
use super::{Result, StudyError};
use emobench_core::emotion::Emotion;
use emobench_core::table1::Subset;

/// Options of an analysis.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyseOptions {
    /// Reference method (the paper: emoeditor).
    pub reference: String,
    /// Participants with more check errors than this are excluded.
    pub max_check_errors: u32,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap and of the split-half splits.
    pub seed: u64,
    /// 1 - confidence level of the intervals (0.05 = 95%).
    pub alpha: f64,
    /// Venue for files that do not name one (MTurk results).
    pub venue: String,
    /// Random participant splits averaged for split-half reliability.
    pub splits: usize,
    /// Draw the figures.
    pub figures: bool,
    /// Baseline order for tables and figures (others follow alphabetically).
    pub baseline_order: Vec<String>,
}

impl Default for AnalyseOptions {
    fn default() -> Self {
        Self {
            reference: "emoeditor".into(),
            max_check_errors: 1,
            resamples: 2000,
            seed: 1,
            alpha: 0.05,
            venue: "online".into(),
            splits: 100,
            figures: true,
            baseline_order: Vec::new(),
        }
    }
}

/// One row of `preferences.csv`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PreferenceRow {
    /// Compared method, or `all`.
    pub baseline: String,
    /// `overall`, `to-positive` or `to-negative`.
    pub subset: String,
    /// A venue, or `all` when there are several.
    pub venue: String,
    /// Participants with at least one trial in this cell.
    pub participants: u64,
    /// Real trials.
    pub trials: u64,
    /// Trials in which the reference was chosen.
    pub reference_chosen: u64,
    /// reference_chosen / trials.
    pub preference: f64,
    /// Mean of participants' own shares.
    pub mean_participant_share: f64,
    /// SE across participants' shares.
    pub se_participants: f64,
    /// SE across trials, sqrt(p (1 - p) / n).
    pub se_trials: f64,
    /// Wilson interval, low.
    pub wilson_low: f64,
    /// Wilson interval, high.
    pub wilson_high: f64,
    /// Clopper-Pearson interval, low.
    pub cp_low: f64,
    /// Clopper-Pearson interval, high.
    pub cp_high: f64,
    /// Exact two-sided binomial test against 0.5.
    pub p_binomial: f64,
    /// Holm-adjusted p over the baselines of this (subset, venue).
    pub p_holm: f64,
    /// Participant-clustered bootstrap percentile interval, low.
    pub boot_low: f64,
    /// Participant-clustered bootstrap percentile interval, high.
    pub boot_high: f64,
}

/// One cell of a source-by-target preference matrix.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MatrixCell {
    /// Compared method or `all`.
    pub baseline: String,
    /// Source emotion.
    pub source_emotion: String,
    /// Target emotion.
    pub target: String,
    /// Trials.
    pub trials: u64,
    /// Reference chosen.
    pub reference_chosen: u64,
    /// Share (NaN when no trial).
    pub preference: f64,
}

/// One method's Bradley-Terry strength.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BtRow {
    /// 1 = strongest.
    pub rank: usize,
    /// Method.
    pub method: String,
    /// Log-strength, reference = 0.
    pub log_strength: f64,
    /// Bootstrap interval, low.
    pub boot_low: f64,
    /// Bootstrap interval, high.
    pub boot_high: f64,
    /// Model probability of being preferred over the reference.
    pub p_over_reference: f64,
}

/// Side bias of one participant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParticipantRow {
    /// Participant id.
    pub participant: String,
    /// Venue of their first response.
    pub venue: String,
    /// Real trials answered (before the reference filter).
    pub real_trials: u64,
    /// Checks presented.
    pub checks: u64,
    /// Wrong or unanswered checks.
    pub check_errors: u64,
    /// Kept by the attention rule.
    pub kept: bool,
    /// Why kept or excluded.
    pub reason: String,
    /// Share of real trials where the reference was chosen.
    pub reference_share: f64,
    /// Share of real trials answered `left`.
    pub left_share: f64,
    /// Exact binomial p of the left share against 0.5.
    pub p_side: f64,
    /// Median response time over real trials (ms).
    pub median_rt_ms: f64,
}

/// Headline numbers (also printed with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisSummary {
    /// Options used.
    pub options: AnalyseOptions,
    /// Participants seen / kept.
    pub participants_seen: u64,
    /// Participants kept.
    pub participants_kept: u64,
    /// Real trials analysed.
    pub trials_analysed: u64,
    /// Overall preference (all baselines, all venues).
    pub preference: f64,
    /// Its participant SE.
    pub se_participants: f64,
    /// Its bootstrap interval.
    pub boot_interval: (f64, f64),
    /// Its exact binomial p.
    pub p_binomial: f64,
    /// ICC of choosing the reference within participants (one-way ANOVA estimator).
    pub icc: f64,
    /// Mean split-half Pearson r of cell preferences over random participant splits.
    pub split_half_r: f64,
    /// Spearman-Brown corrected split-half reliability.
    pub split_half_spearman_brown: f64,
    /// Cells used for the split-half correlation.
    pub split_half_cells: usize,
    /// Mean left share of kept participants.
    pub mean_left_share: f64,
    /// Kept participants whose side bias has p < 0.05.
    pub side_biased_participants: u64,
    /// Files written.
    pub outputs: Vec<String>,
}

/// Everything computed, for callers that want the numbers rather than the files.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Headline numbers.
    pub summary: AnalysisSummary,
    /// The preferences table.
    pub preferences: Vec<PreferenceRow>,
    /// The matrices, long form.
    pub matrices: Vec<MatrixCell>,
    /// Bradley-Terry ranking.
    pub bradley_terry: Vec<BtRow>,
    /// Per participant.
    pub participants: Vec<ParticipantRow>,
    /// The cleaning report.
    pub cleaning: CleaningReport,
}

/// The index in [`Subset::STUDY`] of the direction subset a trial towards `t` belongs to (index 0,
/// overall, holds for every trial).
fn valence_subset(t: Emotion) -> usize {
    Subset::STUDY
        .iter()
        .skip(1)
        .position(|s| s.holds_for_target(t))
        .map_or(0, |i| i + 1)
}

/// Analyses kept real trials.
pub fn analyse(
    real: &[Response],
    statuses: &[ParticipantStatus],
    cleaning: CleaningReport,
    opts: &AnalyseOptions,
) -> Result<Analysis> {
    let reference = opts.reference.as_str();
    // Trials that pit the reference against a baseline.
    let trials: Vec<(&Response, &str, bool)> = real
        .iter()
        .filter_map(|r| baseline_of(r, reference).map(|(b, won)| (r, b, won)))
        .collect();
    if trials.is_empty() {
        return Err(StudyError::Invalid(format!(
            "no kept real trial compares '{reference}' with another method (participants kept: {} of {}); see the cleaning report",
            cleaning.participants_kept, cleaning.participants_seen
        )));
    }
    let found: BTreeSet<&str> = trials.iter().map(|t| t.1).collect();
    let mut baselines: Vec<String> = opts
        .baseline_order
        .iter()
        .filter(|b| found.contains(b.as_str()))
        .cloned()
        .collect();
    for b in &found {
        if !baselines.iter().any(|x| x == b) {
            baselines.push(b.to_string());
        }
    }
    let venues_found: BTreeSet<&str> = trials.iter().map(|t| t.0.venue.as_str()).collect();
    let mut venues: Vec<String> = venues_found.iter().map(|s| s.to_string()).collect();
    if venues.len() > 1 {
        venues.push("all".into());
    }
    let all_venue = venues.len() > 1;
    let nb = baselines.len() + 1; // + "all"
    let nv = venues.len();
    let groups = nb * Subset::STUDY.len() * nv;
    let gidx = |b: usize, s: usize, v: usize| (b * Subset::STUDY.len() + s) * nv + v;
    let b_index: HashMap<&str, usize> = baselines
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let v_index: HashMap<&str, usize> = venues
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_str(), i))
        .collect();

    // Participants in a fixed order, and their counts per group.
    let mut p_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (r, _, _) in &trials {
        let n = p_index.len();
        p_index.entry(r.participant.as_str()).or_insert(n);
    }
    let pids: Vec<&str> = {
        let mut v: Vec<(&str, usize)> = p_index.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_by_key(|x| x.1);
        v.into_iter().map(|x| x.0).collect()
    };
    let np = pids.len();
    let mut counts = vec![0u32; np * groups * 2];
    for (r, b, won) in &trials {
        let p = p_index[r.participant.as_str()];
        let bi = b_index[b];
        let s = valence_subset(r.target);
        let vi = v_index[r.venue.as_str()];
        let mut vs = vec![vi];
        if all_venue {
            vs.push(nv - 1);
        }
        for &bb in &[bi, nb - 1] {
            for &ss in &[0usize, s] {
                for &vv in &vs {
                    let g = gidx(bb, ss, vv);
                    let base = p * groups * 2 + 2 * g;
                    counts[base] += u32::from(*won);
                    counts[base + 1] += 1;
                }
            }
        }
    }
    let cc = ClusterCounts { groups, counts };
    let boot = resample_shares(&cc, opts.resamples, opts.seed);
    let intervals = percentile_intervals(&boot, groups, opts.alpha);

    let bname = |b: usize| {
        if b == nb - 1 {
            "all".to_string()
        } else {
            baselines[b].clone()
        }
    };
    let mut prefs = Vec::new();
    for b in 0..nb {
        for (s, subset) in Subset::STUDY.iter().enumerate() {
            for (v, venue) in venues.iter().enumerate() {
                let g = gidx(b, s, v);
                let (mut k, mut n) = (0u64, 0u64);
                let mut shares = Vec::new();
                for p in 0..np {
                    let base = p * groups * 2 + 2 * g;
                    let (pk, pn) = (cc.counts[base] as u64, cc.counts[base + 1] as u64);
                    if pn > 0 {
                        shares.push(pk as f64 / pn as f64);
                    }
                    k += pk;
                    n += pn;
                }
                if n == 0 {
                    continue;
                }
                let (wl, wh) = stats::wilson(k, n, opts.alpha);
                let (cl, ch) = stats::clopper_pearson(k, n, opts.alpha);
                prefs.push(PreferenceRow {
                    baseline: bname(b),
                    subset: subset.name().to_string(),
                    venue: venue.clone(),
                    participants: shares.len() as u64,
                    trials: n,
                    reference_chosen: k,
                    preference: k as f64 / n as f64,
                    mean_participant_share: stats::mean(&shares),
                    se_participants: stats::se_mean(&shares),
                    se_trials: stats::se_proportion(k, n),
                    wilson_low: wl,
                    wilson_high: wh,
                    cp_low: cl,
                    cp_high: ch,
                    p_binomial: stats::binom_test_two_sided(k, n, 0.5),
                    p_holm: f64::NAN,
                    boot_low: intervals[g].0,
                    boot_high: intervals[g].1,
                });
            }
        }
    }
    // Holm within each (subset, venue) over the baselines.
    let mut families: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, r) in prefs.iter().enumerate() {
        if r.baseline == "all" {
            continue;
        }
        families
            .entry((r.subset.clone(), r.venue.clone()))
            .or_default()
            .push(i);
    }
    for idx in families.values() {
        let ps: Vec<f64> = idx.iter().map(|&i| prefs[i].p_binomial).collect();
        for (j, adj) in stats::holm(&ps).into_iter().enumerate() {
            prefs[idx[j]].p_holm = adj;
        }
    }
    for r in prefs.iter_mut().filter(|r| r.baseline == "all") {
        r.p_holm = r.p_binomial;
    }

    // 8x8 matrices (all venues), per baseline and for all baselines.
    let mut mat: HashMap<(usize, usize, usize), (u64, u64)> = HashMap::new();
    for (r, b, won) in &trials {
        let Some(se) = r.source_emotion else { continue };
        for bb in [b_index[b], nb - 1] {
            let e = mat
                .entry((bb, se.emoset_index(), r.target.emoset_index()))
                .or_default();
            e.0 += u64::from(*won);
            e.1 += 1;
        }
    }
    let mut matrices = Vec::new();
    for b in 0..nb {
        for se in Emotion::ALL {
            for t in Emotion::ALL {
                let (k, n) = mat
                    .get(&(b, se.emoset_index(), t.emoset_index()))
                    .copied()
                    .unwrap_or((0, 0));
                matrices.push(MatrixCell {
                    baseline: bname(b),
                    source_emotion: se.to_string(),
                    target: t.to_string(),
                    trials: n,
                    reference_chosen: k,
                    preference: if n > 0 { k as f64 / n as f64 } else { f64::NAN },
                });
            }
        }
    }

    let bradley_terry = fit_bt(&trials, &pids, &p_index, reference, &baselines, opts);
    let (split_r, split_cells) = split_half(&trials, &pids, &p_index, opts);
    let sb = if split_r.is_nan() {
        f64::NAN
    } else {
        2.0 * split_r / (1.0 + split_r)
    };

    // Per-participant side bias and shares, over every participant (kept or not).
    let mut per_p: HashMap<&str, (u64, u64, u64, Vec<f64>)> = HashMap::new();
    for (r, _, won) in &trials {
        let e = per_p.entry(r.participant.as_str()).or_default();
        e.0 += 1;
        e.1 += u64::from(*won);
        e.2 += u64::from(r.choice == Some(Side::Left));
        if let Some(rt) = r.rt_ms {
            e.3.push(rt);
        }
    }
    let mut participants = Vec::new();
    for s in statuses {
        let (n, won, left, mut rts) = per_p
            .get(s.participant.as_str())
            .cloned()
            .unwrap_or_default();
        rts.sort_by(f64::total_cmp);
        let ratio = |k: u64| if n > 0 { k as f64 / n as f64 } else { f64::NAN };
        participants.push(ParticipantRow {
            participant: s.participant.clone(),
            venue: s.venue.clone(),
            real_trials: s.real_trials,
            checks: s.checks,
            check_errors: s.check_errors,
            kept: s.kept,
            reason: s.reason.clone(),
            reference_share: ratio(won),
            left_share: ratio(left),
            p_side: if n > 0 {
                stats::binom_test_two_sided(left, n, 0.5)
            } else {
                f64::NAN
            },
            median_rt_ms: stats::quantile_sorted(&rts, 0.5),
        });
    }
    let kept_left: Vec<f64> = participants
        .iter()
        .filter(|p| p.kept && !p.left_share.is_nan())
        .map(|p| p.left_share)
        .collect();
    let biased = participants
        .iter()
        .filter(|p| p.kept && p.p_side < 0.05)
        .count() as u64;

    let clusters: Vec<(u64, u64)> = (0..np)
        .map(|p| {
            let base = p * groups * 2 + 2 * gidx(nb - 1, 0, nv - 1);
            (cc.counts[base] as u64, cc.counts[base + 1] as u64)
        })
        .collect();
    let overall = prefs
        .iter()
        .find(|r| {
            r.baseline == "all" && r.subset == Subset::Overall.name() && r.venue == venues[nv - 1]
        })
        .cloned();
    let Some(overall) = overall else {
        return Err(StudyError::Invalid(
            "no overall preference could be computed".into(),
        ));
    };
    let summary = AnalysisSummary {
        options: opts.clone(),
        participants_seen: cleaning.participants_seen,
        participants_kept: cleaning.participants_kept,
        trials_analysed: trials.len() as u64,
        preference: overall.preference,
        se_participants: overall.se_participants,
        boot_interval: (overall.boot_low, overall.boot_high),
        p_binomial: overall.p_binomial,
        icc: stats::icc_anova(&clusters),
        split_half_r: split_r,
        split_half_spearman_brown: sb,
        split_half_cells: split_cells,
        mean_left_share: stats::mean(&kept_left),
        side_biased_participants: biased,
        outputs: Vec::new(),
    };
    Ok(Analysis {
        summary,
        preferences: prefs,
        matrices,
        bradley_terry,
        participants,
        cleaning,
    })
}

fn fit_bt(
    trials: &[(&Response, &str, bool)],
    pids: &[&str],
    p_index: &BTreeMap<&str, usize>,
    reference: &str,
    baselines: &[String],
    opts: &AnalyseOptions,
) -> Vec<BtRow> {
    let mut methods = vec![reference.to_string()];
    methods.extend(baselines.iter().cloned());
    let m = methods.len();
    let mi: HashMap<&str, usize> = methods
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    // Per participant pairwise wins, flattened m x m.
    let mut pw = vec![0f64; pids.len() * m * m];
    for (r, b, won) in trials {
        let p = p_index[r.participant.as_str()];
        let (w, l) = if *won { (0, mi[b]) } else { (mi[b], 0) };
        pw[p * m * m + w * m + l] += 1.0;
    }
    let fit_from = |idx: &[usize]| -> Vec<f64> {
        let mut w = vec![vec![0f64; m]; m];
        for &p in idx {
            for i in 0..m {
                for j in 0..m {
                    w[i][j] += pw[p * m * m + i * m + j];
                }
            }
        }
        // A half pseudo-win each way keeps a method that never won (or never lost) finite.
        let needs_prior = (1..m).any(|i| w[0][i] == 0.0 || w[i][0] == 0.0);
        let prior = if needs_prior { 0.5 } else { 0.0 };
        super::bradley_terry::fit(&w, 0, prior, 10_000, 1e-10).log_strength
    };
    let all: Vec<usize> = (0..pids.len()).collect();
    let est = fit_from(&all);
    let boots = resample_indices(pids.len(), opts.resamples, opts.seed ^ 0xB7, fit_from);
    let mut rows: Vec<BtRow> = (0..m)
        .map(|i| {
            let mut v: Vec<f64> = boots
                .iter()
                .map(|b| b[i])
                .filter(|x| x.is_finite())
                .collect();
            v.sort_by(f64::total_cmp);
            BtRow {
                rank: 0,
                method: methods[i].clone(),
                log_strength: est[i],
                boot_low: stats::quantile_sorted(&v, opts.alpha / 2.0),
                boot_high: stats::quantile_sorted(&v, 1.0 - opts.alpha / 2.0),
                p_over_reference: 1.0 / (1.0 + (-est[i]).exp()),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.log_strength
            .total_cmp(&a.log_strength)
            .then(a.method.cmp(&b.method))
    });
    for (i, r) in rows.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    rows
}

/// Mean Pearson correlation of cell preferences (baseline x source emotion x target) between two
/// random halves of the participants, over `opts.splits` seeded splits.
fn split_half(
    trials: &[(&Response, &str, bool)],
    pids: &[&str],
    p_index: &BTreeMap<&str, usize>,
    opts: &AnalyseOptions,
) -> (f64, usize) {
    let mut cell_index: HashMap<(String, Option<Emotion>, Emotion), usize> = HashMap::new();
    let mut per_trial = Vec::with_capacity(trials.len());
    for (r, b, won) in trials {
        let key = (b.to_string(), r.source_emotion, r.target);
        let n = cell_index.len();
        let c = *cell_index.entry(key).or_insert(n);
        per_trial.push((p_index[r.participant.as_str()], c, *won));
    }
    let nc = cell_index.len();
    if pids.len() < 4 || nc < 3 {
        return (f64::NAN, nc);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5B11);
    let mut rs = Vec::new();
    let mut cells_used = 0;
    let mut order: Vec<usize> = (0..pids.len()).collect();
    for _ in 0..opts.splits.max(1) {
        order.shuffle(&mut rng);
        let mut half = vec![0u8; pids.len()];
        for (i, &p) in order.iter().enumerate() {
            half[p] = u8::from(i % 2 == 1);
        }
        let mut acc = vec![[0u64; 4]; nc];
        for &(p, c, won) in &per_trial {
            let h = half[p] as usize;
            acc[c][2 * h] += u64::from(won);
            acc[c][2 * h + 1] += 1;
        }
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for a in &acc {
            if a[1] > 0 && a[3] > 0 {
                x.push(a[0] as f64 / a[1] as f64);
                y.push(a[2] as f64 / a[3] as f64);
            }
        }
        cells_used = cells_used.max(x.len());
        let r = stats::pearson(&x, &y);
        if r.is_finite() {
            rs.push(r);
        }
    }
    (stats::mean(&rs), cells_used)
}
