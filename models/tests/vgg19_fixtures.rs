//! VGG19 trunk pieces against PyTorch (fixtures by `tests/fixtures/nst/make_nst_fixtures.py`):
//! activations of every module 0..10 of a tiny random network with VGG19's layout, the 2x2
//! max pool's values and autograd gradient (ties, odd sizes), and the load errors.

mod common;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarBuilder;
use common::{rel_err, setup, tensors, tiny_config, tiny_vb, tiny_vb_in};
use models::vgg19::{
    max_pool2x2, relu_torch, Tap, TapPoint, Vgg19Config, Vgg19Error, Vgg19Features,
    CLIPSTYLER_CONTENT_TAPS, NST_STYLE_TAPS,
};

/// Single evaluations: max |d| / max |ref| below this.
const TOL: f32 = 1e-4;

/// [`TOL`] in f32; in f16 and bf16 (`EMOBENCH_DTYPE`), the measured errors with a margin.
const HALF: setup::Tol = setup::Tol {
    f32: TOL,
    f16: 5e-3,
    bf16: 2e-2,
};

/// The modules whose outputs the fixtures hold: every conv and ReLU up to `features.10`.
const MODULES: [usize; 9] = [0, 1, 2, 3, 5, 6, 7, 8, 10];

fn module_taps(cfg: &Vgg19Config) -> Vec<Tap> {
    MODULES
        .iter()
        .map(|&m| Tap::module_output(cfg, m).expect("tap"))
        .collect()
}

#[test]
fn activations_match_torch_at_every_conv_and_relu() {
    let t = tensors();
    let cfg = tiny_config();
    let taps = module_taps(&cfg);
    for dtype in setup::dtypes() {
        let vgg = Vgg19Features::new(tiny_vb_in(dtype), &cfg, &taps).expect("builds");
        let x = t["content"].to_dtype(dtype).unwrap();
        let acts = vgg.forward(&x).expect("forward");
        for (m, a) in MODULES.iter().zip(&acts) {
            let err = rel_err(a, &t[&format!("module_{m}")]);
            eprintln!("module {m} {dtype:?}: rel err {err:.2e}");
            assert!(err < HALF.at(dtype), "module {m} {dtype:?}: {err}");
        }
    }
}

