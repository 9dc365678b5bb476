//! `trials design`: balance, reproducibility, image manifest, page and manifests.

#[path = "fixtures/study/common.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use studies::config::Study;
use studies::design::{by_participant, DesignInputs};
use studies::ingest::{Kind, Side};
use studies::publish::make_design;
use studies::web::write_check_image;

#[test]
fn design_is_balanced_reproducible_and_uses_only_complete_pairs() {
    let dir = common::temp_dir("design");
    let skip = [("ct", "s_fear", "awe"), ("emoeditor", "s_sad", "amusement")];
    let runs = common::make_runs(&dir, &["emoeditor", "ct", "nst"], &skip, false);
    let study = Study::load(&common::write_study(&dir, 9, 21, 6, "")).expect("study");
    let d = make_design(
        &study,
        &DesignInputs {
            runs: runs.clone(),
            out: dir.join("d1"),
        },
    )
    .expect("design");

    // Same seed, files created in the other order, another folder: identical bytes.
    let dir2 = common::temp_dir("design-rev");
    let runs2 = common::make_runs(&dir2, &["nst", "ct", "emoeditor"], &skip, true);
    let study2 = Study::load(&common::write_study(&dir2, 9, 21, 6, "")).expect("study");
    make_design(
        &study2,
        &DesignInputs {
            runs: runs2,
            out: dir2.join("d2"),
        },
    )
    .expect("design 2");
    for f in ["trials.csv", "mturk/batch_input.csv", "study.js"] {
        let same = std::fs::read(dir.join("d1").join(f)).expect("read")
            == std::fs::read(dir2.join("d2").join(f)).expect("read");
        assert!(same, "{f} differs between runs");
    }

    let per = by_participant(&d.trials);
    assert_eq!(per.len(), 9);
    let mut global: BTreeMap<String, u64> = BTreeMap::new();
    for (pid, trials) in &per {
        assert_eq!(trials.len(), 27, "{pid}");
        let real: Vec<_> = trials.iter().filter(|t| t.kind == Kind::Real).collect();
        let checks: Vec<_> = trials.iter().filter(|t| t.kind == Kind::Check).collect();
        assert_eq!(real.len(), 21);
        assert_eq!(checks.len(), 6);
        // Left/right balanced within one.
        let ref_left = real.iter().filter(|t| t.left_method == "emoeditor").count();
        assert!(
            ref_left == 10 || ref_left == 11,
            "{pid}: reference left {ref_left}"
        );
        let c_left = checks
            .iter()
            .filter(|t| t.correct_side == Some(Side::Left))
            .count();
        assert_eq!(c_left, 3);
        // Checks never adjacent, each pair once.
        let pos: Vec<u32> = checks.iter().map(|t| t.trial).collect();
        assert!(pos.windows(2).all(|w| w[1] - w[0] >= 2), "{pid}: {pos:?}");
        let ids: HashSet<&str> = checks.iter().map(|t| t.source_id.as_str()).collect();
        assert_eq!(ids.len(), 6);
        // Trial numbers 1..=27.
        let nums: Vec<u32> = trials.iter().map(|t| t.trial).collect();
        assert_eq!(nums, (1..=27).collect::<Vec<_>>());
        // Methods within a participant: 21 trials over 2 methods -> 10 or 11 (+-1 at slice edges).
        let mut m: HashMap<&str, u64> = HashMap::new();
        for t in &real {
            *m.entry(t.compared_method.as_str()).or_default() += 1;
            *global.entry(t.compared_method.clone()).or_default() += 1;
            // Only complete pairs, only cross-valence targets.
            assert!(
                !(t.compared_method == "ct" && t.source_id == "s_fear" && t.target.name() == "awe")
            );
            assert!(!(t.source_id == "s_sad" && t.target.name() == "amusement"));
            assert_ne!(t.source_emotion, None, "source emotion from sources.csv");
            let se: emobench_core::emotion::Emotion = t.source_emotion.expect("emotion");
            let te: emobench_core::emotion::Emotion = t.target;
            assert_ne!(se.valence(), te.valence());
        }
        for v in m.values() {
            assert!((9..=12).contains(v), "{pid}: {m:?}");
        }
        // No (source, target) twice for one participant.
        let conds: HashSet<(&str, &str)> = real
            .iter()
            .map(|t| (t.source_id.as_str(), t.target.name()))
            .collect();
        assert_eq!(conds.len(), real.len(), "{pid} sees a condition twice");
    }
    let counts: Vec<u64> = global.values().copied().collect();
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "{global:?}"
    );
    assert_eq!(d.summary.participants_with_repeats, 0);
    // Conditions per method used evenly: ct has 31 conditions, 189/2 trials -> 3 or 4 uses each.
    for (m, (lo, hi)) in &d.summary.condition_use_range {
        assert!(hi - lo <= 1, "{m}: {lo}..{hi}");
    }

    // Manifest: every image listed with its true SHA-256, names reveal nothing.
    let out = dir.join("d1");
    let mut rdr = csv::Reader::from_path(out.join("images.csv")).expect("images.csv");
    let mut n = 0;
    for r in rdr.deserialize::<studies::design::ImageRow>() {
        let r = r.expect("row");
        let bytes = std::fs::read(out.join(&r.file)).expect("image copied");
        assert_eq!(studies::sha256_hex(&bytes), r.sha256);
        assert!(!r.file.contains(&r.method));
        n += 1;
    }
    assert_eq!(n as u64, d.summary.images);
    // Page + manifests + metadata.
    for f in [
        "index.html",
        "experiment.js",
        "style.css",
        "study.js",
        "metadata.json",
        "design.json",
        "mturk/template.html",
        "mturk/external_question.xml",
        "prolific/study.md",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let tpl = std::fs::read_to_string(out.join("mturk/template.html")).expect("template");
    assert_eq!(
        tpl.matches("${").count(),
        2,
        "only ${{set}} and ${{trials}} may be MTurk placeholders"
    );
    assert!(tpl.contains("${set}") && tpl.contains("${trials}"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metadata.json")).expect("meta"))
            .expect("json");
    assert_eq!(meta["seed"], 42);
    assert!(meta["inputs"].as_array().expect("inputs").len() >= 3);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn design_errors_name_the_problem() {
    let dir = common::temp_dir("design-err");
    let runs = common::make_runs(&dir, &["emoeditor", "ct"], &[], false);
    let study = Study::load(&common::write_study(&dir, 2, 10, 2, "")).expect("study");
    let e = make_design(
        &study,
        &DesignInputs {
            runs,
            out: dir.join("d"),
        },
    )
    .expect_err("nst missing");
    assert!(e.to_string().contains("nst"), "{e}");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\ncompared = []\nparticipants = 1\nattention_checks = \"a.csv\"\nseed = 1\n",
    )
    .expect("write");
    let e = Study::load(&bad).expect_err("empty compared");
    assert!(e.to_string().contains("bad.toml"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shipped_studies_load() {
    for s in ["paper-online", "paper-lab", "demo"] {
        let p = common::root().join("studies").join(s).join("study.toml");
        let st = Study::load(&p).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(st.config.reference, "emoeditor");
    }
}

/// Regenerates the shipped attention-check images (`just study-check-images`).
#[test]
#[ignore]
fn regenerate_check_images() {
    let dir = common::root().join("studies/checks");
    let colours = [
        (250, 226, 160),
        (190, 220, 250),
        (200, 240, 200),
        (235, 210, 240),
        (250, 210, 190),
        (220, 220, 220),
    ];
    for (i, c) in colours.iter().enumerate() {
        write_check_image(
            &dir.join(format!("check{}_choose.png", i + 1)),
            &["Choose", "this image"],
            *c,
        )
        .expect("png");
        write_check_image(
            &dir.join(format!("check{}_avoid.png", i + 1)),
            &["Do NOT", "choose", "this image"],
            *c,
        )
        .expect("png");
    }
}
