//! The predictor, Grad-CAM and the four metrics against PyTorch / torchvision / pytorch-grad-cam /
//! OpenCV / scikit-image on the fixtures written by `tests/fixtures/torch/make_fixtures.py`
//! (tiny-width torchvision ResNet-18 with random weights, saved as the authors saved theirs).
//! Tolerances (stated in that folder's README): logits 1e-4 relative, CAM 1e-4, metrics 0.01.
//! Logits, probabilities and CAMs also run in each precision `EMOBENCH_DTYPE` names
//! (`models/tests/common/setup.rs`), at the half-precision tolerances below.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use emobench_core::emotion::Emotion;
use emobench_core::image_io::load_rgb;
use emobench_core::metrics::{self, EdgeInput, EnrdAverage};
use emobench_core::predictor::{ClassOrder, Predictor};
use models::resnet::ResNetConfig;
use models::weights::checkpoint::load_state_dict;

#[path = "../models/tests/common/setup.rs"]
mod setup;

/// Logits: |d| <= tol * max(|ref|, 1); f32 is the stated 1e-4.
const LOGITS: setup::Tol = setup::Tol {
    f32: 1e-4,
    f16: 5e-2,
    bf16: 0.5,
};
/// Probabilities: |d| below this; f32 is the stated 1e-5.
const PROBS: setup::Tol = setup::Tol {
    f32: 1e-5,
    f16: 1e-2,
    bf16: 6e-2,
};
/// CAM values in [0, 1] and raw CAM relative to its maximum; f32 is the stated 1e-4.
const CAM: setup::Tol = setup::Tol {
    f32: 1e-4,
    f16: 5e-3,
    bf16: 5e-2,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch")
}

fn names() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(dir().join("inputs.json")).unwrap()).unwrap()
}

fn tiny(file: &str) -> Predictor {
    Predictor::load(
        &dir().join(file),
        ResNetConfig::tiny(8),
        ClassOrder::alphabetical(),
        &setup::device(),
    )
    .unwrap()
}

fn tiny_in(file: &str, dtype: DType) -> Predictor {
    tiny(file).with_dtype(dtype).unwrap()
}

fn npy(path: &Path) -> Vec<f32> {
    setup::host_f32(&Tensor::read_npy(path).unwrap())
}

fn images() -> Vec<image::RgbImage> {
    names()
        .iter()
        .map(|n| load_rgb(&dir().join(format!("photos224/{n}.png"))).unwrap())
        .collect()
}

#[test]
fn logits_match_torchvision_in_all_three_file_formats() {
    let expected = npy(&dir().join("logits.npy"));
    let imgs = images();
    let refs: Vec<_> = imgs.iter().collect();
    for dtype in setup::dtypes() {
        let tol = LOGITS.at(dtype);
        for file in [
            "resnet18_tiny.pt",
            "resnet18_tiny_legacy.pth",
            "resnet18_tiny.safetensors",
        ] {
            let p = tiny_in(file, dtype);
            let got: Vec<f32> = p
                .predict(&refs)
                .unwrap()
                .into_iter()
                .flat_map(|p| p.logits)
                .collect();
            assert_eq!(got.len(), expected.len());
            let worst = got
                .iter()
                .zip(&expected)
                .map(|(g, e)| (g - e).abs() / e.abs().max(1.0))
                .fold(0f32, f32::max);
            eprintln!("{file} {dtype:?}: logits error {worst:.2e}");
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (g - e).abs() <= tol * e.abs().max(1.0),
                    "{file} {dtype:?}: logit {i}: {g} vs torch {e}"
                );
            }
        }
    }
}

#[test]
fn probabilities_are_mapped_by_name_from_the_alphabetical_checkpoint() {
    let expected = npy(&dir().join("probs.npy"));
    let imgs = images();
    let refs: Vec<_> = imgs.iter().collect();
    let order = ClassOrder::alphabetical();
    for dtype in setup::dtypes() {
        let tol = f64::from(PROBS.at(dtype));
        let preds = tiny_in("resnet18_tiny.pt", dtype).predict(&refs).unwrap();
        let mut worst = 0f64;
        for (i, p) in preds.iter().enumerate() {
            for (j, e) in order.0.iter().enumerate() {
                let t = f64::from(expected[i * 8 + j]);
                worst = worst.max((p.prob(*e) - t).abs());
                assert!(
                    (p.prob(*e) - t).abs() < tol,
                    "{dtype:?} image {i} {e}: {} vs {t}",
                    p.prob(*e)
                );
            }
        }
        eprintln!("{dtype:?}: probabilities max |d| {worst:.2e}");
    }
}

