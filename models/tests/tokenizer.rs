//! Compares the CLIP tokenizer with ids recorded from transformers' slow `CLIPTokenizer`
//! (see `tests/fixtures/tokenizer/make_tokenizer_cases.py`), and checks the loader's error messages.

use std::fs;
use std::path::{Path, PathBuf};

use models::tokenizer::{ClipTokenizer, TokenizerError};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

/// A fresh, empty folder for one test under cargo's per-target scratch space.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn load_cases(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u32::try_from(v.as_u64().unwrap()).unwrap())
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Checks every case and returns (cases checked, mismatch descriptions).
fn check_cases(tok: &ClipTokenizer, cases: &Value) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let cases = cases.as_array().unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let tokens = tok.tokenize(text);
        if tokens != strings(&case["tokens"]) {
            failures.push(format!(
                "{text:?}: tokens {tokens:?} != {:?}",
                strings(&case["tokens"])
            ));
        }
        let got = tok.encode(text);
        if got != ids(&case["ids"]) {
            failures.push(format!("{text:?}: ids {got:?} != {:?}", ids(&case["ids"])));
        }
        let padded = tok.encode_padded(text);
        if padded != ids(&case["padded_ids"]) {
            failures.push(format!(
                "{text:?}: padded {padded:?} != {:?}",
                ids(&case["padded_ids"])
            ));
        }
        assert_eq!(padded.len(), tok.max_length());
    }
    (cases.len(), failures)
}

