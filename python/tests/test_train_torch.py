"""examples/pytorch/train.py (the PyTorch twin of csm train): csm's draws reproduced, and a short
run end to end (needs PyTorch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, mixed_columns, real_columns, write_shard

EXAMPLE = os.path.join(ROOT, "examples", "pytorch")
sys.path.insert(0, EXAMPLE)
torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
import train  # noqa: E402


def test_loader_random_matches_csm():
    # The same values are pinned in Tests/CSMTrainingTests (LoaderRandomPinTests).
    random = train.LoaderRandom(7, 3, 11)
    assert [random.next() for _ in range(3)] == [0xAEAA7F27241D9E13, 0x83881DCAA83A352B, 0xF70C1FF719F41974]
    assert train.LoaderRandom(0, 0x56414C4944415445).permutation(10) == [0, 8, 4, 1, 5, 6, 3, 2, 9, 7]
    assert train.LoaderRandom(5, 2, 0x53485546).permutation(12) == [2, 3, 4, 7, 11, 10, 9, 0, 5, 8, 6, 1]


def test_transform_is_csms_crop_flip_and_normalisation():
    rng = np.random.default_rng(0)
    mean, std = np.array([0.3, 0.5], np.float32), np.array([0.2, 0.4], np.float32)
    for trial in range(50):
        image = rng.integers(0, 256, (6, 7, 2), dtype=np.uint8)
        got = train.transform(image, mean, std, 4, True, train.LoaderRandom(1, 2, trial))
        random = train.LoaderRandom(1, 2, trial)
        dy, dx, flip = random.below(9) - 4, random.below(9) - 4, random.next() & 1 == 1
        expected = np.empty((2, 6, 7), np.float32)
        for c in range(2):
            for y in range(6):
                for x in range(7):
                    sy, sx = y + dy, (6 - x if flip else x) + dx
                    inside = 0 <= sy < 6 and 0 <= sx < 7
                    expected[c, y, x] = ((image[sy, sx, c] / 255 if inside else 0) - mean[c]) / std[c]
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_short_csm_run_writes_a_classifier(tmp_path):
    real = write_shard(str(tmp_path / "real.h5"), real_columns([0, 1, 2] * 8, num_classes=3, image_shape=(8, 8, 1)),
                       kind="real", class_names=["a", "b", "c"], sharpness=float("nan"))
    mixed = write_shard(str(tmp_path / "mixed.h5"), mixed_columns([(0, 1), (1, 2)], num_classes=3, image_shape=(8, 8, 1)),
                        class_names=["a", "b", "c"])
    out = str(tmp_path / "model.safetensors")
    done = subprocess.run([sys.executable, os.path.join(EXAMPLE, "train.py"), "--real", real, "--mixed", mixed,
                           "--loss", "csm-bsce-gra", "--epochs", "2", "--batch", "8", "--clip", "2", "--threads", "1",
                           "--val-fraction", "0.25", "--json", "--out", out], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[-1]["steps"] == 6 and np.isfinite(records[-1]["train_loss"]) and "val_ece" in records[-1]
    from safetensors import safe_open
    with safe_open(out, "pt") as f:
        metadata = f.metadata()
        assert metadata["format"] == "resnet-classifier/1"
        assert json.loads(metadata["resnet"])["layers"] == [3, 3, 3]
        assert f.get_tensor("fc.weight").shape == (3, 64)


def test_consistent_only_and_mixed_share_draw_as_csm(tmp_path):
    """--consistent-only keeps inconsistent samples out of every group; --mixed-share 0.5
    keeps the groups of the positions csm's loader keeps (LoaderTests pins the same list)."""
    from argparse import Namespace
    real = write_shard(str(tmp_path / "real.h5"), real_columns([0, 1, 2] * 8, num_classes=3, image_shape=(8, 8, 1)),
                       kind="real", class_names=["a", "b", "c"], sharpness=float("nan"))
    columns = mixed_columns([(0, 1), (1, 2), (2, 0)], groups_per_pair=3, num_classes=3, image_shape=(8, 8, 1))
    mixed = write_shard(str(tmp_path / "mixed.h5"), columns, class_names=["a", "b", "c"])
    args = Namespace(real=real, mixed=mixed, seed=2, val_fraction=0.25, sharpness=None, skip_unpaired=False, n_aug=2,
                     consistent_only=True, mixed_share=0.5, batch=8, no_augment=True)
    data = train.Data(args)
    kept = [p for p in range(24) if data.group(data.train[0], p, 1)]
    assert kept == [0, 4, 5, 10, 11, 16, 17, 18, 20, 21, 22, 23]
    for p in range(200):
        for m in data.group(data.train[p % len(data.train)], p, 0):
            assert columns["consistent"][m] == 1
