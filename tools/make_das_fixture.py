"""Writes the DAS attribution fixture of csm's tests (Tests/Fixtures/attribution/das-exact.safetensors).

    python3 tools/make_das_fixture.py [--model Tests/Fixtures/edm/ddpmpp-vp-28x1.safetensors]
                                      [--data /usr/share/datasets/fashion-mnist] [--out FILE]

The exact (`--proj-dim 0`) Diffusion Attribution Scores of a small EDM SongUNet, computed with
PyTorch's torch.func per-sample gradients (functional_call + vmap(grad)) through
tools/edm_torch.py, the reference csm's `csm attribute` is checked against:

  g_t   = grad_theta mean(D(x0 + sigma_t eps_t; sigma_t, c))   for t = 1..T
  phi   = (1/T) sum_t g_t / ||g_t||_2                          (every parameter, buffers excluded)
  w     = sqrt((1/T) sum_t mse_t / (sigma_t^2 s^2 / (sigma_t^2 + s^2))),  s = 0.5,
          mse_t = mean((D(x0 + sigma_t eps_t; sigma_t, c) - x0)^2)
  score = phi_q (Phi^T Phi + lambda I)^-1 phi_i^T * w_i  =  [phi_q Phi^T (Phi Phi^T + lambda I)^-1]_i * w_i

Inputs are stored so that both sides use identical numbers: 20 training images (the first 20
of Fashion-MNIST's training split, one-hot classes) and 8 queries (4 test-split images with
one-hot classes, 4 with mixed class vectors lambda e_a + (1 - lambda) e_b), pixels/127.5 - 1,
and every noise value, all rounded to float16 (HWC order); the T = 6 noise levels of csm's
schedule (80 ... 0.002, rho = 7) as float64. Outputs: `weights` [20], `scores` [8, 20]
(float64 from float32 gradients), damping lambda in the metadata.
"""

import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from torch.func import functional_call, grad, vmap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edm_torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN, QUERIES, LEVELS, DAMPING, DATA_SIGMA = 20, 8, 6, 0.05, 0.5


def read_idx_images(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    count, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols, 1)


def read_idx_labels(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)


def noise_levels(count: int, sigma_min=0.002, sigma_max=80.0, rho=7.0) -> np.ndarray:
    i = np.arange(count, dtype=np.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (a + i / (count - 1) * (b - a)) ** rho


def features(net, images, labels, noise, sigmas):
    """phi [n, |theta|] and w [n] for images [n, H, W, C], labels [n, K], noise [n, T, H, W, C]."""
    params = {name: p.detach() for name, p in net.named_parameters()}
    buffers = {name: b for name, b in net.named_buffers()}

    def mean_denoised(p, x, sigma, c):
        return functional_call(net, (p, buffers), (x[None], sigma[None], c[None])).mean()

    per_sample_grad = vmap(grad(mean_denoised), in_dims=(None, 0, 0, 0))
    x0 = images.permute(0, 3, 1, 2)  # NCHW
    n = x0.shape[0]
    total = torch.zeros(n, sum(p.numel() for p in params.values()), dtype=torch.float64)
    error = torch.zeros(n, dtype=torch.float64)
    for t, sigma in enumerate(sigmas):
        s = torch.full((n,), float(sigma), dtype=torch.float32)
        x = x0 + s.reshape(-1, 1, 1, 1) * noise[:, t].permute(0, 3, 1, 2)
        g = per_sample_grad(params, x, s, labels)
        flat = torch.cat([g[name].reshape(n, -1) for name in sorted(g)], dim=1).to(torch.float64)
        total += flat / flat.norm(dim=1, keepdim=True)
        with torch.no_grad():
            d = net(x, s, labels)
        mse = ((d.to(torch.float64) - x0.to(torch.float64)) ** 2).flatten(1).mean(1)
        error += mse / (sigma ** 2 * DATA_SIGMA ** 2 / (sigma ** 2 + DATA_SIGMA ** 2))
    return total / len(sigmas), (error / len(sigmas)).sqrt()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(REPO, "Tests", "Fixtures", "edm", "ddpmpp-vp-28x1.safetensors"))
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", default=os.path.join(REPO, "Tests", "Fixtures", "attribution", "das-exact.safetensors"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    net = edm_torch.load_edm(args.model)
    k = net.label_dim
    rng = np.random.default_rng(13)

    train = read_idx_images(os.path.join(args.data, "train-images-idx3-ubyte.gz"))[:TRAIN]
    train_classes = read_idx_labels(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))[:TRAIN]
    test = read_idx_images(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))[:QUERIES]
    test_classes = read_idx_labels(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))[:QUERIES]

    def f16(a):
        return torch.from_numpy(np.asarray(a, np.float32)).to(torch.float16)

    train_images = f16(train.astype(np.float32) / 127.5 - 1)
    query_images = f16(test.astype(np.float32) / 127.5 - 1)
    train_labels = torch.nn.functional.one_hot(torch.from_numpy(train_classes), k).to(torch.float32)
    query_labels = torch.nn.functional.one_hot(torch.from_numpy(test_classes), k).to(torch.float32)
    for i in range(QUERIES // 2, QUERIES):
        a, b = rng.choice(k, 2, replace=False)
        lam = float(rng.uniform(0.2, 0.8))
        query_labels[i] = 0
        query_labels[i, a] += lam
        query_labels[i, b] += 1 - lam
    sigmas = noise_levels(LEVELS)
    sigmas = np.clip(sigmas, net.sigma_min, net.sigma_max)
    train_noise = f16(rng.standard_normal((TRAIN, LEVELS) + train.shape[1:]))
    query_noise = f16(rng.standard_normal((QUERIES, LEVELS) + test.shape[1:]))

    phi, weights = features(net, train_images.float(), train_labels, train_noise.float(), sigmas)
    phi_q, _ = features(net, query_images.float(), query_labels, query_noise.float(), sigmas)
    gram = phi @ phi.T + DAMPING * torch.eye(TRAIN, dtype=torch.float64)
    scores = torch.linalg.solve(gram, (phi_q @ phi.T).T).T * weights[None, :]

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file({
        "train_images": train_images, "train_labels": train_labels, "train_noise": train_noise,
        "query_images": query_images, "query_labels": query_labels, "query_noise": query_noise,
        "sigmas": torch.from_numpy(sigmas), "weights": weights, "scores": scores,
    }, args.out, metadata={"model": os.path.basename(args.model), "damping": json.dumps(DAMPING),
                           "made_by": "tools/make_das_fixture.py (torch.func per-sample gradients)"})
    print(f"wrote {args.out}: {TRAIN} training images, {QUERIES} queries, {LEVELS} levels, "
          f"|theta| = {phi.shape[1]}, weights {weights.min():.3f}..{weights.max():.3f}, "
          f"self-score range {scores.abs().max():.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
