//! The emotion predictor (full-size ResNet-18 with seeded random weights) on any device and
//! dtype: ms/image at batch 1 and 8, logits copied back to the host. The PyTorch side is
//! `bench/gpu/predictor_bench.py`; `bench/gpu/run.sh` runs both on a GPU.
//!
//! `cargo bench --bench predictor_device -- [--device cpu|cuda:N] [--dtype f32|f16|bf16]
//! [--repeats 20] [--json FILE]`

use std::time::Instant;

use candle_core::Tensor;
use emobench_core::predictor::Predictor;

fn text<'a>(args: &'a [String], name: &str, default: &'a str) -> &'a str {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, String::as_str)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let device = text(&args, "--device", "cpu");
    let dtype = text(&args, "--dtype", "f32");
    let repeats: usize = text(&args, "--repeats", "20").parse()?;
    let dev = models::device::parse_device(device)?;
    let p = Predictor::stand_in(0, &dev)?.with_dtype(models::device::parse_dtype(dtype)?)?;
    let mut ms_per_image = serde_json::Map::new();
    for batch in [1usize, 8] {
        let x = Tensor::rand(0f32, 1f32, (batch, 3, 224, 224), &dev)?;
        p.logits(&x)?; // warm-up: kernels compiled, buffers allocated
        let mut times: Vec<f64> = (0..repeats)
            .map(|_| {
                let t = Instant::now();
                p.logits(&x).map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2] / batch as f64;
        eprintln!("ResNet-18 {device} {dtype} batch {batch}: {median:.3} ms/image");
        ms_per_image.insert(format!("batch{batch}"), median.into());
    }
    let json = serde_json::json!({
        "implementation": "emobench (candle 0.11.1)",
        "device": device,
        "dtype": dtype,
        "repeats": repeats,
        "ms_per_image": ms_per_image,
    });
    if let Some(path) = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
    {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}
