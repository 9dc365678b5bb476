//! The paper's scale, end to end: `emobench score` over 504 sources x 4 cross-valence targets x
//! 6 methods = 12,096 conditions, with the stand-in predictor (a full-size ResNet-18), timed
//! with `/usr/bin/time -v` (wall, CPU, peak RSS). Then, on a sample, what each stage costs, so a
//! miss can be traced.
//!
//! ```sh
//! cargo bench --bench scale --no-run                              # build outside the lock
//! cargo bench --bench scale -- --generate                         # write the images once
//! flock /tmp/bench.lock cargo bench --bench scale -- --out bench/scale-results.json
//! ```
//!
//! The images are synthetic and seeded (ChaCha8, seed 0), written once into
//! `target/scale-bench/data` and reused while their parameters are unchanged. Sizes follow what
//! each method writes: sources are JPEG (quality 90) at web-photo sizes drawn from 500x375,
//! 375x500, 640x427, 427x640 and 512x512; outputs are PNG at the size each method saves:
//! EmoEditor 224x224, InstructPix2Pix and LMS the source size rounded down to a multiple of 8,
//! colour transfer the source size, NST 512 on the shorter side, CLIPstyler 512x512.

mod common;

use common::median_ms;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::Device;
use emobench_core::emotion::Emotion;
use emobench_core::imgproc::resize::ResizeFilter;
use emobench_core::predictor::Predictor;
use emobench_core::score::load_for_metrics;
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Sources per emotion: 8 x 63 = 504, the paper's test set.
const PER_EMOTION: usize = 63;
const METHODS: [&str; 6] = ["ct", "nst", "clipstyler", "ip2p", "lms", "emoeditor"];
const SOURCE_SIZES: [(u32, u32); 5] = [(500, 375), (375, 500), (640, 427), (427, 640), (512, 512)];
/// Changes whenever what the generator writes changes, so old data is not reused.
const DATA_VERSION: &str = "scale-data v1: seed 0, 504 sources, 6 methods";

/// A photo-like synthetic image: a two-colour gradient, a few flat and shaded shapes with hard
/// edges (Canny has something to find), and mild noise (PNG compresses it as it would a photo's
/// grain, not as flat colour).
fn synthetic(rng: &mut ChaCha8Rng, w: u32, h: u32) -> RgbImage {
    let c0: [f32; 3] = std::array::from_fn(|_| rng.gen_range(0.0..255.0));
    let c1: [f32; 3] = std::array::from_fn(|_| rng.gen_range(0.0..255.0));
    let shapes: Vec<(f32, f32, f32, [f32; 3], bool)> = (0..rng.gen_range(3..9))
        .map(|_| {
            (
                rng.gen_range(0.0..w as f32),
                rng.gen_range(0.0..h as f32),
                rng.gen_range(0.05..0.3) * w.min(h) as f32,
                std::array::from_fn(|_| rng.gen_range(0.0..255.0)),
                rng.gen_bool(0.5),
            )
        })
        .collect();
    let noise_seed: u64 = rng.gen();
    let mut img = RgbImage::new(w, h);
    let mut nrng = ChaCha8Rng::seed_from_u64(noise_seed);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let t = (x + y) as f32 / (w + h) as f32;
        let mut c: [f32; 3] = std::array::from_fn(|i| c0[i] * (1.0 - t) + c1[i] * t);
        for &(cx, cy, r, col, round) in &shapes {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let inside = if round {
                dx * dx + dy * dy < r * r
            } else {
                dx.abs() < r && dy.abs() < 0.6 * r
            };
            if inside {
                let shade = 1.0 - 0.3 * (dy / r).clamp(-1.0, 1.0);
                c = std::array::from_fn(|i| col[i] * shade);
            }
        }
        let n: f32 = nrng.gen_range(-4.0..4.0);
        *px = Rgb(std::array::from_fn(|i| (c[i] + n).clamp(0.0, 255.0) as u8));
    }
    img
}

