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
