//! EmoEditor's iterative emotion critic: which image each pass edits, which passes are kept, when
//! to stop, and which image is the result.
//!
//! Two profiles:
//! * [`Profile::Code`] reproduces the authors' released `test.py` (commit 4d70262), quirks
//!   included, and is checked against that file run unchanged on scripted predictions
//!   (`tests/fixtures/critic/`): accept a pass when 0.5 < SSIM < 0.8 (strict) or the predicted
//!   emotion is the target; stop once the best target probability reaches 0.6 or `num_loop - 1`
//!   passes were accepted; every pass after the first uses the FIRST pass's softmax in its emotion
//!   direction; a rejected pass is discarded and the next one edits the last accepted image; when
//!   the last pass's prediction is not the target the result falls back to the best
//!   same-valence image, then the best target-probability image, then the last accepted one.
//!   The authors' loop never ends when no pass is ever accepted: [`CriticOptions::max_passes`]
//!   bounds it.
//! * [`Profile::Paper`] follows the paper's Section 3 wording: stop when 0.3 < SSIM < 0.8 AND the
//!   prediction is the target with confidence > 0.8; each pass edits the previous pass's output;
//!   at most 30 passes; otherwise the pass with the highest target confidence.
//!
//! The logic is separate from the networks: a pass is a callback that edits an image and reports
//! the predictor's probabilities and the SSIM to the source. [`replay_critic`] feeds the same loop
//! the outcomes a trace recorded, so a shorter cap's result is decided by the very code that
//! decided the live run's (passes are sequential: a capped run's passes are the first ones of a
//! longer run).

use serde::{Deserialize, Serialize};

/// Which stopping and selection rules to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The authors' released inference code (the default).
    Code,
    /// The rules as the paper states them.
    Paper,
    /// One pass, no critic: the paper's "w/o P" ablation.
    NoCritic,
}

impl Profile {
    /// Every profile, as named on the command line.
    pub const ALL: [Profile; 3] = [Profile::Code, Profile::Paper, Profile::NoCritic];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Code => "code",
            Profile::Paper => "paper",
            Profile::NoCritic => "no-critic",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// Limits of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriticOptions {
    /// The profile.
    pub profile: Profile,
    /// The authors' `num_loop` (30): the cap on accepted images counting the source
    /// ([`Profile::Code`]), or on passes ([`Profile::Paper`]).
    pub num_loop: usize,
    /// Hard cap on passes of any profile; the authors' loop has none.
    pub max_passes: usize,
}

impl Default for CriticOptions {
    fn default() -> Self {
        Self {
            profile: Profile::Code,
            num_loop: 30,
            max_passes: 100,
        }
    }
}

/// What the caller's pass reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassOutcome {
    /// Softmax of the predictor on the edited image, `f32` as PyTorch computes it, in the
    /// predictor's class order.
    pub probs: [f32; 8],
    /// SSIM (gray, window 51) between the source and the edited image, both quantised to 8 bits.
    pub ssim: f64,
}

/// Which image a pass edits and whose probabilities its emotion direction uses: 0 is the
/// source, k is pass k's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassInput {
    /// The image to edit.
    pub image: usize,
    /// The image whose predicted distribution is subtracted from the target one-hot.
    pub direction_from: usize,
}

/// One row of the per-image trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRow {
    /// 1-based pass number.
    pub pass: usize,
    /// What it edited.
    pub input: PassInput,
    /// SSIM to the source.
    pub ssim: f64,
    /// Index of the predicted class (predictor order).
    pub predicted: usize,
    /// Probability of the target.
    pub target_prob: f32,
    /// Whether the critic kept the pass.
    pub accepted: bool,
    /// The predictor's softmax on the edited image (predictor order): with `ssim`, everything
    /// the critic saw of the pass, so [`replay_critic`] can decide again from the trace.
    pub probs: [f32; 8],
}

impl TraceRow {
    /// What the pass reported to the critic.
    pub fn outcome(&self) -> PassOutcome {
        PassOutcome {
            probs: self.probs,
            ssim: self.ssim,
        }
    }
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The stopping criterion was met.
    Criterion,
    /// `num_loop` was reached.
    LoopLimit,
    /// [`CriticOptions::max_passes`] was reached (the authors' loop would have gone on).
    PassCap,
    /// The no-critic profile ran its single pass.
    SinglePass,
}

/// The loop's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticResult {
    /// The image kept as the result: 0 is the unedited source, k is pass k's output.
    pub kept: usize,
    /// Every pass.
    pub trace: Vec<TraceRow>,
    /// Why it stopped.
    pub stopped: StopReason,
}

/// Runs the critic loop. `positive[i]` says whether class `i` (predictor order) is a positive
/// emotion; `target` is the target's class index; `pass` edits an image and reports.
pub fn run_critic<E>(
    opts: &CriticOptions,
    target: usize,
    positive: &[bool; 8],
    mut pass: impl FnMut(PassInput) -> Result<PassOutcome, E>,
) -> Result<CriticResult, E> {
    match opts.profile {
        Profile::Code => run_code(opts, target, positive, &mut pass),
        Profile::Paper => run_paper(opts, target, &mut pass),
        Profile::NoCritic => {
            let input = PassInput {
                image: 0,
                direction_from: 0,
            };
            let out = pass(input)?;
            let predicted = argmax(&out.probs);
            Ok(CriticResult {
                kept: 1,
                trace: vec![TraceRow {
                    pass: 1,
                    input,
                    ssim: out.ssim,
                    predicted,
                    target_prob: out.probs[target],
                    accepted: true,
                    probs: out.probs,
                }],
                stopped: StopReason::SinglePass,
            })
        }
    }
}

