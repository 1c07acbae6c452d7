"""Python access to csm's HDF5 shards (`csm-shard/1`), with h5py and numpy only.

`csm generate` writes class-mixed images with soft labels (kind `mixed`) and `csm import`
writes real datasets (kind `real`), each as HDF5 shards plus a `manifest.json`. This package
reads them:

    from csm_shards import CSMShards
    data = CSMShards("data/", consistent_only=True)       # manifest.json, a folder, or one .h5
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

Every name in `__all__` is importable from `csm_shards`; the modules behind them, each
importing only those listed before it:

    errors          ShardError
    schema          SHARD_SCHEMA, MANIFEST_SCHEMA, DATASETS, SCALAR_COLUMNS, … (docs/formats/csm-shard.md)
    labels          calibrated_ratio, soft_labels_from_columns
    manifest        which shard files a path means (_resolve), run coverage, describe_missing, sha256_of_file
    shard_file      ShardInfo; one shard's validation and block reads (BLOCK_BYTES)
    shards          CSMShards
    pairing         TrajectoryPairing
    torch_datasets  CSMDataset, PairedCSMDataset
    cli             main (the csm-shards command), sample_json, info_json
"""


from . import shard_file  # noqa: F401 (csm_shards.shard_file.BLOCK_BYTES sets the block size)
from .cli import info_json, main, sample_json
from .errors import ShardError
from .labels import calibrated_ratio, soft_labels_from_columns
from .manifest import describe_missing, sha256_of_file
from .pairing import TrajectoryPairing
from .schema import (ATTRIBUTES, DATASETS, KINDS, LABEL_SUM_TOLERANCE, MANIFEST_SCHEMA, MAX_SHARD_COUNT,
                     SAMPLE_KEYS, SCALAR_COLUMNS, SHARD_SCHEMA)
from .shard_file import ShardInfo
from .shards import CSMShards
from .torch_datasets import CSMDataset, PairedCSMDataset

__version__ = "0.1.0"

__all__ = [
    # reading shards
    "CSMShards", "ShardInfo", "ShardError",
    # PyTorch datasets and the CSM pairing
    "CSMDataset", "PairedCSMDataset", "TrajectoryPairing",
    # soft labels
    "calibrated_ratio", "soft_labels_from_columns",
    # manifests
    "describe_missing", "sha256_of_file",
    # the formats' names and limits
    "SHARD_SCHEMA", "MANIFEST_SCHEMA", "DATASETS", "SCALAR_COLUMNS", "SAMPLE_KEYS", "ATTRIBUTES", "KINDS",
    "LABEL_SUM_TOLERANCE", "MAX_SHARD_COUNT",
    # the command line
    "main", "sample_json", "info_json",
]
