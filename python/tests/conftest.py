"""Test helpers: tiny csm-shard/1 files written with h5py exactly as csm writes them.

`write_shard` writes every dataset chunked with shuffle + deflate + Fletcher-32 and every
root attribute (variable-length UTF-8 strings, int64 integers, float64 sharpness); its
`dtypes`, `drop` and `attrs` arguments break the schema on purpose. `mixed_columns` and
`real_columns` make the per-sample columns of generated trajectories and of a real dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterable, Sequence

import h5py
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the csm checkout

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IMAGE_SHAPE = (6, 5, 1)
SCHEMA_DTYPES = {
    "images": np.uint8, "labels": np.float32, "class_a": np.int32, "class_b": np.int32, "lambda_gen": np.float32,
    "lambda_proj": np.float32, "prob_a": np.float32, "prob_b": np.float32, "consistent": np.uint8,
    "group": np.int64, "seed": np.int64,
}


def csm_labels(class_a: np.ndarray, class_b: np.ndarray, lambda_proj: np.ndarray, num_classes: int,
               sharpness: float) -> np.ndarray:
    """Soft labels as csm's generator writes them: λ' in float64, rounded to float32, on a; 1 − λ' on b."""
    labels = np.zeros((len(class_a), num_classes), dtype=np.float32)
    for i, (a, b, p) in enumerate(zip(class_a, class_b, lambda_proj)):
        if b < 0:
            labels[i, a] = 1
            continue
        ratio = 0.5 if not np.isfinite(p) else min(1.0, max(0.0, 1 / (1 + np.exp(-sharpness * (float(p) - 0.5)))))
        labels[i, a] += np.float32(ratio)
        labels[i, b] += np.float32(1) - np.float32(ratio)
    return labels


def mixed_columns(pairs: Sequence[tuple[int, int]], groups_per_pair: int = 2, lambdas: int = 5,
                  num_classes: int = 10, sharpness: float = 10.0, first_group: int = 0, seed: int = 0,
                  image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> dict[str, np.ndarray]:
    """Columns of `groups_per_pair` trajectories of `lambdas` samples for each pair, groups
    numbered from `first_group`, λ = linspace(0, 1, lambdas)."""
    rng = np.random.default_rng(seed)
    groups = len(pairs) * groups_per_pair
    n = groups * lambdas
    group = np.repeat(np.arange(first_group, first_group + groups, dtype=np.int64), lambdas)
    pair_of = np.repeat(np.array(pairs, dtype=np.int32), groups_per_pair * lambdas, axis=0)
    lambda_gen = np.tile(np.array([i / (lambdas - 1) for i in range(lambdas)], dtype=np.float32), groups)
    lambda_proj = (lambda_gen + rng.normal(0, 0.3, n)).astype(np.float32)
    columns = {
        "images": rng.integers(0, 256, size=(n, *image_shape), dtype=np.uint8),
        "class_a": pair_of[:, 0].copy(), "class_b": pair_of[:, 1].copy(),
        "lambda_gen": lambda_gen, "lambda_proj": lambda_proj,
        "prob_a": rng.uniform(0, 1, n).astype(np.float32), "prob_b": rng.uniform(0, 1, n).astype(np.float32),
        "consistent": (rng.uniform(0, 1, n) < 0.7).astype(np.uint8),
        "group": group, "seed": (group * 1_000_003 + 17).astype(np.int64),
    }
    columns["labels"] = csm_labels(columns["class_a"], columns["class_b"], lambda_proj, num_classes, sharpness)
    return columns


def real_columns(classes: Iterable[int], num_classes: int = 10, seed: int = 1,
                 image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> dict[str, np.ndarray]:
    """Columns of a real dataset: one-hot labels, class_b = −1, λ = 1, λ̂ = NaN, group = seed = −1."""
    classes = np.asarray(list(classes), dtype=np.int32)
    n = len(classes)
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, num_classes), dtype=np.float32)
    labels[np.arange(n), classes] = 1
    return {
        "images": rng.integers(0, 256, size=(n, *image_shape), dtype=np.uint8), "labels": labels,
        "class_a": classes, "class_b": np.full(n, -1, np.int32),
        "lambda_gen": np.ones(n, np.float32), "lambda_proj": np.full(n, np.nan, np.float32),
        "prob_a": np.ones(n, np.float32), "prob_b": np.zeros(n, np.float32), "consistent": np.ones(n, np.uint8),
        "group": np.full(n, -1, np.int64), "seed": np.full(n, -1, np.int64),
    }