#[test]
fn grad_cam_matches_pytorch_grad_cam() {
    let imgs = images();
    for dtype in setup::dtypes() {
        let p = tiny_in("resnet18_tiny.pt", dtype);
        let tol = CAM.at(dtype);
        for (name, img) in names().iter().zip(&imgs) {
            let (_, cam) = p.predict_with_cam(&[img]).unwrap().pop().unwrap();
            let raw = npy(&dir().join(format!("gradcam/{name}_raw7.npy")));
            let rmax = raw.iter().copied().fold(0f32, f32::max).max(1e-6);
            let raw_err = cam
                .raw
                .iter()
                .zip(&raw)
                .map(|(a, b)| (a - b).abs() / rmax)
                .fold(0f32, f32::max);
            let expected = npy(&dir().join(format!("gradcam/{name}.npy")));
            assert_eq!(cam.values.len(), expected.len());
            let max_err = cam
                .values
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("{name} {dtype:?}: raw cam {raw_err:.2e}, cam {max_err:.2e}");
            assert!(raw_err <= tol, "{name} {dtype:?}: raw cam error {raw_err}");
            assert!(max_err < tol, "{name} {dtype:?}: cam max error {max_err}");
            assert!(
                cam.values.iter().all(|v| v.is_finite()),
                "{name}: NaN in CAM"
            );
            if dtype != DType::F32 {
                // The mask thresholds the CAM at 0.5: checked at the f32 tolerance only.
                continue;
            }
            let mask = image::open(dir().join(format!("gradcam/{name}_mask.png")))
                .unwrap()
                .to_luma8();
            let differ = cam
                .region()
                .iter()
                .zip(mask.as_raw())
                .filter(|(m, e)| **m != (**e > 127))
                .count();
            // Values within 1e-4 of 0.5 may legitimately fall on either side.
            assert!(
                differ * 1000 <= expected.len(),
                "{name}: {differ} mask pixels differ"
            );
        }
    }
}

#[derive(serde::Deserialize)]
struct PairCase {
    source: String,
    generated: String,
    target: String,
    p_src: Vec<f64>,
    p_gen: Vec<f64>,
    argmax_src: String,
    argmax_gen: String,
    emr: u8,
    esr: u8,
    enrd: f64,
    enrd_neutral_only: f64,
    ess_rgb: f64,
    ess_gray: f64,
    ssim_rgb_w7: f64,
    ssim_gray_w51: f64,
    l1: f64,
}

#[test]
fn the_four_metrics_match_the_reference_pipeline_on_photo_pairs() {
    let cases: Vec<PairCase> =
        serde_json::from_str(&std::fs::read_to_string(dir().join("metrics.json")).unwrap())
            .unwrap();
    assert!(cases.len() >= 20);
    let p = tiny("resnet18_tiny.pt");
    let order = ClassOrder::alphabetical();
    let w51 = metrics::SsimChoice {
        input: EdgeInput::Gray,
        win_size: 51,
        options: emobench_core::imgproc::ssim::SsimOptions::uniform(51),
    };
    for c in &cases {
        let id = format!("{} -> {} ({})", c.source, c.generated, c.target);
        let src = load_rgb(&dir().join(&c.source)).unwrap();
        let gen = load_rgb(&dir().join(&c.generated)).unwrap();
        let target: Emotion = c.target.parse().unwrap();
        let (ps, cam) = p.predict_with_cam(&[&src]).unwrap().pop().unwrap();
        let pg = p.predict(&[&gen]).unwrap().pop().unwrap();
        for (j, e) in order.0.iter().enumerate() {
            assert!((ps.prob(*e) - c.p_src[j]).abs() < 1e-5, "{id}: p_src {e}");
            assert!((pg.prob(*e) - c.p_gen[j]).abs() < 1e-5, "{id}: p_gen {e}");
        }
        assert_eq!(ps.argmax.name(), c.argmax_src, "{id}");
        assert_eq!(pg.argmax.name(), c.argmax_gen, "{id}");
        assert_eq!(u8::from(pg.argmax == target), c.emr, "{id}: EMR");
        assert_eq!(
            u8::from(metrics::esr(ps.prob(target), pg.prob(target))),
            c.esr,
            "{id}: ESR"
        );
        let region = cam.region();
        let close = |got: f64, want: f64, what: &str| {
            assert!(
                (got - want).abs() < 0.01,
                "{id}: {what} {got} vs reference {want}"
            );
        };
        close(
            metrics::enrd(&src, &gen, &region, EnrdAverage::AllPixels),
            c.enrd,
            "ENRD",
        );
        close(
            metrics::enrd(&src, &gen, &region, EnrdAverage::NeutralOnly),
            c.enrd_neutral_only,
            "ENRD neutral-only",
        );
        let ess = |input| metrics::ess(&metrics::edges(&src, input), &metrics::edges(&gen, input));
        close(ess(EdgeInput::Rgb), c.ess_rgb, "ESS rgb");
        close(ess(EdgeInput::Gray), c.ess_gray, "ESS gray");
        close(
            metrics::ssim(&src, &gen, &metrics::SsimChoice::default()).unwrap(),
            c.ssim_rgb_w7,
            "SSIM w7",
        );
        close(
            metrics::ssim(&src, &gen, &w51).unwrap(),
            c.ssim_gray_w51,
            "SSIM gray w51",
        );
        close(
            metrics::mean_abs_diff(src.as_raw(), gen.as_raw()),
            c.l1,
            "L1",
        );
    }
}

