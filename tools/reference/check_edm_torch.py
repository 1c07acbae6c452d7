"""Check tools/reference/edm_torch.py against the EDM reference outputs stored in csm's test fixtures.

    python3 tools/reference/check_edm_torch.py [--fixtures Tests/Fixtures/edm]
                                     [--model Datasets/fashion-mnist/fashion-mnist-edm-vp32.safetensors]
                                     [--threads 2]

Checks, one output line each:
  * every `NAME.safetensors` in the fixture folder that has a `NAME.denoise.safetensors`
    (tensors x, sigma, class_labels, denoised computed by EDM's own code): D(x; sigma,
    class_labels) per sample within max|error| <= 1e-4 * (1 + max|ref|);
  * `fashion-mnist-edm-vp32.sample.safetensors` with the default model: the 18-step Heun
    sampler output `images` within 1e-3 max abs, and `denoised_sigma2` = D(2 latents; 2)
    per sample within 1e-4 * (1 + max|ref|).
Exits with status 1 if any check fails (or a file cannot be used), 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edm_torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_FIXTURES = os.path.join(REPO, "Tests", "Fixtures", "edm")
DEFAULT_MODEL = os.path.join(REPO, "Datasets", "fashion-mnist", "fashion-mnist-edm-vp32.safetensors")
SAMPLE_FIXTURE = "fashion-mnist-edm-vp32.sample.safetensors"


def load_tensors(path: str, names: list[str]) -> dict[str, torch.Tensor]:
    """Load the named tensors (as float32) from a fixture file, failing with the file's name."""
    tensors = load_file(path)
    missing = [n for n in names if n not in tensors]
    if missing:
        raise edm_torch.EDMFileError(f"{path}: missing tensors {missing}")
    return {n: tensors[n].to(torch.float32) for n in names}


def per_sample_check(got: torch.Tensor, ref: torch.Tensor, rel: float) -> tuple[bool, float, float]:
    """Per sample: max|got - ref| <= rel * (1 + max|ref|). Returns (ok, worst error, worst error/bound)."""
    err = (got.to(torch.float64) - ref.to(torch.float64)).abs().flatten(1).amax(1)
    bound = rel * (1 + ref.to(torch.float64).abs().flatten(1).amax(1))
    return bool((err <= bound).all()), float(err.max()), float((err / bound).max())


def report(name: str, ok: bool, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    return ok


def check_denoise(model_path: str, ref_path: str) -> bool:
    net = edm_torch.load_edm(model_path)
    t = load_tensors(ref_path, ["x", "sigma", "class_labels", "denoised"])
    with torch.inference_mode():
        got = net(t["x"], t["sigma"], t["class_labels"])
    ok, err, ratio = per_sample_check(got, t["denoised"], 1e-4)
    kind = f"{type(net).__name__}/{type(net.model).__name__}"
    return report(os.path.basename(model_path), ok,
                  f"{kind} D(x; sigma) for {t['x'].shape[0]} samples, max|err| {err:.3g}, "
                  f"worst err/bound {ratio:.3f}")


def check_sample(model_path: str, ref_path: str) -> bool:
    net = edm_torch.load_edm(model_path)
    t = load_tensors(ref_path, ["latents", "class_labels", "images", "denoised_sigma2"])
    ok_all = True
    with torch.inference_mode():
        images = edm_torch.edm_sampler(net, t["latents"], t["class_labels"], num_steps=18)
        err = float((images - t["images"].to(torch.float64)).abs().max())
        ok_all &= report(f"{os.path.basename(ref_path)} images", err <= 1e-3,
                         f"18-step Heun sampler, {t['latents'].shape[0]} samples, max|err| {err:.3g} (bound 1e-3)")
        denoised = net(2 * t["latents"], torch.tensor(2.0), t["class_labels"])
        ok, err, ratio = per_sample_check(denoised, t["denoised_sigma2"], 1e-4)
        ok_all &= report(f"{os.path.basename(ref_path)} denoised_sigma2", ok,
                         f"D(2 latents; sigma=2), max|err| {err:.3g}, worst err/bound {ratio:.3f}")
    return ok_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", default=DEFAULT_FIXTURES, help="folder with the EDM reference fixtures")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="default model, for the sampler check")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if not os.path.isdir(args.fixtures):
        print(f"FAIL  {args.fixtures}: fixture folder not found", file=sys.stderr)
        return 1
    checks = []
    for entry in sorted(os.listdir(args.fixtures)):
        if entry.endswith(".denoise.safetensors"):
            model = os.path.join(args.fixtures, entry[: -len(".denoise.safetensors")] + ".safetensors")
            if os.path.exists(model):
                checks.append((check_denoise, model, os.path.join(args.fixtures, entry)))
    sample_ref = os.path.join(args.fixtures, SAMPLE_FIXTURE)
    if os.path.exists(sample_ref):
        checks.append((check_sample, args.model, sample_ref))
    if not checks:
        print(f"FAIL  {args.fixtures}: no fixtures to check", file=sys.stderr)
        return 1

    failures = 0
    for fn, model, ref in checks:
        try:
            ok = fn(model, ref)
        except (edm_torch.EDMFileError, OSError) as e:
            ok = report(os.path.basename(ref), False, str(e))
        failures += not ok
    print(f"{len(checks) - failures} of {len(checks)} fixture checks passed" if not failures
          else f"{failures} of {len(checks)} fixture checks FAILED", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
