//! The LMS method's caches, user files, option split and the `instructions` stage, with the tiny
//! GGUF fixture as the language model (no BLIP or InstructPix2Pix weights needed).

use std::path::{Path, PathBuf};

use baselines::lms::cache::{self, CaptionRow, InstructionRow};
use baselines::lms::{Lms, Stage, CAPTIONS_CSV, INSTRUCTIONS_CSV};
use baselines::method::{EditError, EditMethod, EditRequest};
use models::gguf_llm::{first_line, Dequantize};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/lms")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lms-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn instructions_stage_writes_and_reuses_the_caches() {
    let dir = tmpdir("stage");
    let captions = dir.join("user_captions.csv");
    cache::write_rows(
        &captions,
        &[CaptionRow {
            source_id: "chelsea".into(),
            caption: "a close up of a cat with green eyes".into(),
            captioner: "hand-written".into(),
            captioner_sha256: String::new(),
        }],
    )
    .unwrap();
    let run = dir.join("runs/lms");
    let opts = json!({
        "stage": "instructions",
        "llm": fixtures().join("tiny_llama_f32.gguf"),
        "captions": captions,
        "max_tokens": 24,
    });
    let lms = Lms::new(&opts).unwrap().with_run_dir(&run).unwrap();
    assert_eq!(lms.stage(), Stage::Instructions);
    // run.json (written before the model loads) records the default and the mode it picks.
    let params = lms.parameters();
    assert_eq!(params["dequantize"], json!("auto"));
    assert_eq!(params["llm_dense_f32"], json!(true));
    let img = image::RgbImage::from_pixel(16, 16, image::Rgb([10, 20, 30]));
    let row = match lms.instruction("chelsea", &img, "fear") {
        Ok(row) => row,
        // A random model may answer with nothing but whitespace: that is a typed failure.
        Err(EditError::Failed { .. }) => return,
        Err(e) => panic!("{e}"),
    };
    eprintln!("tiny model instruction: {:?}", row.instruction);
    assert_eq!(row.caption, "a close up of a cat with green eyes");
    assert!(row.prompt.starts_with(
        "There is an image with a close up of a cat with green eyes. To make me feel fear,"
    ));
    assert_eq!(row.instruction, first_line(&row.answer));
    assert_eq!(row.llm, "tiny_llama_f32.gguf");
    assert_eq!(row.llm_sha256.len(), 64);
    let text = std::fs::read_to_string(run.join(INSTRUCTIONS_CSV)).unwrap();
    assert!(text.starts_with("source_id,target,caption,prompt,answer,instruction,llm,llm_sha256\n"));
    // The instructions stage writes no image and edits fail plainly.
    let req = EditRequest::new(&img, "fear", 1);
    assert!(lms.edit_source("chelsea", &req).is_err());
    // Weights name the language model.
    assert!(lms
        .weights()
        .iter()
        .any(|w| w.role == "llm" && w.sha256 == row.llm_sha256));

    // A rerun reuses the cached row without loading the model (its path no longer exists).
    let opts2 = json!({"stage": "instructions", "llm": dir.join("absent.gguf"), "captions": dir.join("user_captions.csv")});
    let again = Lms::new(&opts2).unwrap().with_run_dir(&run).unwrap();
    assert_eq!(again.instruction("chelsea", &img, "fear").unwrap(), row);
    assert_eq!(again.parameters()["llm_dense_f32"], json!(null));
    // A pair not in the cache needs the model: a typed MissingResource naming the file.
    let err = again.instruction("chelsea", &img, "anger").unwrap_err();
    assert!(matches!(err, EditError::MissingResource { .. }), "{err}");
    assert!(err.to_string().contains("GGUF") || format!("{err:?}").contains("absent.gguf"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn user_instructions_replace_the_language_model() {
    let dir = tmpdir("user");
    let file = dir.join("mine.csv");
    std::fs::write(
        &file,
        "source_id,target,instruction\nchelsea,fear,make the sky stormy\n",
    )
    .unwrap();
    let lms = Lms::new(&json!({"stage": "instructions", "instructions": file}))
        .unwrap()
        .with_run_dir(&dir)
        .unwrap();
    let img = image::RgbImage::new(8, 8);
    let row = lms.instruction("chelsea", &img, "fear").unwrap();
    assert_eq!(row.instruction, "make the sky stormy");
    let err = lms.instruction("chelsea", &img, "awe").unwrap_err();
    assert!(matches!(err, EditError::InvalidOption { .. }), "{err}");
    // Nothing was generated, so nothing was written.
    assert!(!dir.join(CAPTIONS_CSV).exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn options_split_between_lms_and_ip2p() {
    let (lms, ip2p) = baselines::lms::split_options(
        &json!({"stage": "instructions", "steps": 20, "max_tokens": 5}),
    )
    .unwrap();
    assert_eq!(lms.max_tokens, 5);
    assert_eq!(lms.dequantize, Dequantize::Auto);
    assert_eq!(ip2p, json!({"steps": 20}));
    for (given, want) in [
        (json!(true), Dequantize::Always),
        (json!(false), Dequantize::Never),
        (json!("auto"), Dequantize::Auto),
    ] {
        let (o, _) = baselines::lms::split_options(&json!({ "dequantize": given })).unwrap();
        assert_eq!(o.dequantize, want);
    }
    assert!(baselines::lms::split_options(&json!({"dequantize": "yes"})).is_err());
    // Unknown keys reach Ip2p, which rejects them.
    assert!(Lms::new(&json!({"stage": "instructions", "stepz": 20})).is_err());
    assert!(baselines::lms::split_options(&json!({"prompt": "no placeholders"})).is_err());
    assert!(baselines::lms::split_options(&json!({"stage": "everything"})).is_err());
}

#[test]
fn cache_files_are_plain_csv_and_round_trip() {
    let dir = tmpdir("csv");
    let rows = vec![InstructionRow {
        source_id: "a".into(),
        target: "awe".into(),
        caption: "a, quoted \"caption\"".into(),
        prompt: "p".into(),
        answer: "line one\nline two".into(),
        instruction: "line one".into(),
        llm: "m.gguf".into(),
        llm_sha256: "00".into(),
    }];
    let p = dir.join("instructions.csv");
    cache::write_rows(&p, &rows).unwrap();
    let back: Vec<InstructionRow> = cache::read_rows(&p).unwrap();
    assert_eq!(back, rows);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // Duplicates are reported with their row.
    std::fs::write(&p, "source_id,target,instruction\na,awe,x\na,awe,y\n").unwrap();
    let err = cache::read_rows::<InstructionRow>(&p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 2") && err.contains("a/awe"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
