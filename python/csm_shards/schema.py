"""The names and limits that csm's formats fix (docs/formats/csm-shard.md).

A `csm-shard/1` shard is an HDF5 file with the datasets `images` uint8 [N, H, W, C],
`labels` float32 [N, K], `class_a`/`class_b` int32 [N], `lambda_gen`, `lambda_proj`,
`prob_a`, `prob_b` float32 [N], `consistent` uint8 [N], `group`/`seed` int64 [N], and the
root attributes `schema` = csm-shard/1, `kind`, `num_classes`, `class_names` (JSON),
`sharpness`, `generator`, `annotator`, `shard_index`, `num_shards`, `created_by`. A
`csm-manifest/1` (`manifest.json`) lists a run's shards.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SHARD_SCHEMA", "MANIFEST_SCHEMA", "DATASETS", "SCALAR_COLUMNS", "SAMPLE_KEYS", "ATTRIBUTES", "KINDS",
           "LABEL_SUM_TOLERANCE", "MAX_SHARD_COUNT"]

#: The `schema` attribute of every shard.
SHARD_SCHEMA = "csm-shard/1"
#: The `schema` field of every manifest.
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

#: The values of a shard's `kind`: generated class mixes, or a real dataset.
KINDS = ("mixed", "real")

#: How far a soft-label row's sum may lie from 1 (summed in float64).
LABEL_SUM_TOLERANCE = 1e-5

#: The most shards one run may have (csm's `Manifest.maxShardCount`).
MAX_SHARD_COUNT = 1_000_000
