#!/usr/bin/env python3
"""Python reference benchmark for emobench: how fast the reference stack (PyTorch,
pytorch-grad-cam, OpenCV, scikit-image, PIL) computes the pieces of the EmoEditor metrics
on this machine, so the Rust harness has a number to compare with.

Run (from the repository root; about 1 minute on an idle 2-core machine):

    /work/venv-fixtures/bin/python bench/python/reference_bench.py
    /work/venv-fixtures/bin/python bench/python/reference_bench.py --threads 1 \
        --out bench/python/results_threads1.json --csv bench/python/score_rows_threads1.csv

(the virtual environment is described in tests/fixtures/torch/README.md). It writes
bench/python/results.json and bench/python/score_rows.csv and prints a summary table.

What it measures (torch.set_num_threads(--threads), default 2):
  * full-size torchvision resnet18(num_classes=8), random weights (seed 0) or --weights,
    eval mode, no_grad, 224x224 input: ms/image at batch 1 and at batch 8
  * pytorch-grad-cam GradCAM(target_layers=[model.layer4[-1]]), targets=None: ms/image
  * cv2.Canny(img, 200, 500) on a 224x224x3 RGB uint8 image and on its gray: ms, with
    cv2.setNumThreads(--threads) and with 1 thread
  * skimage structural_similarity: RGB win 7 and gray (cv2 RGB2GRAY) win 51: ms
  * the whole "score" pipeline, in conditions/s: for each source and each of its 4
    cross-valence targets, load source + generated image (PIL open, .resize((224, 224))
    bicubic, .convert('RGB') - the order of the authors' metric_ESMI.py), predict both,
    Grad-CAM on the source (class = argmax), ENRD (mask cam > 0.5, mean over all 224x224x3),
    ESS (Canny 200/500 on RGB), SSIM (gray, win 51), one CSV row.
Every timing: warm-up first, then the median of --runs repetitions; wall-clock and
process CPU time are both recorded, and the share of the CPUs used by OTHER processes
during each measurement (from /proc/stat; above 0.10 the run is flagged machine_busy:
with more torch threads than free cores OpenMP threads spin-wait and torch timings
inflate many times over).

Default data: the 8 photos of studies/demo/photos as sources; generated images are
colour-shifted copies (+20 on red, clipped) written as PNG into a temporary folder,
named <stem>_<target>.png. The source's emotion is the predictor's argmax on the source
(the random model has no real labels); its 4 cross-valence targets are the other valence.

Against a real folder:
    reference_bench.py --sources DIR --generated DIR [--pattern '{stem}_{target}.png']
                       [--weights emo_predictor/emo_predictor.pt]
(--generated files are looked up with --pattern; missing ones are skipped and counted).
Class order of a checkpoint: amusement, anger, awe, contentment, disgust, excitement,
fear, sadness (the authors' alphabetical order).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata as md
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import PIL
import skimage
import torch
import torch.nn as nn
import torchvision
from PIL import Image
from skimage.metrics import structural_similarity
from torchvision.transforms import functional as TF

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CLASS_ORDER = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]
POSITIVE = {"amusement", "awe", "contentment", "excitement"}
NEGATIVE = {"anger", "disgust", "fear", "sadness"}
IMG_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _busy_seconds() -> float | None:
    """CPU seconds spent non-idle by the whole machine so far (from /proc/stat)."""
    try:
        f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        v = [int(x) for x in f]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class OtherLoad:
    """Share of the machine's CPU capacity used by OTHER processes while the block ran."""

    def __enter__(self):
        self.w, self.c, self.b = time.perf_counter(), time.process_time(), _busy_seconds()
        return self

    def __exit__(self, *exc):
        w, c, b = time.perf_counter() - self.w, time.process_time() - self.c, _busy_seconds()
        self.share = None
        if b is not None and self.b is not None and w > 0:
            self.share = max(0.0, (b - self.b - c) / (w * (os.cpu_count() or 1)))


