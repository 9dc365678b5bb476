"""The device of the style benchmarks: DEVICE=cuda on a GPU (bench/gpu/run.sh), else the CPU.
Importing it makes torch create every tensor and module there; `now()` reads the clock after the
device's queued work has finished."""

import os
import time

import torch

DEVICE = os.environ.get("DEVICE", "cpu")
torch.set_default_device(DEVICE)


def now():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()