#[test]
fn taps_map_module_indices_as_torchvision_numbers_them() {
    let cfg = Vgg19Config::torchvision();
    assert_eq!(cfg.module_count(), 37);
    assert_eq!(
        cfg.conv_indices(),
        vec![0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    );
    assert_eq!(Tap::module_output(&cfg, 22).unwrap(), Tap::after_relu(21));
    assert_eq!(Tap::module_output(&cfg, 31).unwrap(), Tap::after_relu(30));
    assert_eq!(
        CLIPSTYLER_CONTENT_TAPS.to_vec(),
        vec![
            Tap::module_output(&cfg, 22).unwrap(),
            Tap::module_output(&cfg, 31).unwrap()
        ]
    );
    assert_eq!(NST_STYLE_TAPS[4], Tap::before_relu(10));
    assert_eq!(NST_STYLE_TAPS[4].point, TapPoint::BeforeRelu);
    assert!(matches!(
        Tap::module_output(&cfg, 4),
        Err(Vgg19Error::PoolTap { module: 4 })
    ));
    assert!(matches!(
        Tap::module_output(&cfg, 37),
        Err(Vgg19Error::TapOutOfRange { .. })
    ));
}

#[test]
fn max_pool_values_and_gradients_match_torch_with_ties_and_odd_sizes() {
    let t = tensors();
    let x = Var::from_tensor(&t["pool_x"]).unwrap();
    let y = max_pool2x2(x.as_tensor()).unwrap();
    assert_eq!(rel_err(&y, &t["pool_y"]), 0.0, "values are exact");
    let grads = (y * &t["pool_up"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = grads.get(x.as_tensor()).expect("gradient");
    // Each output's gradient lands on one element, as in PyTorch: exact equality.
    assert_eq!(rel_err(g, &t["pool_grad"]), 0.0);
}

#[test]
fn the_composite_max_pool_matches_torch_too() {
    // The device-independent version (used off the CPU), run here on the CPU.
    let t = tensors();
    let x = Var::from_tensor(&t["pool_x"]).unwrap();
    let y = models::vgg19::max_pool2x2_composite(x.as_tensor()).unwrap();
    assert_eq!(rel_err(&y, &t["pool_y"]), 0.0);
    let grads = (y * &t["pool_up"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        rel_err(grads.get(x.as_tensor()).unwrap(), &t["pool_grad"]),
        0.0
    );
}

#[test]
fn max_pool_rejects_inputs_below_the_window() {
    let x = Tensor::zeros((1, 1, 1, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(max_pool2x2(&x).is_err());
    assert!(models::vgg19::max_pool2x2_composite(&x).is_err());
}

#[test]
fn relu_gradient_is_zero_at_zero_as_in_torch() {
    let x = Var::new(&[-1.0f32, 0.0, 2.0], &Device::Cpu).unwrap();
    let y = relu_torch(x.as_tensor()).unwrap();
    assert_eq!(y.to_vec1::<f32>().unwrap(), vec![0.0, 0.0, 2.0]);
    let g = y.sum_all().unwrap().backward().unwrap();
    let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(g, vec![0.0, 0.0, 1.0]);
}

#[test]
fn batches_give_the_single_image_activations() {
    let t = tensors();
    let vgg = Vgg19Features::new(tiny_vb(), &tiny_config(), &NST_STYLE_TAPS).unwrap();
    let both = vgg.forward(&t["content"]).unwrap();
    for i in 0..2 {
        let one = vgg.forward(&t["content"].narrow(0, i, 1).unwrap()).unwrap();
        for (a, b) in one.iter().zip(&both) {
            let err = rel_err(a, &b.narrow(0, i, 1).unwrap());
            assert!(err < 1e-6, "{err}");
        }
    }
}

#[test]
fn a_missing_tensor_is_one_line_naming_it() {
    // The tiny checkpoint stops at features.10: asking for features.12 fails by name.
    let err = Vgg19Features::new(tiny_vb(), &tiny_config(), &[Tap::before_relu(12)]).unwrap_err();
    let text = err.to_string();
    assert_eq!(text, "VGG19: tensor features.12.weight is missing");
    assert!(!text.contains('\n'));
    // A wrong width is a shape error naming the tensor.
    let wide = Vgg19Config::with_widths([5, 6, 8, 8, 8]);
    let err = Vgg19Features::new(tiny_vb(), &wide, &[Tap::before_relu(0)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "VGG19: tensor features.0.weight has shape [4, 3, 3, 3], expected [5, 3, 3, 3]"
    );
    // Tapping a non-convolution is refused.
    assert!(matches!(
        Vgg19Features::new(tiny_vb(), &tiny_config(), &[Tap::before_relu(1)]),
        Err(Vgg19Error::NotAConv { conv: 1, .. })
    ));
    assert!(matches!(
        Vgg19Features::new(
            VarBuilder::zeros(candle_core::DType::F32, &Device::Cpu),
            &tiny_config(),
            &[]
        ),
        Err(Vgg19Error::NoTaps)
    ));
}

#[test]
fn a_pytorch_pth_checkpoint_loads_like_the_safetensors_one() {
    let t = tensors();
    let path = common::dir().join("tiny_vgg.pth");
    let vb = models::weights::var_builder(&path, candle_core::DType::F32, &Device::Cpu)
        .expect("reads the .pth");
    let vgg = Vgg19Features::new(vb, &tiny_config(), &NST_STYLE_TAPS).unwrap();
    let acts = vgg.forward(&t["content"]).unwrap();
    let same = Vgg19Features::new(tiny_vb(), &tiny_config(), &NST_STYLE_TAPS).unwrap();
    let want = same.forward(&t["content"]).unwrap();
    for ((tap, a), b) in NST_STYLE_TAPS.iter().zip(&acts).zip(&want) {
        assert_eq!(rel_err(a, b), 0.0, "the same tensors");
        assert!(rel_err(a, &t[&format!("module_{}", tap.conv)]) < TOL);
    }
}

/// The CPU trunk (the style transfer's closure path) against PyTorch's activations at every
/// conv and ReLU, and its input gradient, from taps before and after ReLUs, against candle's
/// autograd through the same layers (whose pieces the tests above check against PyTorch).
#[test]
fn the_cpu_trunk_matches_torch_and_autograd() {
    let t = tensors();
    let cfg = tiny_config();
    let taps = module_taps(&cfg);
    let vgg = Vgg19Features::new(tiny_vb(), &cfg, &taps).expect("builds");
    let Some((trunk, trunk_taps)) = vgg.cpu_trunk().expect("trunk") else {
        eprintln!(
            "candle-op path ({}): no CPU trunk",
            models::kernels::CANDLE_OPS_ENV
        );
        assert!(!models::kernels::fused_enabled());
        return;
    };
    let x = &t["content"];
    let (n, _, h, w) = x.dims4().unwrap();
    let run = trunk.forward(&x.flatten_all().unwrap().to_vec1().unwrap(), (n, h, w));
    for (m, tap) in MODULES.iter().zip(&trunk_taps) {
        let (got, _) = run.tap(*tap).expect("tap");
        let want = t[&format!("module_{m}")].flatten_all().unwrap();
        let err = common::rel_err_slices(got, &want.to_vec1::<f32>().unwrap());
        eprintln!("trunk module {m}: rel err {err:.2e}");
        assert!(err < TOL, "module {m}: {err}");
    }
    let var = Var::from_tensor(x).unwrap();
    let acts = vgg.forward(var.as_tensor()).unwrap();
    let weights: Vec<Tensor> = acts
        .iter()
        .map(|a| Tensor::randn(0f32, 1.0, a.shape(), &Device::Cpu).unwrap())
        .collect();
    let mut loss = Tensor::new(0f32, &Device::Cpu).unwrap();
    for (a, r) in acts.iter().zip(&weights) {
        loss = (loss + (a * r).unwrap().sum_all().unwrap()).unwrap();
    }
    let want = loss
        .backward()
        .unwrap()
        .get(var.as_tensor())
        .unwrap()
        .clone();
    let grads: Vec<Vec<f32>> = weights
        .iter()
        .map(|r| r.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let tap_grads: Vec<_> = trunk_taps
        .iter()
        .zip(&grads)
        .map(|(t, g)| (*t, &g[..]))
        .collect();
    let got = trunk.backward(&run, &tap_grads);
    let err = common::rel_err_slices(&got, &want.flatten_all().unwrap().to_vec1().unwrap());
    eprintln!("trunk input gradient: rel err {err:.2e}");
    assert!(err < 1e-5, "{err}");
}
