//! The `emobench` binary end to end: edit (resume, shards, determinism), score (reports, missing
//! outputs, stand-in notice), predict, and one-line errors on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod tidy;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emobench"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("emobench-cli-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two 224x224 sources and references for every emotion, written into `dir`.
fn tables(dir: &Path) -> (PathBuf, PathBuf) {
    let p = fixtures().join("photos224");
    let sources = dir.join("sources.csv");
    std::fs::write(
        &sources,
        format!(
            "id,path,emotion\nchelsea,{0}/chelsea.png,amusement\nchina,{0}/china.png,fear\n",
            p.display()
        ),
    )
    .unwrap();
    let refs = dir.join("references.csv");
    let mut r = String::from("id,path,emotion\n");
    for (i, e) in emobench_core::emotion::Emotion::ALL.iter().enumerate() {
        let photo = ["astronaut", "coffee", "flower", "rocket"][i % 4];
        r.push_str(&format!("{e}_{photo},{}/{photo}.png,{e}\n", p.display()));
    }
    std::fs::write(&refs, r).unwrap();
    (sources, refs)
}

fn edit(sources: &Path, refs: &Path, out: &Path, extra: &[&str]) -> String {
    let o = run(bin()
        .args([
            "edit",
            "--method",
            "ct",
            "--targets",
            "awe,sadness",
            "--seed",
            "7",
        ])
        .arg("--sources")
        .arg(sources)
        .arg("--references")
        .arg(refs)
        .arg("--out")
        .arg(out)
        .args(extra));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn edit_resumes_shards_and_is_deterministic() {
    let d = tmp("edit");
    let (sources, refs) = tables(&d);
    let a = d.join("runs-a");
    let msg = edit(&sources, &refs, &a, &[]);
    assert!(msg.contains("4 written, 0 already done"), "{msg}");
    assert!(a.join("ct/run.json").is_file());
    assert!(a.join("ct/chelsea/sadness.png").is_file());
    let msg = edit(&sources, &refs, &a, &[]);
    assert!(msg.contains("0 written, 4 already done"), "{msg}");

    // A corrupt output is redone, not trusted.
    std::fs::write(a.join("ct/china/awe.png"), b"half a png").unwrap();
    let msg = edit(&sources, &refs, &a, &[]);
    assert!(msg.contains("1 written, 3 already done"), "{msg}");

    // Two shards into another folder produce the same bytes as the single run.
    let b = d.join("runs-b");
    let m0 = edit(&sources, &refs, &b, &["--shard", "0/2"]);
    let m1 = edit(&sources, &refs, &b, &["--shard", "1/2"]);
    assert!(m0.contains("2 jobs") && m1.contains("2 jobs"), "{m0} {m1}");
    for (s, t) in [
        ("chelsea", "awe"),
        ("chelsea", "sadness"),
        ("china", "awe"),
        ("china", "sadness"),
    ] {
        let x = std::fs::read(a.join(format!("ct/{s}/{t}.png"))).unwrap();
        let y = std::fs::read(b.join(format!("ct/{s}/{t}.png"))).unwrap();
        assert!(x == y, "{s}/{t} differs between runs");
    }
    let ja = std::fs::read_to_string(a.join("ct/run.json")).unwrap();
    assert!(ja.contains("\"seed\": 7") && ja.contains("sha256"), "{ja}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn score_writes_every_report_and_lists_missing_outputs() {
    let d = tmp("score");
    let (sources, refs) = tables(&d);
    let runs = d.join("runs");
    edit(&sources, &refs, &runs, &[]);
    std::fs::remove_file(runs.join("ct/china/sadness.png")).unwrap();
    let score_into = |out: &Path| {
        run(bin()
            .args(["score", "--targets", "awe,sadness", "--json"])
            .arg("--sources")
            .arg(&sources)
            .arg("--runs")
            .arg(&runs)
            .arg("--out")
            .arg(out)
            .arg("--predictor")
            .arg(fixtures().join("resnet18_tiny.pt"))
            .args(["--arch", "tiny"]))
    };
    let out = d.join("report");
    let o = score_into(&out);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary.is_array());
    for f in [
        "scores.csv",
        "missing.csv",
        "table1.md",
        "table1.csv",
        "table1.tex",
        "table1.json",
        "report.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    for f in ["ct_emr.csv", "ct_ess.png", "ct_enrd.svg"] {
        assert!(out.join("confusion").join(f).is_file(), "{f} missing");
    }
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let mut lines = scores.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with(
        "method,source_id,source_emotion,target,p_src_target,p_gen_target,argmax_src,argmax_gen,emr,esr,"
    ));
    assert!(header.contains("p_src_amusement") && header.contains("p_gen_sadness"));
    assert!(header.ends_with(",predictor"), "{header}");
    assert!(lines.all(|l| l.ends_with(",resnet18_tiny.pt")), "{scores}");
    assert_eq!(scores.lines().count(), 4);
    tidy::assert_tidy_csvs(&out, 7);
    let missing = std::fs::read_to_string(out.join("missing.csv")).unwrap();
    assert!(missing.contains("ct,china,sadness,"), "{missing}");
    let meta = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(
        meta.contains("resnet18_tiny.pt") && meta.contains("\"sha256\""),
        "{meta}"
    );
    // Same inputs, same bytes: tables, matrices and figures (report.json differs only in the
    // recorded command line, which names the output folder).
    let again = d.join("report-again");
    score_into(&again);
    for f in [
        "scores.csv",
        "table1.md",
        "table1.json",
        "confusion/ct_ess.png",
        "confusion/ct_emr.svg",
    ] {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(again.join(f)).unwrap(),
            "{f} differs between identical runs"
        );
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn stand_in_outputs_name_it_in_a_column_and_in_their_first_line() {
    let d = tmp("standin");
    let (sources, refs) = tables(&d);
    let runs = d.join("runs");
    edit(&sources, &refs, &runs, &[]);
    let out = d.join("report");
    run(bin()
        .args(["score", "--targets", "awe,sadness"])
        .arg("--sources")
        .arg(&sources)
        .arg("--runs")
        .arg(&runs)
        .arg("--out")
        .arg(&out));
    // CSVs start with their header; a reader of one alone still sees the stand-in in every
    // measured row's `predictor` column.
    for f in ["scores.csv", "table1.csv", "confusion/ct_esr.csv"] {
        let mut r = csv::Reader::from_path(out.join(f)).unwrap();
        let col = r.headers().unwrap().iter().position(|h| h == "predictor");
        let col = col.unwrap_or_else(|| panic!("{f}: no predictor column"));
        let labels: Vec<String> = r
            .records()
            .map(|rec| rec.unwrap()[col].to_string())
            .filter(|v| !v.is_empty())
            .collect();
        assert!(
            !labels.is_empty() && labels.iter().all(|v| v == "stand-in"),
            "{f}: {labels:?}"
        );
    }
    let tex = std::fs::read_to_string(out.join("table1.tex")).unwrap();
    assert!(tex.lines().next().unwrap().contains("STAND-IN PREDICTOR"));
    let md = std::fs::read_to_string(out.join("table1.md")).unwrap();
    assert!(md.lines().nth(2).unwrap().contains("STAND-IN PREDICTOR"));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn predict_prints_a_distribution_and_writes_a_cam_overlay() {
    let d = tmp("predict");
    let o = run(bin()
        .args(["predict", "--json", "--arch", "tiny"])
        .arg("--predictor")
        .arg(fixtures().join("resnet18_tiny.safetensors"))
        .arg("--cam-out")
        .arg(&d)
        .arg(fixtures().join("photos224/chelsea.png")));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let total: f64 = v["probs"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-9);
    assert!(d.join("chelsea_gradcam.png").is_file());
    std::fs::remove_dir_all(&d).ok();
}

fn fails_with_one_line(cmd: &mut Command, needles: &[&str]) {
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Informational lines (e.g. the stand-in notice) may precede it; the error is one line, last.
    let err = err.trim_end().lines().last().unwrap_or_default();
    assert!(err.starts_with("error: "), "not an error line: {err}");
    for n in needles {
        assert!(err.contains(n), "'{n}' not in: {err}");
    }
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_file_and_row() {
    let d = tmp("bad");
    let csv = d.join("sources.csv");
    let score = || {
        let mut c = bin();
        c.args(["score", "--runs"])
            .arg(&d)
            .arg("--out")
            .arg(d.join("r"))
            .arg("--sources")
            .arg(&csv);
        c
    };
    std::fs::write(&csv, "id,path,emotion\na,x.png,awe\nb,y.png,joy\n").unwrap();
    fails_with_one_line(&mut score(), &["sources.csv:3", "unknown emotion 'joy'"]);
    std::fs::write(&csv, "id,path,emotion\na,x.png,awe\na,y.png,fear\n").unwrap();
    fails_with_one_line(&mut score(), &["sources.csv:3", "duplicate id 'a'"]);
    std::fs::write(&csv, "id,path,emotion\na,x.png,awe,extra\n").unwrap();
    fails_with_one_line(&mut score(), &["sources.csv:2", "4 fields"]);
    fails_with_one_line(
        bin()
            .args(["edit", "--method", "nope", "--out"])
            .arg(&d)
            .arg("--sources")
            .arg(&csv),
        &["unknown edit method 'nope'", "ct"],
    );
    let truncated = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad/truncated.jpg");
    fails_with_one_line(bin().arg("predict").arg(&truncated), &["truncated.jpg"]);
    fails_with_one_line(
        bin()
            .args(["predict", "--predictor"])
            .arg(fixtures().join("inputs.json"))
            .arg(&truncated),
        &["inputs.json"],
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn the_demo_runs_on_bundled_data_and_names_its_stand_ins() {
    let d = tmp("demo");
    let o = run(bin().args(["demo", "--out"]).arg(&d));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("STAND-IN PREDICTOR"), "{text}");
    assert!(text.contains("32 outputs scored, 0 missing"), "{text}");
    assert!(d.join("reports/score/table1.md").is_file());
    assert!(d.join("reports/gradcam/chelsea.png").is_file());
    tidy::assert_tidy_csvs(&d, 8);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_closed_pipe_ends_the_program_quietly() {
    let img = fixtures().join("photos224/chelsea.png");
    let mut child = bin()
        .args(["predict", "--json", "--arch", "tiny"])
        .arg("--predictor")
        .arg(fixtures().join("resnet18_tiny.pt"))
        .arg(&img)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader goes away before the program writes a byte.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{:?}: {stderr}",
            out.status
        );
    }
}
