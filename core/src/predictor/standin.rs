//! The stand-in predictor: ResNet-18 with weights drawn from a seeded portable generator.
//!
//! It lets the whole pipeline run on a fresh machine with no download. Its outputs are NOT emotion
//! predictions; every report made with it says so in its first line. candle's CPU generator cannot be
//! seeded, so weights come from ChaCha8, which gives the same numbers on every platform.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use models::resnet::ResNetConfig;
use models::weights::checkpoint::StateDict;

/// Draws a standard normal value with the Box-Muller transform (keeps `rand_distr` out of the build).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A state dict for `config` initialised as torchvision does (Kaiming-normal fan-out convolutions,
/// unit batch norms, uniform `fc`), from `seed`.
pub fn stand_in_state_dict(config: &ResNetConfig, seed: u64) -> candle_core::Result<StateDict> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = HashMap::new();
    for (key, shape) in config.tensor_shapes() {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if key.ends_with("running_var")
            || (key.contains("bn") || key.contains("downsample.1")) && key.ends_with(".weight")
        {
            vec![1.0; n]
        } else if key.ends_with("running_mean") || key.ends_with(".bias") && !key.starts_with("fc")
        {
            vec![0.0; n]
        } else if key.starts_with("fc") {
            let bound = 1.0 / (config.widths[3] as f32).sqrt();
            (0..n).map(|_| rng.gen_range(-bound..bound)).collect()
        } else {
            let fan_out = (shape[0] * shape[2] * shape[3]) as f32;
            let std = (2.0 / fan_out).sqrt();
            (0..n).map(|_| normal(&mut rng) * std).collect()
        };
        tensors.insert(key, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    Ok(StateDict {
        path: PathBuf::from(format!("stand-in(seed={seed})")),
        sha256: String::new(),
        tensors,
    })
}
