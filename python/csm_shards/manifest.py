"""Manifests and paths: which shard files a path means, and what a manifest records.

`_resolve` turns a path (a `manifest.json`, a folder, or one `.h5` file) into shard files by
the rule csm's Swift code (`ShardPaths`) follows too; `_run_coverage` finds the shards of a
run that a manifest does not list (Swift's `ShardCoverage`), and `describe_missing` words
them as csm does. `sha256_of_file` is the digest a manifest records for each shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import ShardError
from .schema import MANIFEST_SCHEMA, MAX_SHARD_COUNT

__all__ = ["describe_missing", "sha256_of_file"]


def sha256_of_file(path: str) -> str:
    """SHA-256 of a file, lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class _ManifestEntry:
    """One shard a path names: its file, and the manifest's count (−1: no manifest),
    SHA-256 (lowercase hex, "" without a manifest) and shard index."""

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
    """The shards a `csm-manifest/1` file lists, in `shard_index` order (rule 3 of `_resolve`);
    a malformed manifest or entry is a ShardError."""
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
    """A JSON integer: an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)
