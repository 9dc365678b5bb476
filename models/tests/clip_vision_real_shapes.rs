//! CLIP ViT-B/32 (both towers) and StyleNet (ngf 16) built with the real configurations ask for
//! exactly the tensors, with exactly the shapes, of the real checkpoints (names and shapes from
//! transformers' `CLIPModel(CLIPConfig())` and CLIPstyler's `UNet()` on the meta device, in
//! `tests/fixtures/clipstyler/real_shapes.json`). The models are built on a recording variable
//! builder that hands out broadcast zeros, so nothing is downloaded or allocated.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use models::clip_vision::{ClipModel, Config};
use models::stylenet::{parameter_layout, StyleNet};

type Shapes = BTreeMap<String, Vec<usize>>;

struct Recorder {
    expected: Shapes,
    seen: Mutex<Shapes>,
}

struct Handle(Arc<Recorder>);

fn zeros(shape: &[usize], dtype: DType, dev: &Device) -> Result<Tensor> {
    Tensor::zeros((), dtype, dev)?.broadcast_as(shape)
}

impl SimpleBackend for Handle {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        self.0
            .seen
            .lock()
            .expect("lock")
            .insert(name.to_string(), s.dims().to_vec());
        zeros(s.dims(), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        match self.0.expected.get(name) {
            Some(s) => zeros(s, dtype, dev),
            None => candle_core::bail!("cannot find tensor {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.expected.contains_key(name)
    }
}

fn expected(part: &str) -> Shapes {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../baselines/tests/fixtures/clipstyler/real_shapes.json"
    ))
    .expect("real_shapes.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    serde_json::from_value(v[part].clone()).expect("shapes")
}

/// Builds with `build`; every expected tensor except `unused` must be read with its shape.
fn check(part: &str, unused: &[&str], build: impl FnOnce(VarBuilder) -> Result<()>) {
    let rec = Arc::new(Recorder {
        expected: expected(part),
        seen: Mutex::new(BTreeMap::new()),
    });
    let vb = VarBuilder::from_backend(Box::new(Handle(rec.clone())), DType::F32, Device::Cpu);
    build(vb).expect("builds with the real shapes");
    let seen = rec.seen.lock().expect("lock").clone();
    let missing: Vec<_> = rec
        .expected
        .keys()
        .filter(|k| !seen.contains_key(*k) && !unused.contains(&k.as_str()))
        .collect();
    let extra: Vec<_> = seen
        .keys()
        .filter(|k| !rec.expected.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "{part}: never read: {missing:?}");
    assert!(extra.is_empty(), "{part}: not in the checkpoint: {extra:?}");
    for (k, s) in &seen {
        assert_eq!(s, &rec.expected[k], "{part}: shape of {k}");
    }
}

#[test]
fn clip_vit_b32_both_towers_have_the_checkpoint_shapes() {
    // CLIPstyler never uses the logit scale.
    check("clip_vit_b32", &["logit_scale"], |vb| {
        ClipModel::new(vb, &Config::vit_base_patch32()).map(|_| ())
    });
}

#[test]
fn stylenet_ngf16_has_the_pytorch_state_dict() {
    check("stylenet_ngf16", &[], |vb| {
        StyleNet::new(vb, 16).map(|_| ())
    });
    let layout: Shapes = parameter_layout(16).into_iter().collect();
    assert_eq!(layout, expected("stylenet_ngf16"));
}
