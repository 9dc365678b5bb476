//! Statistics of the study module against SciPy/statsmodels values (tests/fixtures/study/
//! stats_reference.json, made by make_fixtures.py beside it) and REFERENCE.md's values.

use std::path::Path;

use serde_json::Value;
use studies::{bradley_terry, power, stats};

fn fixture() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/study/stats_reference.json");
    let text = std::fs::read_to_string(&p).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * (1.0 + b.abs()),
        "{what}: got {a}, expected {b} (tol {tol})"
    );
}

#[test]
fn binomial_tests_match_scipy() {
    for c in fixture()["binom_test"].as_array().expect("array") {
        let (k, n, p0) = (
            c["k"].as_u64().expect("k"),
            c["n"].as_u64().expect("n"),
            f(&c["p0"]),
        );
        let got = stats::binom_test_two_sided(k, n, p0);
        let want = f(&c["p"]);
        assert!(
            (got - want).abs() < 1e-6,
            "binomtest({k}, {n}, {p0}): {got} vs {want}"
        );
        // Tiny p-values must also be right in relative terms.
        if want > 1e-300 {
            assert!(
                (got / want - 1.0).abs() < 1e-6,
                "binomtest({k}, {n}, {p0}) relative: {got} vs {want}"
            );
        }
    }
}

#[test]
fn intervals_match_statsmodels() {
    for c in fixture()["intervals"].as_array().expect("array") {
        let (k, n, a) = (
            c["k"].as_u64().expect("k"),
            c["n"].as_u64().expect("n"),
            f(&c["alpha"]),
        );
        let (wl, wh) = stats::wilson(k, n, a);
        close(
            wl,
            f(&c["wilson"][0]),
            1e-9,
            &format!("wilson low {k}/{n} {a}"),
        );
        close(
            wh,
            f(&c["wilson"][1]),
            1e-9,
            &format!("wilson high {k}/{n} {a}"),
        );
        let (cl, ch) = stats::clopper_pearson(k, n, a);
        close(
            cl,
            f(&c["clopper_pearson"][0]),
            1e-9,
            &format!("cp low {k}/{n} {a}"),
        );
        close(
            ch,
            f(&c["clopper_pearson"][1]),
            1e-9,
            &format!("cp high {k}/{n} {a}"),
        );
    }
}

#[test]
fn reference_md_values() {
    assert!((stats::binom_test_two_sided(7, 10, 0.5) - 0.34375).abs() < 1e-12);
    assert!((stats::binom_test_two_sided(60, 100, 0.5) - 0.0569).abs() < 5e-5);
    let (l, h) = stats::clopper_pearson(7, 10, 0.05);
    assert!((l - 0.3475).abs() < 5e-5 && (h - 0.9333).abs() < 5e-5);
    let (l, h) = stats::wilson(7, 10, 0.05);
    assert!((l - 0.3968).abs() < 5e-5 && (h - 0.8922).abs() < 5e-5);
    assert!((stats::clopper_pearson(0, 10, 0.05).1 - 0.3085).abs() < 5e-5);
    for (p, n) in [(0.60, 194.0), (0.65, 85.0), (0.70, 47.0)] {
        assert_eq!(
            power::n_independent(p, 0.05, 0.8).ceil(),
            n,
            "n for p = {p}"
        );
    }
    // A random clicker passes "at most 1 of 6 wrong" with probability 7/64.
    let pass: f64 = (0..=1u64)
        .map(|e| stats::binom_ln_pmf(e, 6, 0.5).exp())
        .sum();
    assert!((pass - 7.0 / 64.0).abs() < 1e-12);
}

#[test]
fn holm_matches_statsmodels() {
    for c in fixture()["holm"].as_array().expect("array") {
        let p: Vec<f64> = c["p"].as_array().expect("p").iter().map(f).collect();
        let want: Vec<f64> = c["holm"].as_array().expect("holm").iter().map(f).collect();
        let got = stats::holm(&p);
        for (g, w) in got.iter().zip(&want) {
            close(*g, *w, 1e-12, "holm");
        }
    }
}

#[test]
fn normal_quantiles_match_scipy() {
    for c in fixture()["normal_quantile"].as_array().expect("array") {
        close(
            stats::normal_quantile(f(&c["q"])),
            f(&c["z"]),
            1e-9,
            "norm.ppf",
        );
    }
}

#[test]
fn bradley_terry_matches_logistic_regression() {
    let bt = &fixture()["bradley_terry"];
    let wins: Vec<Vec<f64>> = bt["wins"]
        .as_array()
        .expect("wins")
        .iter()
        .map(|r| r.as_array().expect("row").iter().map(f).collect())
        .collect();
    let fit = bradley_terry::fit(&wins, 0, 0.0, 100_000, 1e-13);
    assert!(fit.converged);
    for (g, w) in fit
        .log_strength
        .iter()
        .zip(bt["log_strength"].as_array().expect("ls"))
    {
        close(*g, f(w), 1e-7, "log-strength");
    }
}

#[test]
fn pearson_quantile_icc_power_match() {
    let fx = fixture();
    let x: Vec<f64> = fx["pearson"]["x"]
        .as_array()
        .expect("x")
        .iter()
        .map(f)
        .collect();
    let y: Vec<f64> = fx["pearson"]["y"]
        .as_array()
        .expect("y")
        .iter()
        .map(f)
        .collect();
    close(
        stats::pearson(&x, &y),
        f(&fx["pearson"]["r"]),
        1e-12,
        "pearson",
    );
    let d: Vec<f64> = fx["quantile"]["data"]
        .as_array()
        .expect("d")
        .iter()
        .map(f)
        .collect();
    for (q, v) in fx["quantile"]["q"]
        .as_array()
        .expect("q")
        .iter()
        .zip(fx["quantile"]["values"].as_array().expect("v"))
    {
        close(stats::quantile_sorted(&d, f(q)), f(v), 1e-12, "quantile");
    }
    let clusters: Vec<(u64, u64)> = fx["icc"]["clusters"]
        .as_array()
        .expect("c")
        .iter()
        .map(|c| (c[0].as_u64().expect("k"), c[1].as_u64().expect("n")))
        .collect();
    close(
        stats::icc_anova(&clusters),
        f(&fx["icc"]["icc"]),
        1e-12,
        "icc",
    );
    for c in fx["power_n"].as_array().expect("power") {
        close(
            power::n_independent(f(&c["p"]), f(&c["alpha"]), f(&c["power"])),
            f(&c["n"]),
            1e-9,
            "power n",
        );
    }
}

#[test]
fn simulated_power_agrees_with_the_normal_approximation() {
    // Independent judgments (ICC 0), one trial each: the simulated size should be near 194 at
    // p = .60; with 20 trials each, near 194 / 20.
    let opts = power::PowerOptions {
        preference: 0.6,
        trials_per_participant: 20,
        icc: 0.0,
        simulations: 400,
        ..power::PowerOptions::default()
    };
    let r = power::power(&opts).expect("power runs");
    assert_eq!(r.participants_normal, 10);
    let k = r.participants_simulated.expect("simulated");
    assert!((8..=14).contains(&k), "simulated participants {k}");
}