def timeit(fn, runs: int, warmup: int = 2, inner: int = 1) -> dict:
    """Wall-clock and process-CPU milliseconds per call: medians over `runs`."""
    for _ in range(warmup):
        fn()
    times, cpus = [], []
    with OtherLoad() as ol:
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(inner):
                fn()
            times.append((time.perf_counter() - t0) * 1000.0 / inner)
            cpus.append((time.process_time() - c0) * 1000.0 / inner)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "cpu_median_ms": statistics.median(cpus), "runs": runs, "inner": inner,
            "other_processes_cpu_share": ol.share}


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu,
            "logical_cpus": os.cpu_count(), "mem_gib": mem_gib, "python": sys.version.split()[0]}


def versions() -> dict:
    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "grad-cam": md.version("grad-cam"), "cv2": cv2.__version__,
            "opencv-python-headless": md.version("opencv-python-headless"),
            "scikit-image": skimage.__version__, "pillow": PIL.__version__, "numpy": np.__version__}


def load_model(weights: str | None) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=8)
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def load224(path: Path) -> Image.Image:
    # metric_ESMI.py order: resize (PIL default bicubic) then convert
    return Image.open(path).resize((224, 224)).convert("RGB")


def prepare_default(tmp: Path) -> tuple[list[Path], Path]:
    """Sources: the demo photos as PNG at their own size; generated: red +20 copies for
    every target (written lazily per target by the caller, see make_generated)."""
    src_dir, gen_dir = tmp / "sources", tmp / "generated"
    src_dir.mkdir()
    gen_dir.mkdir()
    sources = []
    for p in sorted((REPO / "studies" / "demo" / "photos").glob("*.jpg")):
        img = Image.open(p).convert("RGB")
        out = src_dir / f"{p.stem}.png"
        img.save(out)
        sources.append(out)
        shifted = np.asarray(img).astype(np.int16)
        shifted[..., 0] += 20
        shifted = Image.fromarray(np.clip(shifted, 0, 255).astype(np.uint8), "RGB")
        for t in CLASS_ORDER:
            shifted.save(gen_dir / f"{p.stem}_{t}.png")
    return sources, gen_dir


def cross_valence(cls: str) -> list[str]:
    other = NEGATIVE if cls in POSITIVE else POSITIVE
    return [c for c in CLASS_ORDER if c in other]


