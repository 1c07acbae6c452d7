"""One shard file: opening it, checking it against `csm-shard/1`, reading its datasets.

`_validate` checks a shard's attributes and its datasets' names, element types and shapes
and describes the file as a `ShardInfo`; `_check_labels` and `_check_images` read a whole
dataset in blocks of about `BLOCK_BYTES`; `_read` reads a selection and turns a corrupt
chunk into a `ShardError`. `CSMShards` builds on these.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator

import h5py
import numpy as np

from .errors import ShardError
from .schema import DATASETS, KINDS, LABEL_SUM_TOLERANCE, SHARD_SCHEMA

__all__ = ["ShardInfo"]

#: Bytes read at a time when a check goes through a whole dataset.
BLOCK_BYTES = 1 << 22


@dataclass(frozen=True)
class ShardInfo:
    """One shard file as a CSMShards sees it (`CSMShards.shards`).

    `count` is its number of samples and `image_shape` is (H, W, C); the other fields are its
    root attributes, `class_names` decoded from JSON and `generator`, `annotator` the JSON
    text as stored.
    """

    path: str
    count: int
    kind: str
    num_classes: int
    class_names: tuple[str, ...]
    sharpness: float
    shard_index: int
    num_shards: int
    image_shape: tuple[int, int, int]
    created_by: str
    generator: str
    annotator: str


def _attribute(f: h5py.File, path: str, name: str) -> Any:
    """Root attribute `name` as a Python value (a one-element array unwrapped, bytes decoded);
    a missing or multi-valued one is a ShardError."""
    if name not in f.attrs:
        if name == "schema":
            raise ShardError(path, f"not a {SHARD_SCHEMA} file (no 'schema' attribute)")
        raise ShardError(path, "missing attribute", name)
    value = f.attrs[name]
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ShardError(path, "is not a single value", name)
        value = value.reshape(()).item()
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8", "replace")
    return value


def _string(f: h5py.File, path: str, name: str) -> str:
    """Root attribute `name`, which must be a string."""
    value = _attribute(f, path, name)
    if not isinstance(value, str):
        raise ShardError(path, "is not a string", name)
    return value


def _integer(f: h5py.File, path: str, name: str) -> int:
    """Root attribute `name`, which must be an integer."""
    value = _attribute(f, path, name)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ShardError(path, "is not an integer", name)
    return int(value)


def _number(f: h5py.File, path: str, name: str) -> float:
    """Root attribute `name`, which must be a number."""
    value = _attribute(f, path, name)
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise ShardError(path, "is not a number", name)
    return float(value)


def _open_shard(path: str) -> h5py.File:
    """Opens shard `path` for reading; a missing, non-HDF5 or unreadable file is a ShardError."""
    if not os.path.isfile(path):
        raise ShardError(path, "no such file" if not os.path.exists(path) else "is not a file")
    if not h5py.is_hdf5(path):
        raise ShardError(path, "not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ShardError(path, f"cannot open: {error}") from None


def _validate(f: h5py.File, path: str) -> ShardInfo:
    """Checks a shard's attributes and every dataset's presence, element type and shape."""
    schema = _string(f, path, "schema")
    if schema != SHARD_SCHEMA:
        raise ShardError(path, f"is '{schema}', expected {SHARD_SCHEMA}", "schema")
    kind = _string(f, path, "kind")
    if kind not in KINDS:
        raise ShardError(path, f"is '{kind}', expected mixed or real", "kind")
    num_classes = _integer(f, path, "num_classes")
    try:
        names = json.loads(_string(f, path, "class_names"))
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ShardError(path, "is not a JSON list of strings", "class_names")
    if len(names) != num_classes or num_classes < 1:
        raise ShardError(path, f"has {len(names)} names but num_classes is {num_classes}", "class_names")
    shard_index, num_shards = _integer(f, path, "shard_index"), _integer(f, path, "num_shards")
    if not 0 <= shard_index < num_shards:
        raise ShardError(path, f"shard {shard_index} of {num_shards} is out of range", "shard_index")
    for name in ("generator", "annotator"):
        try:
            json.loads(_string(f, path, name))
        except json.JSONDecodeError:
            raise ShardError(path, "is not valid JSON", name) from None

    image_shape: tuple[int, ...] = ()
    for name, expected in DATASETS.items():
        if name not in f:
            raise ShardError(path, "missing dataset", name)
        dataset = f[name]
        if not isinstance(dataset, h5py.Dataset):
            raise ShardError(path, "is not a dataset", name)
        actual = dataset.dtype
        if actual.kind not in "uif" or (actual.kind, actual.itemsize) != (expected.kind, expected.itemsize):
            description = actual.name if actual.kind in "uif" else f"of type {actual}"
            raise ShardError(path, f"is {description}, expected {expected.name}", name)
        shape = tuple(dataset.shape)
        if name == "images":
            if len(shape) != 4 or min(shape[1:]) < 1:
                raise ShardError(path, f"has shape {list(shape)}, expected [N, H, W, C]", name)
            image_shape = shape
            continue
        wanted = (image_shape[0], num_classes) if name == "labels" else (image_shape[0],)
        if shape != wanted:
            raise ShardError(path, f"has shape {list(shape)}, expected {list(wanted)}", name)
    return ShardInfo(path=path, count=image_shape[0], kind=kind, num_classes=num_classes, class_names=tuple(names),
                     sharpness=_number(f, path, "sharpness"), shard_index=shard_index, num_shards=num_shards,
                     image_shape=(image_shape[1], image_shape[2], image_shape[3]),
                     created_by=_string(f, path, "created_by"), generator=_string(f, path, "generator"),
                     annotator=_string(f, path, "annotator"))


def _read(source: h5py.File | h5py.Dataset, path: str, name: str, selection: Any = ()) -> np.ndarray:
    """Reads `selection` of dataset `name` (of file `source`, or `source` itself) in the
    schema's native type; a corrupt chunk (Fletcher-32 mismatch, broken deflate stream)
    becomes a ShardError."""
    try:
        values = (source if isinstance(source, h5py.Dataset) else source[name])[selection]
    except (OSError, RuntimeError) as error:
        raise ShardError(path, f"cannot read: {error}", name) from None
    return np.asarray(values, dtype=DATASETS[name])


def _row_blocks(dataset: h5py.Dataset) -> Iterator[slice]:
    """The rows of `dataset` as slices of about BLOCK_BYTES, whole chunks where it is chunked."""
    count = dataset.shape[0]
    row_bytes = max(1, dataset.dtype.itemsize * math.prod(dataset.shape[1:]))
    step = max(1, BLOCK_BYTES // row_bytes)
    if dataset.chunks:
        step = max(1, step // dataset.chunks[0]) * dataset.chunks[0]
    for start in range(0, count, step):
        yield slice(start, min(count, start + step))


def _check_labels(f: h5py.File, path: str) -> None:
    """Every `labels` row is a probability vector: finite, non-negative and summing to 1
    within LABEL_SUM_TOLERANCE. The first bad row becomes a ShardError."""
    dataset = f["labels"]
    for rows in _row_blocks(dataset):
        labels = _read(dataset, path, "labels", rows)
        with np.errstate(invalid="ignore", over="ignore"):
            sums = labels.sum(axis=1, dtype=np.float64)
            good = (np.isfinite(labels).all(axis=1) & (labels >= 0).all(axis=1)
                    & (abs(sums - 1) <= LABEL_SUM_TOLERANCE))
        if not good.all():
            row = int(np.argmin(good))
            shown = ", ".join(f"{value:.4g}" for value in labels[row, :10]) + (", …" if labels.shape[1] > 10 else "")
            raise ShardError(path, f"row {rows.start + row} holds [{shown}] (sum {sums[row]:.7g}), "
                                   f"expected non-negative numbers summing to 1 within {LABEL_SUM_TOLERANCE}", "labels")


def _check_images(f: h5py.File, info: ShardInfo) -> tuple[int, str | None]:
    """Looks for constant images (every pixel the same value), reading `images` in blocks.

    A generator never makes one, so in a mixed shard they mean that the diffusion model or
    the sampler failed: a ShardError. Real datasets do hold blank images: for a real shard
    the result is (how many, a warning line naming the shard), (0, None) when there are none.
    """
    dataset = f["images"]
    count, first = 0, None
    for rows in _row_blocks(dataset):
        images = _read(dataset, info.path, "images", rows).reshape(rows.stop - rows.start, -1)
        constant = np.flatnonzero((images == images[:, :1]).all(axis=1))
        if len(constant) and first is None:
            first = (rows.start + int(constant[0]), int(images[constant[0], 0]))
        count += len(constant)
    if first is None:
        return 0, None
    what = f"{count} of {info.count} {info.kind} images are constant (first: row {first[0]}, every pixel {first[1]})"
    if info.kind == "mixed":
        raise ShardError(info.path, what + "; no generator makes those: the diffusion model or the sampler failed",
                         "images")
    return count, f"{info.path}: {what}"