def write_shard(path: str, columns: dict[str, np.ndarray], *, kind: str = "mixed",
                class_names: Sequence[str] = CLASS_NAMES, sharpness: float = 10.0, shard_index: int = 0,
                num_shards: int = 1, dtypes: dict[str, Any] | None = None, drop: Iterable[str] = (),
                attrs: dict[str, Any] | None = None) -> str:
    """Writes a csm-shard/1 file. `dtypes` overrides a dataset's type, `drop` leaves
    datasets out, `attrs` overrides root attributes (None removes one)."""
    dtypes, drop = dtypes or {}, set(drop)
    string = h5py.string_dtype("utf-8")
    with h5py.File(path, "w", libver=("earliest", "v108"), track_order=True) as f:
        values: dict[str, Any] = {
            "schema": "csm-shard/1", "kind": kind, "num_classes": np.int64(len(class_names)),
            "class_names": json.dumps(list(class_names)), "sharpness": np.float64(sharpness),
            "generator": json.dumps({"model": "test.safetensors"}), "annotator": json.dumps({"margin": 0.25}),
            "shard_index": np.int64(shard_index), "num_shards": np.int64(num_shards), "created_by": "pytest",
        }
        values.update(attrs or {})
        for name, value in values.items():
            if value is None:
                continue
            if isinstance(value, str):
                f.attrs.create(name, value, dtype=string)
            else:
                f.attrs[name] = value
        for name, dtype in SCHEMA_DTYPES.items():
            if name in drop:
                continue
            data = np.asarray(columns[name]).astype(dtypes.get(name, dtype))
            options = {}
            if len(data):
                options = dict(chunks=(min(len(data), 7),) + data.shape[1:], shuffle=True, compression="gzip",
                               compression_opts=4, fletcher32=True)
            f.create_dataset(name, data=data, **options)
    return path


def write_manifest(directory: str, files: Sequence[tuple[str, int]], *, config: dict[str, Any] | None = None,
                   sha256: dict[str, str] | None = None, counts: dict[str, int] | None = None) -> str:
    """Writes `directory/manifest.json` listing `files` as (file name, shard_index), in the
    order given, with their real counts and SHA-256 unless overridden."""
    shards = []
    for name, index in files:
        path = os.path.join(directory, name)
        with h5py.File(path, "r") as f:
            count = f["images"].shape[0]
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        shards.append({"file": name, "count": (counts or {}).get(name, count),
                       "sha256": (sha256 or {}).get(name, digest), "shard_index": index})
    manifest = os.path.join(directory, "manifest.json")
    with open(manifest, "w") as f:
        json.dump({"schema": "csm-manifest/1", "shards": shards, "config": config or {}}, f, indent=2)
    return manifest


def concat(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The columns of several shards, concatenated."""
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


@pytest.fixture
def mixed_run(tmp_path) -> tuple[str, list[dict[str, np.ndarray]]]:
    """A generate-like run: pairs (7, 9), (0, 6) and (2, 4), 2 trajectories each of 5 samples,
    in three shards whose manifest lists them out of order. Returns (folder, columns per
    shard in shard_index order)."""
    directory = str(tmp_path / "mixed")
    os.makedirs(directory)
    parts = [mixed_columns([(7, 9)], first_group=0, seed=10), mixed_columns([(0, 6)], first_group=2, seed=11),
             mixed_columns([(2, 4)], first_group=4, seed=12)]
    for index, part in enumerate(parts):
        write_shard(os.path.join(directory, f"mixed-{index:05d}.h5"), part, shard_index=index, num_shards=3)
    write_manifest(directory, [("mixed-00002.h5", 2), ("mixed-00000.h5", 0), ("mixed-00001.h5", 1)])
    return directory, parts


@pytest.fixture
def real_run(tmp_path) -> tuple[str, dict[str, np.ndarray]]:
    """An import-like run: 20 real samples of classes 0, 2, 4, 6, 7, 9 in two shards."""
    directory = str(tmp_path / "real")
    os.makedirs(directory)
    classes = [0, 2, 4, 6, 7, 9] * 3 + [7, 9]
    parts = [real_columns(classes[:12], seed=3), real_columns(classes[12:], seed=4)]
    for index, part in enumerate(parts):
        write_shard(os.path.join(directory, f"real-train-{index:05d}.h5"), part, kind="real", sharpness=float("nan"),
                    shard_index=index, num_shards=2)
    write_manifest(directory, [("real-train-00000.h5", 0), ("real-train-00001.h5", 1)])
    return directory, concat(parts)
