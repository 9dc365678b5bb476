//! CLIPstyler against PyTorch: tiny random CLIP (transformers), the real StyleNet architecture
//! (ngf 8), a tiny VGG19 layout, torchvision's augmentation and PyTorch's interpolation,
//! Adam and StepLR. Fixtures from `tests/fixtures/clipstyler/make_clipstyler_fixtures.py`.
//!
//! Single evaluations (values and gradients) are compared at 1e-4 relative error
//! (max |ours - torch| / max |torch|); the 4-iteration trajectory at 1e-3 (Adam's first steps
//! divide by the root of tiny second moments, which amplifies float-order differences).
//! The CLIP towers also run in each precision `EMOBENCH_DTYPE` names (`common/setup.rs`);
//! the StyleNet, the losses and the Adam trajectory are trained in f32 and checked in f32 only.

use std::collections::HashMap;
use std::path::PathBuf;

use baselines::clipstyler::{adjust_contrast, postprocess, LossConfig, Styler};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use models::augment::{augment_patches, interpolate_bicubic, interpolate_bilinear, PatchParams};
use models::clip_vision::{self, Config};
use models::optim::adam::{Adam, StepLr};
use models::stylenet::{self, StyleNet};
use models::vgg19::{Vgg19Config, Vgg19Features, CLIPSTYLER_CONTENT_TAPS};

#[path = "../../models/tests/common/setup.rs"]
mod setup;

const TOL: f32 = 1e-4;

/// [`TOL`] in f32; in f16 and bf16, the measured errors with a margin (README, Correctness).
const HALF: setup::Tol = setup::Tol {
    f32: TOL,
    f16: 1e-2,
    bf16: 5e-2,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clipstyler")
}

fn fixtures() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join("fixtures.safetensors"), &Device::Cpu)
        .expect("fixtures")
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("fixtures.json")).expect("json"))
        .expect("json")
}

fn get<'a>(f: &'a HashMap<String, Tensor>, name: &str) -> &'a Tensor {
    f.get(name)
        .unwrap_or_else(|| panic!("fixture tensor {name}"))
}

/// max |a - b| / max |b|.
fn rel(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes");
    let (a, b) = (setup::host_f32(a), setup::host_f32(b));
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let m = b.iter().map(|y| y.abs()).fold(0f32, f32::max);
    d / m.max(1e-30)
}

fn check(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    let e = rel(a, b);
    println!("{what}: rel err {e:.3e}");
    assert!(e < tol, "{what}: rel err {e:.3e} >= {tol:.1e}");
}

fn upstream_grad(
    input: &Tensor,
    f: impl Fn(&Tensor) -> Tensor,
    upstream: &Tensor,
) -> (Tensor, Tensor) {
    let x = Var::from_tensor(input).unwrap();
    let y = f(x.as_tensor());
    let g = (&y * upstream)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    (y, g.get(x.as_tensor()).expect("input grad").clone())
}

fn clip() -> clip_vision::ClipModel {
    clip_vision::load(
        &dir().join("clip_tiny.safetensors"),
        &Config::tiny(),
        &Device::Cpu,
    )
    .expect("clip")
}

fn clip_in(dtype: DType) -> clip_vision::ClipModel {
    let path = dir().join("clip_tiny.safetensors");
    // SAFETY: a test fixture nobody rewrites while the tests run.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, &Device::Cpu) }
        .expect("clip weights");
    clip_vision::ClipModel::new(vb, &Config::tiny()).expect("clip")
}

fn vgg() -> Vgg19Features {
    let t =
        candle_core::safetensors::load(dir().join("vgg_tiny.safetensors"), &Device::Cpu).unwrap();
    let vb = VarBuilder::from_tensors(t, DType::F32, &Device::Cpu);
    Vgg19Features::new(
        vb,
        &Vgg19Config::with_widths([4, 6, 8, 8, 8]),
        &CLIPSTYLER_CONTENT_TAPS,
    )
    .unwrap()
}

fn patches(v: &serde_json::Value) -> Vec<PatchParams> {
    serde_json::from_value(v.clone()).expect("patch params")
}

