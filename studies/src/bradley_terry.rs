//! Bradley-Terry model of paired comparisons: P(i beats j) = pi_i / (pi_i + pi_j).
//!
//! Fitted by Hunter's (2004) minorisation-maximisation iterations, which increase the likelihood at
//! every step and need no step size. Strengths are reported as log-strengths with a chosen anchor
//! item at 0, the same parametrisation as a logistic regression with +1/-1 item indicators and the
//! anchor dropped (that is how the fixture checks it with statsmodels).

/// A fitted Bradley-Terry model.
#[derive(Debug, Clone, PartialEq)]
pub struct BtFit {
    /// Log-strength per item, anchor = 0. NaN for an item with no comparisons.
    pub log_strength: Vec<f64>,
    /// Iterations used.
    pub iterations: usize,
    /// Whether the relative change fell below the tolerance.
    pub converged: bool,
}

/// Fits the model to `wins[i][j]` = times item i was preferred over item j.
///
/// `prior` adds that many pseudo-wins in both directions to every pair that was compared at
/// least once, which keeps the estimate finite when an item never wins or never loses (0 gives
/// the plain maximum-likelihood fit).
pub fn fit(wins: &[Vec<f64>], anchor: usize, prior: f64, max_iter: usize, tol: f64) -> BtFit {
    let m = wins.len();
    let mut w = wins.to_vec();
    for i in 0..m {
        for j in 0..m {
            if i != j && (wins[i][j] + wins[j][i]) > 0.0 {
                w[i][j] += prior;
            }
        }
    }
    let total_wins: Vec<f64> = (0..m).map(|i| w[i].iter().sum()).collect();
    let compared: Vec<bool> = (0..m)
        .map(|i| (0..m).any(|j| w[i][j] + w[j][i] > 0.0))
        .collect();
    let mut pi = vec![1.0f64; m];
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iter {
        iterations += 1;
        let mut next = pi.clone();
        for i in 0..m {
            if !compared[i] {
                continue;
            }
            let mut denom = 0.0;
            for j in 0..m {
                let nij = w[i][j] + w[j][i];
                if i != j && nij > 0.0 {
                    denom += nij / (pi[i] + pi[j]);
                }
            }
            next[i] = if denom > 0.0 {
                total_wins[i] / denom
            } else {
                pi[i]
            };
        }
        // Rescale by the geometric mean so the numbers stay in range; only ratios matter.
        let logs: Vec<f64> = (0..m)
            .filter(|&i| compared[i] && next[i] > 0.0)
            .map(|i| next[i].ln())
            .collect();
        if !logs.is_empty() {
            let g = (logs.iter().sum::<f64>() / logs.len() as f64).exp();
            for v in next.iter_mut() {
                *v /= g;
            }
        }
        let change = (0..m)
            .filter(|&i| compared[i])
            .map(|i| ((next[i] - pi[i]) / pi[i].max(1e-300)).abs())
            .fold(0.0f64, f64::max);
        pi = next;
        if change < tol {
            converged = true;
            break;
        }
    }
    let a = if anchor < m && pi[anchor] > 0.0 {
        pi[anchor].ln()
    } else {
        0.0
    };
    let log_strength = (0..m)
        .map(|i| {
            if compared[i] {
                pi[i].ln() - a
            } else {
                f64::NAN
            }
        })
        .collect();
    BtFit {
        log_strength,
        iterations,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_items_give_the_log_odds() {
        let wins = vec![vec![0.0, 30.0], vec![20.0, 0.0]];
        let f = fit(&wins, 0, 0.0, 10_000, 1e-12);
        assert!(f.converged);
        assert!((f.log_strength[1] - (20.0f64 / 30.0).ln()).abs() < 1e-8);
    }
}
