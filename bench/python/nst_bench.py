"""One closure evaluation of the NST tutorial's model (forward + backward through VGG19 up to
conv_5, real channel counts, random weights) at 256x256, PyTorch on the CPU with 2 threads; the
counterpart of benches/nst.rs."""


import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

torch.set_num_threads(2)

from bench_device import now  # noqa: E402  (before any tensor: it sets the default device)

torch.manual_seed(0)
features = torchvision.models.vgg19().features[:11].eval()
features.requires_grad_(False)
mean = torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)
STYLE = [0, 2, 5, 7, 10]
CONTENT = 7


def gram(x):
    a, b, c, d = x.size()
    f = x.view(a * b, c * d)
    return torch.mm(f, f.t()).div(a * b * c * d)


def acts(x):
    out = {}
    h = (x - mean) / std
    for i, m in enumerate(features):
        if isinstance(m, nn.ReLU):
            m = nn.ReLU(inplace=False)
        h = m(h)
        out[i] = h
    return out


size = 256
content = torch.rand(1, 3, size, size)
style = torch.rand(1, 3, size, size)
with torch.no_grad():
    a = acts(content)
    content_t = a[CONTENT]
    style_t = [gram(acts(style)[i]) for i in STYLE]


def closure(x):
    a = acts(x)
    s = 0
    for i, t in zip(STYLE, style_t):
        s += F.mse_loss(gram(a[i]), t)
    loss = s * 1e6 + F.mse_loss(a[CONTENT], content_t)
    return loss


x = torch.rand(1, 3, size, size, requires_grad=True)
closure(x).backward()
evals = []
for _ in range(10):
    t0 = now()
    x.grad = None
    closure(x).backward()
    evals.append(now() - t0)
evals.sort()
median = (evals[4] + evals[5]) / 2
print(f"torch {torch.__version__} NST closure at {size}x{size}: forward+backward median {median*1e3:.1f} ms "
      f"(10 evaluations, {evals[0]*1e3:.1f}-{evals[-1]*1e3:.1f}) ({torch.get_num_threads()} threads)")