#[test]
fn vision_tower_features_and_input_gradient() {
    let f = fixtures();
    for dtype in setup::dtypes() {
        let model = clip_in(dtype);
        let input = |name: &str| get(&f, name).to_dtype(dtype).unwrap();
        let (y, g) = upstream_grad(
            &input("vision_input"),
            |x| model.vision.forward(x).unwrap(),
            &input("vision_upstream"),
        );
        let tol = HALF.at(dtype);
        check(
            &format!("vision features {dtype:?}"),
            &y,
            get(&f, "vision_features"),
            tol,
        );
        check(
            &format!("vision input grad {dtype:?}"),
            &g,
            get(&f, "vision_input_grad"),
            tol,
        );
    }
}

#[test]
fn text_tower_features() {
    let f = fixtures();
    let ids: Vec<Vec<u32>> = serde_json::from_value(meta()["text_ids"].clone()).unwrap();
    for dtype in setup::dtypes() {
        let y = clip_in(dtype).text.forward(&ids).unwrap();
        let what = format!("text features {dtype:?}");
        check(&what, &y, get(&f, "text_features"), HALF.at(dtype));
    }
}

#[test]
fn interpolation_matches_torch_with_gradients() {
    let f = fixtures();
    for (name, oh, ow, bicubic) in [
        ("bicubic_mixed", 9, 17, true),
        ("bicubic_512", 224, 8, true),
        ("bilinear_mixed", 9, 17, false),
        ("upsample", 10, 14, false),
    ] {
        let (y, g) = upstream_grad(
            get(&f, &format!("{name}_input")),
            |x| {
                if bicubic {
                    interpolate_bicubic(x, oh, ow).unwrap()
                } else {
                    interpolate_bilinear(x, oh, ow).unwrap()
                }
            },
            get(&f, &format!("{name}_upstream")),
        );
        check(
            &format!("{name} output"),
            &y,
            get(&f, &format!("{name}_output")),
            TOL,
        );
        check(
            &format!("{name} grad"),
            &g,
            get(&f, &format!("{name}_grad")),
            TOL,
        );
    }
    let x = get(&f, "upsample_input");
    let y = stylenet::upsample_bilinear2x(x).unwrap();
    check("upsample_bilinear2x", &y, get(&f, "upsample_output"), TOL);
}

#[test]
fn crop_perspective_resize_matches_torchvision() {
    let f = fixtures();
    let p = patches(&meta()["augment_patches"]);
    let (y, g) = upstream_grad(
        get(&f, "augment_input"),
        |x| augment_patches(x, &p, 24, 32).unwrap(),
        get(&f, "augment_upstream"),
    );
    check("augment output", &y, get(&f, "augment_output"), TOL);
    check("augment grad", &g, get(&f, "augment_grad"), TOL);
}

fn stylenet_vars() -> (StyleNet, candle_nn::VarMap) {
    let map =
        stylenet::var_map_from_safetensors(&dir().join("stylenet.safetensors"), 8, &Device::Cpu)
            .unwrap();
    (StyleNet::from_var_map(&map, 8, &Device::Cpu).unwrap(), map)
}

fn var(map: &candle_nn::VarMap, name: &str) -> Var {
    map.data().lock().unwrap().get(name).unwrap().clone()
}

#[test]
fn stylenet_output_and_parameter_gradients() {
    let f = fixtures();
    let (net, map) = stylenet_vars();
    let y = net.forward(get(&f, "content"), true).unwrap();
    check("stylenet output", &y, get(&f, "stylenet_output"), TOL);
    let grads = (&y * get(&f, "stylenet_upstream"))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let names: Vec<String> = serde_json::from_value(meta()["grad_params"].clone()).unwrap();
    for n in names {
        let g = grads.get(var(&map, &n).as_tensor()).expect("grad");
        check(
            &format!("stylenet grad {n}"),
            g,
            get(&f, &format!("stylenet_grad.{n}")),
            TOL,
        );
    }
}

fn styler<'a>(
    f: &HashMap<String, Tensor>,
    model: &'a clip_vision::ClipModel,
    vgg: &'a Vgg19Features,
    config: LossConfig,
) -> Styler<'a> {
    Styler::new(
        &model.vision,
        vgg,
        get(f, "content").clone(),
        get(f, "text_target"),
        get(f, "text_source"),
        config,
    )
    .unwrap()
}

fn fixture_config(thresh: f64, batch: usize) -> LossConfig {
    LossConfig {
        thresh,
        crop_size: 24,
        batch,
        ..LossConfig::default()
    }
}

