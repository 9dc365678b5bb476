//! `emobench report` end to end: the demo's run and scores, a tiny EmoEditor run with critic
//! traces and its iteration study (Fig. S11), and a simulated study become one page, which real headless Chromium checks
//! (studies/web/test/report_page.mjs): no console error, every image decodes, every link
//! resolves, the filters work. A screenshot is left in the target folder for a person to look at.
//!
//! Needs Debian's `chromium` (or $CHROMIUM) and `npm ci` in studies/web/test; where they are
//! missing the browser part says it skipped, except under CI=true, where it fails.

#[path = "fixtures/study/common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn emobench(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_emobench"))
        .args(args)
        .output()
        .expect("emobench runs");
    assert!(
        o.status.success(),
        "emobench {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn missing_browser() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !PathBuf::from(&chromium).is_file() {
        return Some(format!("no Chromium at {chromium}"));
    }
    let pw = common::root().join("studies/web/test/node_modules/playwright-core");
    if Command::new("node").arg("--version").output().is_err() || !pw.is_dir() {
        return Some("no node or playwright-core (npm ci in studies/web/test)".into());
    }
    None
}

/// A tiny EmoEditor run (the diffusion fixtures) on one demo photo, into `runs`.
fn emoeditor_run(dir: &Path, runs: &Path) -> PathBuf {
    let d = common::root().join("models/tests/fixtures/diffusion");
    let csv = dir.join("chelsea.csv");
    std::fs::write(
        &csv,
        format!(
            "id,path,emotion\nchelsea,{},amusement\n",
            s(&common::root().join("studies/demo/photos/chelsea.jpg"))
        ),
    )
    .unwrap();
    let opts = format!(
        r#"{{"ip2p": "{}", "config_dir": "{}", "encoder": "{}", "predictor": "{}", "predictor_arch": "tiny", "steps": 2, "max_passes": 3, "num_loop": 3, "keep_passes": true}}"#,
        s(&d.join("model_ip2p.pt")),
        s(&d.join("tiny-ip2p")),
        s(&d.join("model_emoenc.pt")),
        s(&common::root().join("tests/fixtures/torch/resnet18_tiny.pt")),
    );
    emobench(&[
        "edit",
        "--method",
        "emoeditor",
        "--sources",
        &s(&csv),
        "--targets",
        "fear,sadness",
        "--out",
        &s(runs),
        "--options",
        &opts,
    ]);
    csv
}

/// Fig. S11 from that run: caps 1..3 derived and scored with the tiny predictor.
fn iterations(csv: &Path, runs: &Path, out: &Path) {
    emobench(&[
        "iterations",
        "--sources",
        &s(csv),
        "--runs",
        &s(runs),
        "--out",
        &s(out),
        "--targets",
        "fear,sadness",
        "--caps",
        "1..3",
        "--predictor",
        &s(&common::root().join("tests/fixtures/torch/resnet18_tiny.pt")),
        "--arch",
        "tiny",
    ]);
}

/// A simulated study over synthetic runs, analysed into `dir/study`.
fn study(dir: &Path) -> PathBuf {
    let runs = common::make_runs(dir, &["emoeditor", "ct", "nst"], &[], false);
    let toml = common::write_study(dir, 6, 12, 3, "");
    let design = dir.join("design");
    emobench(&[
        "trials",
        "design",
        "--runs",
        &s(&runs),
        "--study",
        &s(&toml),
        "--out",
        &s(&design),
    ]);
    let responses = dir.join("responses.csv");
    emobench(&[
        "trials",
        "simulate",
        "--design",
        &s(&design),
        "--out",
        &s(&responses),
    ]);
    let out = dir.join("study");
    emobench(&[
        "trials",
        "analyse",
        "--design",
        &s(&design),
        "--responses",
        &s(&responses),
        "--out",
        &s(&out),
        "--resamples",
        "200",
    ]);
    out
}

