//! Errors reach the user as ONE line, `error: ` then the chain joined with ": ", where every cause
//! appears once (no message repeats its source's text) and the file or option is named.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emobench"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("emobench-chain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tests/fixtures/diffusion")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Runs the command, checks it fails with one `error: ` line whose `: `-separated segments are
/// all different and which contains every needle; returns the line.
fn one_error_line(cmd: &mut Command, needles: &[&str]) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {stderr}");
    let line = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        line.starts_with("error: "),
        "the error is not last: {stderr}"
    );
    let segments: Vec<&str> = line["error: ".len()..].split(": ").collect();
    for (i, s) in segments.iter().enumerate() {
        assert!(
            !segments[..i].contains(s),
            "segment '{s}' appears twice in: {line}"
        );
    }
    for n in needles {
        assert!(line.contains(n), "'{n}' not in: {line}");
    }
    line.to_string()
}

fn sources(dir: &Path) -> PathBuf {
    std::fs::copy(fixtures().join("ip2p_source.png"), dir.join("s.png")).unwrap();
    let csv = dir.join("sources.csv");
    std::fs::write(&csv, "id,path,emotion\na,s.png,awe\n").unwrap();
    csv
}

fn edit_ip2p(dir: &Path, weights: &Path) -> Command {
    let mut c = bin();
    c.args(["edit", "--method", "ip2p", "--sources"])
        .arg(sources(dir))
        .arg("--out")
        .arg(dir.join("runs"))
        .arg("--options")
        .arg(serde_json::json!({ "weights": weights }).to_string());
    c
}

#[test]
fn a_bad_tokenizer_config_is_reported_once() {
    let d = tmp("tokenizer");
    let w = d.join("weights");
    copy_dir(&fixtures().join("tiny-ip2p"), &w);
    let cfg = w.join("tokenizer/tokenizer_config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    json["model_max_length"] = serde_json::json!(1e30);
    std::fs::write(&cfg, json.to_string()).unwrap();
    let line = one_error_line(
        &mut edit_ip2p(&d, &w),
        &["--method ip2p", "tokenizer_config.json", "model_max_length"],
    );
    assert_eq!(line.matches("bad tokenizer config").count(), 1, "{line}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_corrupt_checkpoint_names_the_file_and_the_cause_once() {
    let d = tmp("corrupt");
    let w = d.join("weights");
    copy_dir(&fixtures().join("tiny-ip2p"), &w);
    std::fs::write(
        w.join("unet/diffusion_pytorch_model.safetensors"),
        [0xffu8; 64],
    )
    .unwrap();
    one_error_line(
        &mut edit_ip2p(&d, &w),
        &[
            "unet/diffusion_pytorch_model.safetensors",
            "header too large",
        ],
    );
    let missing = d.join("no-such-weights");
    one_error_line(
        &mut edit_ip2p(&d, &missing),
        &["no-such-weights", "not found"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_sources_tables_name_the_file_and_row() {
    let d = tmp("sources");
    let edit = |csv: &Path| {
        let mut c = bin();
        c.args(["edit", "--method", "ct", "--sources"])
            .arg(csv)
            .arg("--out")
            .arg(d.join("runs"));
        c
    };
    one_error_line(
        &mut edit(&d.join("missing.csv")),
        &["missing.csv", "cannot read"],
    );
    let csv = d.join("bad.csv");
    std::fs::write(&csv, "id,path,emotion\na,s.png,joy\n").unwrap();
    one_error_line(&mut edit(&csv), &["bad.csv:2", "unknown emotion 'joy'"]);
    let _ = std::fs::remove_dir_all(&d);
}
