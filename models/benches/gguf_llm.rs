//! Prompt-processing and generation speed of a GGUF language model (SmolLM2-135M-Instruct Q4_1
//! by default), dense f32 or candle's quantised kernels; the llama.cpp and transformers sides are
//! `bench/python/lms_bench.py`, and `bench/lms/run.sh` runs all of them back to back.
//!
//! `cargo bench -p emobench-models --bench gguf_llm -- [--model F.gguf] [--dequantize
//! auto|true|false] [--tokens 32] [--repeats 5] [--json out.json]`
//!
//! The prompt is the paper's question for a demo caption, rendered with the model's chat
//! template. Each repeat runs the whole prompt from an empty cache (prompt processing), then
//! `--tokens` single-token forward passes on the greedy token (generation; stop tokens do not
//! end it, so every side times the same number of passes). Wall and process CPU time
//! (`getrusage`) are recorded per repeat. Threads: candle's default (`RAYON_NUM_THREADS`, else
//! the cores).

use std::path::PathBuf;
use std::time::Instant;

use models::chat_template::ChatMessage;
use models::gguf_llm::{argmax, paper_prompt, Dequantize, GgufLlm, LoadOptions};
use serde_json::json;

fn text_arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// User plus system CPU seconds of the whole process.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a zeroed rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = text_arg(&args, "--model")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("EMOBENCH_SMOLLM2_GGUF").map(PathBuf::from))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let dequantize: Dequantize =
        serde_json::from_value(match text_arg(&args, "--dequantize").as_deref() {
            None | Some("auto") => json!("auto"),
            Some("true") => json!(true),
            Some("false") => json!(false),
            Some(other) => return Err(format!("--dequantize {other}: auto, true or false").into()),
        })?;
    let num = |name: &str, default: usize| -> usize {
        text_arg(&args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let tokens = num("--tokens", 32);
    let repeats = num("--repeats", 5).max(1);

    let t = Instant::now();
    let mut llm = GgufLlm::load(
        &model,
        &LoadOptions {
            dequantize,
            ..Default::default()
        },
    )?;
    let load_s = t.elapsed().as_secs_f64();
    let user = paper_prompt("a close up of a cat with green eyes", "fear");
    let rendered = llm.render_chat(&[ChatMessage::user(user)], true)?;
    let prompt = llm.encode(&rendered)?;
    let mode = if llm.dequantized() {
        "dense f32"
    } else {
        "candle quantised kernels"
    };
    eprintln!(
        "{}: {mode}, loaded in {load_s:.2} s; prompt {} tokens, {tokens} generated, {} threads",
        model.display(),
        prompt.len(),
        candle_core::utils::get_num_threads()
    );

    // Warm-up: first touches of every buffer.
    let logits = llm.forward(&prompt, 0)?;
    llm.forward(&[argmax(&logits)], prompt.len())?;

    let mut runs = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..repeats {
        let (w0, c0) = (Instant::now(), cpu_secs());
        let mut logits = llm.forward(&prompt, 0)?;
        let (prompt_s, prompt_cpu) = (w0.elapsed().as_secs_f64(), cpu_secs() - c0);
        let (w1, c1) = (Instant::now(), cpu_secs());
        ids.clear();
        for pos in prompt.len()..prompt.len() + tokens {
            let next = argmax(&logits);
            ids.push(next);
            logits = llm.forward(&[next], pos)?;
        }
        let (gen_s, gen_cpu) = (w1.elapsed().as_secs_f64(), cpu_secs() - c1);
        eprintln!(
            "  prompt {:.1} tok/s ({prompt_s:.3} s wall, {prompt_cpu:.3} s CPU); generation {:.1} \
             tok/s ({gen_s:.3} s wall, {gen_cpu:.3} s CPU)",
            prompt.len() as f64 / prompt_s,
            tokens as f64 / gen_s
        );
        runs.push(json!({
            "prompt_s": prompt_s, "prompt_cpu_s": prompt_cpu,
            "gen_s": gen_s, "gen_cpu_s": gen_cpu,
        }));
    }
    let pick = |key: &str| -> Vec<f64> {
        runs.iter()
            .filter_map(|r| r[key].as_f64())
            .collect::<Vec<_>>()
    };
    let out = json!({
        "side": "emobench",
        "mode": mode,
        "dequantize": dequantize,
        "model": model.file_name().map(|n| n.to_string_lossy().into_owned()),
        "threads": candle_core::utils::get_num_threads(),
        "prompt_tokens": prompt.len(),
        "gen_tokens": tokens,
        "load_s": load_s,
        "runs": runs,
        "prompt_tok_s_median": prompt.len() as f64 / median(pick("prompt_s")),
        "gen_tok_s_median": tokens as f64 / median(pick("gen_s")),
        "prompt_ids": prompt,
        "generated_ids": ids,
    });
    println!("{}", serde_json::to_string(&out)?);
    if let Some(path) = text_arg(&args, "--json") {
        std::fs::write(path, serde_json::to_string_pretty(&out)? + "\n")?;
    }
    Ok(())
}
