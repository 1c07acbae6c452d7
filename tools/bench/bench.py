"""`make bench`: csm against PyTorch on the same sampling job, in the same run.

    python3 tools/bench/bench.py [--csm .build/release/csm] [--batch 64] [--steps 18] [--repeats 3]

Runs, one after the other on this machine:
  1. `csm bench-kernels`: csm's kernels at the default model's shapes (one core);
  2. `csm sample` on the default model: --batch images, --steps Heun steps, mixed labels,
     --repeats times (median reported), with csm's per-kernel profile of the last run;
  3. tools/bench/bench_torch.py: the same job in PyTorch on the CPU, 2 threads, with the PyTorch
     port of the network in tools/reference/edm_torch.py;
and prints the machine, both images/s, GFLOP/s, peak memory and the ratio. Then the loader
against a PyTorch DataLoader, `csm train` against examples/pytorch/train.py (ResNet-20,
batch 128, without and with mixed samples, the two in turn --repeats times: median images/s
and peak memory), and the CSM paper's
network (EDM's 56 M-parameter DDPM++, random weights from tools/bench/make_paper_model.py) at
batch 16 and 64: csm fp32, csm bf16 and PyTorch in turn --repeats times, median
image-evaluations/s, GFLOP/s and peak memory; last, attribution's
per-sample gradients on the default model (`csm attribute index` against torch.func in
tools/bench/bench_das_torch.py): images x noise levels per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "Datasets", "fashion-mnist", "fashion-mnist-edm-vp32.safetensors")


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            memory = f"{int(f.readline().split()[1]) / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {os.cpu_count()} cores, {memory}, {platform.system()} {platform.release()}"


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def run_csm(csm: str, args, profile: bool) -> dict:
    seeds = f"0-{args.batch - 1}"
    command = [csm, "sample", "--model", MODEL, "--seeds", seeds, "--mix", "7:9:0.7", "--batch", str(args.batch),
               "--steps", str(args.steps), "--json"]
    if profile:
        command.append("--profile")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench: csm sample failed: {done.stderr.strip()}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csm", default=os.path.join(ROOT, ".build", "release", "csm"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=18)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-kernels", action="store_true", help="leave out the per-kernel table")
    parser.add_argument("--loader-data", default=os.path.join(ROOT, "demo-out", "data"),
                        help="shards for the loader benchmark (make bench generates the demo set)")
    parser.add_argument("--train-real", default=os.path.join(ROOT, "demo-out", "real-train"),
                        help="real shards for the training benchmark (make bench imports Fashion-MNIST train)")
    parser.add_argument("--train-steps", type=int, default=40, help="optimiser steps per training run")
    parser.add_argument("--paper-model", default=os.path.join(ROOT, "bench-out", "edm-cifar10-32x32-cond-vp.random.safetensors"),
                        help="the paper-scale network (made by tools/bench/make_paper_model.py when missing)")
    parser.add_argument("--paper-batches", type=lambda text: [int(b) for b in text.split(",")], default=[16, 64],
                        help="batch sizes for the paper network, comma-separated (default 16,64: csm's default batch)")
    parser.add_argument("--das-images", type=int, default=16, help="training images for the attribution benchmark")
    parser.add_argument("--only", choices=["sampling", "loader", "training", "paper", "attribution"],
                        help="run one part alone (e.g. --only training: csm train against examples/pytorch/train.py)")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}  (figures are only comparable on an idle machine)")
    if args.only in (None, "sampling"):
        bench_sampling(args)
    if args.only in (None, "loader") and os.path.exists(args.loader_data):
        bench_loader(args)
    if args.only in (None, "training") and os.path.exists(args.train_real):
        bench_training(args)
    if args.only in (None, "paper"):
        bench_paper(args)
    if args.only in (None, "attribution") and os.path.exists(args.train_real):
        bench_attribution(args)
    if args.only in ("training", "paper", "attribution"):
        print(f"load average after: {load_average()}")
    return 0


def bench_sampling(args) -> None:
    """csm sample against tools/bench/bench_torch.py on the default model, with csm's kernel table."""
    print(f"job: default Fashion-MNIST model (VP SongUNet, 1.75 M parameters), batch {args.batch}, "
          f"{args.steps} Heun steps ({2 * args.steps - 1} evaluations per image)\n")

    if not args.skip_kernels:
        kernels = subprocess.run([args.csm, "bench-kernels"], capture_output=True, text=True)
        print(kernels.stdout)

    runs = [run_csm(args.csm, args, profile=(i == args.repeats - 1)) for i in range(args.repeats)]
    csm_rate = statistics.median(r["images_per_s"] for r in runs)
    profile = [line for line in runs[-1]["stderr"].splitlines() if line.startswith("  ")]
    print("csm per-kernel profile (CPU-seconds summed over threads, last run):")
    print("\n".join(profile) + "\n")

    torch_command = [sys.executable, os.path.join(ROOT, "tools", "bench", "bench_torch.py"), "--model", MODEL,
                     "--batch", str(args.batch), "--steps", str(args.steps), "--threads", "2",
                     "--repeats", str(args.repeats)]
    done = subprocess.run(torch_command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench: PyTorch peer failed: {done.stderr.strip()}")
    peer = json.loads(done.stdout.strip().splitlines()[-1])

    last = runs[-1]
    print(f"{'':<28}{'images/s':>10}{'GFLOP/s':>10}{'peak MiB':>10}")
    print(f"{'csm (' + last['blas_core'] + ' BLAS, ' + str(last['threads']) + ' threads)':<28}"
          f"{csm_rate:>10.2f}{last['gflop_per_s'] * csm_rate / last['images_per_s']:>10.1f}{last['peak_rss_mib']:>10.0f}")
    gflop_per_image = last["gflop_per_s"] / last["images_per_s"]
    print(f"{'PyTorch ' + peer['torch'] + ' (2 threads)':<28}{peer['images_per_s']:>10.2f}"
          f"{peer['images_per_s'] * gflop_per_image:>10.1f}{peer['peak_rss_mib']:>10.0f}")
    print(f"\nratio csm / PyTorch: {csm_rate / peer['images_per_s']:.2f}x  "
          f"(PyTorch single evaluations: {peer['evals_per_s_images']:.0f} images/s)")
    if peer.get("other_load") and peer["other_load"] > 0.1:
        print(f"warning: other processes used {peer['other_load']:.2f} cores during the PyTorch run")
    print(f"load average after: {load_average()}")


def bench_loader(args) -> None:
    """The csm loader against a PyTorch DataLoader on the demo shards."""
    print(f"\nloader: {args.loader_data}, batch 128, random crop (pad 2) + flip + normalise, warm cache")
    swift = subprocess.run([args.csm, "bench-loader", args.loader_data, "--json", "--epochs", "20"], capture_output=True, text=True)
    torch_loader = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench", "bench_loader_torch.py"), args.loader_data,
                                   "--epochs", "5", "--workers", "2"], capture_output=True, text=True)
    if swift.returncode != 0 or torch_loader.returncode != 0:
        sys.exit(f"bench: loader benchmark failed: {swift.stderr.strip()} {torch_loader.stderr.strip()}")
    s_rate = json.loads(swift.stdout.strip().splitlines()[-1])["images_per_s"]
    t_rate = json.loads(torch_loader.stdout.strip().splitlines()[-1])["images_per_s"]
    print(f"{'csm loader (2 threads)':<34}{s_rate:>12.0f} images/s")
    print(f"{'PyTorch DataLoader (2 workers)':<34}{t_rate:>12.0f} images/s")
    print(f"ratio csm / PyTorch: {s_rate / t_rate:.1f}x")


