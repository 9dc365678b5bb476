//! Design -> simulated participants -> every response format -> analyse: the formats agree, the
//! attention rule removes the clickers, planted effects are recovered, figures are written.

#[path = "fixtures/study/common.rs"]
mod common;
mod tidy;

use std::path::Path;

use studies::analysis::AnalyseOptions;
use studies::config::Study;
use studies::design::{Design, DesignInputs};
use studies::publish::make_design;
use studies::report::analyse_files;
use studies::simulate::{simulate, write, ResponseFormat, SimulateOptions};

fn design(dir: &Path, participants: u32, trials: u32) -> Design {
    let runs = common::make_runs(dir, &["emoeditor", "ct", "nst"], &[], false);
    let study = Study::load(&common::write_study(dir, participants, trials, 6, "")).expect("study");
    make_design(
        &study,
        &DesignInputs {
            runs,
            out: dir.join("design"),
        },
    )
    .expect("design")
}

#[test]
fn formats_agree_and_clickers_are_excluded() {
    let dir = common::temp_dir("formats");
    let d = design(&dir, 40, 24);
    let mut opts = SimulateOptions {
        mix: (0.6, 0.3, 0.1),
        seed: 11,
        ..SimulateOptions::default()
    };
    opts.preference.insert("ct".into(), 0.7);
    opts.preference.insert("nst".into(), 0.5);
    opts.missing = 0.01;
    let people = simulate(&d.trials, &opts).expect("simulate");
    let aopts = AnalyseOptions {
        resamples: 300,
        figures: false,
        venue: "online".into(),
        baseline_order: vec!["ct".into(), "nst".into()],
        ..AnalyseOptions::default()
    };
    let mut results = Vec::new();
    for (fmt, name) in [
        (ResponseFormat::Tidy, "tidy.csv"),
        (ResponseFormat::Web, "web.csv"),
        (ResponseFormat::Mturk, "mturk.csv"),
    ] {
        let p = dir.join(name);
        write(&people, fmt, &p).expect("write");
        let a = analyse_files(&[p], &aopts, None, &[]).expect("analyse");
        results.push(a);
    }
    for a in &results[1..] {
        assert_eq!(
            a.summary.trials_analysed,
            results[0].summary.trials_analysed
        );
        assert_eq!(
            a.summary.participants_kept,
            results[0].summary.participants_kept
        );
        assert_eq!(a.preferences.len(), results[0].preferences.len());
        for (x, y) in a.preferences.iter().zip(&results[0].preferences) {
            assert_eq!(
                (x.trials, x.reference_chosen),
                (y.trials, y.reference_chosen)
            );
            assert_eq!(x.boot_low, y.boot_low);
        }
    }
    let a = &results[0];
    // Random clickers pass the rule with probability 7/64 (side-biased ones less often); most are
    // removed and every attentive participant is kept.
    let attentive = people
        .iter()
        .filter(|p| p.behaviour == studies::simulate::Behaviour::Attentive)
        .count() as u64;
    assert!(
        a.summary.participants_kept >= attentive - 2,
        "kept {} of {attentive} attentive",
        a.summary.participants_kept
    );
    assert!(a.summary.participants_kept <= attentive + 5);
    let ct = a
        .preferences
        .iter()
        .find(|r| r.baseline == "ct" && r.subset == "overall")
        .expect("ct");
    assert!(ct.preference > 0.6, "ct {}", ct.preference);
    assert!(ct.p_holm < 0.05);
    let bt = &a.bradley_terry;
    assert_eq!(bt.len(), 3);
    assert_eq!(bt[0].method, "emoeditor", "{bt:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn analyse_writes_every_output() {
    let dir = common::temp_dir("outputs");
    let d = design(&dir, 12, 24);
    let people = simulate(
        &d.trials,
        &SimulateOptions {
            seed: 3,
            ..SimulateOptions::default()
        },
    )
    .expect("simulate");
    let p = dir.join("r.csv");
    write(&people, ResponseFormat::Tidy, &p).expect("write");
    let out = dir.join("report");
    let a = analyse_files(
        &[p],
        &AnalyseOptions {
            resamples: 200,
            ..AnalyseOptions::default()
        },
        Some(&out),
        &[dir.join("design/design.json")],
    )
    .expect("analyse");
    for f in [
        "preferences.csv",
        "matrices.csv",
        "bradley_terry.csv",
        "participants.csv",
        "cleaning.json",
        "cleaning.md",
        "report.md",
        "summary.json",
        "metadata.json",
        "responses_clean.csv",
        "fig5_preferences.png",
        "fig5_preferences.svg",
        "figS7_breakdown.png",
        "figS8_matrix_average.png",
        "figS9_matrices_per_baseline.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // preferences.csv carries DESIGN.md's columns.
    let header = std::fs::read_to_string(out.join("preferences.csv")).expect("read");
    let first = header.lines().next().expect("header");
    for c in [
        "baseline",
        "subset",
        "venue",
        "participants",
        "trials",
        "preference",
        "se_participants",
        "se_trials",
        "wilson_low",
        "wilson_high",
        "p_binomial",
        "p_holm",
        "boot_low",
        "boot_high",
    ] {
        assert!(
            first.split(',').any(|h| h == c),
            "column {c} missing from {first}"
        );
    }
    // Traceability: the overall row's trial count equals the rows of responses_clean.csv.
    let clean = std::fs::read_to_string(out.join("responses_clean.csv")).expect("read");
    assert_eq!(clean.lines().count() as u64 - 1, a.summary.trials_analysed);
    tidy::assert_tidy_csvs(&out, 5);
    tidy::assert_tidy_csvs(&dir.join("design"), 3);
    if let Ok(keep) = std::env::var("EMOBENCH_KEEP_STUDY_REPORT") {
        let _ = std::fs::create_dir_all(&keep);
        for e in std::fs::read_dir(&out).expect("dir").flatten() {
            let _ = std::fs::copy(e.path(), Path::new(&keep).join(e.file_name()));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn coverage(replications: u64) -> u64 {
    let dir = common::temp_dir(&format!("coverage{replications}"));
    let d = design(&dir, 120, 100);
    let aopts = AnalyseOptions {
        resamples: 1000,
        figures: false,
        splits: 1,
        ..AnalyseOptions::default()
    };
    let mut covered = 0;
    for rep in 0..replications {
        let opts = SimulateOptions {
            seed: 1000 + rep,
            lapse: 0.0,
            ..SimulateOptions::default()
        };
        let people = simulate(&d.trials, &opts).expect("simulate");
        let p = dir.join("r.csv");
        write(&people, ResponseFormat::Tidy, &p).expect("write");
        let a = analyse_files(
            &[p],
            &AnalyseOptions {
                seed: rep,
                ..aopts.clone()
            },
            None,
            &[],
        )
        .expect("analyse");
        assert_eq!(a.summary.participants_kept, 120);
        let (lo, hi) = a.summary.boot_interval;
        if lo <= 0.56 && 0.56 <= hi {
            covered += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    covered
}

/// Reduced coverage check that always runs: 12 replications, at least 10 must cover.
#[test]
fn bootstrap_interval_covers_planted_preference_reduced() {
    let c = coverage(12);
    assert!(c >= 10, "covered {c} of 12");
}

/// The criterion: at least 90 of 100 seeded replications cover 0.56
/// (`cargo test --release --test study_analyse -- --ignored`, or `just study-coverage`).
#[test]
#[ignore]
fn bootstrap_interval_covers_planted_preference_100() {
    let c = coverage(100);
    println!("covered {c} of 100");
    assert!(c >= 90, "covered {c} of 100");
}
