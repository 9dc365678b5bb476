//! The trunk built with the real VGG19 configuration asks for exactly the `features` tensors, with
//! exactly the shapes, of torchvision's `vgg19()` (names and shapes recorded on the meta device by
//! `make_nst_fixtures.py` into `vgg19_shapes.json`). The builder hands out broadcast zeros, so
//! nothing is allocated and nothing is downloaded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use models::vgg19::{feature_tensor_shapes, Tap, Vgg19Config, Vgg19Features};

type Shapes = BTreeMap<String, Vec<usize>>;

struct Recorder {
    expected: Shapes,
    seen: Mutex<Shapes>,
}

impl Recorder {
    fn serve(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let Some(s) = self.expected.get(name) else {
            candle_core::bail!("cannot find tensor {name}")
        };
        self.seen
            .lock()
            .expect("lock")
            .insert(name.to_string(), s.clone());
        Tensor::zeros((), dtype, dev)?.broadcast_as(s.as_slice())
    }
}

struct ArcBackend(Arc<Recorder>);

impl SimpleBackend for ArcBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let t = self.0.serve(name, dtype, dev)?;
        if t.shape() != &s {
            candle_core::bail!("shape mismatch for {name}")
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.serve(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.expected.contains_key(name)
    }
}

fn real_shapes() -> Shapes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nst/vgg19_shapes.json"
    );
    let text = std::fs::read_to_string(path).expect("vgg19_shapes.json");
    serde_json::from_str(&text).expect("shapes")
}

#[test]
fn the_real_configuration_reads_every_features_tensor_with_its_shape() {
    let all = real_shapes();
    let features: Shapes = all
        .iter()
        .filter(|(k, _)| k.starts_with("features."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(features.len(), 32, "16 convolutions");
    let rec = Arc::new(Recorder {
        expected: all.clone(),
        seen: Mutex::new(BTreeMap::new()),
    });
    let vb = VarBuilder::from_backend(Box::new(ArcBackend(rec.clone())), DType::F32, Device::Cpu);
    let cfg = Vgg19Config::torchvision();
    Vgg19Features::new(vb, &cfg, &[Tap::after_relu(34)]).expect("builds with the real shapes");
    assert_eq!(*rec.seen.lock().unwrap(), features);
    // The configuration's own list agrees too.
    let listed: Shapes = feature_tensor_shapes(&cfg).into_iter().collect();
    assert_eq!(listed, features);
    // The classifier is torchvision's (not used here, but the checkpoint has it).
    assert_eq!(all["classifier.0.weight"], vec![4096, 25088]);
}

#[test]
fn the_nst_trunk_reads_only_up_to_conv_5() {
    let rec = Arc::new(Recorder {
        expected: real_shapes(),
        seen: Mutex::new(BTreeMap::new()),
    });
    let vb = VarBuilder::from_backend(Box::new(ArcBackend(rec.clone())), DType::F32, Device::Cpu);
    Vgg19Features::new(
        vb,
        &Vgg19Config::torchvision(),
        &models::vgg19::NST_STYLE_TAPS,
    )
    .unwrap();
    let seen: Vec<String> = rec.seen.lock().unwrap().keys().cloned().collect();
    let want: Vec<String> = [0, 2, 5, 7, 10]
        .iter()
        .flat_map(|i| [format!("features.{i}.bias"), format!("features.{i}.weight")])
        .collect();
    let mut want = want;
    want.sort();
    assert_eq!(seen, want);
}
