//! EmoEditor: the direction encoder against PyTorch, the critic loop against the authors'
//! `test.py` run unchanged on scripted predictions, and whole runs through the CLI with tiny
//! random-weight models (the diffusion fixtures of `models/tests/fixtures/diffusion/`).

use std::path::{Path, PathBuf};
use std::process::Command;

use emoeditor::critic::{run_critic, CriticOptions, PassInput, PassOutcome, Profile, StopReason};
use emoeditor::encoder::EmoDirectionEncoder;

#[path = "../models/tests/common/setup.rs"]
mod setup;

/// The direction encoder's tolerance: 1e-5 in f32; in half precision (`EMOBENCH_DTYPE`), the
/// measured errors with a margin (README, Correctness).
const ENCODER_TOL: setup::Tol = setup::Tol {
    f32: 1e-5,
    f16: 2e-3,
    bf16: 1e-2,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn diffusion() -> PathBuf {
    root().join("models/tests/fixtures/diffusion")
}

#[test]
fn direction_encoder_matches_pytorch() {
    let dev = setup::device();
    let reference =
        candle_core::safetensors::load(diffusion().join("reference.safetensors"), &dev).unwrap();
    let d: Vec<f32> = reference["enc.direction"].to_vec1().unwrap();
    let direction: [f32; 8] = d.try_into().unwrap();
    let want: Vec<f32> = reference["enc.out"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for dtype in setup::dtypes() {
        let vb = candle_nn::VarBuilder::from_pth(diffusion().join("model_emoenc.pt"), dtype, &dev)
            .expect("model_emoenc.pt");
        let enc = EmoDirectionEncoder::new(vb).expect("encoder");
        assert_eq!(enc.width(), 32);
        let got = setup::host_f32(&enc.forward(&direction, &dev).unwrap());
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
            / scale;
        eprintln!("direction encoder {dtype:?}: relative error {err:.2e}");
        assert!(
            err < ENCODER_TOL.at(dtype),
            "{dtype:?}: relative error {err}"
        );
    }
}

const CLASSES: [&str; 8] = [
    "amusement",
    "anger",
    "awe",
    "contentment",
    "disgust",
    "excitement",
    "fear",
    "sadness",
];

/// Every case of `tests/fixtures/critic/critic_cases.json`: the same passes, inputs, direction
/// sources, acceptances and kept image as the authors' script; where their loop never ends, the
/// pass cap stops ours.
#[test]
fn code_profile_reproduces_the_authors_loop() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/critic/critic_cases.json"))
        .expect("critic_cases.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
    assert_eq!(cases.len(), 300);
    let positive = [true, false, true, true, false, true, false, false];
    let mut unbounded = 0;
    for case in &cases {
        let id = &case["id"];
        let target = CLASSES
            .iter()
            .position(|c| *c == case["target"].as_str().unwrap())
            .unwrap();
        let passes = case["passes"].as_array().unwrap();
        let cap = 200;
        let opts = CriticOptions {
            profile: Profile::Code,
            num_loop: case["num_loop"].as_u64().unwrap() as usize,
            max_passes: cap,
        };
        let mut k = 0;
        let result = run_critic(&opts, target, &positive, |input: PassInput| {
            let p = &passes[k];
            k += 1;
            assert_eq!(
                input.image as u64,
                p["input"].as_u64().unwrap(),
                "case {id} pass {k} input"
            );
            assert_eq!(
                input.direction_from as u64,
                p["direction_from"].as_u64().unwrap(),
                "case {id} pass {k} direction"
            );
            let probs: Vec<f32> = p["probs_f32"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            Ok::<_, ()>(PassOutcome {
                probs: probs.try_into().unwrap(),
                ssim: p["ssim"].as_f64().unwrap(),
            })
        })
        .unwrap();
        for (row, p) in result.trace.iter().zip(passes) {
            assert_eq!(
                row.accepted,
                p["accepted"].as_bool().unwrap(),
                "case {id} pass {}",
                row.pass
            );
            assert_eq!(
                row.predicted as u64,
                p["predicted"].as_u64().unwrap(),
                "case {id}"
            );
        }
        if case["unbounded"].as_bool().unwrap() {
            unbounded += 1;
            assert_eq!(result.stopped, StopReason::PassCap, "case {id}");
            assert_eq!(result.trace.len(), cap);
        } else {
            assert_eq!(
                result.trace.len() as u64,
                case["passes_run"].as_u64().unwrap(),
                "case {id}"
            );
            assert_eq!(
                result.kept as i64,
                case["saved"].as_i64().unwrap(),
                "case {id} kept"
            );
        }
    }
    assert!(unbounded > 0, "the fixture covers the never-ending loop");
}

fn outcome(target_prob: f32, predicted: usize, ssim: f64) -> PassOutcome {
    let mut probs = [(1.0 - target_prob) / 7.0; 8];
    probs[predicted] = probs[predicted].max(0.5);
    probs[2] = target_prob;
    PassOutcome { probs, ssim }
}

#[test]
fn paper_profile_stops_on_both_criteria_and_keeps_the_best() {
    let positive = [true, false, true, true, false, true, false, false];
    let opts = CriticOptions {
        profile: Profile::Paper,
        num_loop: 30,
        max_passes: 100,
    };
    // Target "awe" (index 2). Pass 3 meets both criteria; pass 2 is confident but too different.
    let script = [
        outcome(0.4, 0, 0.6),
        outcome(0.9, 2, 0.2),
        outcome(0.85, 2, 0.5),
    ];
    let mut k = 0;
    let r = run_critic(&opts, 2, &positive, |input| {
        assert_eq!(input.image, k, "each pass edits the previous output");
        k += 1;
        Ok::<_, ()>(script[k - 1])
    })
    .unwrap();
    assert_eq!((r.kept, r.stopped), (3, StopReason::Criterion));
    // Never satisfied: the highest target confidence among all passes.
    let opts = CriticOptions {
        num_loop: 4,
        ..opts
    };
    let script = [
        outcome(0.3, 0, 0.6),
        outcome(0.7, 2, 0.9),
        outcome(0.5, 2, 0.5),
        outcome(0.1, 0, 0.5),
    ];
    let mut k = 0;
    let r = run_critic(&opts, 2, &positive, |_| {
        k += 1;
        Ok::<_, ()>(script[k - 1])
    })
    .unwrap();
    assert_eq!(
        (r.kept, r.trace.len(), r.stopped),
        (2, 4, StopReason::LoopLimit)
    );
}

fn emobench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_emobench"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs")
}

/// `emobench edit --method M --sources CSV --targets T --out OUT --options OPTS`.
fn edit(
    method: &str,
    csv: &Path,
    targets: &str,
    out: &Path,
    options: &str,
) -> std::process::Output {
    emobench(&[
        "edit",
        "--method",
        method,
        "--sources",
        csv.to_str().unwrap(),
        "--targets",
        targets,
        "--out",
        out.to_str().unwrap(),
        "--options",
        options,
    ])
}

/// The largest per-channel difference between two same-size 8-bit images.
fn max_level_difference(a: &Path, b: &Path) -> u8 {
    let (a, b) = (
        image::open(a).unwrap().to_rgb8(),
        image::open(b).unwrap().to_rgb8(),
    );
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("emobench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn emoeditor_options(extra: &str) -> String {
    emoeditor_options_capped(3, extra)
}

/// The tiny-fixture options with pass cap `max_passes`, plus `extra` (`, "key": value` pairs).
fn emoeditor_options_capped(max_passes: usize, extra: &str) -> String {
    let d = diffusion();
    format!(
        r#"{{"ip2p": "{}", "config_dir": "{}", "encoder": "{}", "predictor": "{}", "predictor_arch": "tiny", "steps": 2, "max_passes": {max_passes}{extra}}}"#,
        d.join("model_ip2p.pt").display(),
        d.join("tiny-ip2p").display(),
        d.join("model_emoenc.pt").display(),
        root()
            .join("tests/fixtures/torch/resnet18_tiny.pt")
            .display(),
    )
}

fn sources(dir: &Path) -> PathBuf {
    let csv = dir.join("sources.csv");
    let photo = root().join("studies/demo/photos/chelsea.jpg");
    std::fs::write(
        &csv,
        format!("id,path,emotion\nchelsea,{},amusement\n", photo.display()),
    )
    .unwrap();
    csv
}

#[test]
fn emoeditor_run_folder_with_trace_resumes_and_is_deterministic() {
    let dir = tmp("emoeditor-run");
    let csv = sources(&dir);
    let opts = emoeditor_options("");
    let run = |out: &Path| {
        let o = edit("emoeditor", &csv, "awe,fear", out, &opts);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let a = dir.join("a");
    run(&a);
    let png = a.join("emoeditor/chelsea/awe.png");
    let img = image::open(&png).expect("output decodes").to_rgb8();
    assert_eq!(img.dimensions(), (224, 224));
    let trace: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("emoeditor/chelsea/awe.trace.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(trace["profile"], "code");
    let passes = trace["passes"].as_array().unwrap();
    assert!(!passes.is_empty() && passes.len() <= 3, "pass cap 3");
    for p in passes {
        assert!(p["ssim"].as_f64().is_some() && p["accepted"].is_boolean());
    }
    assert_eq!(
        trace["train_steps_per_pass"].as_array().unwrap().len(),
        passes.len()
    );
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("emoeditor/run.json")).unwrap())
            .unwrap();
    let roles: Vec<&str> = run_json["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["unet+vae (model_ip2p)", "emotion_encoder", "predictor"]
    );
    assert!(run_json["weights"][0]["sha256"].as_str().unwrap().len() == 64);

    // Same seed, same bytes; a rerun skips finished outputs.
    let b = dir.join("b");
    run(&b);
    for t in ["awe", "fear"] {
        let p = format!("emoeditor/chelsea/{t}.png");
        assert_eq!(
            std::fs::read(a.join(&p)).unwrap(),
            std::fs::read(b.join(&p)).unwrap(),
            "{t}"
        );
    }
    let again = run(&a);
    assert!(again.contains("0 written, 2 already done"), "{again}");

    // Batched conditions: both targets' critic loops in lockstep, passes batched. The critic
    // makes the same decisions and the images agree to one 8-bit level (differently blocked
    // products round differently); a batched rerun repeats its own bytes.
    let batched = |out: &Path| {
        let o = edit(
            "emoeditor",
            &csv,
            "awe,fear",
            out,
            &emoeditor_options(r#", "batch": 2"#),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (c, d) = (dir.join("c"), dir.join("d"));
    batched(&c);
    batched(&d);
    for t in ["awe", "fear"] {
        let p = format!("emoeditor/chelsea/{t}.png");
        let worst = max_level_difference(&a.join(&p), &c.join(&p));
        assert!(worst <= 1, "{p}: {worst} levels");
        assert!(
            std::fs::read(c.join(&p)).unwrap() == std::fs::read(d.join(&p)).unwrap(),
            "{p}: batched reruns differ"
        );
        let trace = |root: &Path| -> serde_json::Value {
            let p = root.join(format!("emoeditor/chelsea/{t}.trace.json"));
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        let (ta, tc) = (trace(&a), trace(&c));
        assert_eq!(ta["kept"], tc["kept"], "{t}");
        assert_eq!(
            ta["train_steps_per_pass"], tc["train_steps_per_pass"],
            "{t}"
        );
        let decisions = |v: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value)> {
            v["passes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["accepted"].clone(), p["predicted"].clone()))
                .collect()
        };
        assert_eq!(decisions(&ta), decisions(&tc), "{t}");
    }

    // The run folder is scoreable.
    let report = dir.join("report");
    let o = emobench(&[
        "score",
        "--sources",
        csv.to_str().unwrap(),
        "--runs",
        a.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
        "--targets",
        "awe,fear",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let scores = std::fs::read_to_string(report.join("scores.csv")).unwrap();
    assert!(
        scores
            .lines()
            .filter(|l| l.contains("emoeditor,chelsea"))
            .count()
            == 2,
        "{scores}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn emoeditor_profiles_and_bad_options_are_named() {
    let dir = tmp("emoeditor-opts");
    let csv = sources(&dir);
    let out = dir.join("runs");
    let o = edit(
        "emoeditor",
        &csv,
        "awe",
        &out,
        &emoeditor_options(r#", "profile": "fast""#),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("profile") && err.contains("code, paper, no-critic"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let o = edit(
        "emoeditor",
        &csv,
        "awe",
        &out,
        r#"{"ip2p": "/nonexistent/model_ip2p.pt"}"#,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/nonexistent/model_ip2p.pt") && err.contains("EmoEditor"),
        "{err}"
    );

    let o = edit(
        "emoeditor",
        &csv,
        "awe",
        &out,
        &emoeditor_options(r#", "profile": "no-critic""#),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let trace: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("emoeditor/chelsea/awe.trace.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(trace["passes"].as_array().unwrap().len(), 1);
    assert_eq!(trace["stopped"], "single-pass");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn instruct_pix2pix_runs_from_a_diffusers_folder() {
    let dir = tmp("ip2p-run");
    let csv = sources(&dir);
    let out = dir.join("runs");
    let opts = format!(
        r#"{{"weights": "{}", "steps": 2}}"#,
        diffusion().join("tiny-ip2p").display()
    );
    let o = edit("ip2p", &csv, "awe", &out, &opts);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let src = image::open(root().join("studies/demo/photos/chelsea.jpg")).unwrap();
    let img = image::open(out.join("ip2p/chelsea/awe.png")).unwrap();
    // Sides snapped down to multiples of 64.
    assert_eq!(img.width(), src.width() - src.width() % 64);
    assert_eq!(img.height(), src.height() - src.height() % 64);
    let run_json = std::fs::read_to_string(out.join("ip2p/run.json")).unwrap();
    for role in ["\"unet\"", "\"vae\"", "\"text_encoder\"", "\"tokenizer\""] {
        assert!(run_json.contains(role), "{run_json}");
    }

    // Batched conditions: two targets per UNet call give the images of one at a time (to one
    // 8-bit level: differently blocked products may round differently).
    let one = dir.join("one");
    let two = dir.join("two");
    let weights = diffusion().join("tiny-ip2p");
    for (out, batch) in [(&one, 1), (&two, 2)] {
        let opts = format!(
            r#"{{"weights": "{}", "steps": 2, "batch": {batch}}}"#,
            weights.display()
        );
        let o = edit("ip2p", &csv, "awe,fear", out, &opts);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for t in ["awe", "fear"] {
        let p = format!("ip2p/chelsea/{t}.png");
        let worst = max_level_difference(&one.join(&p), &two.join(&p));
        assert!(worst <= 1, "{p}: {worst} levels");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fig. S11 from one run: each cap k < N derived from a run capped at N with `keep_passes` is,
/// byte for byte, the output and trace of a real run capped at k, and `emobench iterations`
/// scores it exactly as `emobench score` scores that real run.
#[test]
fn iteration_caps_derived_from_one_run_equal_capped_runs() {
    let dir = tmp("emoeditor-iterations");
    let csv = sources(&dir);
    let targets = "awe,fear";
    let (n, max_passes) = (4, 6);
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    for profile in ["code", "paper"] {
        let run = |out: &Path, cap: usize, keep: bool| {
            let extra =
                format!(r#", "profile": "{profile}", "num_loop": {cap}, "keep_passes": {keep}"#);
            let o = edit(
                "emoeditor",
                &csv,
                targets,
                out,
                &emoeditor_options_capped(max_passes, &extra),
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        let long = dir.join(profile).join("long");
        run(&long, n, true);
        let passes = long.join("emoeditor/chelsea/awe.passes");
        assert!(passes.join("0.png").is_file() && passes.join("1.png").is_file());
        let run_json = std::fs::read_to_string(long.join("emoeditor/run.json")).unwrap();
        assert!(run_json.contains(r#""keep_passes": true"#), "{run_json}");

        let report = dir.join(profile).join("report");
        let o = emobench(&[
            "iterations",
            "--sources",
            csv.to_str().unwrap(),
            "--runs",
            long.to_str().unwrap(),
            "--out",
            report.to_str().unwrap(),
            "--targets",
            targets,
            "--caps",
            &format!("1..{n}"),
            "--write-runs",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let csv_text = std::fs::read_to_string(report.join("iterations.csv")).unwrap();
        let mut rows = csv::Reader::from_reader(csv_text.as_bytes());
        assert_eq!(
            rows.headers().unwrap().iter().collect::<Vec<_>>(),
            ["cap", "subset", "method", "n", "emr", "esr", "enrd", "ess", "ssim", "l1"]
        );
        let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
        for f in ["iterations.png", "iterations.svg", "iterations.json"] {
            assert!(report.join(f).is_file(), "{f}");
        }
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report.join("iterations.json")).unwrap())
                .unwrap();
        assert_eq!(meta["cap_option"], "num_loop");
        assert_eq!(meta["caps"], serde_json::json!([1, 2, 3, 4]));
        assert_eq!(
            meta["runs"][0]["run_json"]["sha256"]
                .as_str()
                .unwrap()
                .len(),
            64
        );

        let mut pass_counts = std::collections::BTreeSet::new();
        for cap in 1..=n {
            // The real run at this cap (the largest cap is the recorded run itself).
            let real = if cap == n {
                long.clone()
            } else {
                let p = dir.join(profile).join(format!("cap-{cap}"));
                run(&p, cap, false);
                p
            };
            let derived = report.join(format!("runs/cap-{cap}"));
            for t in ["awe", "fear"] {
                for file in [format!("{t}.png"), format!("{t}.trace.json")] {
                    let p = format!("emoeditor/chelsea/{file}");
                    assert!(
                        read(&real.join(&p)) == read(&derived.join(&p)),
                        "{profile} cap {cap}: {p} differs from a real run's"
                    );
                }
                let trace: serde_json::Value = serde_json::from_slice(&read(
                    &real.join(format!("emoeditor/chelsea/{t}.trace.json")),
                ))
                .unwrap();
                pass_counts.insert((t, trace["passes"].as_array().unwrap().len()));
            }
            // Scored with `emobench score`'s code: the same numbers as scoring the real run.
            let o = emobench(&[
                "score",
                "--sources",
                csv.to_str().unwrap(),
                "--runs",
                real.to_str().unwrap(),
                "--methods",
                "emoeditor",
                "--out",
                dir.join(profile)
                    .join(format!("score-{cap}"))
                    .to_str()
                    .unwrap(),
                "--targets",
                targets,
                "--json",
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let scored: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let want = &scored[0];
            assert_eq!(want["subset"], "cross-valence");
            let row = rows
                .iter()
                .find(|r| r[0] == *cap.to_string() && &r[1] == "cross-valence")
                .unwrap_or_else(|| panic!("{profile} cap {cap} in {csv_text}"));
            assert_eq!(&row[2], "emoeditor");
            assert_eq!(row[3].parse::<u64>().unwrap(), want["n"].as_u64().unwrap());
            for (i, key) in [
                (4, "emr"),
                (5, "esr"),
                (6, "enrd"),
                (7, "ess"),
                (8, "ssim"),
                (9, "l1"),
            ] {
                assert_eq!(
                    row[i].parse::<f64>().unwrap(),
                    want[key].as_f64().unwrap(),
                    "{profile} cap {cap} {key}"
                );
            }
        }
        // The caps ran different numbers of passes: the derivation was put to work.
        assert!(
            pass_counts.len() > 2,
            "{profile}: every cap ran the same passes {pass_counts:?}"
        );
    }

    // Caps above the run's own, and runs without their passes, are refused in one line.
    let caps_err = emobench(&[
        "iterations",
        "--sources",
        csv.to_str().unwrap(),
        "--runs",
        dir.join("code/long").to_str().unwrap(),
        "--out",
        dir.join("bad").to_str().unwrap(),
        "--targets",
        targets,
        "--caps",
        "1..5",
    ]);
    assert!(!caps_err.status.success());
    let err = String::from_utf8_lossy(&caps_err.stderr);
    assert!(err.contains("cap 5") && err.contains("num_loop 4"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let no_passes = emobench(&[
        "iterations",
        "--sources",
        csv.to_str().unwrap(),
        "--runs",
        dir.join("code/cap-2").to_str().unwrap(),
        "--out",
        dir.join("bad").to_str().unwrap(),
        "--targets",
        targets,
        "--caps",
        "1..2",
    ]);
    assert!(!no_passes.status.success());
    let err = String::from_utf8_lossy(&no_passes.stderr);
    assert!(
        err.contains("keep_passes") && err.contains("run.json"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