def bench_training(args) -> None:
    """csm train against examples/pytorch/train.py: ResNet-20, batch 128, the same shards and
    recipe (crop + flip, SGD), without and with mixed samples (--loss csm, 1 + 1 per real).
    The two run one after the other, --repeats times in turn (so a neighbour's load on a shared
    machine falls on both alike); the medians are compared."""
    print(f"\ntraining: ResNet-20 on {args.train_real}, batch 128 real images, crop + flip, SGD, "
          f"{args.train_steps} steps (2 threads), csm and PyTorch in turn, {args.repeats} times each")
    print(f"{'':<34}{'images/s (each run)':>28}{'median':>9}{'peak MiB':>10}")
    out = os.path.join(ROOT, "bench-out")
    os.makedirs(out, exist_ok=True)
    cases = [("real only", ["--loss", "ce"])]
    if os.path.exists(args.loader_data):
        cases.append(("real + mixed (csm)", ["--loss", "csm", "--mixed", args.loader_data, "--clip", "2", "--skip-unpaired"]))
    for name, extra in cases:
        common = ["--real", args.train_real, "--arch", "resnet20", "--batch", "128", "--max-steps", str(args.train_steps),
                  "--epochs", "1", "--val-fraction", "0", "--json"] + extra
        model = os.path.join(out, "train-bench.safetensors")
        runs = {"csm": [], "torch": []}
        for _ in range(args.repeats):
            for leftover in (model, model + ".checkpoint"):
                if os.path.exists(leftover):
                    os.remove(leftover)
            swift = subprocess.run([args.csm, "train", *common, "--keep", "last", "--out", model], capture_output=True, text=True)
            torch_run = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "pytorch", "train.py"), *common, "--threads", "2",
                                        "--no-validation"], capture_output=True, text=True)
            if swift.returncode != 0 or torch_run.returncode != 0:
                sys.exit(f"bench: training benchmark failed: {swift.stderr.strip()[-400:]} {torch_run.stderr.strip()[-400:]}")
            runs["csm"].append(json.loads(swift.stdout.strip().splitlines()[-1]))
            runs["torch"].append(json.loads(torch_run.stdout.strip().splitlines()[-1]))
        medians = {}
        for side, label in (("csm", "csm train, " + name), ("torch", f"PyTorch {runs['torch'][0]['torch']}, {name}")):
            rates = [r["images_per_second"] for r in runs[side]]
            medians[side] = statistics.median(rates)
            memory = max(r["peak_memory_mib"] for r in runs[side])
            print(f"{label:<34}{' '.join(f'{v:.0f}' for v in rates):>28}{medians[side]:>9.1f}{memory:>10.0f}")
        pairs = " ".join(f"{c['images_per_second'] / t['images_per_second']:.2f}" for c, t in zip(runs["csm"], runs["torch"]))
        print(f"ratio csm / PyTorch, {name}: {medians['csm'] / medians['torch']:.2f}x (medians; run by run: {pairs})")


