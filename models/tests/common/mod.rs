//! Shared helpers of the fixture tests: loading the fixtures and comparing tensors.

#![allow(dead_code)]

pub mod setup;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use models::vgg19::Vgg19Config;

/// The fixture folder.
pub fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/nst")
}

/// Every tensor of `nst.safetensors`.
pub fn tensors() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join("nst.safetensors"), &Device::Cpu).expect("fixtures")
}

/// `nst.json`.
pub fn meta() -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join("nst.json")).expect("nst.json");
    serde_json::from_str(&text).expect("json")
}

/// The tiny network's configuration (VGG19 layout, small widths).
pub fn tiny_config() -> Vgg19Config {
    Vgg19Config::with_widths([4, 6, 8, 8, 8])
}

/// A builder over the tiny network's weights.
pub fn tiny_vb() -> VarBuilder<'static> {
    tiny_vb_in(DType::F32)
}

/// A builder over the tiny network's weights, converted to `dtype`.
pub fn tiny_vb_in(dtype: DType) -> VarBuilder<'static> {
    let path = dir().join("tiny_vgg.safetensors");
    // SAFETY: a test fixture nobody rewrites while the tests run.
    unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, &Device::Cpu) }
        .expect("tiny weights")
}

/// max |a - b| / max |b|, in f32 whatever the tensors' dtype.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes");
    rel_err_slices(&setup::host_f32(a), &setup::host_f32(b))
}

/// max |a - b| / max |b| of two slices.
pub fn rel_err_slices(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// |a - b| / |b| of two numbers.
pub fn rel(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        a.abs()
    } else {
        ((a - b) / b).abs()
    }
}

/// The numbers of a JSON array.
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}
