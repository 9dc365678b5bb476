"""diffusers side of the InstructPix2Pix speed comparison (emobench `cargo bench -p
emobench-models --bench unet`): the real SD 1.5 / InstructPix2Pix UNet and VAE shapes with
random weights (no download), batch 3 (text+image, image, unconditional), float32 on the CPU,
`torch.set_num_threads(threads)`; one UNet call per repeat, then a whole edit of `steps` Euler
ancestral steps through StableDiffusionInstructPix2PixPipeline's own loop (VAE encode and decode
included, CLIP excluded: prompt embeddings are passed in).

GPU: `--device cuda --dtype float16 --size 512` runs the same on a GPU (see bench/gpu/).

`--edit-only` runs the whole edit alone (no separate UNet and VAE timings), for peak-memory runs
under `/usr/bin/time -v`; the resident set is printed after each stage either way and the JSON
records the peak (`peak_rss_gb`, getrusage's ru_maxrss).

python diffusion_bench.py [--size 256] [--steps 3] [--repeats 3] [--threads 2] [--edit-only]
    [--json out.json]
"""
import argparse
import json
import platform
import resource
import sys
import time

import diffusers
import torch
from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler,
                       StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel)

UNET = dict(
    sample_size=64, in_channels=8, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1,
    mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5,
    cross_attention_dim=768, attention_head_dim=8, use_linear_projection=False,
)
VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
    layers_per_block=2, act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=512,
)
SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
             num_train_timesteps=1000, steps_offset=1, prediction_type="epsilon")


def rss_gb():
    """This process's resident set and its peak so far, in GB (Linux /proc)."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024 / 1e9
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def stage(name):
    now, peak = rss_gb()
    print(f"[rss] {name}: {now:.2f} GB now, {peak:.2f} GB peak", file=sys.stderr, flush=True)


class NoText:
    """Stands in for tokenizer and text encoder: the pipeline gets prompt embeddings."""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1, help="images per UNet call (3 rows each)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--edit-only", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev, dtype = torch.device(a.device), getattr(torch, a.dtype)
    t0 = time.perf_counter()
    unet = UNet2DConditionModel(**UNET).to(dev, dtype).eval()
    vae = AutoencoderKL(**VAE).to(dev, dtype).eval()
    print(f"random weights: {time.perf_counter() - t0:.1f} s", flush=True)
    stage("weights")
    lat = a.size // 8
    x = torch.randn(3 * a.batch, 8, lat, lat, device=dev, dtype=dtype)
    ctx = torch.randn(3 * a.batch, 77, 768, device=dev, dtype=dtype)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    unet_s = []
    encode_s = decode_s = float("nan")
    image = torch.rand(1, 3, a.size, a.size, device=dev, dtype=dtype)
    if not a.edit_only:
        with torch.inference_mode():
            unet(x, 999, encoder_hidden_states=ctx)
            sync()
            stage("UNet warm-up")
            for _ in range(a.repeats):
                t = time.perf_counter()
                unet(x, 500, encoder_hidden_states=ctx)
                sync()
                unet_s.append(time.perf_counter() - t)
        print(f"UNet batch {3 * a.batch} at {a.size}: {unet_s}", flush=True)
        with torch.inference_mode():
            t = time.perf_counter()
            mean = vae.encode(image * 2 - 1).latent_dist.mode()
            sync()
            encode_s = time.perf_counter() - t
            t = time.perf_counter()
            vae.decode(mean / 0.18215)
            sync()
            decode_s = time.perf_counter() - t
        stage("VAE")
        print(f"VAE encode {encode_s:.2f} s, decode {decode_s:.2f} s", flush=True)
    del x, ctx

    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=None, tokenizer=None, unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(**SCHED), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    emb = torch.randn(1, 77, 768, device=dev, dtype=dtype)
    with torch.inference_mode():
        t = time.perf_counter()
        pipe(prompt_embeds=emb, negative_prompt_embeds=torch.zeros_like(emb), image=image,
             num_inference_steps=a.steps, guidance_scale=7.5, image_guidance_scale=1.5,
             output_type="pt")
        sync()
        edit_s = time.perf_counter() - t
    print(f"whole edit, {a.steps} steps: {edit_s:.2f} s", flush=True)
    stage("edit")
    out = {
        "implementation": f"diffusers {diffusers.__version__}, torch {torch.__version__}",
        "device": a.device if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "cpu": platform.processor() or platform.machine(),
        "dtype": a.dtype, "size": a.size, "unet_batch": 3 * a.batch, "threads": a.threads,
        "unet_step_seconds": unet_s, "vae_encode_seconds": encode_s,
        "vae_decode_seconds": decode_s, "edit_steps": a.steps, "edit_seconds": edit_s,
        "edit_only": a.edit_only,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
    }
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
