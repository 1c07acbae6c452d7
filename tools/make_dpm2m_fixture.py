"""Write the DPM-Solver++(2M) reference for csm's sampler tests.

    python3 tools/make_dpm2m_fixture.py [--steps 12]

Runs tools/edm_torch.py's `dpm_solver_2m` (PyTorch, float64 state) with the default
Fashion-MNIST model on the latents and class labels of
Tests/Fixtures/edm/fashion-mnist-edm-vp32.sample.safetensors and writes
Tests/Fixtures/edm/fashion-mnist-edm-vp32.dpm2m.safetensors: latents, class_labels,
images (float32 [N,1,28,28]) and steps (the number of evaluations).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edm_torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "Tests", "Fixtures", "edm")
MODEL = os.path.join(REPO, "Datasets", "fashion-mnist", "fashion-mnist-edm-vp32.safetensors")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12, help="noise levels = network evaluations")
    args = parser.parse_args()
    source = load_file(os.path.join(FIXTURES, "fashion-mnist-edm-vp32.sample.safetensors"))
    net = edm_torch.load_edm(MODEL)
    with torch.inference_mode():
        images = edm_torch.dpm_solver_2m(net, source["latents"], source["class_labels"], num_steps=args.steps)
    out = os.path.join(FIXTURES, "fashion-mnist-edm-vp32.dpm2m.safetensors")
    save_file({"latents": source["latents"], "class_labels": source["class_labels"],
               "images": images.to(torch.float32).contiguous(), "steps": torch.tensor([args.steps], dtype=torch.int64)}, out)
    print(f"wrote {out}: {images.shape[0]} images, {args.steps} evaluations each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