fn check_document(tok: &ClipTokenizer, doc: &Value, dir: &Path, label: &str) -> usize {
    assert_eq!(tok.vocab_size() as u64, doc["vocab_size"].as_u64().unwrap());
    assert_eq!(
        tok.max_length() as u64,
        doc["model_max_length"].as_u64().unwrap()
    );
    let (mut checked, mut failures) = check_cases(tok, &doc["cases"]);
    for variant in doc["variants"].as_array().unwrap() {
        let name = variant["name"].as_str().unwrap();
        let vdir = scratch_dir(&format!("{label}-{name}"));
        fs::copy(dir.join("vocab.json"), vdir.join("vocab.json")).unwrap();
        fs::copy(dir.join("merges.txt"), vdir.join("merges.txt")).unwrap();
        for file in ["tokenizer_config", "special_tokens_map"] {
            fs::write(vdir.join(format!("{file}.json")), variant[file].to_string()).unwrap();
        }
        let vtok = ClipTokenizer::from_dir(&vdir).unwrap();
        assert_eq!(
            vtok.max_length() as u64,
            variant["model_max_length"].as_u64().unwrap()
        );
        let (n, f) = check_cases(&vtok, &variant["cases"]);
        checked += n;
        failures.extend(f.into_iter().map(|f| format!("[{name}] {f}")));
    }
    assert!(
        failures.is_empty(),
        "{label}: {} mismatches out of {checked} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    checked
}

#[test]
fn matches_transformers_on_truncated_vocab() {
    let dir = fixtures();
    let doc = load_cases(&dir.join("cases.json"));
    let tok = ClipTokenizer::from_dir(&dir).unwrap();
    let checked = check_document(&tok, &doc, &dir, "truncated");
    assert!(checked >= 60, "only {checked} cases");
}

#[test]
fn from_files_uses_sd15_defaults() {
    let dir = fixtures();
    let doc = load_cases(&dir.join("cases.json"));
    let tok = ClipTokenizer::from_files(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap();
    assert_eq!(tok.max_length(), 77);
    let (_, failures) = check_cases(&tok, &doc["cases"]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The full 49408-token vocabulary is ~1.5 MB, so it is not committed: point
/// `CLIP_TOKENIZER_FULL_DIR` at a folder made by `make_tokenizer_cases.py` without `--merges`.
/// Run with `cargo test --test tokenizer -- --ignored` after making the folder.
#[test]
#[ignore = "needs CLIP_TOKENIZER_FULL_DIR: the full CLIP vocabulary is not committed"]
fn matches_transformers_on_full_vocab() {
    let dir = std::env::var_os("CLIP_TOKENIZER_FULL_DIR")
        .expect("set CLIP_TOKENIZER_FULL_DIR to a folder made by make_tokenizer_cases.py");
    let dir = PathBuf::from(dir);
    let doc = load_cases(&dir.join("cases.json"));
    let tok = ClipTokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.vocab_size(), 49408);
    let checked = check_document(&tok, &doc, &dir, "full");
    eprintln!("full vocabulary: {checked} cases exact");
}

#[test]
fn sd_prompt_shape() {
    let tok = ClipTokenizer::from_dir(&fixtures()).unwrap();
    let padded = tok.encode_padded("make her happy");
    let plain = tok.encode("make her happy");
    assert_eq!(padded.len(), 77);
    assert_eq!(&padded[..plain.len()], plain.as_slice());
    let eos = *plain.last().unwrap();
    assert!(padded[plain.len()..].iter().all(|&id| id == eos));
    let long = tok.encode_padded(&"happy ".repeat(200));
    assert_eq!(long.len(), 77);
    assert_eq!(long[76], eos, "truncation keeps eos last");
}

fn write_min_tokenizer(dir: &Path, merges: &str) {
    fs::write(
        dir.join("vocab.json"),
        r#"{"a": 0, "b": 1, "ab</w>": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}"#,
    )
    .unwrap();
    fs::write(dir.join("merges.txt"), merges).unwrap();
}

fn message(result: Result<ClipTokenizer, TokenizerError>) -> (TokenizerError, String) {
    let err = result.unwrap_err();
    let text = err.to_string();
    (err, text)
}

#[test]
fn missing_files_are_named() {
    let dir = scratch_dir("missing");
    let (err, text) = message(ClipTokenizer::from_dir(&dir));
    assert!(matches!(err, TokenizerError::MissingFile { .. }), "{err:?}");
    assert!(
        text.contains("vocab.json") && text.contains("missing"),
        "{text}"
    );

    fs::write(
        dir.join("vocab.json"),
        r#"{"<|startoftext|>": 0, "<|endoftext|>": 1}"#,
    )
    .unwrap();
    let (_, text) = message(ClipTokenizer::from_dir(&dir));
    assert!(text.contains("merges.txt"), "{text}");
}

#[test]
fn bad_json_is_reported_with_file() {
    let dir = scratch_dir("bad-json");
    write_min_tokenizer(&dir, "#version: 0.2\na b</w>\n");
    let tok = ClipTokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.encode("ab"), [3, 2, 4]);

    fs::write(dir.join("tokenizer_config.json"), "{ not json").unwrap();
    let (err, text) = message(ClipTokenizer::from_dir(&dir));
    assert!(matches!(err, TokenizerError::Json { .. }), "{err:?}");
    assert!(text.contains("tokenizer_config.json"), "{text}");

    fs::write(dir.join("tokenizer_config.json"), "{}").unwrap();
    fs::write(dir.join("vocab.json"), r#"["a", "b"]"#).unwrap();
    let (err, text) = message(ClipTokenizer::from_dir(&dir));
    assert!(matches!(err, TokenizerError::BadVocab { .. }), "{err:?}");
    assert!(text.contains("vocab.json"), "{text}");

    fs::write(dir.join("vocab.json"), r#"{"a": -1}"#).unwrap();
    let (_, text) = message(ClipTokenizer::from_dir(&dir));
    assert!(text.contains("\"a\"") && text.contains("u32"), "{text}");
}

#[test]
fn malformed_merges_line_is_reported() {
    let dir = scratch_dir("bad-merges");
    write_min_tokenizer(&dir, "#version: 0.2\na b</w>\nthree part line\n");
    let (err, text) = message(ClipTokenizer::from_dir(&dir));
    match err {
        TokenizerError::MalformedMerge { line, .. } => assert_eq!(line, 3),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        text.contains("merges.txt") && text.contains("line 3"),
        "{text}"
    );
}

#[test]
fn missing_special_token_is_reported() {
    let dir = scratch_dir("no-special");
    write_min_tokenizer(&dir, "#version: 0.2\n");
    fs::write(
        dir.join("special_tokens_map.json"),
        r#"{"pad_token": "<pad>"}"#,
    )
    .unwrap();
    let (err, text) = message(ClipTokenizer::from_dir(&dir));
    assert!(
        matches!(
            err,
            TokenizerError::MissingSpecialToken {
                role: "pad_token",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        text.contains("<pad>") && text.contains("vocab.json"),
        "{text}"
    );

    fs::write(dir.join("vocab.json"), r#"{"a": 0}"#).unwrap();
    let (_, text) = message(ClipTokenizer::from_files(
        &dir.join("vocab.json"),
        &dir.join("merges.txt"),
    ));
    assert!(
        text.contains("bos_token") && text.contains("<|startoftext|>"),
        "{text}"
    );
}

#[test]
fn config_values_are_validated() {
    let dir = scratch_dir("bad-config");
    write_min_tokenizer(&dir, "#version: 0.2\na b</w>\n");
    let cases = [
        (
            r#"{"model_max_length": 1000000000000000019884624838656}"#,
            "model_max_length",
        ),
        (r#"{"model_max_length": 1}"#, "model_max_length"),
        (r#"{"pad_token": 5}"#, "pad_token"),
        (
            r#"{"eos_token": {"content": "<|endoftext|>", "rstrip": true}}"#,
            "rstrip",
        ),
        ("[]", "object"),
    ];
    for (config, needle) in cases {
        fs::write(dir.join("tokenizer_config.json"), config).unwrap();
        let (err, text) = message(ClipTokenizer::from_dir(&dir));
        assert!(
            matches!(err, TokenizerError::BadConfig { .. }),
            "{config}: {err:?}"
        );
        assert!(
            text.contains("tokenizer_config.json") && text.contains(needle),
            "{config}: {text}"
        );
    }

    let decoder = r#"{"added_tokens_decoder": {
        "3": {"content": "<|startoftext|>", "special": true},
        "4": {"content": "<|endoftext|>", "special": true}}}"#;
    fs::write(dir.join("tokenizer_config.json"), decoder).unwrap();
    ClipTokenizer::from_dir(&dir).unwrap();
    fs::write(dir.join("added_tokens.json"), r#"{"<cat-toy>": 5}"#).unwrap();
    let (_, text) = message(ClipTokenizer::from_dir(&dir));
    assert!(
        text.contains("added_tokens.json") && text.contains("<cat-toy>"),
        "{text}"
    );
    fs::remove_file(dir.join("added_tokens.json")).unwrap();

    fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"model_max_length": 5}"#,
    )
    .unwrap();
    let tok = ClipTokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.encode_padded("ab ab ab ab"), [3, 2, 2, 2, 4]);
    assert_eq!(tok.encode_padded(""), [3, 4, 4, 4, 4]);
}
