#!/usr/bin/env python3
"""Writes the fuzzing seed corpus Fuzz/Corpus/<harness>/: tiny valid files of every format
csm parses (safetensors, .npy, IDX, manifest.json, a real csm-shard/1 shard).

    python3 Fuzz/make_seeds.py --csm .build/release/csm

Needs numpy; the shard seeds are made by `csm import idx` from the IDX seeds, so they are
real csm output. The corpus is committed; rerun this only to change it.
"""
import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import tempfile

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")


def write(harness, name, data):
    os.makedirs(os.path.join(ROOT, harness), exist_ok=True)
    with open(os.path.join(ROOT, harness, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype name, shape, raw bytes)."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    f32 = np.arange(6, dtype="<f4")
    write("FuzzSafeTensors", "classifier.safetensors", safetensors(
        {"stem.weight": ("F32", [2, 3], f32.tobytes()), "stem.bias": ("F32", [2], f32[:2].tobytes())},
        {"format": "resnet-classifier/1", "class_names": json.dumps([f"c{i}" for i in range(10)]),
         "config": json.dumps({"widths": [8, 16], "channels": 1})}))
    write("FuzzSafeTensors", "dtypes.safetensors", safetensors({
        "a": ("F16", [3], np.array([1, -2, 0.5], "<f2").tobytes()),
        "b": ("BF16", [2], (np.array([1.5, -3], "<f4").view("<u4") >> 16).astype("<u2").tobytes()),
        "c": ("F64", [1, 2], np.array([1e-3, 7], "<f8").tobytes()),
        "d": ("I64", [2], np.array([-1, 2**40], "<i8").tobytes()),
        "e": ("I32", [1], np.array([5], "<i4").tobytes()),
        "f": ("U8", [2], bytes([0, 255])),
        "g": ("BOOL", [2], bytes([0, 1])),
        "h": ("I16", [1], np.array([-7], "<i2").tobytes()),
        "i": ("U16", [1], np.array([7], "<u2").tobytes()),
        "j": ("U32", [1], np.array([9], "<u4").tobytes()),
        "k": ("I8", [1], bytes([0x80])),
        "l": ("U64", [1], np.array([3], "<u8").tobytes()),
    }))
    write("FuzzSafeTensors", "empty-and-scalar.safetensors", safetensors(
        {"empty": ("F32", [0, 4], b""), "scalar": ("F32", [], np.array([2.5], "<f4").tobytes())}, {}))


def npy(array, version=None):
    from numpy.lib import format as npformat
    import io
    buffer = io.BytesIO()
    if version is None:
        np.save(buffer, array)
    else:
        npformat.write_array(buffer, array, version=version)
    return buffer.getvalue()


def numpy_seeds():
    write("FuzzNumPy", "logits-f4.npy", npy(np.linspace(-2, 2, 12, dtype="<f4").reshape(4, 3)))
    write("FuzzNumPy", "labels-i8.npy", npy(np.array([0, 2, 1, 1], "<i8")))
    write("FuzzNumPy", "labels-i4.npy", npy(np.array([3, 0], "<i4")))
    write("FuzzNumPy", "scalar-f8.npy", npy(np.array(0.25, "<f8")))
    write("FuzzNumPy", "empty-f4.npy", npy(np.zeros((0, 3), "<f4")))
    write("FuzzNumPy", "v2-f4.npy", npy(np.ones((2, 2), "<f4"), version=(2, 0)))
    write("FuzzNumPy", "v3-f8.npy", npy(np.ones(3, "<f8"), version=(3, 0)))


def idx(count, rows=3, cols=3):
    images = struct.pack(">IIII", 0x803, count, rows, cols) + bytes((7 * i) % 256 for i in range(count * rows * cols))
    labels = struct.pack(">II", 0x801, count) + bytes(i % 3 for i in range(count))
    return images, labels


def idx_seeds():
    images, labels = idx(2)
    write("FuzzIDX", "images", images)
    write("FuzzIDX", "labels", labels)
    write("FuzzIDX", "images.gz", gzip.compress(images, mtime=0))
    write("FuzzIDX", "labels.gz", gzip.compress(labels, mtime=0))
    write("FuzzIDX", "images-empty", struct.pack(">IIII", 0x803, 0, 28, 28))


def shard_and_manifest_seeds(csm):
    with tempfile.TemporaryDirectory() as work:
        images, labels = idx(3, 4, 4)
        paths = {}
        for name, data in [("images", images), ("labels", labels), ("names.json", json.dumps(["a", "b", "c"]).encode())]:
            paths[name] = os.path.join(work, name)
            with open(paths[name], "wb") as f:
                f.write(data)
        out = os.path.join(work, "out")
        subprocess.run([csm, "import", "idx", "--images", paths["images"], "--labels", paths["labels"],
                        "--class-names", paths["names.json"], "--split", "test", "--out", out, "--shard-size", "2"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shards = sorted(n for n in os.listdir(out) if n.endswith(".h5"))
        for i, name in enumerate(shards):
            shutil.copy(os.path.join(out, name), os.path.join(ROOT, "FuzzShard", f"real-{i}.h5"))
        with open(os.path.join(out, "manifest.json")) as f:
            manifest = json.load(f)
        manifest["config"]["images"], manifest["config"]["labels"] = "images", "labels"   # not the temporary paths
        write("FuzzManifest", "import.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
    write("FuzzManifest", "minimal.json", b'{"schema":"csm-manifest/1","shards":[],"config":{}}')
    write("FuzzManifest", "mixed.json", json.dumps({
        "schema": "csm-manifest/1",
        "shards": [{"file": "mixed-00000.h5", "count": 720, "sha256": "0" * 64, "shard_index": 0},
                   {"file": "mixed-00001.h5", "count": 80, "sha256": "f" * 64, "shard_index": 1}],
        "config": {"seed": 18446744073709551, "lambdas": [0.0, 0.5, 1.0], "sharpness": 2.5, "model": None,
                   "pairs": [["Sneaker", "Ankle boot"]], "steps": 18, "fp16": False}}, indent=2).encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csm", default=".build/release/csm", help="csm binary that makes the shard seeds")
    args = parser.parse_args()
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(os.path.join(ROOT, "FuzzShard"))
    safetensors_seeds()
    numpy_seeds()
    idx_seeds()
    shard_and_manifest_seeds(args.csm)
    for harness in sorted(os.listdir(ROOT)):
        files = os.listdir(os.path.join(ROOT, harness))
        size = sum(os.path.getsize(os.path.join(ROOT, harness, n)) for n in files)
        print(f"{harness}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