#[test]
fn the_report_page_shows_everything_and_passes_the_browser_check() {
    let dir = common::temp_dir("report-page");
    let demo = dir.join("demo");
    emobench(&["demo", "--out", &s(&demo)]);
    let runs = demo.join("runs");
    let chelsea = emoeditor_run(&dir, &runs);
    let iter = dir.join("iterations");
    iterations(&chelsea, &runs, &iter);
    let sources = common::root().join("studies/demo/sources.csv");
    let all = dir.join("scores-all");
    emobench(&[
        "score",
        "--sources",
        &s(&sources),
        "--runs",
        &s(&runs),
        "--out",
        &s(&all),
        "--predictor",
        &s(&common::root().join("tests/fixtures/torch/resnet18_tiny.pt")),
        "--arch",
        "tiny",
    ]);
    let study = study(&dir.join("s"));

    let site = |out: &Path| {
        let o = emobench(&[
            "report",
            "--out",
            &s(out),
            "--scores",
            &s(&all),
            "--scores",
            &s(&demo.join("reports/score")),
            "--runs",
            &s(&runs),
            "--study",
            &s(&study),
            "--iterations",
            &s(&iter),
        ]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let a = dir.join("site-a");
    assert_eq!(site(&a), s(&a.join("index.html")));
    let html = std::fs::read_to_string(a.join("index.html")).unwrap();
    // The demo's stand-in predictor is named at the top, before any table.
    let banner = html.find("id=\"stand-ins\"").expect("stand-in banner");
    assert!(banner < html.find("id=\"table1\"").unwrap());
    assert!(html.contains("scores in score: STAND-IN PREDICTOR"));
    // Every run, its weights with SHA-256, every trace and every study figure are on the page.
    for needle in [
        "id=\"run-ct\"",
        "id=\"run-emoeditor\"",
        "id=\"trace-emoeditor-chelsea-fear\"",
        "id=\"trace-emoeditor-chelsea-sadness\"",
        "study/fig5_preferences.png",
        "study/figS8_matrix_average.png",
        "Data cleaning",
        "iterations/0/iterations.png",
        "iterations/0/iterations.csv",
        "id=\"score-scores-all-emoeditor-chelsea-fear\"",
    ] {
        assert!(html.contains(needle), "{needle} not on the page");
    }
    let sha = emobench_core::provenance::sha256_file(
        &common::root().join("models/tests/fixtures/diffusion/model_ip2p.pt"),
    )
    .unwrap();
    assert!(
        html.contains(&sha),
        "the ip2p weights' SHA-256 is not on the page"
    );

    // Same inputs, same bytes (the page names its own output folder in its provenance line).
    let b = dir.join("site-b");
    site(&b);
    let mut files = Vec::new();
    let mut stack = vec![a.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path().strip_prefix(&a).unwrap().to_path_buf());
            }
        }
    }
    assert!(files.len() > 40, "{} files", files.len());
    for f in &files {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).expect("same files"),
        );
        if f == Path::new("index.html") {
            let y = String::from_utf8(y).unwrap().replace(&s(&b), &s(&a));
            assert!(x == y.as_bytes(), "index.html differs beyond its own path");
        } else {
            assert!(x == y, "{} differs between identical runs", f.display());
        }
    }

    match missing_browser() {
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("browser check cannot run in CI: {why}")
        }
        Some(why) => println!("SKIPPED the browser check of the report page: {why}"),
        None => {
            let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_page.png");
            let o = Command::new("node")
                .arg(common::root().join("studies/web/test/report_page.mjs"))
                .arg(&a)
                .arg(&shot)
                .output()
                .expect("node runs");
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "report_page.mjs: {out}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON summary");
            assert_eq!(v["summary"]["traces"], 2, "{out}");
            assert!(v["summary"]["galleryRows"].as_u64().unwrap() >= 32, "{out}");
            let sections = v["summary"]["sections"].to_string();
            for id in [
                "table1",
                "confusion",
                "gallery",
                "traces",
                "study",
                "runs",
                "scores",
            ] {
                assert!(sections.contains(id), "section {id} missing: {out}");
            }
            assert!(shot.is_file());
            println!("screenshot: {}", shot.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
