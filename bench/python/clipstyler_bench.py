"""One CLIPstyler iteration at 512x512 (64 crops through CLIP ViT-B/32, VGG19 content loss,
Adam step) in PyTorch with random weights and 2 threads: the reference for the Rust timing
(`cargo bench -p emobench-baselines --bench clipstyler`). `STAGES=1` times the stages of one
iteration separately, each loss backpropagated on its own to a detached copy of the StyleNet
output, as the Rust bench's `STAGES=1` does."""

import os
import sys
import time

import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
from transformers import CLIPConfig, CLIPModel

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "baselines", "tests", "fixtures", "clipstyler"))
torch.set_num_threads(int(os.environ.get("THREADS", "2")))

from bench_device import now  # noqa: E402  (before any tensor: it sets the default device)

torch.manual_seed(0)

import importlib.util

spec = importlib.util.spec_from_file_location("fx", os.path.join(os.path.dirname(__file__), "..", "..", "baselines", "tests", "fixtures", "clipstyler", "stylenet_ref.py"))
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)

clip = CLIPModel(CLIPConfig()).eval()
for p in clip.parameters():
    p.requires_grad_(False)
vgg = torchvision.models.vgg19(weights=None).features.eval()
for p in vgg.parameters():
    p.requires_grad_(False)
net = fx.UNet(16)
opt = torch.optim.Adam(net.parameters(), lr=5e-4)
content = torch.rand(1, 3, 512, 512)
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, -1, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, -1, 1, 1)
cmean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, -1, 1, 1)
cstd = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, -1, 1, 1)


def clip_norm(x):
    return (F.interpolate(x, size=224, mode="bicubic") - cmean) / cstd


def enc(x):
    return clip.visual_projection(clip.vision_model(pixel_values=x).pooler_output)


def feats(x):
    out = {}
    for name, layer in vgg._modules.items():
        x = layer(x)
        if name in ("21", "31"):
            out[name] = x
        if name == "31":
            break
    return out


with torch.no_grad():
    cf = feats((content - mean) / std)
    src = enc(clip_norm(content))
    src = src / src.norm(dim=-1, keepdim=True)
    tdir = torch.randn(1, 512)
    tdir = tdir / tdir.norm(dim=-1, keepdim=True)
cropper = T.RandomCrop(128)
augment = T.Compose([T.RandomPerspective(fill=0, p=1, distortion_scale=0.5), T.Resize(224)])


def tv(x):
    # CLIPstyler's get_image_prior_losses (lambda_tv 2e-3).
    d1 = x[:, :, :, :-1] - x[:, :, :, 1:]
    d2 = x[:, :, :-1, :] - x[:, :, 1:, :]
    d3 = x[:, :, 1:, :-1] - x[:, :, :-1, 1:]
    d4 = x[:, :, :-1, :-1] - x[:, :, 1:, 1:]
    return torch.norm(d1) + torch.norm(d2) + torch.norm(d3) + torch.norm(d4)


def timed(what, f):
    t0, c0 = now(), time.process_time()
    r = f()
    print(f"  {what:<28} wall {now() - t0:7.3f} s  cpu {time.process_time() - c0:7.3f} s", flush=True)
    return r


def directional(feat, thresh=None):
    f = feat / feat.clone().norm(dim=-1, keepdim=True)
    d = f - src
    d = d / d.clone().norm(dim=-1, keepdim=True)
    loss = 1 - torch.cosine_similarity(d, tdir.repeat(d.shape[0], 1), dim=1)
    if thresh is not None:
        loss[loss < thresh] = 0
    return loss


def stages():
    t0, c0 = now(), time.process_time()
    target = timed("stylenet forward", lambda: net(content))
    x = target.detach().requires_grad_(True)
    tf = timed("vgg forward", lambda: feats((x - mean) / std))
    content_loss = torch.mean((tf["21"] - cf["21"]) ** 2) + torch.mean((tf["31"] - cf["31"]) ** 2)
    timed("vgg backward", lambda: (150 * content_loss).backward())
    timed("tv forward + backward", lambda: (2e-3 * tv(x)).backward())
    glob = timed("global clip forward", lambda: directional(enc(clip_norm(x))).mean())
    timed("global clip backward", lambda: (500 * glob).backward())
    acc = {"aug": [0, 0], "fwd": [0, 0], "bwd": [0, 0]}
    for _ in range(8):
        for key in ("aug", "fwd", "bwd"):
            t, c = now(), time.process_time()
            if key == "aug":
                aug = clip_norm(torch.cat([augment(cropper(x)) for _ in range(8)], 0))
            elif key == "fwd":
                lt = directional(enc(aug), 0.7).sum()
            else:
                (9000 * lt / 64).backward()
            acc[key][0] += now() - t
            acc[key][1] += time.process_time() - c
    for what, key in (("patches: augment + resize", "aug"), ("patches: clip forward", "fwd"), ("patches: clip+augment bwd", "bwd")):
        print(f"  {what:<28} wall {acc[key][0]:7.3f} s  cpu {acc[key][1]:7.3f} s", flush=True)
    timed("stylenet backward", lambda: (target * x.grad).sum().backward())
    print(f"iteration (stages): wall {now() - t0:.2f} s, cpu {time.process_time() - c0:.2f} s", flush=True)


if os.environ.get("STAGES") == "1":
    for _ in range(int(os.environ.get("ITERS", "1"))):
        stages()
    sys.exit(0)

for it in range(int(os.environ.get("ITERS", "2"))):
    t0 = now()
    c0 = time.process_time()
    target = net(content)
    tf = feats((target - mean) / std)
    content_loss = torch.mean((tf["21"] - cf["21"]) ** 2) + torch.mean((tf["31"] - cf["31"]) ** 2)
    aug = torch.cat([augment(cropper(target)) for _ in range(64)], 0)
    f = enc(clip_norm(aug))
    f = f / f.clone().norm(dim=-1, keepdim=True)
    d = f - src
    d = d / d.clone().norm(dim=-1, keepdim=True)
    lt = 1 - torch.cosine_similarity(d, tdir.repeat(64, 1), dim=1)
    lt[lt < 0.7] = 0
    g = enc(clip_norm(target))
    g = g / g.clone().norm(dim=-1, keepdim=True)
    gd = g - src
    gd = gd / gd.clone().norm(dim=-1, keepdim=True)
    lg = (1 - torch.cosine_similarity(gd, tdir, dim=1)).mean()
    total = 9000 * lt.mean() + 150 * content_loss + 500 * lg + 2e-3 * tv(target)
    opt.zero_grad()
    total.backward()
    opt.step()
    print(f"iteration {it}: wall {now() - t0:.2f} s, cpu {time.process_time() - c0:.2f} s (threads {torch.get_num_threads()})", flush=True)