/// First maximum, as `torch.argmax` returns on CPU.
fn argmax(p: &[f32; 8]) -> usize {
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[best] {
            best = i;
        }
    }
    best
}

fn run_code<E>(
    opts: &CriticOptions,
    target: usize,
    positive: &[bool; 8],
    pass: &mut impl FnMut(PassInput) -> Result<PassOutcome, E>,
) -> Result<CriticResult, E> {
    // The authors keep these as Python floats holding f32 values and compare them with 0.6 in
    // double precision: f32(0.6) > 0.6, so a probability of exactly f32(0.6) stops the loop.
    let mut best_tgt = 0f32;
    let mut best_tgt_img = None;
    let mut best_same = 0f32;
    let mut best_same_img = None;
    // The list the authors save from: the source, then every accepted pass.
    let mut accepted: Vec<usize> = vec![0];
    let mut trace = Vec::new();
    let mut last_predicted;
    let mut k = 0;
    let stopped = loop {
        k += 1;
        let input = PassInput {
            image: *accepted.last().unwrap_or(&0),
            direction_from: if k == 1 { 0 } else { 1 },
        };
        let out = pass(input)?;
        let predicted = argmax(&out.probs);
        last_predicted = predicted;
        let ok = (out.ssim < 0.8 && out.ssim > 0.5) || predicted == target;
        if ok {
            if positive[predicted] == positive[target] {
                let conf = out.probs[predicted];
                if conf > best_same {
                    best_same = conf;
                    best_same_img = Some(k);
                }
            }
            let conf = out.probs[target];
            if conf > best_tgt {
                best_tgt = conf;
                best_tgt_img = Some(k);
            }
            accepted.push(k);
        }
        trace.push(TraceRow {
            pass: k,
            input,
            ssim: out.ssim,
            predicted,
            target_prob: out.probs[target],
            accepted: ok,
            probs: out.probs,
        });
        if f64::from(best_tgt) >= 0.6 {
            break StopReason::Criterion;
        }
        if accepted.len() >= opts.num_loop {
            break StopReason::LoopLimit;
        }
        if k >= opts.max_passes {
            break StopReason::PassCap;
        }
    };
    let mut kept = *accepted.last().unwrap_or(&0);
    if last_predicted != target {
        if f64::from(best_tgt) > 0.6 {
            kept = best_tgt_img.unwrap_or(kept);
        } else if best_same != 0.0 {
            kept = best_same_img.unwrap_or(kept);
        } else if best_tgt != 0.0 {
            kept = best_tgt_img.unwrap_or(kept);
        }
    }
    Ok(CriticResult {
        kept,
        trace,
        stopped,
    })
}

fn run_paper<E>(
    opts: &CriticOptions,
    target: usize,
    pass: &mut impl FnMut(PassInput) -> Result<PassOutcome, E>,
) -> Result<CriticResult, E> {
    let limit = opts.num_loop.min(opts.max_passes).max(1);
    let mut trace = Vec::new();
    let mut best: Option<(f32, usize)> = None;
    for k in 1..=limit {
        let input = PassInput {
            image: k - 1,
            direction_from: 0,
        };
        let out = pass(input)?;
        let predicted = argmax(&out.probs);
        let conf = out.probs[target];
        let done = out.ssim > 0.3 && out.ssim < 0.8 && predicted == target && conf > 0.8;
        trace.push(TraceRow {
            pass: k,
            input,
            ssim: out.ssim,
            predicted,
            target_prob: conf,
            accepted: done,
            probs: out.probs,
        });
        if best.is_none_or(|(b, _)| conf > b) {
            best = Some((conf, k));
        }
        if done {
            return Ok(CriticResult {
                kept: k,
                trace,
                stopped: StopReason::Criterion,
            });
        }
    }
    let stopped = if limit < opts.num_loop {
        StopReason::PassCap
    } else {
        StopReason::LoopLimit
    };
    Ok(CriticResult {
        kept: best.map_or(0, |(_, k)| k),
        trace,
        stopped,
    })
}

/// Why recorded passes cannot be replayed under other limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    /// The rules asked for a pass the record does not have: the recorded run stopped sooner
    /// than these limits would (a larger cap, a different profile or pass cap).
    #[error("the rules ask for pass {pass} but only {recorded} passes were recorded")]
    ShortRecord {
        /// The pass asked for (1-based).
        pass: usize,
        /// Passes in the record.
        recorded: usize,
    },
    /// The rules asked pass `pass` to edit another image than the recorded pass edited: the
    /// record was made under other rules.
    #[error("pass {pass} edits image {asked}, but the recorded pass edited image {recorded}")]
    InputMismatch {
        /// The pass (1-based).
        pass: usize,
        /// What the rules asked for.
        asked: PassInput,
        /// What the record says.
        recorded: PassInput,
    },
}

impl std::fmt::Display for PassInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (direction from {})", self.image, self.direction_from)
    }
}

/// Runs [`run_critic`] with `opts` on the passes `recorded` holds instead of new ones: the result
/// the live loop would have reached under `opts` when its passes were these. Passes are
/// sequential and each depends only on the ones before it, so this is exact for limits no looser
/// than the recorded run's.
pub fn replay_critic(
    opts: &CriticOptions,
    target: usize,
    positive: &[bool; 8],
    recorded: &[TraceRow],
) -> Result<CriticResult, ReplayError> {
    let mut next = 0;
    run_critic(opts, target, positive, |input| {
        let row = recorded.get(next).ok_or(ReplayError::ShortRecord {
            pass: next + 1,
            recorded: recorded.len(),
        })?;
        next += 1;
        if row.input != input {
            return Err(ReplayError::InputMismatch {
                pass: next,
                asked: input,
                recorded: row.input,
            });
        }
        Ok(row.outcome())
    })
}
