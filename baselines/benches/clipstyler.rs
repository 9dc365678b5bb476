//! One CLIPstyler iteration at 512x512 (64 crops through CLIP ViT-B/32, VGG19 content loss,
//! StyleNet backward, Adam step) with random weights: compare with
//! `bench/bench_iteration.py`. `ITERS` (default 2) iterations are timed one by one.

use std::time::Instant;

use baselines::clipstyler::{LossConfig, Styler};
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use models::augment::PatchParams;
use models::clip_vision::{ClipVision, Config};
use models::optim::adam::StepLr;
use models::stylenet::{self, StyleNet};
use models::vgg19::{feature_tensor_shapes, Vgg19Config, Vgg19Features, CLIPSTYLER_CONTENT_TAPS};
use rand::SeedableRng;

/// Hands out small random tensors (plain tensors, not variables) for any name.
struct Random;

impl SimpleBackend for Random {
    fn get(
        &self,
        s: Shape,
        _: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        (Tensor::randn(0f32, 0.02, s, dev)?).to_dtype(dtype)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("{name}: shape unknown")
    }
    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, 100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields 14 and 15 (utime, stime); the state letter (field 3) does not parse.
    if f.len() > 11 {
        (f[10] + f[11]) / 100.0
    } else {
        f64::NAN
    }
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let vb = VarBuilder::from_backend(Box::new(Random), DType::F32, dev.clone());
    let vision = ClipVision::new(vb, &Config::vit_base_patch32())?;
    let vgg_config = Vgg19Config::torchvision();
    let mut tensors = std::collections::HashMap::new();
    for (name, shape) in feature_tensor_shapes(&vgg_config) {
        tensors.insert(name, Tensor::randn(0f32, 0.02, shape, &dev)?);
    }
    let vgg_vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let vgg = Vgg19Features::new(vgg_vb, &vgg_config, &CLIPSTYLER_CONTENT_TAPS)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let content = Tensor::rand(0f32, 1.0, (1, 3, 512, 512), &dev)?;
    let t = Tensor::randn(0f32, 1.0, (1, 512), &dev)?;
    let s = Tensor::randn(0f32, 1.0, (1, 512), &dev)?;
    let batch = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(8);
    let config = LossConfig {
        batch,
        ..LossConfig::default()
    };
    let styler = Styler::new(&vision, &vgg, content, &t, &s, config)?;
    let map = stylenet::init_var_map(16, 0, &dev)?;
    let net = StyleNet::from_var_map(&map, 16, &dev)?;
    let vars = stylenet::ordered_vars(&map, 16)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(2);
    let sched = StepLr {
        base_lr: 5e-4,
        step_size: 100,
        gamma: 0.5,
    };
    let mut last = Instant::now();
    let mut cpu = cpu_seconds();
    styler.run(&net, vars, iters, sched, |e| {
        if e > 0 {
            println!(
                "iteration {}: wall {:.2} s, cpu {:.2} s (batch {batch})",
                e - 1,
                last.elapsed().as_secs_f64(),
                cpu_seconds() - cpu
            );
        }
        last = Instant::now();
        cpu = cpu_seconds();
        (0..64)
            .map(|_| PatchParams::draw(&mut rng, 512, 512, 128, 0.5))
            .collect()
    })?;
    println!(
        "iteration {}: wall {:.2} s, cpu {:.2} s (batch {batch}, incl. the final forward)",
        iters - 1,
        last.elapsed().as_secs_f64(),
        cpu_seconds() - cpu
    );
    Ok(())
}