/// What `method` makes of `src`: its output size, and a method-specific change (a colour
/// shift, a contrast change, a cast) so the metrics see real differences.
fn edited(src: &RgbImage, method: usize, target: Emotion, seed: u64) -> RgbImage {
    let (w, h) = src.dimensions();
    let (ow, oh) = match METHODS[method] {
        "emoeditor" => (224, 224),
        "ip2p" | "lms" => (w / 8 * 8, h / 8 * 8),
        "nst" => {
            let s = 512.0 / w.min(h) as f32;
            ((w as f32 * s).round() as u32, (h as f32 * s).round() as u32)
        }
        "clipstyler" => (512, 512),
        _ => (w, h),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shift: [f32; 3] = std::array::from_fn(|_| rng.gen_range(-40.0..40.0));
    let gain = rng.gen_range(0.7..1.3) + 0.02 * target.emoset_index() as f32;
    RgbImage::from_fn(ow, oh, |x, y| {
        // Nearest-neighbour sampling: the score resizes every image to 224 anyway.
        let sx = (x as u64 * u64::from(w) / u64::from(ow)) as u32;
        let sy = (y as u64 * u64::from(h) / u64::from(oh)) as u32;
        let p = src.get_pixel(sx, sy).0;
        Rgb(std::array::from_fn(|i| {
            ((f32::from(p[i]) - 128.0) * gain + 128.0 + shift[i]).clamp(0.0, 255.0) as u8
        }))
    })
}

fn generate(data: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let stamp = data.join("VERSION");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == DATA_VERSION) {
        println!("data: {} (already written)", data.display());
        return Ok(());
    }
    let t = Instant::now();
    if data.exists() {
        std::fs::remove_dir_all(data)?;
    }
    std::fs::create_dir_all(data.join("sources"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // Seeds drawn up front, in order, so the data does not depend on thread scheduling.
    let jobs: Vec<(String, Emotion, (u32, u32), u64)> = (0..8 * PER_EMOTION)
        .map(|i| {
            let e = Emotion::ALL[i / PER_EMOTION];
            let size = SOURCE_SIZES[rng.gen_range(0..SOURCE_SIZES.len())];
            (
                format!("{}_{:03}", e.name(), i % PER_EMOTION),
                e,
                size,
                rng.gen(),
            )
        })
        .collect();
    let mut csv = String::from("id,path,emotion\n");
    for (id, e, _, _) in &jobs {
        csv.push_str(&format!("{id},sources/{id}.jpg,{}\n", e.name()));
    }
    std::fs::write(data.join("sources.csv"), csv)?;
    jobs.par_iter()
        .try_for_each(|(id, e, (w, h), seed)| -> Result<(), String> {
            let mut rng = ChaCha8Rng::seed_from_u64(*seed);
            let src = synthetic(&mut rng, *w, *h);
            let f = std::fs::File::create(data.join(format!("sources/{id}.jpg")))
                .map_err(|x| x.to_string())?;
            let mut enc =
                image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(f), 90);
            enc.encode_image(&src).map_err(|x| x.to_string())?;
            // Re-read, so outputs derive from the decoded source as a method's would.
            let src = image::open(data.join(format!("sources/{id}.jpg")))
                .map_err(|x| x.to_string())?
                .to_rgb8();
            for (m, name) in METHODS.iter().enumerate() {
                let dir = data.join("runs").join(name).join(id);
                std::fs::create_dir_all(&dir).map_err(|x| x.to_string())?;
                for t in e.cross_targets() {
                    let out = edited(&src, m, t, rng.gen());
                    let path =
                        emobench_core::runs::output_path(&data.join("runs").join(name), id, t);
                    out.save(&path)
                        .map_err(|x| format!("{}: {x}", path.display()))?;
                }
            }
            Ok(())
        })?;
    std::fs::write(&stamp, DATA_VERSION)?;
    println!(
        "data: wrote {} sources and {} outputs into {} in {:.0} s",
        jobs.len(),
        jobs.len() * 4 * METHODS.len(),
        data.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `/usr/bin/time -v` fields: wall seconds, user + system CPU seconds, peak RSS in MiB.
fn time_v(stderr: &str) -> (f64, f64, f64) {
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let num = |name: &str| field(name).parse::<f64>().unwrap_or(f64::NAN);
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
        .split(':')
        .fold(0.0, |acc, part| {
            acc * 60.0 + part.parse::<f64>().unwrap_or(f64::NAN)
        });
    let cpu = num("User time (seconds):") + num("System time (seconds):");
    let rss = num("Maximum resident set size (kbytes):") / 1024.0;
    (wall, cpu, rss)
}

/// Per-stage costs on a sample of the data, each stage alone on the whole machine.
fn stage_profile(data: &Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let sources: Vec<PathBuf> = (0..8)
        .map(|i| {
            let e = Emotion::ALL[i];
            data.join(format!("sources/{}_{:03}.jpg", e.name(), i))
        })
        .collect();
    let outputs: Vec<Vec<PathBuf>> = METHODS
        .iter()
        .map(|m| {
            (0..8)
                .map(|i| {
                    let e = Emotion::ALL[i];
                    emobench_core::runs::output_path(
                        &data.join("runs").join(m),
                        &format!("{}_{:03}", e.name(), i),
                        e.cross_targets()[i % 4],
                    )
                })
                .collect()
        })
        .collect();
    let filter = ResizeFilter::Bicubic;
    let load8 = |paths: &[PathBuf]| -> Vec<image::RgbImage> {
        paths
            .iter()
            .filter_map(|p| load_for_metrics(p, filter).ok())
            .collect()
    };
    // Decode + resize to 224, one thread, per image.
    let mut load = serde_json::Map::new();
    load.insert(
        "source_jpeg".into(),
        (median_ms(|| drop(load8(&sources)), 3) / 8.0).into(),
    );
    for (m, paths) in METHODS.iter().zip(&outputs) {
        load.insert(
            (*m).into(),
            (median_ms(|| drop(load8(paths)), 3) / 8.0).into(),
        );
    }
    let p = Predictor::stand_in(0, &Device::Cpu)?;
    let imgs = load8(&outputs[5]);
    let refs: Vec<&image::RgbImage> = imgs.iter().collect();
    let predict8 = median_ms(|| drop(p.predict(&refs)), 3) / 8.0;
    let cam8 = median_ms(|| drop(p.predict_with_cam(&refs)), 3) / 8.0;
    let srcs = load8(&sources);
    let opts = emobench_core::score::ScoreConfig {
        sources: PathBuf::new(),
        runs: PathBuf::new(),
        methods: None,
        conditions: emobench_core::emotion::Conditions::Cross,
        resize: filter,
        metrics: Default::default(),
        batch: 8,
    };
    let m = &opts.metrics;
    let edges = median_ms(
        || {
            for g in &imgs {
                drop(emobench_core::metrics::edges(g, m.ess_input));
            }
        },
        5,
    ) / 8.0;
    let ssim = median_ms(
        || {
            for (s, g) in srcs.iter().zip(&imgs) {
                drop(emobench_core::metrics::ssim(s, g, &m.ssim));
            }
        },
        5,
    ) / 8.0;
    Ok(serde_json::json!({
        "note": "milliseconds per image; decode+resize and metrics on one thread, the predictor on all",
        "decode_resize_ms": load,
        "predict_batch8_ms_per_image": predict8,
        "predict_with_cam_batch8_ms_per_image": cam8,
        "canny_ms": edges,
        "ssim_ms": ssim,
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = root.join("target/scale-bench");
    let data = work.join("data");
    generate(&data)?;
    if args.iter().any(|a| a == "--generate") {
        return Ok(());
    }
    let out = arg("--out").map_or_else(|| work.join("results.json"), PathBuf::from);
    let report = work.join("report");
    let _ = std::fs::remove_dir_all(&report);
    let exe = env!("CARGO_BIN_EXE_emobench");
    let started = Instant::now();
    let run = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(exe)
        .args(["score", "--sources"])
        .arg(data.join("sources.csv"))
        .arg("--runs")
        .arg(data.join("runs"))
        .arg("--out")
        .arg(&report)
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        return Err(format!("emobench score failed:\n{stderr}").into());
    }
    let (wall, cpu, rss) = time_v(&stderr);
    let rows = std::fs::read_to_string(report.join("scores.csv"))?
        .lines()
        .count()
        .saturating_sub(1);
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rayon::current_num_threads);
    println!("emobench score at the paper's scale ({threads} threads)");
    println!("  conditions          {rows}");
    println!("  wall                {wall:.1} s ({secs:.1} s measured here)");
    println!("  CPU (user + sys)    {cpu:.1} s");
    println!("  conditions/s        {:.1}", rows as f64 / wall);
    println!("  peak RSS            {rss:.0} MiB");
    let profile = stage_profile(&data)?;
    println!("  stages (ms/image)   {profile}");
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let json = serde_json::json!({
        "bench": "benches/scale.rs: emobench score over the paper's scale, stand-in predictor",
        "emobench_version": env!("CARGO_PKG_VERSION"),
        "commit": commit,
        "command": format!("{exe} score --sources {} --runs {} --out {}",
            data.join("sources.csv").display(), data.join("runs").display(), report.display()),
        "data": DATA_VERSION,
        "threads": threads,
        "conditions": rows,
        "wall_s": wall,
        "cpu_s": cpu,
        "conditions_per_s": rows as f64 / wall,
        "peak_rss_mib": rss,
        "stages": profile,
        "loadavg_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    });
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")?;
    println!("-> {}", out.display());
    Ok(())
}