#[test]
fn identical_images_give_zero_enrd_and_ess_and_no_shift() {
    let img = load_rgb(&dir().join("photos224/chelsea.png")).unwrap();
    let p = tiny("resnet18_tiny.pt");
    let (pred, cam) = p.predict_with_cam(&[&img]).unwrap().pop().unwrap();
    assert_eq!(
        metrics::enrd(&img, &img, &cam.region(), EnrdAverage::AllPixels),
        0.0
    );
    let e = metrics::edges(&img, EdgeInput::Rgb);
    assert_eq!(metrics::ess(&e, &e), 0.0);
    for t in Emotion::ALL {
        assert!(!metrics::esr(pred.prob(t), pred.prob(t)));
    }
    // p = 0 on both sides: KL is +inf on both sides and ESR is false, not NaN.
    assert!(metrics::kl_onehot(0.0).is_infinite());
    assert!(!metrics::esr(0.0, 0.0));
    assert!(metrics::esr(0.0, 1e-30));
}

#[test]
fn a_missing_tensor_is_named_with_its_file() {
    let sd = load_state_dict(&dir().join("resnet18_tiny.safetensors")).unwrap();
    let mut tensors = sd.tensors.clone();
    tensors.remove("layer3.1.bn2.running_var");
    let tmp = std::env::temp_dir().join(format!(
        "emobench-missing-{}.safetensors",
        std::process::id()
    ));
    candle_core::safetensors::save(&tensors, &tmp).unwrap();
    let err = Predictor::load(
        &tmp,
        ResNetConfig::tiny(8),
        ClassOrder::alphabetical(),
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    std::fs::remove_file(&tmp).ok();
    assert!(err.contains("layer3.1.bn2.running_var"), "{err}");
    assert!(err.contains("emobench-missing"), "{err}");
    assert!(!err.contains('\n'));
    // The full-size architecture rejects the tiny checkpoint by shape, naming the tensor.
    let err = Predictor::load(
        &dir().join("resnet18_tiny.pt"),
        ResNetConfig::resnet18(8),
        ClassOrder::alphabetical(),
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("conv1.weight") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn full_size_resnet18_instantiates_with_torchvision_shapes() {
    // Shapes of torchvision.models.resnet18(num_classes=8): 62 weight/bias/running tensors here
    // (torchvision also stores num_batches_tracked, which inference does not read).
    let shapes = ResNetConfig::resnet18(8).tensor_shapes();
    assert_eq!(shapes.len(), 122 - 20);
    let params: usize = shapes
        .iter()
        .filter(|(k, _)| !k.contains("running"))
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    // torchvision lists resnet18 at 11,689,512 parameters with its 1000-way head (512*1000 + 1000);
    // an 8-way head (512*8 + 8) leaves 11,689,512 - 513,000 + 4,104.
    assert_eq!(params, 11_689_512 - 513_000 + 4_104);
    // The fixture script's count of every state-dict element (parameters, BN running statistics,
    // and 20 num_batches_tracked scalars that inference does not read).
    let all: usize = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(all + 20, 11_190_236);
    let p = Predictor::stand_in(0, &Device::Cpu).unwrap();
    assert!(p.source().is_stand_in());
    assert!(p.source().describe().starts_with("STAND-IN"));
}

/// CI runs the fixture tests a second time with `EMOBENCH_CANDLE_OPS=1`; this says which path
/// that run took, so a fixture pass cannot be credited to the wrong one.
#[test]
fn the_candle_ops_switch_selects_the_path() {
    let requested = std::env::var(models::kernels::CANDLE_OPS_ENV).is_ok_and(|v| v == "1");
    assert_eq!(models::kernels::fused_enabled(), !requested);
    println!(
        "fixture path: {}",
        if requested {
            "candle operators (the GPU path)"
        } else {
            "fused CPU kernels"
        }
    );
}
