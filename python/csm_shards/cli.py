"""The `csm-shards` command (also `python3 -m csm_shards`): `dump` and `info`, JSON on stdout.

    csm-shards info PATH [--verify] [--consistent-only] [--kind K] [--pairs A:B,…] [--allow-incomplete]
    csm-shards dump PATH [same options] [--indices 0,5,17 | 0-9] [--images sha256|list] [--sharpness S]

Exit status 0 on success, 1 when the shards cannot be read (the error on stderr, nothing on
stdout), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from typing import Any, Sequence

import numpy as np

from .errors import ShardError
from .schema import DATASETS, KINDS, SCALAR_COLUMNS
from .shards import CSMShards

__all__ = ["main", "sample_json", "info_json"]


def _parse_indices(text: str, count: int) -> list[int]:
    """`--indices` ("0,5,17", "0-9", or both mixed) as a list; ValueError when malformed or out of range."""
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
    """`value` as a Python float, None (JSON null) when it is not finite."""
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
    """Runs `csm-shards` with `argv` (default: sys.argv[1:]) and returns its exit status: 0 with
    the JSON on stdout, 1 when the shards cannot be read (the error on stderr). Usage errors
    exit with status 2 through argparse."""
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
