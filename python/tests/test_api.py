"""The package's public API: `csm_shards.__all__` names exactly what the package defines for
its users, every such name is importable from `csm_shards` and documented, and the objects
DataLoader workers receive pickle and unpickle."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pickle
import pkgutil
import pydoc
import sys
import types

import h5py
import numpy as np

import csm_shards
from conftest import mixed_columns, write_shard

#: The modules of the package (not `__main__`, which runs the command when imported).
SUBMODULES = sorted(info.name for info in pkgutil.iter_modules(csm_shards.__path__) if info.name != "__main__")

#: Names that csm's tools, tests, docs and pyproject.toml import from `csm_shards`.
USED_ELSEWHERE = {"CSMShards", "CSMDataset", "PairedCSMDataset", "ShardError", "TrajectoryPairing",
                  "calibrated_ratio", "describe_missing", "main"}


def _submodules() -> list[types.ModuleType]:
    return [importlib.import_module(f"csm_shards.{name}") for name in SUBMODULES]


def test_all_lists_only_names_the_package_defines():
    names = csm_shards.__all__
    assert len(set(names)) == len(names)
    modules = _submodules()
    for name in names:
        value = getattr(csm_shards, name)
        assert not isinstance(value, types.ModuleType), name
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("csm_shards."), (name, value.__module__)
            assert getattr(sys.modules[value.__module__], name) is value, name
        else:
            assert any(vars(module).get(name, None) is value for module in modules), f"{name} is defined nowhere"
    star: dict[str, object] = {}
    exec("from csm_shards import *", star)
    assert set(star) - {"__builtins__"} == set(names)
    assert USED_ELSEWHERE <= set(names)


def test_no_other_public_names():
    """Besides `__all__`, the package's public attributes are its own modules: the standard
    library and third-party modules and names its code imports (argparse, json, Any, np…) are not."""
    for name in set(dir(csm_shards)) - set(csm_shards.__all__):
        if name.startswith("_"):
            continue
        value = getattr(csm_shards, name)
        assert isinstance(value, types.ModuleType) and value.__name__ == f"csm_shards.{name}", name
    for name in ("argparse", "json", "Any", "np", "h5py", "os", "sys", "math", "dataclass", "annotations"):
        assert not hasattr(csm_shards, name), name
    for module in _submodules():
        assert set(module.__all__) <= set(csm_shards.__all__), module.__name__


def test_help_shows_docstrings():
    text = pydoc.render_doc(csm_shards.CSMShards, renderer=pydoc.plaintext)    # what help() prints
    assert "The samples of one or more csm shards" in text and "allow_incomplete" in text
    assert inspect.getdoc(csm_shards)
    for module in _submodules():
        assert inspect.getdoc(module), module.__name__
    for name in csm_shards.__all__:
        value = getattr(csm_shards, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name


def test_block_bytes_sets_the_block_size_of_whole_dataset_reads(tmp_path, monkeypatch):
    from csm_shards.shard_file import _row_blocks
    path = write_shard(str(tmp_path / "one.h5"), mixed_columns([(1, 2)], groups_per_pair=4))   # 20 images, chunks of 7
    with h5py.File(path, "r") as f:
        assert [rows.start for rows in _row_blocks(f["images"])] == [0]
        monkeypatch.setattr(csm_shards.shard_file, "BLOCK_BYTES", 64)
        assert [rows.start for rows in _row_blocks(f["images"])] == [0, 7, 14]


def test_pickled_objects_unpickle(mixed_run, real_run):
    """What a DataLoader hands its workers: the objects pickle and unpickle (by their modules'
    paths) and read the same samples."""
    real = csm_shards.CSMShards(real_run[0])
    mixed = csm_shards.CSMShards(mixed_run[0])
    pairing = csm_shards.TrajectoryPairing(real, mixed, n_aug=1, skip_unpaired_classes=True)
    copy = pickle.loads(pickle.dumps(pairing))
    assert type(copy) is csm_shards.TrajectoryPairing and type(copy.mixed) is csm_shards.CSMShards
    np.testing.assert_array_equal(copy.plan(3)[1], pairing.plan(3)[1])
    np.testing.assert_array_equal(copy.mixed[5]["image"], mixed[5]["image"])
    if importlib.util.find_spec("torch") is None:
        return
    import torch
    for dataset in (csm_shards.CSMDataset(mixed_run[0]), csm_shards.PairedCSMDataset(real, mixed, n_aug=1)):
        copy = pickle.loads(pickle.dumps(dataset))
        assert type(copy) is type(dataset) and len(copy) == len(dataset)
        assert all(torch.equal(a, b) for a, b in zip(copy[2], dataset[2]))
