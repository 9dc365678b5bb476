//! The L-BFGS port against `torch.optim.LBFGS` on a smooth convex problem
//! f(x) = sum(a x^2 / 2 + x^4 / 4 + c x), n = 10, in f32, with the closure replaying PyTorch's
//! recorded losses and gradients: the parameters at every closure evaluation and after each
//! `step`, the value each `step` returns, and the state counters (`n_iter`, `func_evals` after
//! every step, history length), for an ill-conditioned problem over 3 default steps (the first
//! runs all 20 iterations), for PyTorch's defaults, for a short history
//! (3 pairs, lr 0.5, max_iter 4: the history shifts), and for max_eval < max_iter with a large
//! tolerance_change (the early-stop branches).

mod common;

use common::{floats, meta};
use models::optim::lbfgs::{Lbfgs, LbfgsConfig, LbfgsError};

fn f32s(v: &serde_json::Value) -> Vec<f32> {
    floats(v).into_iter().map(|x| x as f32).collect()
}

fn config(options: &serde_json::Value) -> LbfgsConfig {
    let mut cfg = match options.get("max_iter") {
        Some(m) => LbfgsConfig::with_max_iter(m.as_u64().unwrap() as usize),
        None => LbfgsConfig::default(),
    };
    if let Some(v) = options.get("lr") {
        cfg.lr = v.as_f64().unwrap();
    }
    if let Some(v) = options.get("history_size") {
        cfg.history_size = v.as_u64().unwrap() as usize;
    }
    if let Some(v) = options.get("max_eval") {
        cfg.max_eval = v.as_u64().unwrap() as usize;
    }
    if let Some(v) = options.get("tolerance_change") {
        cfg.tolerance_change = v.as_f64().unwrap();
    }
    cfg
}

#[test]
fn lbfgs_matches_torch_step_by_step() {
    let m = meta();
    for case in m["lbfgs"].as_array().unwrap() {
        // The closure replays PyTorch's losses and gradients in order, so the test sees only the
        // optimiser's arithmetic and decisions (not the closure's rounding).
        let losses = floats(&case["evals"]);
        let grads: Vec<Vec<f32>> = case["grads"].as_array().unwrap().iter().map(f32s).collect();
        let x_at: Vec<Vec<f64>> = case["x_at_eval"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        let mut x = f32s(&case["x0"]);
        let mut opt = Lbfgs::new(config(&case["options"]));
        let mut k = 0usize;
        let mut worst_eval_x = 0f64;
        let mut worst_step_x = 0f64;
        let steps = case["x_after_step"].as_array().unwrap();
        for (s, want_x) in steps.iter().enumerate() {
            let returned = opt
                .step(&mut x, |x: &mut [f32]| {
                    assert!(
                        k < losses.len(),
                        "more evaluations than PyTorch's {}",
                        losses.len()
                    );
                    for (got, want) in x.iter().zip(&x_at[k]) {
                        worst_eval_x = worst_eval_x.max((f64::from(*got) - want).abs());
                    }
                    let out = (losses[k] as f32, grads[k].clone());
                    k += 1;
                    Ok::<_, LbfgsError>(out)
                })
                .unwrap();
            assert_eq!(f64::from(returned), case["returned"][s].as_f64().unwrap());
            for (got, want) in x.iter().zip(floats(want_x)) {
                worst_step_x = worst_step_x.max((f64::from(*got) - want).abs());
            }
            let counters = &case["counters_after_step"][s];
            assert_eq!(
                (opt.state().n_iter as u64, opt.state().func_evals as u64),
                (counters[0].as_u64().unwrap(), counters[1].as_u64().unwrap()),
                "seed {} step {s}: (n_iter, func_evals)",
                case["seed"]
            );
        }
        assert_eq!(k, losses.len(), "evaluations, seed {}", case["seed"]);
        eprintln!(
            "seed {}: {} steps, {k} evaluations; max |x - torch| at evaluations {worst_eval_x:.2e}, \
             after steps {worst_step_x:.2e}",
            case["seed"],
            steps.len()
        );
        assert!(worst_eval_x < 1e-5, "x: {worst_eval_x}");
        assert!(worst_step_x < 1e-5, "x: {worst_step_x}");
        let st = opt.state();
        assert_eq!(st.n_iter as u64, case["n_iter"].as_u64().unwrap());
        assert_eq!(st.func_evals as u64, case["func_evals"].as_u64().unwrap());
        assert_eq!(st.old_dirs.len() as u64, case["history"].as_u64().unwrap());
    }
}

#[test]
fn feeding_outside_a_step_is_an_error() {
    let mut opt = Lbfgs::new(LbfgsConfig::default());
    let mut x = vec![1.0f32];
    assert_eq!(opt.feed(&mut x, 1.0, vec![1.0]), Err(LbfgsError::NotInStep));
    opt.begin_step();
    assert!(matches!(
        opt.feed(&mut x, 1.0, vec![1.0, 2.0]),
        Err(LbfgsError::Length { .. })
    ));
}

#[test]
fn a_zero_gradient_ends_the_step_after_one_evaluation() {
    let mut opt = Lbfgs::new(LbfgsConfig::default());
    let mut x = vec![0.5f32; 4];
    let mut n = 0;
    let loss = opt
        .step(&mut x, |_: &mut [f32]| {
            n += 1;
            Ok::<_, LbfgsError>((3.0, vec![0.0; 4]))
        })
        .unwrap();
    assert_eq!((loss, n, opt.state().n_iter), (3.0, 1, 0));
    assert_eq!(x, vec![0.5; 4]);
}
