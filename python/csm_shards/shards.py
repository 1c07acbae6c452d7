"""`CSMShards`: the samples of one or more csm shards as one indexable sequence (h5py and numpy)."""

from __future__ import annotations

import math
import operator
import os
from typing import Any, Iterable, Iterator, Sequence

import h5py
import numpy as np

from .errors import ShardError
from .labels import soft_labels_from_columns
from .manifest import _resolve, _run_coverage, describe_missing, sha256_of_file
from .schema import DATASETS, KINDS, SCALAR_COLUMNS
from .shard_file import ShardInfo, _check_images, _check_labels, _open_shard, _read, _validate

__all__ = ["CSMShards"]


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
