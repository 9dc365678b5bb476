//! BLIP captioning against transformers on a tiny random checkpoint with the real architecture
//! and key names (`tests/fixtures/lms/make_blip_fixtures.py`).

use std::path::{Path, PathBuf};

use candle_core::Device;
use models::blip::BlipCaptioner;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/lms")
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn tiny_blip_matches_transformers() {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("tiny_blip_ref.json")).unwrap(),
    )
    .unwrap();
    let mut blip = BlipCaptioner::load(&fixtures().join("tiny_blip"), &Device::Cpu).unwrap();
    for case in r["cases"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let img = image::open(fixtures().join(format!("blip_{name}.png")))
            .unwrap()
            .to_rgb8();
        let img = baselines::lms::blip_input(&img, blip.image_size());
        let px = blip.preprocess(&img).unwrap();
        let flat = px.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let idx: Vec<usize> = case["pixel_sample_idx"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let want = f32s(&case["pixel_sample"]);
        let px_err = idx
            .iter()
            .zip(&want)
            .map(|(&i, w)| (flat[i] - w).abs())
            .fold(0.0f32, f32::max);
        let feats = blip.vision_features(&px).unwrap();
        assert_eq!(
            feats.dims(),
            case["features_shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect::<Vec<_>>()
        );
        let rows = feats.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        let mut feat_err = 0.0f32;
        for (k, want_row) in case["features_rows"].as_array().unwrap().iter().enumerate() {
            for (g, w) in rows[k * 48].iter().zip(f32s(want_row)) {
                feat_err = feat_err.max((g - w).abs());
            }
        }
        let ids = blip.generate_ids(&feats).unwrap();
        let want_ids: Vec<u32> = case["generated_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let logits = blip.decoder_logits(&want_ids, &feats).unwrap();
        let logits = logits.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        let mut logit_err = 0.0f32;
        for (g, w) in logits.iter().zip(case["logits"].as_array().unwrap()) {
            for (a, b) in g.iter().zip(f32s(w)) {
                logit_err = logit_err.max((a - b).abs());
            }
        }
        eprintln!(
            "{name}: pixels max |diff| {px_err:.2e}, features {feat_err:.2e}, decoder logits \
             {logit_err:.2e}"
        );
        assert!(px_err < 1e-5, "pixels {px_err}");
        assert!(feat_err < 1e-4, "features {feat_err}");
        assert!(logit_err < 1e-4, "logits {logit_err}");
        assert_eq!(ids, want_ids, "{name}: generated ids");
        assert_eq!(blip.decode(&ids).unwrap(), case["text"].as_str().unwrap());
    }
}

/// A copy of the tiny checkpoint under `repo` in a Hugging Face cache laid out like the real one
/// (`models--owner--name/refs/main` naming `snapshots/<commit>/`); returns the snapshot folder.
fn fake_hub(hub: &Path, repo: &str) -> PathBuf {
    let folder = hub.join(format!("models--{}", repo.replace('/', "--")));
    let commit = "70e1d2fe0d4a3e2c1a61f1c3e7a5b6f7d8c9e0a1";
    let snap = folder.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    for f in models::blip::CHECKPOINT_FILES
        .iter()
        .chain(&["generation_config.json"])
    {
        std::fs::copy(fixtures().join("tiny_blip").join(f), snap.join(f)).unwrap();
    }
    std::fs::create_dir_all(folder.join("refs")).unwrap();
    std::fs::write(folder.join("refs/main"), commit).unwrap();
    snap
}

/// `Salesforce/blip-image-captioning-large` given as a repo id resolves offline from the standard
/// cache (no network), loads and captions as transformers; the LMS method finds it through
/// `HF_HOME` with its default `blip` option; an uncached repo id says how to fetch it.
#[test]
fn blip_repo_id_resolves_from_the_hugging_face_cache() {
    use baselines::lms::{Lms, CAPTIONS_CSV};
    use models::blip::{resolve_checkpoint, resolve_checkpoint_in, DEFAULT_REPO};

    let tmp = std::env::temp_dir().join(format!("emobench-blip-hf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let snap = fake_hub(&tmp.join("hub"), DEFAULT_REPO);
    let cache = hf_hub::Cache::new(tmp.join("hub"));
    let dir = resolve_checkpoint_in(&cache, DEFAULT_REPO, false).expect("cached");
    assert_eq!(dir, snap);
    // A local folder is itself.
    let local = fixtures().join("tiny_blip");
    assert_eq!(
        resolve_checkpoint_in(&cache, local.to_str().unwrap(), false).unwrap(),
        local
    );
    let err = resolve_checkpoint_in(&cache, "Salesforce/blip-image-captioning-base", false)
        .expect_err("not cached");
    let msg = err.to_string();
    assert!(
        msg.contains("blip-image-captioning-base") && msg.contains("\"download\": true"),
        "{msg}"
    );

    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("tiny_blip_ref.json")).unwrap(),
    )
    .unwrap();
    let case = &r["cases"][0];
    let name = case["image"].as_str().unwrap();
    let want = case["text"].as_str().unwrap();
    let img = image::open(fixtures().join(format!("blip_{name}.png")))
        .unwrap()
        .to_rgb8();
    let mut blip = BlipCaptioner::load(&dir, &Device::Cpu).unwrap();
    let caption = blip
        .caption(&baselines::lms::blip_input(&img, blip.image_size()))
        .unwrap();
    assert_eq!(caption, want);

    // Through the method, with the default `blip` (the repo id) and HF_HOME pointing at the
    // cache. Only this test in this binary reads HF_HOME.
    std::env::set_var("HF_HOME", &tmp);
    assert_eq!(
        resolve_checkpoint(DEFAULT_REPO, false).expect("via HF_HOME"),
        snap
    );
    let run = tmp.join("runs/lms");
    let lms = Lms::new(&serde_json::json!({
        "stage": "instructions",
        "llm": fixtures().join("tiny_llama_f32.gguf"),
        "max_tokens": 2,
    }))
    .unwrap()
    .with_run_dir(&run)
    .unwrap();
    // A random language model may answer with whitespace only; the caption is recorded first.
    let _ = lms.instruction(name, &img, "fear");
    std::env::remove_var("HF_HOME");
    let text = std::fs::read_to_string(run.join(CAPTIONS_CSV)).unwrap();
    assert!(text.contains(want), "{text}");
    assert!(text.contains(DEFAULT_REPO), "{text}");
    let _ = std::fs::remove_dir_all(&tmp);
}