#[test]
fn losses_and_gradients_match_the_script() {
    let f = fixtures();
    let m = meta();
    let model = clip();
    let vgg = vgg();
    let thresh = m["loss_thresh"].as_f64().unwrap();
    let params = patches(&m["loss_patches"]);
    let s = styler(&f, &model, &vgg, fixture_config(thresh, 4));
    check(
        "source image feature",
        &s.source_feature,
        get(&f, "source_features"),
        TOL,
    );
    let (net, map) = stylenet_vars();
    let target = net.forward(get(&f, "content"), true).unwrap();
    let (v, g) = s.loss_and_grad(&target, &params).unwrap();
    for (name, ours) in [
        ("patch", v.patch),
        ("content", v.content),
        ("tv", v.tv),
        ("glob", v.glob),
        ("total", v.total),
    ] {
        let want = m[format!("loss.{name}")].as_f64().unwrap();
        let e = ((ours - want) / want).abs();
        println!("loss {name}: ours {ours} torch {want} rel {e:.2e}");
        assert!(e < 1e-4, "loss {name}: {ours} vs {want}");
    }
    // Parameter gradients of the weighted total.
    let grads = (&target * g)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let names: Vec<String> = serde_json::from_value(m["grad_params"].clone()).unwrap();
    for n in &names {
        let gp = grads.get(var(&map, n).as_tensor()).expect("grad");
        check(
            &format!("total loss grad {n}"),
            gp,
            get(&f, &format!("loss_grad.{n}")),
            TOL,
        );
    }
    // Each term's gradient with respect to the image, one weight at a time.
    let base = fixture_config(thresh, 4);
    let zero = LossConfig {
        lambda_patch: 0.0,
        lambda_dir: 0.0,
        lambda_tv: 0.0,
        lambda_c: 0.0,
        ..base
    };
    for (name, cfg) in [
        (
            "patch",
            LossConfig {
                lambda_patch: 1.0,
                ..zero
            },
        ),
        (
            "content",
            LossConfig {
                lambda_c: 1.0,
                ..zero
            },
        ),
        (
            "tv",
            LossConfig {
                lambda_tv: 1.0,
                ..zero
            },
        ),
        (
            "glob",
            LossConfig {
                lambda_dir: 1.0,
                ..zero
            },
        ),
    ] {
        let s = styler(&f, &model, &vgg, cfg);
        let (_, g) = s.loss_and_grad(&target, &params).unwrap();
        check(
            &format!("{name} image grad"),
            &g,
            get(&f, &format!("loss_grad_image.{name}")),
            TOL,
        );
    }
}

#[test]
fn chunking_the_crops_does_not_change_the_gradient() {
    let f = fixtures();
    let m = meta();
    let model = clip();
    let vgg = vgg();
    let params = patches(&m["loss_patches"]);
    let target = get(&f, "stylenet_output");
    let (a, ga) = styler(&f, &model, &vgg, fixture_config(0.7, 1))
        .loss_and_grad(target, &params)
        .unwrap();
    let (b, gb) = styler(&f, &model, &vgg, fixture_config(0.7, 6))
        .loss_and_grad(target, &params)
        .unwrap();
    assert!((a.total - b.total).abs() <= 1e-5 * b.total.abs());
    check("chunked vs whole grad", &ga, &gb, 1e-5);
}

#[test]
fn adam_matches_torch() {
    let f = fixtures();
    let w = Var::from_tensor(get(&f, "adam_init")).unwrap();
    let mut adam = Adam::new(vec![w.clone()], 0.01).unwrap();
    let gs = get(&f, "adam_grads");
    for t in 0..gs.dim(0).unwrap() {
        let g = gs.get(t).unwrap();
        // A gradient store holding `g` for `w`: the gradient of sum(w * g).
        let store = (w.as_tensor() * &g)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        adam.step(&store).unwrap();
    }
    check(
        "adam parameters after 6 steps",
        w.as_tensor(),
        get(&f, "adam_final"),
        1e-6,
    );
}

#[test]
fn step_lr_as_the_script_steps_it() {
    let s = StepLr {
        base_lr: 5e-4,
        step_size: 100,
        gamma: 0.5,
    };
    // Iteration e uses lr_after(e + 1).
    assert_eq!(s.lr_after(1), 5e-4);
    assert_eq!(s.lr_after(99), 5e-4);
    assert_eq!(s.lr_after(100), 2.5e-4);
    assert_eq!(s.lr_after(200), 1.25e-4);
    assert_eq!(s.lr_after(201), 1.25e-4);
}