def score_pipeline(model, cam, sources, gen_dir: Path, pattern: str, csv_path: Path | None) -> dict:
    """One full pass over all conditions; returns counts and the rows."""
    rows, missing = [], 0
    for src_path in sources:
        src_pil = load224(src_path)
        x_src = TF.to_tensor(src_pil)[None]
        with torch.no_grad():
            p_src0 = torch.softmax(model(x_src)[0], 0)
        src_cls = CLASS_ORDER[int(p_src0.argmax())]
        for target in cross_valence(src_cls):
            gen_path = gen_dir / pattern.format(stem=src_path.stem, target=target)
            if not gen_path.is_file():
                missing += 1
                continue
            # per condition, as a metric script does it: load both, predict both, CAM, metrics
            src_pil = load224(src_path)
            gen_pil = load224(gen_path)
            x = torch.stack([TF.to_tensor(src_pil), TF.to_tensor(gen_pil)])
            with torch.no_grad():
                p = torch.softmax(model(x), 1).numpy()
            t = CLASS_ORDER.index(target)
            g = cam(input_tensor=x[:1], targets=None)[0]
            m3 = np.repeat((g > 0.5)[:, :, None], 3, axis=2)
            s = np.asarray(src_pil).astype(np.float64)
            e = np.asarray(gen_pil).astype(np.float64)
            enrd = float(np.abs(s * ~m3 - e * ~m3).mean())
            a8, b8 = np.asarray(src_pil), np.asarray(gen_pil)
            ess = float(np.abs(cv2.Canny(a8, 200, 500).astype(np.float64)
                               - cv2.Canny(b8, 200, 500).astype(np.float64)).mean())
            ssim = float(structural_similarity(cv2.cvtColor(a8, cv2.COLOR_RGB2GRAY),
                                               cv2.cvtColor(b8, cv2.COLOR_RGB2GRAY),
                                               win_size=51, data_range=255))
            rows.append({
                "source": src_path.name, "generated": gen_path.name, "target": target,
                "argmax_src": CLASS_ORDER[int(p[0].argmax())], "argmax_gen": CLASS_ORDER[int(p[1].argmax())],
                "p_src_target": float(p[0, t]), "p_gen_target": float(p[1, t]),
                "emr": int(p[1].argmax() == t), "esr": int(p[1, t] > p[0, t]),
                "enrd": enrd, "ess_rgb": ess, "ssim_gray_w51": ssim,
            })
    if csv_path is not None and rows:
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return {"rows": rows, "missing": missing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=Path, help="folder of source images (default: demo photos)")
    ap.add_argument("--generated", type=Path, help="folder of generated images (default: red+20 copies)")
    ap.add_argument("--pattern", default="{stem}_{target}.png", help="generated file name pattern")
    ap.add_argument("--weights", help="state dict for resnet18(num_classes=8), e.g. emo_predictor.pt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--score-runs", type=int, default=2, help="repetitions of the whole pipeline")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--csv", type=Path, default=HERE / "score_rows.csv")
    args = ap.parse_args()
    if (args.sources is None) != (args.generated is None):
        ap.error("--sources and --generated go together")

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model = load_model(args.weights)
    from pytorch_grad_cam import GradCAM
    cam = GradCAM(model=model, target_layers=[model.layer4[-1]])

    rng = np.random.default_rng(0)
    x1 = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    x8 = torch.rand(8, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    photo = load224(REPO / "studies" / "demo" / "photos" / "astronaut.jpg")
    a = np.asarray(photo)
    b = np.clip(a.astype(np.int16) + rng.integers(-10, 11, a.shape), 0, 255).astype(np.uint8)
    ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)

    res = {"machine": machine_info(), "versions": versions(), "torch_num_threads": torch.get_num_threads(),
           "cv2_num_threads": cv2.getNumThreads(), "weights": args.weights or "random (torch.manual_seed(0))",
           "micro": {}}

    def fwd(x):
        with torch.no_grad():
            return model(x)

    res["loadavg_start"] = os.getloadavg()
    timings = {}
    timings["resnet18_b1_ms_per_image"] = timeit(lambda: fwd(x1), args.runs, warmup=3)
    r = timeit(lambda: fwd(x8), args.runs, warmup=2)
    timings["resnet18_b8_ms_per_batch"] = r
    timings["resnet18_b8_ms_per_image"] = {k: (v / 8 if k.endswith("_ms") else v) for k, v in r.items()}
    timings["gradcam_ms_per_image"] = timeit(lambda: cam(input_tensor=x1, targets=None), args.runs, warmup=2)
    timings["canny_rgb224_ms"] = timeit(lambda: cv2.Canny(a, 200, 500), args.runs, warmup=5, inner=50)
    timings["canny_gray224_ms"] = timeit(lambda: cv2.Canny(ga, 200, 500), args.runs, warmup=5, inner=50)
    # OpenCV splits Canny's rows over its threads (emobench's splits RGB at this size in two);
    # `score` runs images in parallel, one thread each, which the single-thread figures compare.
    cv2.setNumThreads(1)
    timings["canny_rgb224_1thread_ms"] = timeit(lambda: cv2.Canny(a, 200, 500), args.runs, warmup=5, inner=50)
    timings["canny_gray224_1thread_ms"] = timeit(lambda: cv2.Canny(ga, 200, 500), args.runs, warmup=5, inner=50)
    cv2.setNumThreads(args.threads)
    timings["ssim_rgb_w7_ms"] = timeit(lambda: structural_similarity(a, b, channel_axis=2, data_range=255),
                                       args.runs, warmup=2, inner=5)
    timings["ssim_gray_w51_ms"] = timeit(lambda: structural_similarity(ga, gb, win_size=51, data_range=255),
                                         args.runs, warmup=2, inner=5)
    res["micro"] = {k: v["median_ms"] for k, v in timings.items()}
    res["micro_cpu_ms"] = {k: v["cpu_median_ms"] for k, v in timings.items()}
    res["micro_detail"] = timings

    with tempfile.TemporaryDirectory() as tmp:
        if args.sources is None:
            sources, gen_dir = prepare_default(Path(tmp))
            res["score_data"] = "demo photos (PNG, own size) + red+20 copies per target"
        else:
            sources = sorted(p for p in args.sources.iterdir() if p.suffix.lower() in IMG_EXT)
            gen_dir = args.generated
            res["score_data"] = {"sources": str(args.sources), "generated": str(gen_dir), "pattern": args.pattern}
        score_pipeline(model, cam, sources[:1], gen_dir, args.pattern, None)  # warm-up
        times, cpu, out = [], [], None
        with OtherLoad() as score_load:
            for i in range(args.score_runs):
                t0, c0 = time.perf_counter(), time.process_time()
                out = score_pipeline(model, cam, sources, gen_dir, args.pattern,
                                     args.csv if i == args.score_runs - 1 else None)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    n = len(out["rows"])
    med = statistics.median(times)
    res["score"] = {"sources": len(sources), "conditions": n, "missing_generated": out["missing"],
                    "seconds_median": med, "seconds_all": times, "cpu_seconds_all": cpu,
                    "other_processes_cpu_share": score_load.share,
                    "conditions_per_s": n / med if med > 0 else None,
                    "ms_per_condition": 1000 * med / n if n else None, "csv": str(args.csv.relative_to(REPO))
                    if args.csv.is_relative_to(REPO) else str(args.csv)}
    if n:
        res["score"]["means"] = {k: statistics.fmean(r[k] for r in out["rows"])
                                 for k in ["emr", "esr", "enrd", "ess_rgb", "ssim_gray_w51"]}
    res["loadavg_end"] = os.getloadavg()
    # busy = other processes used more than 10 % of the CPUs during any measurement
    shares = [v["other_processes_cpu_share"] for v in timings.values()] + [score_load.share]
    shares = [x for x in shares if x is not None]
    res["other_processes_cpu_share_max"] = max(shares) if shares else None
    busy = bool(shares) and max(shares) > 0.10
    res["machine_busy"] = busy
    if busy:
        res["note"] = ("other processes used more than 10 % of the CPUs during a measurement (see "
                       "other_processes_cpu_share): with more torch threads "
                       "than free cores, OpenMP threads spin-wait and torch timings inflate many times; "
                       "compare with a --threads 1 run and rerun on an idle machine")
    args.out.write_text(json.dumps(res, indent=1) + "\n")

    print(f"machine: {res['machine']['cpu']} x{res['machine']['logical_cpus']}, torch threads "
          f"{res['torch_num_threads']}, torch {torch.__version__}, cv2 {cv2.__version__}, skimage {skimage.__version__}")
    print(f"load average at start {res['loadavg_start']}, at end {res['loadavg_end']}")
    print(f"{'measurement':<34}{'wall':>12}{'process CPU':>14}  unit  others' CPU share")
    for k, v in res["micro"].items():
        o = timings[k]["other_processes_cpu_share"]
        print(f"{k:<34}{v:>12.3f}{res['micro_cpu_ms'][k]:>14.3f}  ms    {'' if o is None else f'{o:.2f}'}")
    print(f"{'score pipeline (' + str(n) + ' conditions)':<34}{res['score']['conditions_per_s'] or 0:>12.2f}  conditions/s")
    print(f"{'':<34}{res['score']['ms_per_condition'] or 0:>12.1f}  ms/condition, others' CPU share "
          f"{score_load.share if score_load.share is not None else float('nan'):.2f}")
    if busy:
        print("WARNING: " + res["note"])
    print(f"wrote {args.out} and {args.csv}")


if __name__ == "__main__":
    main()
