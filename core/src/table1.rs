//! Table 1: per method and subset, EMR %, ESR %, ENRD and ESS (plus SSIM and L1), with the paper's
//! published rows for comparison. The values only; `reports` renders them.

use serde::Serialize;

use crate::emotion::{Emotion, Valence};
use crate::score::ScoreRow;

/// Row subsets reported for every method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subset {
    /// Every row or trial (the human study's "overall"; not a Table-1 subset).
    Overall,
    /// Source and target of opposite valence (the paper's Table 1 setting).
    CrossValence,
    /// Source and target of the same valence.
    WithinValence,
    /// Cross-valence rows whose target is positive (negative -> positive: "make me happier").
    ToPositive,
    /// Cross-valence rows whose target is negative.
    ToNegative,
}

impl Subset {
    /// All subsets in report order.
    pub const ALL: [Subset; 4] = [
        Subset::CrossValence,
        Subset::WithinValence,
        Subset::ToPositive,
        Subset::ToNegative,
    ];

    /// The human study's subsets, in report order: every trial, then by the target's valence.
    pub const STUDY: [Subset; 3] = [Subset::Overall, Subset::ToPositive, Subset::ToNegative];

    /// File-friendly name.
    pub fn name(self) -> &'static str {
        match self {
            Subset::Overall => "overall",
            Subset::CrossValence => "cross-valence",
            Subset::WithinValence => "within-valence",
            Subset::ToPositive => "to-positive",
            Subset::ToNegative => "to-negative",
        }
    }

    /// Whether a row belongs to the subset (neutral sources belong to none).
    pub fn contains(self, r: &ScoreRow) -> bool {
        let Some(s) = r.source_emotion else {
            return false;
        };
        let cross = s.valence() != r.target.valence();
        match self {
            Subset::Overall => true,
            Subset::CrossValence => cross,
            Subset::WithinValence => !cross,
            Subset::ToPositive => cross && r.target.valence() == Valence::Positive,
            Subset::ToNegative => cross && r.target.valence() == Valence::Negative,
        }
    }

    /// Whether a human-study trial towards `target` belongs to the subset: the study splits its
    /// trials by the target's valence alone (its trials are cross-valence by design).
    pub fn holds_for_target(self, target: Emotion) -> bool {
        match self {
            Subset::Overall => true,
            Subset::ToPositive => target.valence() == Valence::Positive,
            Subset::ToNegative => target.valence() == Valence::Negative,
            Subset::CrossValence | Subset::WithinValence => false,
        }
    }
}

/// Means over one (method, subset).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Method.
    pub method: String,
    /// Subset.
    pub subset: Subset,
    /// Rows averaged.
    pub n: usize,
    /// Emotion matching ratio, %.
    pub emr: f64,
    /// Emotion shift ratio, %.
    pub esr: f64,
    /// Emotion-neutral region deviation, 0-255.
    pub enrd: f64,
    /// Edge structure similarity, 0-255.
    pub ess: f64,
    /// Mean SSIM.
    pub ssim: f64,
    /// Mean L1, 0-255.
    pub l1: f64,
}

/// Summaries of every method for one subset; methods with no rows in the subset are left out.
pub fn summarise(rows: &[ScoreRow], methods: &[String], subset: Subset) -> Vec<Summary> {
    methods
        .iter()
        .filter_map(|m| {
            let sel: Vec<&ScoreRow> = rows
                .iter()
                .filter(|r| &r.method == m && subset.contains(r))
                .collect();
            let n = sel.len();
            if n == 0 {
                return None;
            }
            let mean =
                |f: &dyn Fn(&ScoreRow) -> f64| sel.iter().map(|r| f(r)).sum::<f64>() / n as f64;
            Some(Summary {
                method: m.clone(),
                subset,
                n,
                emr: 100.0 * mean(&|r| f64::from(u8::from(r.m.emr))),
                esr: 100.0 * mean(&|r| f64::from(u8::from(r.m.esr))),
                enrd: mean(&|r| r.m.enrd),
                ess: mean(&|r| r.m.ess),
                ssim: mean(&|r| r.m.ssim),
                l1: mean(&|r| r.m.l1),
            })
        })
        .collect()
}

/// A row of the paper's Table 1 (cross-valence, 2,016 pairs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PaperRow {
    /// Method as the paper names it.
    pub paper_name: &'static str,
    /// emobench's method name for it.
    pub method: &'static str,
    /// EMR %.
    pub emr: f64,
    /// ESR %.
    pub esr: f64,
    /// ENRD.
    pub enrd: f64,
    /// ESS.
    pub ess: f64,
}

/// Table 1 of the paper (README revision of June 2024 and later).
pub const PAPER_TABLE1: [PaperRow; 8] = [
    PaperRow {
        paper_name: "CT",
        method: "ct",
        emr: 6.89,
        esr: 79.32,
        enrd: 33.29,
        ess: 7.36,
    },
    PaperRow {
        paper_name: "NST",
        method: "nst",
        emr: 34.42,
        esr: 92.01,
        enrd: 34.45,
        ess: 18.57,
    },
    PaperRow {
        paper_name: "CLIPstyler",
        method: "clipstyler",
        emr: 11.51,
        esr: 85.52,
        enrd: 41.47,
        ess: 36.64,
    },
    PaperRow {
        paper_name: "Ip2p",
        method: "ip2p",
        emr: 2.53,
        esr: 67.76,
        enrd: 9.39,
        ess: 12.71,
    },
    PaperRow {
        paper_name: "LMS",
        method: "lms",
        emr: 11.51,
        esr: 77.38,
        enrd: 26.13,
        ess: 19.74,
    },
    PaperRow {
        paper_name: "EmoEditor w/o P",
        method: "emoeditor-no-p",
        emr: 5.06,
        esr: 69.15,
        enrd: 19.45,
        ess: 14.93,
    },
    PaperRow {
        paper_name: "EmoEditor w/o L_emb",
        method: "emoeditor-no-lemb",
        emr: 43.35,
        esr: 91.62,
        enrd: 22.53,
        ess: 16.00,
    },
    PaperRow {
        paper_name: "EmoEditor",
        method: "emoeditor",
        emr: 50.20,
        esr: 92.86,
        enrd: 23.98,
        ess: 16.27,
    },
];

/// The paper's row for an emobench method name, if it has one.
pub fn paper_row(method: &str) -> Option<&'static PaperRow> {
    PAPER_TABLE1.iter().find(|p| p.method == method)
}