#[test]
fn trajectory_and_whole_tiny_run() {
    let f = fixtures();
    let m = meta();
    let model = clip();
    let vgg = vgg();
    let s = styler(&f, &model, &vgg, fixture_config(0.7, 3));
    let (net, map) = stylenet_vars();
    let vars = stylenet::ordered_vars(&map, 8).unwrap();
    let traj_patches: Vec<Vec<PatchParams>> =
        serde_json::from_value(m["traj_patches"].clone()).unwrap();
    let sched = StepLr {
        base_lr: 5e-4,
        step_size: m["traj_step_size"].as_u64().unwrap() as usize,
        gamma: m["traj_gamma"].as_f64().unwrap(),
    };
    let steps = traj_patches.len();
    let (out, history) = s
        .run(&net, vars, steps, sched, |e| traj_patches[e].clone())
        .unwrap();
    let traj = m["traj"].as_array().unwrap();
    for (e, (ours, want)) in history.iter().zip(traj).enumerate() {
        assert_eq!(
            sched.lr_after(e + 1),
            want["lr"].as_f64().unwrap(),
            "lr at {e}"
        );
        for (name, v) in [
            ("patch", ours.patch),
            ("content", ours.content),
            ("tv", ours.tv),
            ("glob", ours.glob),
            ("total", ours.total),
        ] {
            let w = want[name].as_f64().unwrap();
            let err = ((v - w) / w).abs();
            println!("iteration {e} {name}: rel {err:.2e}");
            assert!(err < 1e-3, "iteration {e} {name}: {v} vs {w}");
        }
    }
    check(
        "output after the updates",
        &out,
        get(&f, "traj_output"),
        1e-3,
    );
    let v: Vec<f32> = out
        .clamp(0f32, 1f32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let contrast = Tensor::from_vec(adjust_contrast(&v, 1.5), out.dims(), &Device::Cpu).unwrap();
    check("adjust_contrast", &contrast, get(&f, "traj_contrast"), 1e-3);
    let img = postprocess(&out).unwrap();
    let want: Vec<f32> = get(&f, "traj_u8").flatten_all().unwrap().to_vec1().unwrap();
    let worst = img
        .as_raw()
        .iter()
        .zip(&want)
        .map(|(&a, &b)| (a as f32 - b).abs())
        .fold(0f32, f32::max);
    println!("saved image: max |diff| {worst} levels");
    assert!(worst <= 1.0, "saved image differs by {worst} levels");
}

#[test]
fn postprocess_exact_on_torch_contrast_output() {
    // adjust_contrast + min-max on the torch-side tensor reproduces torch's bytes exactly.
    let f = fixtures();
    let out = get(&f, "traj_output");
    let v: Vec<f32> = out
        .clamp(0f32, 1f32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let c = adjust_contrast(&v, 1.5);
    let (_, _, h, w) = out.dims4().unwrap();
    let img = baselines::clipstyler::save_image_normalized(&c, w as u32, h as u32);
    let want: Vec<f32> = get(&f, "traj_u8").flatten_all().unwrap().to_vec1().unwrap();
    let worst = img
        .as_raw()
        .iter()
        .zip(&want)
        .map(|(&a, &b)| (a as f32 - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1.0, "bytes differ by {worst}");
}

fn tokenizer() -> models::tokenizer::ClipTokenizer {
    models::tokenizer::ClipTokenizer::from_dir(&dir()).expect("tokenizer")
}

#[test]
fn template_averaged_text_features() {
    let f = fixtures();
    let model = clip();
    let tok = tokenizer();
    for text in ["a Photo", "amusement"] {
        let y = baselines::clipstyler::template_text_feature(&model.text, &tok, text).unwrap();
        check(
            &format!("template text '{text}'"),
            &y,
            get(&f, &format!("template_text.{text}")),
            TOL,
        );
    }
}

fn tiny_method(options: serde_json::Value) -> baselines::clipstyler::ClipStyler {
    use baselines::clipstyler::{ClipStyler, ClipstylerOptions};
    let options = ClipstylerOptions::from_json(&options).unwrap();
    ClipStyler::from_parts(options, Device::Cpu, clip(), tokenizer(), vgg(), Vec::new())
}

#[test]
fn edit_method_is_deterministic_and_sized() {
    use baselines::{EditMethod, EditRequest};
    let m = tiny_method(
        serde_json::json!({"size": 48, "steps": 2, "crops": 3, "crop_size": 24, "batch": 2}),
    );
    assert_eq!(m.name(), "clipstyler");
    let src = image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
    });
    let a = m.edit(&EditRequest::new(&src, "amusement", 7)).unwrap();
    let b = m.edit(&EditRequest::new(&src, "amusement", 7)).unwrap();
    let c = m.edit(&EditRequest::new(&src, "amusement", 8)).unwrap();
    assert_eq!(a.dimensions(), (40, 30), "written at the source's size");
    let working = tiny_method(serde_json::json!({"size": 48, "steps": 2, "crops": 3,
        "crop_size": 24, "batch": 2, "output_size": "working"}));
    let w = working
        .edit(&EditRequest::new(&src, "amusement", 7))
        .unwrap();
    assert_eq!(w.dimensions(), (48, 48), "the script's size");
    assert_eq!(
        a,
        emobench_core::imgproc::resize::resize_pil(
            &w,
            40,
            30,
            emobench_core::imgproc::resize::ResizeFilter::Bilinear
        ),
        "the source-size output is the working-size result resized"
    );
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, c, "another seed changes the StyleNet and the crops");
    assert_eq!(m.parameters()["steps"], 2);
    let flat = image::RgbImage::from_pixel(16, 16, image::Rgb([10, 10, 10]));
    assert!(
        m.edit(&EditRequest::new(&flat, "fear", 1)).is_ok(),
        "a constant image is fine"
    );
}