def bench_attribution(args) -> None:
    """Per-sample gradients of the default model, the cost of DAS indexing: csm attribute index
    with exact gradients (--proj-dim 0, --weight none: gradients, their norms and the average;
    its gradient stage from --profile, and the whole run with loading and writing) against
    tools/bench/bench_das_torch.py (torch.func vmap(grad), the same quantities, warm), images x noise
    levels per second."""
    levels, count = 10, args.das_images
    out = os.path.join(ROOT, "bench-out")
    subset = os.path.join(out, f"das-train{count}")
    print(f"\nattribution: per-sample gradients of the default model (1.75 M parameters), {count} Fashion-MNIST training images "
          f"x {levels} noise levels (2 threads)")
    if not os.path.exists(os.path.join(subset, "manifest.json")):
        total = json.load(open(os.path.join(args.train_real, "manifest.json")))
        samples = sum(entry["count"] for entry in total["shards"])
        split = subprocess.run([args.csm, "split", args.train_real, "--fraction", repr(count / samples), "--seed", "1", "--out", subset],
                               capture_output=True, text=True)
        if split.returncode != 0:
            sys.exit(f"bench: csm split failed: {split.stderr.strip()[-400:]}")
    features = os.path.join(out, "das-bench.h5")
    for leftover in (features, features + ".kernel.h5"):
        if os.path.exists(leftover):
            os.remove(leftover)
    started = time.perf_counter()
    swift = subprocess.run(["/usr/bin/time", "-f", "%M", args.csm, "attribute", "index", "--train", subset, "--out", features,
                            "--proj-dim", "0", "--weight", "none", "--levels", str(levels), "--batch", str(count), "--profile"],
                           capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if swift.returncode != 0:
        sys.exit(f"bench: csm attribute index failed: {swift.stderr.strip()[-400:]}")
    lines = swift.stderr.strip().splitlines()
    csm_peak = int(lines[-1]) / 1024
    # The gradient stage's wall seconds, from --profile's table ("  das: gradients   2.962 s   1 calls").
    stage = [line.split() for line in lines if line.strip().startswith("das: gradients")]
    if not stage:
        sys.exit("bench: csm attribute index --profile printed no gradient stage")
    gradient_seconds = float(stage[0][2])
    torch_run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench", "bench_das_torch.py"), "--images", str(count),
                                "--levels", str(levels), "--batch", "8", "--threads", "2"], capture_output=True, text=True)
    if torch_run.returncode != 0:
        sys.exit(f"bench: tools/bench/bench_das_torch.py failed: {torch_run.stderr.strip()[-400:]}")
    t = json.loads(torch_run.stdout.strip().splitlines()[-1])
    csm_rate = count * levels / gradient_seconds
    print(f"{'':<40}{'grads/s':>10}{'peak MiB':>10}")
    print(f"{'csm attribute index, gradient stage':<40}{csm_rate:>10.2f}{csm_peak:>10.0f}")
    print(f"{'csm attribute index, whole run':<40}{count * levels / seconds:>10.2f}")
    print(f"{'PyTorch ' + t['torch'] + ' torch.func':<40}{t['gradients_per_s']:>10.2f}{t['peak_rss_mib']:>10.0f}")
    print(f"ratio csm / PyTorch: {csm_rate / t['gradients_per_s']:.2f}x (gradient stage), "
          f"{count * levels / seconds / t['gradients_per_s']:.2f}x (whole run: loading, gradients, writing {count} exact feature rows)")


