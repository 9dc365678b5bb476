//! The `nst` edit method: options, errors, sizes, and batches equal to one-at-a-time edits.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use baselines::nst::{working_size, NeuralStyleTransfer, NstOptions, StyleTransfer};
use baselines::{EditError, EditMethod, EditRequest};
use candle_core::Device;
use common::{tiny_config, tiny_vb};
use image::{Rgb, RgbImage};

fn method(options: serde_json::Value) -> NeuralStyleTransfer {
    let model = StyleTransfer::load(tiny_vb(), &tiny_config(), "tiny").unwrap();
    NeuralStyleTransfer::from_model(
        NstOptions::from_json(&options).unwrap(),
        model,
        Device::Cpu,
        Vec::new(),
    )
    .unwrap()
}

fn picture(w: u32, h: u32, k: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            ((x * 9 + y * 3 + k * 40) % 256) as u8,
            ((y * 11 + k * 70) % 256) as u8,
            ((x * y + k * 13) % 256) as u8,
        ])
    })
}

#[test]
fn options_default_to_the_tutorial_and_reject_unknown_fields() {
    let o = NstOptions::from_json(&serde_json::Value::Null).unwrap();
    assert_eq!(
        (o.size, o.steps, o.style_weight, o.content_weight, o.batch),
        (512, 300, 1e6, 1.0, 1)
    );
    assert!(matches!(
        NstOptions::from_json(&serde_json::json!({"stepz": 3})),
        Err(EditError::InvalidOption { .. })
    ));
    assert!(matches!(
        NstOptions::from_json(&serde_json::json!({"batch": 0})),
        Err(EditError::InvalidOption { .. })
    ));
    assert!(matches!(
        NstOptions::from_json(&serde_json::json!({"style_weight": -1.0})),
        Err(EditError::InvalidOption { .. })
    ));
}

#[test]
fn missing_weights_are_reported_with_a_hint() {
    let err = NeuralStyleTransfer::new(NstOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, EditError::MissingResource { .. }), "{err}");
    let opts = NstOptions {
        weights: "/nonexistent/vgg19.pth".into(),
        ..NstOptions::default()
    };
    let err = NeuralStyleTransfer::new(opts).err().unwrap();
    assert!(err.to_string().contains("/nonexistent/vgg19.pth"), "{err}");
}

#[test]
fn a_checkpoint_missing_a_tensor_names_it_and_the_file() {
    // The tiny checkpoint has features.0..10 at small widths: the real configuration's first
    // layer already has the wrong shape, so build a checkpoint with conv 0 of the real shape only.
    let dir = std::env::temp_dir().join(format!("nst-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("partial.safetensors");
    let w =
        candle_core::Tensor::zeros((64, 3, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    let b = candle_core::Tensor::zeros(64, candle_core::DType::F32, &Device::Cpu).unwrap();
    let map: std::collections::HashMap<String, candle_core::Tensor> = [
        ("features.0.weight".to_string(), w),
        ("features.0.bias".to_string(), b),
    ]
    .into_iter()
    .collect();
    candle_core::safetensors::save(&map, &path).unwrap();
    let opts = NstOptions {
        weights: path.display().to_string(),
        ..NstOptions::default()
    };
    let err = NeuralStyleTransfer::new(opts).err().unwrap();
    let mut chain = vec![err.to_string()];
    let mut src = std::error::Error::source(&err);
    while let Some(s) = src {
        chain.push(s.to_string());
        src = s.source();
    }
    let line = chain.join(": ");
    eprintln!("{line}");
    assert!(line.contains("features.2.weight is missing"), "{line}");
    assert!(line.contains("partial.safetensors"), "{line}");
    assert!(!line.contains('\n'));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn working_size_is_torchvision_resize_of_the_shorter_side() {
    assert_eq!(working_size(640, 480, 512), (682, 512));
    assert_eq!(working_size(480, 640, 512), (512, 682));
    assert_eq!(working_size(300, 300, 128), (128, 128));
}

#[test]
fn edits_need_a_reference_and_keep_the_source_size() {
    let m = method(serde_json::json!({"size": 16, "steps": 3}));
    assert!(m.needs_references());
    let src = picture(30, 22, 0);
    assert!(matches!(
        m.edit(&EditRequest::new(&src, "awe", 1)),
        Err(EditError::MissingReference { .. })
    ));
    let refs = vec![picture(13, 40, 1)];
    let out = m
        .edit(&EditRequest::new(&src, "awe", 1).with_references(&refs))
        .unwrap();
    assert_eq!(out.dimensions(), (30, 22));
    assert_ne!(out, src);
    assert_eq!(m.parameters()["steps"], 3);
    // The trace: 3 steps -> one L-BFGS step of 20 evaluations (the loop checks only between
    // steps), unless the optimiser stopped early.
    let (_, trace) = m
        .edit_traced(&EditRequest::new(&src, "awe", 1).with_references(&refs))
        .unwrap();
    let trace = trace.expect("trace");
    let n = trace["evaluations"].as_u64().unwrap();
    assert!((4..=20).contains(&n), "{trace}");
    assert!(trace["last_loss"].as_f64().unwrap().is_finite());
}

#[test]
fn a_batch_equals_one_at_a_time() {
    let single = method(serde_json::json!({"size": 16, "steps": 10}));
    let batched = method(serde_json::json!({"size": 16, "steps": 10, "batch": 3}));
    let src = picture(24, 20, 0);
    let other = picture(20, 24, 5);
    let refs: Vec<Vec<RgbImage>> = (1..4).map(|k| vec![picture(20, 20, k)]).collect();
    let reqs = vec![
        EditRequest::new(&src, "awe", 1).with_references(&refs[0]),
        EditRequest::new(&other, "fear", 1).with_references(&refs[1]),
        EditRequest::new(&src, "joy", 1).with_references(&refs[2]),
    ];
    let one: Vec<RgbImage> = reqs.iter().map(|r| single.edit(r).unwrap()).collect();
    let many = batched.edit_batch(&reqs).unwrap();
    for (i, (a, (b, _))) in one.iter().zip(&many).enumerate() {
        let worst = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap();
        eprintln!("request {i}: max 8-bit difference batch vs single {worst}");
        assert!(worst <= 1, "request {i}: {worst}");
    }
}
