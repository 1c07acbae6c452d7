"""Write a randomly initialised copy of the network the CSM paper sampled from, for benchmarks.

    python3 tools/bench/make_paper_model.py [--out bench-out/edm-cifar10-32x32-cond-vp.random.safetensors] [--seed 0]

The architecture is EDM's `edm-cifar10-32x32-cond-vp` (train.py --arch=ddpmpp --precond=vp
--cond=1 --augment=0.12): VPPrecond around a DDPM++ SongUNet, 32x32x3, 10 classes,
128 channels x [2, 2, 2], 4 blocks per resolution, attention at 16x16, augment_dim 9,
about 56 M parameters. Weights are random (PyTorch's initialisation, perturbed so that
every tensor affects the output): the file measures speed, not images. It is an
`edm-diffusion/1` file like the converted ones (tools/reference/convert_edm_pkl.py), about 224 MB;
keep it out of git (bench-out/ is ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))
import convert_edm_pkl  # noqa: E402
import edm_torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "bench-out", "edm-cifar10-32x32-cond-vp.random.safetensors")

# EDM's training/networks.py VPPrecond keywords as train.py sets them for this network.
CONFIG = {
    "class_name": "VPPrecond",
    "init_kwargs": {
        "img_resolution": 32, "img_channels": 3, "label_dim": 10, "use_fp16": False,
        "beta_d": 19.9, "beta_min": 0.1, "M": 1000, "epsilon_t": 1e-5, "model_type": "SongUNet",
        "embedding_type": "positional", "encoder_type": "standard", "decoder_type": "standard",
        "channel_mult_noise": 1, "resample_filter": [1, 1], "model_channels": 128, "channel_mult": [2, 2, 2],
        "augment_dim": 9, "dropout": 0.13,
    },
}
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    net = edm_torch.build_network(CONFIG["class_name"], dict(CONFIG["init_kwargs"]))
    convert_edm_pkl._randomize(net, args.seed)
    parameters = sum(p.numel() for p in net.parameters())
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    metadata = {"format": edm_torch.FORMAT, "edm": json.dumps(CONFIG), "class_names": json.dumps(CLASS_NAMES),
                "provenance": f"tools/bench/make_paper_model.py --seed {args.seed}: random weights, EDM's "
                              "edm-cifar10-32x32-cond-vp architecture (for benchmarks only)"}
    convert_edm_pkl.write_safetensors_atomic(args.out, convert_edm_pkl.export_tensors(net, "f32"), metadata)
    print(f"wrote {args.out}: {parameters / 1e6:.1f} M parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
