"""Python access to csm's HDF5 shards (`csm-shard/1`), with h5py and numpy only.

`csm generate` writes class-mixed images with soft labels (kind `mixed`) and `csm import`
writes real datasets (kind `real`), each as HDF5 shards plus a `manifest.json`. This module
reads them:

    from csm_shards import CSMShards
    data = CSMShards("data/", consistent_only=True)       # manifest.json, a folder, or one .h5 (see _resolve)
    sample = data[0]            # dict: image uint8 [H, W, C], label float32 [K], class_a, …
    targets = data.soft_labels(sharpness=5.0)              # re-derived from λ̂ for another s

and, for PyTorch users (torch is imported only when these classes are used):

    CSMDataset(path, transform=None, sharpness=None)       # (image [C, H, W], soft label [K])
    PairedCSMDataset(real_path, mixed_path, n_aug=2)       # the CSM paper's real + mixed pairing

From the command line, `csm-shards dump PATH --indices 0,5,17` (or `python3 -m csm_shards`)
prints samples as JSON (image SHA-256 or pixel lists, labels, every column) and `info PATH`
a summary.

Install with `pip install ./python` from a csm checkout (`pip install "./python[torch]"` adds
PyTorch for the datasets).

Shard layout (docs/formats/csm-shard.md): datasets `images` uint8
[N, H, W, C], `labels` float32 [N, K], `class_a`/`class_b` int32 [N], `lambda_gen`,
`lambda_proj`, `prob_a`, `prob_b` float32 [N], `consistent` uint8 [N], `group`/`seed`
int64 [N]; root attributes `schema` = csm-shard/1, `kind`, `num_classes`, `class_names`
(JSON), `sharpness`, `generator`, `annotator`, `shard_index`, `num_shards`, `created_by`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import operator
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import h5py
import numpy as np

__version__ = "0.1.0"

__all__ = [
    "SHARD_SCHEMA", "MANIFEST_SCHEMA", "DATASETS", "SAMPLE_KEYS", "ShardError", "ShardInfo", "CSMShards",
    "calibrated_ratio", "describe_missing", "TrajectoryPairing", "CSMDataset", "PairedCSMDataset",
]

SHARD_SCHEMA = "csm-shard/1"
MANIFEST_SCHEMA = "csm-manifest/1"

#: Every dataset of a shard with its element type, in the order csm writes them.
DATASETS: dict[str, np.dtype] = {
    "images": np.dtype(np.uint8),
    "labels": np.dtype(np.float32),
    "class_a": np.dtype(np.int32),
    "class_b": np.dtype(np.int32),
    "lambda_gen": np.dtype(np.float32),
    "lambda_proj": np.dtype(np.float32),
    "prob_a": np.dtype(np.float32),
    "prob_b": np.dtype(np.float32),
    "consistent": np.dtype(np.uint8),
    "group": np.dtype(np.int64),
    "seed": np.dtype(np.int64),
}

#: The per-sample columns of shape [N]: small, read once when a CSMShards is built.
SCALAR_COLUMNS = tuple(name for name in DATASETS if name not in ("images", "labels"))

#: The keys of a sample dict, in order.
SAMPLE_KEYS = ("image", "label") + SCALAR_COLUMNS

#: Root attributes every shard carries.
ATTRIBUTES = ("schema", "kind", "num_classes", "class_names", "sharpness", "generator", "annotator",
              "shard_index", "num_shards", "created_by")

KINDS = ("mixed", "real")

#: How far a soft-label row's sum may lie from 1 (summed in float64).
LABEL_SUM_TOLERANCE = 1e-5

#: Bytes read at a time when a check goes through a whole dataset.
BLOCK_BYTES = 1 << 22


class ShardError(ValueError):
    """A shard or manifest that cannot be read or breaks the schema.

    Its message is one line naming the file, the dataset or attribute when the problem is
    local to one, and what is wrong, as csm prints it: ``PATH: 'labels': is float64, expected float32``.
    """

    def __init__(self, path: str, problem: str, dataset: str | None = None) -> None:
        self.path = path
        self.dataset = dataset
        self.problem = problem.replace("\n", " ")
        where = f"{path}: '{dataset}': " if dataset else f"{path}: "
        super().__init__(where + self.problem)


@dataclass(frozen=True)
class ShardInfo:
    """One shard file as a CSMShards sees it."""

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


def calibrated_ratio(lambda_proj: np.ndarray | float, sharpness: float) -> np.ndarray:
    """λ' = clip(σ(s·(λ̂ − 0.5)), 0, 1) in float64, as csm's reannotation computes it.

    A non-finite λ̂ gives 0.5 (csm's convention).
    """
    projection = np.asarray(lambda_proj, dtype=np.float64)
    with np.errstate(over="ignore"):
        ratio = 1.0 / (1.0 + np.exp(-float(sharpness) * (projection - 0.5)))
    ratio = np.clip(ratio, 0.0, 1.0)
    return np.where(np.isfinite(projection), ratio, 0.5)


def soft_labels_from_columns(class_a: np.ndarray, class_b: np.ndarray, lambda_proj: np.ndarray,
                             num_classes: int, sharpness: float) -> np.ndarray:
    """Soft labels [N, K] from the stored columns: λ' on class_a and 1 − λ' on class_b for
    mixed samples (class_b ≥ 0), one-hot on class_a for real samples (class_b = −1).

    λ' is rounded to float32 before 1 − λ' is taken, as csm does, so that for the sharpness a
    shard was written with the result matches its `labels` up to λ̂'s float32 rounding.
    """
    n = len(class_a)
    labels = np.zeros((n, num_classes), dtype=np.float32)
    rows = np.arange(n)
    mixed = class_b >= 0
    ratio = calibrated_ratio(lambda_proj[mixed], sharpness).astype(np.float32)
    labels[rows[mixed], class_a[mixed]] += ratio
    labels[rows[mixed], class_b[mixed]] += np.float32(1) - ratio
    labels[rows[~mixed], class_a[~mixed]] = 1
    return labels


def sha256_of_file(path: str) -> str:
    """SHA-256 of a file, lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# Manifest and shard validation


@dataclass(frozen=True)
class _ManifestEntry:
    path: str
    count: int
    sha256: str
    shard_index: int


def _resolve(path: str) -> tuple[str | None, list[_ManifestEntry]]:
    """(manifest path or None, shard entries in order): the one rule csm's Swift code
    (`ShardPaths`) follows too.

    1. A folder holding `manifest.json`: the shards that manifest lists (rule 3).
    2. A folder without one: every `*.h5` file in it whose name does not start with `.`,
       in name order; a folder with neither is an error.
    3. A file whose name ends in `.json`: a manifest. Its shards, in `shard_index` order,
       lie in the manifest's folder: each `file` must be a plain file name (no `/`, not `.`
       or `..`, so no absolute paths), no file or shard index may appear twice, and a listed
       file that is a symbolic link must resolve to a file inside that folder.
    4. Any other file: that one shard.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ShardError(path, "no such file or directory")
    if os.path.isdir(path):
        manifest = os.path.join(path, "manifest.json")
        if os.path.isfile(manifest):
            return manifest, _read_manifest(manifest)
        names = sorted(name for name in os.listdir(path) if name.endswith(".h5") and not name.startswith("."))
        if not names:
            raise ShardError(path, "holds no manifest.json and no .h5 shards")
        return None, [_ManifestEntry(path=os.path.join(path, name), count=-1, sha256="", shard_index=index)
                      for index, name in enumerate(names)]
    if path.endswith(".json"):
        return path, _read_manifest(path)
    return None, [_ManifestEntry(path=path, count=-1, sha256="", shard_index=0)]


#: The most shards one run may have (csm's `Manifest.maxShardCount`).
MAX_SHARD_COUNT = 1_000_000


def _run_coverage(manifest_path: str, entries: Sequence[_ManifestEntry]) -> tuple[int | None, list[int]]:
    """(shards the run has, shard indices the manifest does not list): the count is the
    manifest's `config.num_shards` (csm generate records it); (None, []) when it gives none.
    csm's Swift code (`ShardCoverage`) applies the same rule."""
    try:
        with open(manifest_path, "rb") as f:
            config = json.loads(f.read().decode("utf-8")).get("config")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None, []
    expected = config.get("num_shards") if isinstance(config, dict) else None
    if not _is_int(expected):
        return None, []
    if not 1 <= expected <= MAX_SHARD_COUNT:
        raise ShardError(manifest_path, f"is {expected}, expected 1 to {MAX_SHARD_COUNT}", "config.num_shards")
    present = {entry.shard_index for entry in entries}
    return expected, [index for index in range(expected) if index not in present]


def describe_missing(indices: Sequence[int], expected: int) -> str:
    """"lacks shard 1 of 3" / "lacks shards 0–2, 5 of 8": indices as ascending runs, as csm writes it."""
    runs: list[str] = []
    start = previous = None
    for index in list(indices) + [None]:
        if previous is not None and index == previous + 1:
            previous = index
            continue
        if start is not None:
            runs.append(f"{start}" if start == previous else f"{start}, {previous}" if previous == start + 1
                        else f"{start}–{previous}")
        start = previous = index
    return f"lacks shard{'' if len(indices) == 1 else 's'} {', '.join(runs)} of {expected}"


def _is_plain_file_name(name: Any) -> bool:
    """A manifest entry's `file`: not empty, no `/` or NUL, not `.` or `..`."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


def _read_manifest(path: str) -> list[_ManifestEntry]:
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ShardError(path, f"is not a csm manifest: {error}") from None
    if not isinstance(manifest, dict):
        raise ShardError(path, "is not a csm manifest: not a JSON object")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise ShardError(path, f"is {manifest.get('schema')!r}, expected {MANIFEST_SCHEMA}", "schema")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise ShardError(path, "missing or not a list", "shards")
    if not shards:
        raise ShardError(path, "lists no shards (no shard of this run has finished)", "shards")
    directory = os.path.dirname(os.path.abspath(path))
    root = os.path.realpath(directory)
    entries: list[_ManifestEntry] = []
    files: set[str] = set()
    for item in shards:
        ok = (isinstance(item, dict) and isinstance(item.get("file"), str)
              and _is_int(item.get("count")) and item["count"] >= 0
              and isinstance(item.get("sha256"), str) and _is_int(item.get("shard_index")) and item["shard_index"] >= 0)
        if not ok:
            raise ShardError(path, f"entry {json.dumps(item)[:120]} is malformed", "shards")
        name = item["file"]
        if not _is_plain_file_name(name):
            raise ShardError(path, f"entry '{name}' is not a plain file name inside the manifest's directory", "shards")
        if name in files:
            raise ShardError(path, f"lists {name} twice", "shards")
        files.add(name)
        file = os.path.join(directory, name)
        if os.path.islink(file) and os.path.dirname(os.path.realpath(file)) != root:
            raise ShardError(path, f"entry '{name}' is a symbolic link to {os.path.realpath(file)}, "
                                   "outside the manifest's directory", "shards")
        entries.append(_ManifestEntry(file, item["count"], item["sha256"].lower(), item["shard_index"]))
    entries.sort(key=lambda entry: entry.shard_index)
    for previous, entry in zip(entries, entries[1:]):
        if previous.shard_index == entry.shard_index:
            raise ShardError(path, f"lists shard index {entry.shard_index} twice", "shards")
    return entries


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _attribute(f: h5py.File, path: str, name: str) -> Any:
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
    value = _attribute(f, path, name)
    if not isinstance(value, str):
        raise ShardError(path, "is not a string", name)
    return value


def _integer(f: h5py.File, path: str, name: str) -> int:
    value = _attribute(f, path, name)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ShardError(path, "is not an integer", name)
    return int(value)


def _number(f: h5py.File, path: str, name: str) -> float:
    value = _attribute(f, path, name)
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise ShardError(path, "is not a number", name)
    return float(value)


def _open_shard(path: str) -> h5py.File:
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


# ---------------------------------------------------------------------------------------
# The reader


class CSMShards:
    """The samples of one or more csm shards, as one indexable sequence.

    Args:
        path: a `manifest.json`, a folder holding one, or a single `.h5` shard. The shards a
            manifest lists are concatenated in `shard_index` order.
        verify: check each shard's SHA-256 against the manifest (a lone `.h5` file has no
            recorded hash: its datasets are read in full instead, which checks HDF5's
            Fletcher-32 checksums), and read every image: a constant one (every pixel the
            same value) in a mixed shard is an error, in a real shard it is counted in
            `constant_real_images` and `warnings`.
        consistent_only: keep only samples whose classifier-consistency flag is set.
        pairs: keep only the samples of these class pairs, each (a, b) given by index or
            class name and matched in either order; a real sample is kept when its class
            is a member of one of the pairs.
        kind: "mixed" or "real": keep only the shards of that kind.
        sharpness: when given, `label` in every sample is re-derived from `lambda_proj` with
            this sharpness (see `soft_labels`) instead of the stored `labels`.
        allow_incomplete: read a manifest that lacks some of its run's shards (a part of a
            split run, or a merge with parts missing) instead of raising a ShardError that
            names the missing shard indices. `expected_shards` and `missing_shards` say what
            is missing either way.

    Every shard is validated when the object is built (attributes, dataset names, types and
    shapes, and every `labels` row finite, non-negative and summing to 1 within 1e-5; errors
    are `ShardError`s naming the file and dataset), and its small per-sample columns
    (class_a, …, seed) are read then. Images and stored labels are read lazily, one sample
    at a time (the labels are also read once when the object is built, to check them). HDF5
    files are opened on first use in each process and re-opened after a fork, so the object
    is safe to hand to DataLoader workers (and pickles without its open files).
    """

    def __init__(self, path: str | os.PathLike[str], *, verify: bool = False, consistent_only: bool = False,
                 pairs: Iterable[tuple[int | str, int | str]] | None = None, kind: str | None = None,
                 sharpness: float | None = None, allow_incomplete: bool = False) -> None:
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be 'mixed' or 'real', got {kind!r}")
        self.path = os.fspath(path)
        self.manifest_path, entries = _resolve(self.path)
        #: Shards the run has in all (the manifest's config.num_shards), None when unknown.
        self.expected_shards: int | None = None
        #: Shard indices of the run the manifest does not list (empty when complete or unknown).
        self.missing_shards: list[int] = []
        if self.manifest_path is not None:
            self.expected_shards, self.missing_shards = _run_coverage(self.manifest_path, entries)
        if self.missing_shards and not allow_incomplete:
            raise ShardError(self.manifest_path, "incomplete dataset: "
                             f"{describe_missing(self.missing_shards, self.expected_shards)} (run the workers that "
                             "write them and csm merge again; or pass allow_incomplete=True)")
        #: Constant images in the real shards (verify=True only; None without it).
        self.constant_real_images: int | None = 0 if verify else None
        #: Findings that are not errors, one line each (constant real images).
        self.warnings: list[str] = []
        self.shards: list[ShardInfo] = []
        columns: dict[str, list[np.ndarray]] = {name: [] for name in SCALAR_COLUMNS}
        for entry in entries:
            if verify and self.manifest_path is not None:
                if not os.path.isfile(entry.path):
                    raise ShardError(entry.path, f"no such file (listed in {self.manifest_path})")
                actual = sha256_of_file(entry.path)
                if actual != entry.sha256:
                    raise ShardError(entry.path, f"SHA-256 is {actual} but {self.manifest_path} records {entry.sha256} "
                                                 "(the file changed or is corrupt)")
            with _open_shard(entry.path) as f:
                info = _validate(f, entry.path)
                if entry.count >= 0 and entry.count != info.count:
                    raise ShardError(entry.path,
                                     f"holds {info.count} samples but {self.manifest_path} says {entry.count}")
                if self.shards:
                    self._check_compatible(self.shards[0], info)
                _check_labels(f, entry.path)
                if verify:
                    if self.manifest_path is None:      # no recorded hash: every chunk through Fletcher-32
                        for name in SCALAR_COLUMNS:
                            _read(f, entry.path, name)
                    constant, warning = _check_images(f, info)
                    self.constant_real_images += constant
                    if warning:
                        self.warnings.append(warning)
                if kind is not None and info.kind != kind:
                    continue
                for name in SCALAR_COLUMNS:
                    columns[name].append(_read(f, entry.path, name))
            self.shards.append(info)
        if not self.shards:
            raise ShardError(self.path, f"holds no shard of kind '{kind}'")

        first = self.shards[0]
        self.class_names: tuple[str, ...] = first.class_names
        self.num_classes: int = first.num_classes
        self.image_shape: tuple[int, int, int] = first.image_shape
        self.sharpness = sharpness
        self._shard_paths = [info.path for info in self.shards]
        self._shard_kinds = [info.kind for info in self.shards]
        counts = [info.count for info in self.shards]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._columns = {name: (np.concatenate(parts) if parts else np.zeros(0, DATASETS[name]))
                         for name, parts in columns.items()}

        keep = np.ones(int(self._starts[-1]), dtype=bool)
        if consistent_only:
            keep &= self._columns["consistent"] != 0
        if pairs is not None:
            keep &= self._pair_mask([self._class_pair(pair) for pair in pairs])
        self._rows = np.flatnonzero(keep).astype(np.int64)

        self._derived: np.ndarray | None = None
        if sharpness is not None:
            self._derived = self._soft_labels_of(self._rows, sharpness)
        self._files: dict[int, tuple[h5py.File, h5py.Dataset, h5py.Dataset]] = {}
        self._pid = os.getpid()

    # -- construction helpers

    @staticmethod
    def _check_compatible(first: ShardInfo, info: ShardInfo) -> None:
        if info.class_names != first.class_names:
            raise ShardError(info.path, f"has classes {list(info.class_names)}, but {first.path} has "
                                        f"{list(first.class_names)}", "class_names")
        if info.image_shape != first.image_shape:
            raise ShardError(info.path, f"holds {list(info.image_shape)} images, but {first.path} holds "
                                        f"{list(first.image_shape)}", "images")

    def _class_index(self, value: int | str) -> int:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if not 0 <= int(value) < self.num_classes:
                raise ValueError(f"class {value} is out of range 0..{self.num_classes - 1}")
            return int(value)
        if isinstance(value, str):
            for index, name in enumerate(self.class_names):
                if name.lower() == value.strip().lower():
                    return index
            if value.strip().isdigit():
                return self._class_index(int(value))
            raise ValueError(f"unknown class {value!r}; classes are {list(self.class_names)}")
        raise ValueError(f"a class is an index or a name, got {value!r}")

    def _class_pair(self, pair: tuple[int | str, int | str]) -> tuple[int, int]:
        if isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"a pair is (a, b), got {pair!r}")
        return self._class_index(pair[0]), self._class_index(pair[1])

    def _pair_mask(self, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
        a, b = self._columns["class_a"], self._columns["class_b"]
        mask = np.zeros(len(a), dtype=bool)
        for x, y in pairs:
            mask |= ((a == x) & (b == y)) | ((a == y) & (b == x))
            mask |= (b < 0) & ((a == x) | (a == y))
        return mask

    # -- sequence protocol

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample `index` as a dict: `image` uint8 [H, W, C], `label` float32 [K], and the
        scalars class_a, class_b (int32), lambda_gen, lambda_proj, prob_a, prob_b
        (float32), consistent (uint8), group, seed (int64), as numpy values."""
        position = self._position(index)
        shard, row = self._locate_row(int(self._rows[position]))
        images, labels = self._datasets(shard)
        path = self._shard_paths[shard]
        sample: dict[str, Any] = {"image": _read(images, path, "images", row)}
        if self._derived is not None:
            sample["label"] = self._derived[position].copy()
        else:
            sample["label"] = _read(labels, path, "labels", row)
        global_row = int(self._rows[position])
        for name in SCALAR_COLUMNS:
            sample[name] = self._columns[name][global_row]
        return sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        kinds = "/".join(sorted(set(self._shard_kinds)))
        return (f"CSMShards({self.path!r}: {len(self)} {kinds} samples of {list(self.image_shape)}, "
                f"{self.num_classes} classes, {len(self.shards)} shard{'s' if len(self.shards) != 1 else ''})")

    # -- columns and labels

    def column(self, name: str) -> np.ndarray:
        """One column for every selected sample: a per-sample scalar (`class_a`, …, `seed`),
        or `labels` (the stored soft labels [N, K], read from the files)."""
        if name in self._columns:
            return self._columns[name][self._rows].copy()
        if name == "labels":
            labels = np.zeros((len(self), self.num_classes), dtype=np.float32)
            for shard, path in enumerate(self._shard_paths):
                start, stop = self._starts[shard], self._starts[shard + 1]
                selected = np.flatnonzero((self._rows >= start) & (self._rows < stop))
                if len(selected):
                    labels[selected] = _read(self._datasets(shard)[1], path, "labels")[self._rows[selected] - start]
            return labels
        raise KeyError(f"unknown column {name!r}; columns are {list(SCALAR_COLUMNS) + ['labels']}")

    def soft_labels(self, sharpness: float) -> np.ndarray:
        """Soft labels [N, K] re-derived from the stored raw projections λ̂ for sharpness s:
        λ' = clip(σ(s·(λ̂ − 0.5)), 0, 1) on class_a and 1 − λ' on class_b; real samples keep
        their one-hot label. With the sharpness a shard was written with, this reproduces
        its `labels` (up to float32 rounding of λ̂)."""
        return self._soft_labels_of(self._rows, sharpness)

    def _soft_labels_of(self, rows: np.ndarray, sharpness: float) -> np.ndarray:
        if not math.isfinite(sharpness):
            raise ValueError(f"sharpness must be finite, got {sharpness}")
        c = self._columns
        return soft_labels_from_columns(c["class_a"][rows], c["class_b"][rows], c["lambda_proj"][rows],
                                        self.num_classes, sharpness)

    def kind_of(self, index: int) -> str:
        """"mixed" or "real": the kind of the shard holding sample `index`."""
        return self._shard_kinds[self._locate_row(int(self._rows[self._position(index)]))[0]]

    def locate(self, index: int) -> tuple[str, int]:
        """(shard file, row within it) of sample `index`."""
        shard, row = self._locate_row(int(self._rows[self._position(index)]))
        return self._shard_paths[shard], row

    # -- files

    def _position(self, index: int) -> int:
        n = len(self._rows)
        if isinstance(index, (bool, np.bool_)):
            raise TypeError("sample indices are integers, got bool")
        index = operator.index(index)
        position = index + n if index < 0 else index
        if not 0 <= position < n:
            raise IndexError(f"sample {index} is out of range for {n} samples")
        return position

    def _locate_row(self, row: int) -> tuple[int, int]:
        shard = int(np.searchsorted(self._starts, row, side="right")) - 1
        return shard, row - int(self._starts[shard])

    def _datasets(self, shard: int) -> tuple[h5py.Dataset, h5py.Dataset]:
        """The `images` and `labels` datasets of `shard`, its file opened on first use in
        this process. Handles inherited through a fork (DataLoader workers) are dropped,
        never used: HDF5 file state is not shared between processes."""
        if self._pid != os.getpid():
            self._files = {}
            self._pid = os.getpid()
        opened = self._files.get(shard)
        if opened is None:
            f = _open_shard(self._shard_paths[shard])
            opened = (f, f["images"], f["labels"])
            self._files[shard] = opened
        return opened[1], opened[2]

    def close(self) -> None:
        """Closes the files this process opened (they reopen on the next read)."""
        if self._pid == os.getpid():
            for f, _, _ in self._files.values():
                f.close()
        self._files = {}

    def __enter__(self) -> CSMShards:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()