def bench_paper(args) -> None:
    """The CSM paper's network (EDM's edm-cifar10-32x32-cond-vp architecture, random weights):
    csm sample at fp32 and at bf16 against tools/bench/bench_torch.py (fp32) at each of
    --paper-batches (16 and csm's default 64), 2 Heun steps (3 evaluations per image), sampling
    time only. The three run in turn --repeats times (a neighbour's load then falls on all of
    them) and the medians are compared; csm's kernel tables are from its last runs."""
    if not os.path.exists(args.paper_model):
        made = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench", "make_paper_model.py"), "--out", args.paper_model],
                              capture_output=True, text=True)
        if made.returncode != 0:
            sys.exit(f"bench: tools/bench/make_paper_model.py failed: {made.stderr.strip()[-400:]}")
    for batch in args.paper_batches:
        bench_paper_batch(args, batch, profile=(batch == args.paper_batches[0]))


def bench_paper_batch(args, batch: int, profile: bool) -> None:
    """One batch size of `bench_paper`."""
    steps = 2
    evaluations = 2 * steps - 1
    print(f"\npaper network: DDPM++ (VP, 55.7 M parameters, 32x32x3, 10 classes; random weights), batch {batch}, "
          f"{evaluations} evaluations per image, sampling time only (2 threads), csm fp32, csm bf16 and PyTorch in turn, "
          f"{args.repeats} times each")
    def run_csm(precision: str) -> dict:
        done = subprocess.run([args.csm, "sample", "--model", args.paper_model, "--seeds", f"0-{batch - 1}", "--class", "1",
                               "--steps", str(steps), "--batch", str(batch), "--precision", precision, "--json", "--profile"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"bench: csm sample --precision {precision} on the paper network failed: {done.stderr.strip()[-400:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["profile"] = [line for line in done.stderr.splitlines() if line.startswith("  ")]
        return result

    def run_torch() -> dict:
        done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench", "bench_torch.py"), "--model", args.paper_model,
                               "--batch", str(batch), "--steps", str(steps), "--threads", "2", "--repeats", "1", "--evals", "3"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"bench: PyTorch peer on the paper network failed: {done.stderr.strip()[-400:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    runs = {"fp32": [], "bf16": [], "torch": []}
    for _ in range(args.repeats):
        runs["fp32"].append(run_csm("fp32"))
        runs["bf16"].append(run_csm("bf16"))
        runs["torch"].append(run_torch())
    for precision in ("fp32", "bf16") if profile else ():
        print(f"csm {precision} per-kernel profile (CPU-seconds summed over threads, last run):")
        print("\n".join(runs[precision][-1]["profile"]))
    rates = {name: [r["images_per_s"] * evaluations for r in results] for name, results in runs.items()}
    medians = {name: statistics.median(values) for name, values in rates.items()}
    s = runs["fp32"][-1]
    gflop_per_evaluation = s["gflop_per_s"] / (s["images_per_s"] * evaluations)
    labels = {"fp32": f"csm fp32 ({s['blas_core']} BLAS)", "bf16": "csm bf16 (oneDNN)", "torch": f"PyTorch {runs['torch'][-1]['torch']} fp32"}
    print(f"{'':<34}{'image-evals/s (each run)':>26}{'median':>9}{'GFLOP/s':>9}{'peak MiB':>10}")
    for name in ("fp32", "bf16", "torch"):
        each = " ".join(f"{v:.2f}" for v in rates[name])
        peak = max(r["peak_rss_mib"] for r in runs[name])
        print(f"{labels[name]:<34}{each:>26}{medians[name]:>9.2f}{medians[name] * gflop_per_evaluation:>9.1f}{peak:>10.0f}")
    for precision in ("fp32", "bf16"):
        pairs = " ".join(f"{c / t:.2f}" for c, t in zip(rates[precision], rates["torch"]))
        print(f"ratio csm {precision} / PyTorch fp32, paper network, batch {batch}: {medians[precision] / medians['torch']:.2f}x "
              f"(medians; run by run: {pairs})")

if __name__ == "__main__":
    sys.exit(main())
