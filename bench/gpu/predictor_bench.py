#!/usr/bin/env python3
"""The PyTorch side of benches/predictor_device.rs: torchvision's ResNet-18 (num_classes=8,
random weights, eval mode, no_grad) at batch 1 and 8, ms/image, logits copied back to the host.

    predictor_bench.py [--device cuda] [--dtype float16] [--repeats 20] [--json FILE]
"""
import argparse
import json
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.manual_seed(0)
    dtype = getattr(torch, a.dtype)
    model = torchvision.models.resnet18(num_classes=8).eval().to(a.device, dtype)
    out = {}
    with torch.no_grad():
        for batch in (1, 8):
            x = torch.rand(batch, 3, 224, 224, device=a.device, dtype=dtype)
            model(x).float().cpu()  # warm-up
            times = []
            for _ in range(a.repeats):
                t = time.perf_counter()
                model(x).float().cpu()
                times.append((time.perf_counter() - t) * 1e3)
            times.sort()
            out[f"batch{batch}"] = times[len(times) // 2] / batch
            print(f"ResNet-18 {a.device} {a.dtype} batch {batch}: {out[f'batch{batch}']:.3f} ms/image")
    result = {
        "implementation": f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}",
        "device": a.device,
        "dtype": a.dtype,
        "repeats": a.repeats,
        "ms_per_image": out,
    }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
