//! The candle models built with the real InstructPix2Pix / SD 1.5 configurations ask for exactly
//! the tensors, with exactly the shapes, of the real checkpoints. The expected names and shapes
//! come from diffusers and transformers (`tests/fixtures/shapes/make_shapes.py`, meta device);
//! the models are built on a recording variable builder that hands out broadcast zeros, so no
//! memory is allocated and nothing is downloaded.

use std::collections::BTreeMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use models::clip_text::{ClipTextConfig, ClipTextEncoder};
use models::unet::{UNet, UNetConfig};
use models::vae::{AutoencoderKl, VaeConfig};

type Shapes = BTreeMap<String, Vec<usize>>;

struct Recorder {
    expected: Shapes,
    seen: Mutex<Shapes>,
}

impl Recorder {
    fn zeros(shape: &[usize], dtype: DType, dev: &Device) -> Result<Tensor> {
        Tensor::zeros((), dtype, dev)?.broadcast_as(shape)
    }
}

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        self.seen
            .lock()
            .expect("lock")
            .insert(name.to_string(), s.dims().to_vec());
        Self::zeros(s.dims(), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        match self.expected.get(name) {
            Some(s) => Self::zeros(s, dtype, dev),
            None => candle_core::bail!("cannot find tensor {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.expected.contains_key(name)
    }
}

fn expected(part: &str) -> Shapes {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/shapes/real_shapes.json"
    ))
    .expect("real_shapes.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    serde_json::from_value(v[part].clone()).expect("shapes")
}

fn check(part: &str, build: impl FnOnce(VarBuilder) -> Result<()>) {
    let shared = std::sync::Arc::new(Recorder {
        expected: expected(part),
        seen: Mutex::new(BTreeMap::new()),
    });
    let expected = shared.expected.clone();
    // The builder owns one handle; this one reads back what was asked for.
    let vb = VarBuilder::from_backend(
        Box::new(ArcBackend(shared.clone())),
        DType::F32,
        Device::Cpu,
    );
    build(vb).expect("builds with the real shapes");
    let seen = shared.seen.lock().expect("lock").clone();
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    let extra: Vec<_> = seen.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(missing.is_empty(), "{part}: never read: {missing:?}");
    assert!(extra.is_empty(), "{part}: not in the checkpoint: {extra:?}");
    for (k, s) in &seen {
        assert_eq!(s, &expected[k], "{part}: shape of {k}");
    }
}

struct ArcBackend(std::sync::Arc<Recorder>);

impl SimpleBackend for ArcBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        self.0.get(s, name, h, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.get_unchecked(name, dtype, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

#[test]
fn instruct_pix2pix_unet_has_the_checkpoint_shapes() {
    check("unet", |vb| {
        UNet::new(vb, &UNetConfig::instruct_pix2pix()).map(|_| ())
    });
}

#[test]
fn sd_vae_has_the_checkpoint_shapes() {
    check("vae", |vb| {
        AutoencoderKl::new(vb, &VaeConfig::stable_diffusion_v1()).map(|_| ())
    });
}

#[test]
fn clip_vit_l_14_text_encoder_has_the_checkpoint_shapes() {
    check("text_encoder", |vb| {
        ClipTextEncoder::new(vb, &ClipTextConfig::vit_l_14()).map(|_| ())
    });
}
