"""PyTorch benchmark peer for csm's sampler: how fast does PyTorch run the same EDM network?

    python3 tools/bench/bench_torch.py --model Datasets/fashion-mnist/fashion-mnist-edm-vp32.safetensors \
        --batch 64 --steps 18 --threads 2 [--repeats 3] [--evals 20] [--seed 0]

Loads the model with tools/reference/edm_torch.py, sets PyTorch's intra- and inter-op thread counts
before any work, runs one warm-up batch, then under torch.inference_mode() times
  * `--repeats` full Heun runs (2 * steps - 1 network evaluations each) of `--batch` random
    latents with mixed class labels (c = lam e_a + (1 - lam) e_b, random pairs and lam), and
  * `--evals` single network evaluations D(x; sigma) at that batch size.
Prints one JSON line to stdout:
  images_per_s        batch / median seconds per full run (end to end)
  evals_per_s_images  images per second through one network evaluation (batch * evals / time)
  seconds_per_batch   median seconds of one full run
  images_per_s_best, evals_per_s_images_best
                      the same from the fastest run / fastest chunk of 5 evaluations
  batch, steps, threads, repeats, torch (version), peak_rss_mib (peak resident set size)
  other_load          CPU cores used by other processes while timing (Linux /proc; null
                      elsewhere): on a shared machine, numbers taken with other_load > 0.1
                      understate PyTorch's speed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="edm-diffusion/1 safetensors file")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=18, help="Heun steps (2 * steps - 1 evaluations)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op and inter-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed full runs (median reported)")
    parser.add_argument("--evals", type=int, default=20, help="timed single network evaluations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("batch", "steps", "threads", "repeats", "evals"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy jiffies of the whole machine, jiffies of this process), or None without /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
        return sum(fields) - fields[3] - fields[4], int(own[11]) + int(own[12])  # minus idle, iowait
    except (OSError, ValueError, IndexError):
        return None


def main() -> int:
    args = parse_args()
    import torch  # imported here so nothing runs before the thread counts are set

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))
    import edm_torch

    try:
        net = edm_torch.load_edm(args.model)
    except (edm_torch.EDMFileError, OSError) as e:
        print(f"bench_torch: {e}", file=sys.stderr)
        return 1

    gen = torch.Generator().manual_seed(args.seed)
    shape = [args.batch, net.img_channels, net.img_resolution, net.img_resolution]
    latents = torch.randn(shape, generator=gen)
    class_labels = None
    if net.label_dim:
        k = net.label_dim
        a = torch.randint(k, [args.batch], generator=gen)
        b = (a + torch.randint(1, max(k, 2), [args.batch], generator=gen)) % k  # b != a when k > 1
        lam = torch.rand([args.batch], generator=gen)
        class_labels = torch.zeros([args.batch, k])
        class_labels[torch.arange(args.batch), a] += lam
        class_labels[torch.arange(args.batch), b] += 1 - lam

    def full_run():
        return edm_torch.edm_sampler(net, latents, class_labels, num_steps=args.steps)

    with torch.inference_mode():
        full_run()  # warm-up batch

        jiffies_start, time_start = cpu_jiffies(), time.perf_counter()
        run_seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            images = full_run()
            run_seconds.append(time.perf_counter() - start)
        if not torch.isfinite(images).all():
            print(f"bench_torch: {args.model}: sampler produced non-finite values", file=sys.stderr)
            return 1

        x = latents * 2.0
        sigma = torch.tensor(2.0)
        net(x, sigma, class_labels)
        chunk_seconds = []  # evaluations are timed in chunks of up to 5
        for first in range(0, args.evals, 5):
            count = min(5, args.evals - first)
            start = time.perf_counter()
            for _ in range(count):
                net(x, sigma, class_labels)
            chunk_seconds.append((count, time.perf_counter() - start))
        eval_seconds = sum(t for _, t in chunk_seconds)
        jiffies_end, time_end = cpu_jiffies(), time.perf_counter()

    other_load = None
    if jiffies_start and jiffies_end:
        hz = os.sysconf("SC_CLK_TCK")
        other = (jiffies_end[0] - jiffies_start[0]) - (jiffies_end[1] - jiffies_start[1])
        other_load = round(max(0, other) / hz / (time_end - time_start), 2)

    seconds_per_batch = statistics.median(run_seconds)
    result = {
        "images_per_s": round(args.batch / seconds_per_batch, 3),
        "evals_per_s_images": round(args.batch * args.evals / eval_seconds, 1),
        "seconds_per_batch": round(seconds_per_batch, 4),
        "images_per_s_best": round(args.batch / min(run_seconds), 3),
        "evals_per_s_images_best": round(max(args.batch * n / t for n, t in chunk_seconds), 1),
        "batch": args.batch,
        "steps": args.steps,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "other_load": other_load,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