#[test]
fn options_are_checked() {
    use baselines::clipstyler::{ClipStyler, ClipstylerOptions};
    let d = ClipstylerOptions::from_json(&serde_json::Value::Null).unwrap();
    assert_eq!((d.size, d.steps, d.crops, d.crop_size), (512, 200, 64, 128));
    assert_eq!(
        (
            d.lambda_patch,
            d.lambda_dir,
            d.lambda_tv,
            d.lambda_c,
            d.thresh
        ),
        (9000.0, 500.0, 2e-3, 150.0, 0.7)
    );
    assert_eq!(d.source, "a Photo");
    assert!(ClipstylerOptions::from_json(&serde_json::json!({"unknown": 1})).is_err());
    assert!(ClipstylerOptions::from_json(&serde_json::json!({"size": 100})).is_err());
    assert!(ClipstylerOptions::from_json(&serde_json::json!({"prompt": "happy"})).is_err());
    let e = ClipStyler::new(d.clone())
        .err()
        .expect("no weights")
        .to_string();
    assert!(e.contains("clip"), "{e}");
    // A checkpoint without a tensor names the tensor and the file in one line.
    let opts = ClipstylerOptions {
        clip: dir().join("clip_tiny.safetensors").display().to_string(),
        vgg: dir().join("vgg_tiny.safetensors").display().to_string(),
        ..d
    };
    let e = ClipStyler::new(opts)
        .err()
        .expect("tiny is not ViT-B/32")
        .to_string();
    assert!(
        e.contains("clip_tiny.safetensors") && !e.contains('\n'),
        "{e}"
    );
    println!("{e}");
}

#[test]
fn fast_conv_backward_equals_candles() {
    // stylenet::Conv's custom backward against candle's own conv2d backward.
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut rand_t = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    for (cin, cout, k, stride, pad, size) in [
        (3, 5, 3, 1, 1, 11),
        (4, 6, 4, 2, 1, 12),
        (4, 6, 4, 2, 1, 13),
        (5, 2, 1, 1, 0, 7),
    ] {
        let x = Var::from_tensor(&rand_t(&[2, cin, size, size])).unwrap();
        let w = Var::from_tensor(&rand_t(&[cout, cin, k, k])).unwrap();
        let b = Var::from_tensor(&rand_t(&[cout])).unwrap();
        let fast = stylenet::Conv::new(w.as_tensor().clone(), b.as_tensor().clone(), pad, stride);
        let y1 = fast.forward(x.as_tensor()).unwrap();
        let y2 = x
            .as_tensor()
            .conv2d(w.as_tensor(), pad, stride, 1, 1)
            .unwrap()
            .broadcast_add(&b.as_tensor().reshape((1, cout, 1, 1)).unwrap())
            .unwrap();
        check("fast conv forward", &y1, &y2, 1e-6);
        let r = rand_t(y1.dims());
        let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (what, v) in [("input", &x), ("kernel", &w), ("bias", &b)] {
            let a = g1.get(v.as_tensor()).unwrap();
            let c = g2.get(v.as_tensor()).unwrap();
            check(
                &format!("fast conv {what} grad k{k} s{stride} n{size}"),
                a,
                c,
                1e-5,
            );
        }
    }
}
