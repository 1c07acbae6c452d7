#!/usr/bin/env python3
"""Recomputes the calibration study's test accuracy and ECE with PyTorch: every classifier
listed in docs/calibration/fashion-mnist.json (pending runs skipped) is loaded into the ResNet
of examples/pytorch/train.py (torchvision parameter names), run on the test shards, and
compared with the table.

    python3 tools/study/check_study_torch.py --test study-out/real-test [--tolerance 0.0001]

Exit status 1 when any accuracy or ECE differs from the committed table by more than the
tolerance (0.01 pt by default).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples", "pytorch"))
from train import ResNet, all_images  # noqa: E402
from csm_shards import CSMShards  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """ECE with equal-width bins (lo, hi] over the top-class confidence, as csm computes it."""
    confidence = probabilities.max(1)
    correct = (probabilities.argmax(1) == labels).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64), 1, bins) - 1
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += abs(correct[members].mean() - confidence[members].mean()) * members.mean()
    return float(total)


def classify(path: str, images: np.ndarray) -> np.ndarray:
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    config = json.loads(metadata["resnet"])
    model = ResNet(config["block"], config["layers"], config["widths"], config["stem"], config["in_channels"],
                   config["num_classes"])
    model.load_state_dict(load_file(path))
    model.eval()
    normalisation = json.loads(metadata["input"])
    mean = np.asarray(normalisation["mean"], np.float32)
    std = np.asarray(normalisation["std"], np.float32)
    x = (images.astype(np.float32) * np.float32(normalisation["scale"]) - mean) / std
    x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 500]) for i in range(0, len(x), 500)])
    return logits.double().softmax(1).numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=os.path.join(ROOT, "docs", "calibration", "fashion-mnist.json"))
    parser.add_argument("--test", required=True, help="the test shards (csm import fashion-mnist --split test)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest difference allowed (0.01 pt)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    table = json.load(open(args.table))
    shards = CSMShards(args.test, kind="real")
    images, labels = all_images(shards), shards.column("class_a").astype(np.int64)
    worst, failed = 0.0, False
    for regime, entry in table["regimes"].items():
        for loss, rows in entry["methods"].items():
            for row in rows:
                if row.get("pending"):
                    continue
                probabilities = classify(os.path.join(ROOT, row["model"]), images)
                accuracy = float((probabilities.argmax(1) == labels).mean())
                ece = expected_calibration_error(probabilities, labels, table.get("bins", 15))
                difference = max(abs(accuracy - row["accuracy"]), abs(ece - row["ece"]))
                worst = max(worst, difference)
                ok = difference <= args.tolerance
                failed |= not ok
                print(f"{'ok  ' if ok else 'DIFF'} {row['model']}: accuracy {accuracy * 100:.2f}% "
                      f"(table {row['accuracy'] * 100:.2f}%), ECE {ece * 100:.3f}% (table {row['ece'] * 100:.3f}%)")
    print(f"largest difference {worst * 100:.4f} pt (tolerance {args.tolerance * 100:.2f} pt)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
