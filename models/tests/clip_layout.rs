//! CLIP checkpoints in the OpenAI / open_clip layout: renamed into Hugging Face names and run
//! through `clip_vision`, they give what open_clip's `encode_image` / `encode_text` give
//! (fixtures from `tests/fixtures/openai_clip/make_openai_clip_fixture.py`).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use models::clip_vision::{ClipModel, Config};
use models::weights::checkpoint::load_state_dict;
use models::weights::clip_layout::{clip_var_builder, openai_to_hf, ClipLayout};

/// Single evaluations of the reference, as for the other CLIP fixtures.
const TOL: f32 = 1e-4;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openai_clip")
}

fn expected() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join("expected.safetensors"), &Device::Cpu).unwrap()
}

fn sequences() -> Vec<Vec<u32>> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap())
            .unwrap();
    serde_json::from_value(meta["sequences"].clone()).unwrap()
}

/// max |a - b| / max |b|.
fn rel(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    d / b.iter().map(|y| y.abs()).fold(0f32, f32::max).max(1e-30)
}

fn check_against_open_clip(file: &str) {
    let (vb, layout) =
        clip_var_builder(&dir().join(file), &Config::tiny(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(layout, ClipLayout::OpenAi);
    let model = ClipModel::new(vb, &Config::tiny()).unwrap();
    let e = expected();
    let image = model.vision.forward(&e["images"]).unwrap();
    let text = model.text.forward(&sequences()).unwrap();
    let (ei, et) = (
        rel(&image, &e["image_features"]),
        rel(&text, &e["text_features"]),
    );
    println!("{file}: image features rel err {ei:.3e}, text features {et:.3e}");
    assert!(
        ei < TOL && et < TOL,
        "{file}: {ei:.3e} / {et:.3e} >= {TOL:.0e}"
    );
}

#[test]
fn openai_layout_pt_matches_open_clip() {
    check_against_open_clip("openai_tiny.pt");
}

#[test]
fn openai_layout_safetensors_matches_open_clip() {
    check_against_open_clip("openai_tiny.safetensors");
}

#[test]
fn a_missing_tensor_is_named_by_its_openai_key() {
    let mut dict = load_state_dict(&dir().join("openai_tiny.pt")).unwrap();
    dict.tensors
        .remove("transformer.resblocks.1.attn.in_proj_weight");
    let e = openai_to_hf(&dict, &Config::tiny())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("openai_tiny.pt") && e.contains("'transformer.resblocks.1.attn.in_proj_weight'"),
        "{e}"
    );
}

#[test]
fn a_file_of_neither_layout_is_refused_by_name() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openai_clip/expected.safetensors");
    let e = clip_var_builder(&path, &Config::tiny(), DType::F32, &Device::Cpu)
        .err()
        .expect("not CLIP")
        .to_string();
    assert!(
        e.contains("expected.safetensors") && e.contains("not a CLIP checkpoint"),
        "{e}"
    );
}