# ---------------------------------------------------------------------------------------
# The CSM pairing of real and mixed samples


class TrajectoryPairing:
    """Which mixed samples go with each real sample, as the CSM paper trains (numpy only).

    For a real sample of class c, one trajectory (group) of the mixed data whose pair
    contains c is drawn at random; from it come the trajectory's endpoint of class c — the
    member generated with λ = 1 when c = class_a, λ = 0 when c = class_b — followed by
    `n_aug` distinct interior members (0 < λ < 1, in trajectory order) drawn at random. The
    draw is a pure function of (seed, epoch, real index): independent of batching, of
    DataLoader workers and of the order samples are asked for. It is numpy's generator and
    this class's rule, not `csm train`'s draws (docs/formats/loader-random-streams.md;
    tools/train_torch.py reproduces those).

    Only trajectories with their class-c endpoint and at least `n_aug` interior members
    (after the mixed data's filters, e.g. `consistent_only`) are drawn. Real samples of a
    class without such a trajectory are an error, or dropped when `skip_unpaired_classes`
    (then `unpaired_classes` lists those classes).
    """

    def __init__(self, real: CSMShards, mixed: CSMShards, n_aug: int = 2, seed: int = 0,
                 skip_unpaired_classes: bool = False) -> None:
        if n_aug < 0:
            raise ValueError(f"n_aug must be ≥ 0, got {n_aug}")
        if real.class_names != mixed.class_names:
            raise ShardError(mixed.path, f"has classes {list(mixed.class_names)} but {real.path} has "
                                         f"{list(real.class_names)}", "class_names")
        self.real, self.mixed, self.n_aug, self.seed = real, mixed, n_aug, int(seed)
        self.epoch = 0

        # Trajectories: mixed positions grouped by group id, in λ order.
        group, lam = mixed.column("group"), mixed.column("lambda_gen")
        class_a, class_b = mixed.column("class_a"), mixed.column("class_b")
        order = np.lexsort((lam, group))
        boundaries = np.flatnonzero(np.diff(group[order])) + 1
        # Per class c: the candidate trajectories as (endpoint position, interior positions).
        self._candidates: dict[int, list[tuple[int, np.ndarray]]] = {c: [] for c in range(real.num_classes)}
        for members in (np.split(order, boundaries) if len(order) else []):
            a, b = int(class_a[members[0]]), int(class_b[members[0]])
            if b < 0:
                continue    # a real sample in the mixed data: not part of any trajectory
            if np.any(class_a[members] != a) or np.any(class_b[members] != b):
                raise ShardError(mixed.path, f"group {int(group[members[0]])} mixes several class pairs", "group")
            interior = members[(lam[members] > 0) & (lam[members] < 1)]
            if len(interior) < n_aug:
                continue
            for c, endpoint_lambda in ((a, 1.0), (b, 0.0)):
                endpoint = members[lam[members] == endpoint_lambda]
                if len(endpoint):
                    self._candidates[c].append((int(endpoint[0]), interior))

        real_class = real.column("class_a")
        self.unpaired_classes = [int(c) for c in np.unique(real_class) if not self._candidates.get(int(c))]
        if self.unpaired_classes and not skip_unpaired_classes:
            names = ", ".join(f"{c} ({real.class_names[c]})" for c in self.unpaired_classes)
            raise ShardError(mixed.path, f"has no trajectory with an endpoint and {n_aug} interior samples for "
                                         f"classes {names} of {real.path}; "
                                         "pass skip_unpaired_classes=True to drop them")
        keep = ~np.isin(real_class, self.unpaired_classes)
        self.real_positions: np.ndarray = np.flatnonzero(keep)
        self._real_class = real_class[keep]

    def __len__(self) -> int:
        return len(self.real_positions)

    def set_epoch(self, epoch: int) -> None:
        """Draws a fresh set of trajectories and interior members for `epoch`."""
        self.epoch = int(epoch)

    def plan(self, index: int, epoch: int | None = None) -> tuple[int, np.ndarray]:
        """(real position, mixed positions [n_aug + 1]) of pair `index`: the positions index
        `self.real` and `self.mixed`; the first mixed one is the endpoint of the real
        sample's class."""
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} is out of range for {len(self)} real samples")
        epoch = self.epoch if epoch is None else int(epoch)
        c = int(self._real_class[index])
        rng = np.random.default_rng([self.seed & 0xFFFFFFFFFFFFFFFF, epoch, int(index)])
        candidates = self._candidates[c]
        endpoint, interior = candidates[int(rng.integers(len(candidates)))]
        chosen = np.sort(rng.choice(len(interior), size=self.n_aug, replace=False))
        return int(self.real_positions[index]), np.concatenate([[endpoint], interior[chosen]]).astype(np.int64)


