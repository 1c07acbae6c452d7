"""PyTorch benchmark peer for csm's attribution: per-sample gradients of an EDM network.

    python3 tools/bench/bench_das_torch.py --model Datasets/fashion-mnist/fashion-mnist-edm-vp32.safetensors \
        --images 16 --levels 10 --batch 8 --threads 2

What `csm attribute index` spends its time on, computed as the DAS reference does it (and as
tools/fixtures/make_das_fixture.py does): for each image x0 with a one-hot class and each of `--levels`
noise levels sigma_t (EDM's schedule, 80 ... 0.002, rho 7) with seeded noise,
g_t = grad_theta mean(D(x0 + sigma_t eps_t; sigma_t, c)) over every parameter, by torch.func's
functional_call + vmap(grad) over `--batch` images at a time, each g_t flattened and divided
by its norm (what the features average). The images are random (the cost does not depend on
them). One warm-up batch, then the timed run. Prints one JSON line:
  gradients_per_s   images x levels per second
  seconds, images, levels, batch, threads, parameters, torch, peak_rss_mib
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import torch
from torch.func import functional_call, grad, vmap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))
import edm_torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def noise_levels(count: int, sigma_min=0.002, sigma_max=80.0, rho=7.0) -> torch.Tensor:
    i = torch.arange(count, dtype=torch.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (a + i / max(1, count - 1) * (b - a)) ** rho


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(REPO, "Datasets", "fashion-mnist", "fashion-mnist-edm-vp32.safetensors"))
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--levels", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8, help="images per vmap call")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    net = edm_torch.load_edm(args.model)
    net.eval()
    params = {name: p.detach() for name, p in net.named_parameters()}
    buffers = dict(net.named_buffers())
    names = sorted(params)
    channels, size, classes = net.img_channels, net.img_resolution, net.label_dim
    sigmas = noise_levels(args.levels).clamp(net.sigma_min, net.sigma_max)

    def mean_denoised(p, x, sigma, c):
        return functional_call(net, (p, buffers), (x[None], sigma[None], c[None])).mean()

    per_sample = vmap(grad(mean_denoised), in_dims=(None, 0, 0, 0))

    def gradients(images: torch.Tensor, labels: torch.Tensor) -> None:
        n = images.shape[0]
        for sigma in sigmas:
            s = torch.full((n,), float(sigma))
            x = images + s.reshape(-1, 1, 1, 1) * torch.randn_like(images)
            g = per_sample(params, x, s, labels)
            flat = torch.cat([g[name].reshape(n, -1) for name in names], dim=1)
            flat = flat / flat.norm(dim=1, keepdim=True)
            del g, flat

    def batch(n: int):
        images = torch.rand(n, channels, size, size) * 2 - 1
        labels = torch.nn.functional.one_hot(torch.randint(0, max(1, classes), (n,)), max(1, classes)).float()
        return images, labels

    gradients(*batch(min(args.batch, args.images)))  # warm-up
    started = time.perf_counter()
    done = 0
    while done < args.images:
        n = min(args.batch, args.images - done)
        gradients(*batch(n))
        done += n
    seconds = time.perf_counter() - started
    print(json.dumps({
        "gradients_per_s": args.images * args.levels / seconds, "seconds": seconds, "images": args.images,
        "levels": args.levels, "batch": args.batch, "threads": args.threads,
        "parameters": sum(p.numel() for p in params.values()), "torch": torch.__version__,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