# ---------------------------------------------------------------------------------------
# PyTorch datasets (torch is imported only here)


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("CSMDataset and PairedCSMDataset need PyTorch: pip install torch") from None
    return torch


def _image_tensor(image: np.ndarray, transform: Any):
    """HWC uint8 → transform(image), or float32 CHW in [0, 1] without a transform."""
    if transform is not None:
        return transform(image)
    torch = _torch()
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)


class CSMDataset:
    """A map-style PyTorch dataset (the `torch.utils.data.Dataset` protocol) over csm shards.

    Item i is (image, soft label): the image as a float32 tensor [C, H, W] in [0, 1], or
    `transform(image)` where `image` is the uint8 [H, W, C] numpy array (what torchvision's
    `ToTensor` / `v2.ToImage` accept); the label a float32 tensor [K] — the stored soft
    label, or re-derived from λ̂ with `sharpness` (real samples: one-hot). Other arguments
    are CSMShards's filters (`consistent_only`, `pairs`, `kind`), `verify` and `allow_incomplete`.

    Files open lazily in each DataLoader worker; the CSMShards is `self.shards`.
    """

    def __init__(self, path: str | os.PathLike[str], transform: Any = None, sharpness: float | None = None,
                 consistent_only: bool = False, *, pairs: Iterable[tuple[int | str, int | str]] | None = None,
                 kind: str | None = None, verify: bool = False, allow_incomplete: bool = False) -> None:
        self.torch = _torch()
        self.shards = CSMShards(path, verify=verify, consistent_only=consistent_only, pairs=pairs, kind=kind,
                                sharpness=sharpness, allow_incomplete=allow_incomplete)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, index: int):
        sample = self.shards[index]
        return _image_tensor(sample["image"], self.transform), self.torch.from_numpy(sample["label"])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["torch"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.torch = _torch()


class PairedCSMDataset:
    """Real samples paired with mixed trajectories, as the CSM paper trains.

    Item i is (real image [C, H, W], hard label (int64 scalar), mixed images
    [n_aug + 1, C, H, W], soft targets [n_aug + 1, K]). The mixed samples come from one
    trajectory whose class pair contains the real sample's class c: first its endpoint of
    class c (λ = 1 when c = class_a, λ = 0 when c = class_b), then `n_aug` interior members
    (0 < λ < 1) drawn at random — see `TrajectoryPairing`. Draws are deterministic given
    `seed` and the epoch; call `set_epoch(e)` before each epoch (with DataLoader's default
    non-persistent workers the new epoch reaches the workers).

    The CSM loss on a batch: cross entropy of the real images against the hard labels plus
    the squared L2 distance Σ_k (softmax_k − target_k)² on the mixed images, averaged over
    them (flatten [B, n_aug + 1, …] to [B·(n_aug + 1), …]).

    Args:
        real_path, mixed_path: shards (a manifest, its folder, a .h5 file, or a CSMShards);
            the real path's shards must be of kind `real`, the mixed path's of kind `mixed`.
        n_aug: interior members per real sample.
        seed: seed of the draws.
        transform: applied to every image (real and mixed), given as uint8 [H, W, C].
        sharpness: re-derive the mixed targets from λ̂ with this sharpness.
        consistent_only: draw only classifier-consistent mixed samples.
        skip_unpaired_classes: drop real samples whose class no trajectory covers instead
            of raising.
        verify, allow_incomplete: as for CSMShards, for both paths.
    """

    def __init__(self, real_path: str | os.PathLike[str] | CSMShards, mixed_path: str | os.PathLike[str] | CSMShards,
                 n_aug: int = 2, seed: int = 0, *, transform: Any = None, sharpness: float | None = None,
                 consistent_only: bool = False, skip_unpaired_classes: bool = False, verify: bool = False,
                 allow_incomplete: bool = False) -> None:
        self.torch = _torch()
        real = real_path if isinstance(real_path, CSMShards) else CSMShards(
            real_path, verify=verify, allow_incomplete=allow_incomplete)
        mixed = mixed_path if isinstance(mixed_path, CSMShards) else CSMShards(
            mixed_path, verify=verify, consistent_only=consistent_only, sharpness=sharpness,
            allow_incomplete=allow_incomplete)
        for shards, wanted in ((real, "real"), (mixed, "mixed")):
            for info in shards.shards:
                if info.kind != wanted:
                    raise ShardError(info.path, f"is '{info.kind}', expected '{wanted}' here", "kind")
        self.pairing = TrajectoryPairing(real, mixed, n_aug=n_aug, seed=seed,
                                         skip_unpaired_classes=skip_unpaired_classes)
        self.transform = transform

    @property
    def real(self) -> CSMShards:
        return self.pairing.real

    @property
    def mixed(self) -> CSMShards:
        return self.pairing.mixed

    def set_epoch(self, epoch: int) -> None:
        """Uses the draws of `epoch` from now on."""
        self.pairing.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.pairing)

    def __getitem__(self, index: int):
        torch = self.torch
        real_position, mixed_positions = self.pairing.plan(index)
        real = self.real[real_position]
        mixed = [self.mixed[int(p)] for p in mixed_positions]
        images = torch.stack([_image_tensor(m["image"], self.transform) for m in mixed])
        targets = torch.from_numpy(np.stack([m["label"] for m in mixed]))
        return (_image_tensor(real["image"], self.transform), torch.tensor(int(real["class_a"]), dtype=torch.int64),
                images, targets)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["torch"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.torch = _torch()


# ---------------------------------------------------------------------------------------
# Command line: dump and info, JSON on stdout


def _parse_indices(text: str, count: int) -> list[int]:
    indices: list[int] = []
    for item in text.split(","):
        item = item.strip()
        first, sep, last = item.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise ValueError(f"--indices: '{item}' is not an index or a range like 3-7")
        values = range(int(first), int(last) + 1) if sep else [int(first)]
        for value in values:
            if value >= count:
                raise ValueError(f"--indices: {value} is out of range for {count} samples")
            indices.append(value)
    return indices


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def sample_json(shards: CSMShards, index: int, images: str = "sha256") -> dict[str, Any]:
    """Sample `index` as JSON-ready values: floats are the exact float32 values (they parse
    back to the same float32), NaN is null; the image is its SHA-256 over the uint8 HWC
    bytes, plus the pixels as a flat list when `images` = "list"."""
    sample = shards[index]
    path, row = shards.locate(index)
    image = np.ascontiguousarray(sample["image"])
    label = np.ascontiguousarray(sample["label"], dtype="<f4")
    out: dict[str, Any] = {"index": index, "file": os.path.basename(path), "row": row, "kind": shards.kind_of(index),
                           "image_sha256": hashlib.sha256(image.tobytes()).hexdigest()}
    if images == "list":
        out["image"] = image.reshape(-1).tolist()
    out["label"] = [_json_float(x) for x in label]
    out["label_sha256"] = hashlib.sha256(label.tobytes()).hexdigest()
    for name in SCALAR_COLUMNS:
        value = sample[name]
        out[name] = _json_float(value) if DATASETS[name].kind == "f" else int(value)
    return out


def info_json(shards: CSMShards) -> dict[str, Any]:
    """A summary of `shards`: counts, classes, image shape, per-shard attributes."""
    consistent = shards.column("consistent")
    return {
        "path": shards.path, "manifest": shards.manifest_path, "count": len(shards),
        "expected_shards": shards.expected_shards, "missing_shards": shards.missing_shards,
        "num_classes": shards.num_classes, "class_names": list(shards.class_names),
        "image_shape": list(shards.image_shape),
        "consistent_fraction": _json_float(consistent.mean()) if len(consistent) else None,
        "shards": [{"file": os.path.basename(info.path), "count": info.count, "kind": info.kind,
                    "shard_index": info.shard_index, "num_shards": info.num_shards,
                    "sharpness": _json_float(info.sharpness), "created_by": info.created_by}
                   for info in shards.shards],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="csm-shards", description="Read csm-shard/1 shards; JSON on stdout.")
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump", help="print samples as JSON")
    info = commands.add_parser("info", help="print a summary as JSON")
    for command in (dump, info):
        command.add_argument("path", help="manifest.json, its folder, or one .h5 shard")
        command.add_argument("--verify", action="store_true",
                             help="check SHA-256 against the manifest (or read every chunk of a lone .h5) "
                                  "and refuse constant mixed images")
        command.add_argument("--consistent-only", action="store_true", help="keep consistent samples only")
        command.add_argument("--kind", choices=KINDS, help="keep shards of this kind only")
        command.add_argument("--pairs", help="keep these class pairs: A:B,C:D (indices or names)")
        command.add_argument("--allow-incomplete", action="store_true",
                             help="read a manifest that lacks some of its run's shards")
    dump.add_argument("--indices", help="e.g. 0,5,17 or 0-9 (after filters; default: all)")
    dump.add_argument("--images", choices=("sha256", "list"), default="sha256",
                      help="image as SHA-256 of its uint8 HWC bytes, or also as a flat pixel list")
    dump.add_argument("--sharpness", type=float, help="re-derive labels from lambda_proj with this sharpness")
    args = parser.parse_args(argv)
    try:
        pairs = None
        if args.pairs:
            pairs = [tuple(item.split(":")) for item in args.pairs.split(",")]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError(f"--pairs: expected A:B,C:D, got '{args.pairs}'")
        shards = CSMShards(args.path, verify=args.verify, consistent_only=args.consistent_only, kind=args.kind,
                           pairs=pairs, sharpness=getattr(args, "sharpness", None),
                           allow_incomplete=args.allow_incomplete)
        for warning in shards.warnings:
            print(f"csm-shards: warning: {warning}", file=sys.stderr)
        if args.command == "info":
            result = info_json(shards)
        else:
            indices = _parse_indices(args.indices, len(shards)) if args.indices else range(len(shards))
            result = {"path": shards.path, "count": len(shards), "num_classes": shards.num_classes,
                      "class_names": list(shards.class_names), "image_shape": list(shards.image_shape),
                      "samples": [sample_json(shards, i, args.images) for i in indices]}
    except (ShardError, ValueError, OSError) as error:
        print(f"csm-shards: error: {error}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0
