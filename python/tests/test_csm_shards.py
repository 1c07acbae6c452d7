"""Tests of the installed csm_shards package on tiny shards written by conftest's helpers (numpy + h5py;
the PyTorch tests are skipped without torch, the csm integration test without a built csm)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import (CLASS_NAMES, IMAGE_SHAPE, ROOT, concat, csm_labels, mixed_columns, real_columns,
                      write_manifest, write_shard)
from csm_shards import CSMShards, ShardError, TrajectoryPairing, calibrated_ratio

SCALARS = ("class_a", "class_b", "lambda_gen", "lambda_proj", "prob_a", "prob_b", "consistent", "group", "seed")


def assert_sample(sample: dict, columns: dict, row: int) -> None:
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == IMAGE_SHAPE
    np.testing.assert_array_equal(sample["image"], columns["images"][row])
    assert sample["label"].dtype == np.float32
    np.testing.assert_array_equal(sample["label"], columns["labels"][row])
    for name in SCALARS:
        np.testing.assert_array_equal(sample[name], columns[name][row])
        assert sample[name].dtype == columns[name].dtype, name


# -- the package


def test_runs_against_the_installed_package():
    """The tests import csm_shards as users do: the distribution pip installed, not a path."""
    import importlib.metadata

    import csm_shards
    assert importlib.metadata.version("csm-shards") == csm_shards.__version__
    files = importlib.metadata.distribution("csm-shards").files or []
    installed = {os.path.realpath(str(f.locate())) for f in files if str(f).endswith(".py")}
    assert os.path.realpath(csm_shards.__file__) in installed or _is_editable(), csm_shards.__file__


def _is_editable() -> bool:
    import importlib.metadata
    direct = importlib.metadata.distribution("csm-shards").read_text("direct_url.json") or "{}"
    return json.loads(direct).get("dir_info", {}).get("editable", False)


# -- reading


def test_single_file(tmp_path):
    columns = mixed_columns([(7, 9)], groups_per_pair=3)
    path = write_shard(str(tmp_path / "one.h5"), columns)
    data = CSMShards(path)
    assert len(data) == 15 and data.num_classes == 10 and data.class_names == tuple(CLASS_NAMES)
    assert data.image_shape == IMAGE_SHAPE and data.manifest_path is None
    for i in range(len(data)):
        assert_sample(data[i], columns, i)
    assert_sample(data[-1], columns, 14)
    assert set(data[0]) == {"image", "label", *SCALARS}
    with pytest.raises(IndexError):
        data[15]
    np.testing.assert_array_equal(data.column("labels"), columns["labels"])
    assert data.shards[0].kind == "mixed" and data.shards[0].sharpness == 10.0


def test_manifest_concatenates_in_shard_index_order(mixed_run):
    directory, parts = mixed_run
    expected = concat(parts)
    for path in (directory, os.path.join(directory, "manifest.json")):
        data = CSMShards(path, verify=True)
        assert [os.path.basename(s.path) for s in data.shards] == ["mixed-00000.h5", "mixed-00001.h5", "mixed-00002.h5"]
        assert len(data) == 30
        for i in range(len(data)):
            assert_sample(data[i], expected, i)
        assert data.locate(12) == (os.path.join(directory, "mixed-00001.h5"), 2)
        np.testing.assert_array_equal(data.column("group"), expected["group"])


def test_real_shards(real_run):
    directory, columns = real_run
    data = CSMShards(directory)
    assert len(data) == 20 and data.kind_of(0) == "real"
    for i in range(len(data)):
        assert_sample(data[i], columns, i)
    assert np.isnan(data[0]["lambda_proj"]) and data[0]["class_b"] == -1


def test_empty_shard_in_a_run(tmp_path):
    empty = {name: value[:0] for name, value in mixed_columns([(1, 2)]).items()}
    full = mixed_columns([(1, 2)], groups_per_pair=1)
    write_shard(str(tmp_path / "a.h5"), empty, shard_index=0, num_shards=2)
    write_shard(str(tmp_path / "b.h5"), full, shard_index=1, num_shards=2)
    write_manifest(str(tmp_path), [("a.h5", 0), ("b.h5", 1)])
    data = CSMShards(str(tmp_path))
    assert len(data) == 5
    assert_sample(data[0], full, 0)


def test_incomplete_run_names_the_missing_shards(mixed_run, tmp_path):
    directory, parts = mixed_run
    manifest = os.path.join(directory, "manifest.json")
    complete = {"num_shards": 3}
    write_manifest(directory, [("mixed-00000.h5", 0), ("mixed-00001.h5", 1), ("mixed-00002.h5", 2)], config=complete)
    data = CSMShards(directory)
    assert data.expected_shards == 3 and data.missing_shards == []

    write_manifest(directory, [("mixed-00002.h5", 2), ("mixed-00000.h5", 0)], config=complete)
    with pytest.raises(ShardError) as caught:
        CSMShards(directory)
    assert str(caught.value).startswith(f"{manifest}: incomplete dataset: lacks shard 1 of 3 (")
    assert "allow_incomplete=True" in str(caught.value)
    partial = CSMShards(directory, allow_incomplete=True)
    assert partial.expected_shards == 3 and partial.missing_shards == [1] and len(partial) == 20
    assert len(CSMShards(os.path.join(directory, "mixed-00001.h5"))) == 10      # one file: what was asked for

    # A run of 2³¹ − 1 shards is refused, not listed (csm's Manifest refuses it the same way).
    write_manifest(directory, [("mixed-00000.h5", 0)], config={"num_shards": 2**31 - 1})
    with pytest.raises(ShardError, match="num_shards"):
        CSMShards(directory)

    write_manifest(directory, [("mixed-00001.h5", 1)], config={"num_shards": 9})
    with pytest.raises(ShardError, match="lacks shards 0, 2–8 of 9"):
        CSMShards(manifest)
    refused = run_cli("info", directory)
    assert refused.returncode == 1 and "incomplete dataset: lacks shards 0, 2–8 of 9" in refused.stderr
    info = json.loads(run_cli("info", directory, "--allow-incomplete").stdout)
    assert info["expected_shards"] == 9 and info["missing_shards"] == [0, 2, 3, 4, 5, 6, 7, 8]


def test_describe_missing():
    from csm_shards import describe_missing
    assert describe_missing([1], 3) == "lacks shard 1 of 3"
    assert describe_missing([0, 1, 2, 5, 7, 8], 9) == "lacks shards 0–2, 5, 7, 8 of 9"


def test_pickles_without_open_files(mixed_run):
    directory, parts = mixed_run
    data = CSMShards(directory)
    data[3]
    assert data._files
    copy = pickle.loads(pickle.dumps(data))
    assert copy._files == {}
    assert_sample(copy[3], concat(parts), 3)
    data.close()
    assert_sample(data[4], concat(parts), 4)


# -- verification and schema errors


def test_sha256_mismatch(mixed_run):
    directory, _ = mixed_run
    path = os.path.join(directory, "mixed-00001.h5")
    with open(path, "r+b") as f:          # flip one byte near the end of the file
        f.seek(-100, os.SEEK_END)
        byte = f.read(1)
        f.seek(-100, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ShardError) as error:
        CSMShards(directory, verify=True)
    assert error.value.path == path and "SHA-256" in str(error.value) and "mixed-00001.h5" in str(error.value)


def test_sha256_recorded_wrong(tmp_path):
    write_shard(str(tmp_path / "a.h5"), mixed_columns([(1, 2)]))
    write_manifest(str(tmp_path), [("a.h5", 0)], sha256={"a.h5": "0" * 64})
    assert len(CSMShards(str(tmp_path))) == 10                 # not checked unless asked
    with pytest.raises(ShardError, match=r"a\.h5: SHA-256 is [0-9a-f]{64} but .*manifest\.json records 0{64}"):
        CSMShards(str(tmp_path), verify=True)


def test_count_disagrees_with_manifest(tmp_path):
    write_shard(str(tmp_path / "a.h5"), mixed_columns([(1, 2)]))
    write_manifest(str(tmp_path), [("a.h5", 0)], counts={"a.h5": 11})
    with pytest.raises(ShardError, match=r"a\.h5: holds 10 samples but .*manifest\.json says 11"):
        CSMShards(str(tmp_path))


@pytest.mark.parametrize("change, message", [
    (dict(dtypes={"labels": np.float64}), r"'labels': is float64, expected float32"),
    (dict(dtypes={"group": np.int32}), r"'group': is int32, expected int64"),
    (dict(dtypes={"images": np.int8}), r"'images': is int8, expected uint8"),
    (dict(drop=["prob_b"]), r"'prob_b': missing dataset"),
    (dict(attrs={"schema": "csm-shard/2"}), r"'schema': is 'csm-shard/2', expected csm-shard/1"),
    (dict(attrs={"schema": None}), r"not a csm-shard/1 file \(no 'schema' attribute\)"),
    (dict(attrs={"kind": "fake"}), r"'kind': is 'fake', expected mixed or real"),
    (dict(attrs={"num_classes": np.int64(9)}), r"'class_names': has 10 names but num_classes is 9"),
    (dict(attrs={"shard_index": np.int64(3)}), r"'shard_index': shard 3 of 1 is out of range"),
    (dict(attrs={"created_by": None}), r"'created_by': missing attribute"),
    (dict(attrs={"generator": "{not json"}), r"'generator': is not valid JSON"),
])
def test_schema_violations_name_file_and_dataset(tmp_path, change, message):
    path = write_shard(str(tmp_path / "bad.h5"), mixed_columns([(1, 2)]), **change)
    with pytest.raises(ShardError, match=message) as error:
        CSMShards(path)
    assert str(error.value).startswith(path + ": ")


def test_wrong_shapes(tmp_path):
    columns = mixed_columns([(1, 2)])
    columns["labels"] = columns["labels"][:, :9]
    with pytest.raises(ShardError, match=r"'labels': has shape \[10, 9\], expected \[10, 10\]"):
        CSMShards(write_shard(str(tmp_path / "a.h5"), columns))
    columns = mixed_columns([(1, 2)])
    columns["seed"] = columns["seed"][:9]
    with pytest.raises(ShardError, match=r"'seed': has shape \[9\], expected \[10\]"):
        CSMShards(write_shard(str(tmp_path / "b.h5"), columns))
    columns = mixed_columns([(1, 2)])
    columns["images"] = columns["images"][..., 0]
    with pytest.raises(ShardError, match=r"'images': has shape \[10, 6, 5\], expected \[N, H, W, C\]"):
        CSMShards(write_shard(str(tmp_path / "c.h5"), columns))


def test_bad_files_and_manifests(tmp_path):
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(ShardError, match=r"text\.h5: not an HDF5 file"):
        CSMShards(str(text))
    with pytest.raises(ShardError, match=r"no such file"):
        CSMShards(str(tmp_path / "missing.h5"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match=r"empty: holds no manifest\.json and no \.h5 shards"):
        CSMShards(str(tmp_path / "empty"))
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"schema": "other", "shards": []}')
    with pytest.raises(ShardError, match=r"manifest\.json: 'schema': is 'other', expected csm-manifest/1"):
        CSMShards(str(manifest))
    manifest.write_text('{"schema": "csm-manifest/1", "shards": [{"file": "x.h5"}]}')
    with pytest.raises(ShardError, match=r"manifest\.json: 'shards': entry .* is malformed"):
        CSMShards(str(manifest))
    manifest.write_text('{"schema": "csm-manifest/1", "shards": [], "config": {}}')
    with pytest.raises(ShardError, match=r"lists no shards"):
        CSMShards(str(manifest))
    manifest.write_text("{broken")
    with pytest.raises(ShardError, match=r"manifest\.json: is not a csm manifest"):
        CSMShards(str(manifest))


def test_folder_without_manifest_reads_its_h5_files_by_name(tmp_path):
    write_shard(str(tmp_path / "b.h5"), mixed_columns([(1, 2)]))
    write_shard(str(tmp_path / "a.h5"), mixed_columns([(0, 3)]))
    write_shard(str(tmp_path / ".hidden.h5"), mixed_columns([(0, 1)]))
    data = CSMShards(str(tmp_path))
    assert [os.path.basename(info.path) for info in data.shards] == ["a.h5", "b.h5"]


@pytest.mark.parametrize("entry", ["../outside/x.h5", "..", "/etc/passwd", "sub/x.h5", ""])
def test_manifest_entries_must_be_plain_names(tmp_path, entry):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"schema": "csm-manifest/1", "config": {},
                                                   "shards": [{"file": entry, "count": 1, "sha256": "", "shard_index": 0}]}))
    with pytest.raises(ShardError, match=r"manifest\.json: 'shards': entry .* is not a plain file name"):
        CSMShards(str(run))


def test_manifest_entries_may_not_link_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write_shard(str(outside / "secret.h5"), mixed_columns([(1, 2)]))
    run = tmp_path / "run"
    run.mkdir()
    write_shard(str(run / "inside.h5"), mixed_columns([(1, 2)]))
    os.symlink(str(outside / "secret.h5"), str(run / "escape.h5"))
    os.symlink("inside.h5", str(run / "alias.h5"))
    write_manifest(str(run), [("alias.h5", 0)])
    assert len(CSMShards(str(run))) > 0
    write_manifest(str(run), [("inside.h5", 0), ("escape.h5", 1)])
    with pytest.raises(ShardError, match=r"'escape\.h5' is a symbolic link to .*outside the manifest's directory"):
        CSMShards(str(run))


def test_shards_of_a_run_must_agree(tmp_path):
    write_shard(str(tmp_path / "a.h5"), mixed_columns([(1, 2)]))
    write_shard(str(tmp_path / "b.h5"), mixed_columns([(1, 2)], image_shape=(6, 5, 3)), shard_index=1, num_shards=2)
    write_manifest(str(tmp_path), [("a.h5", 0), ("b.h5", 1)])
    with pytest.raises(ShardError, match=r"b\.h5: 'images': holds \[6, 5, 3\] images, but .*a\.h5 holds \[6, 5, 1\]"):
        CSMShards(str(tmp_path))


def test_corrupt_chunk_is_caught_on_read(tmp_path):
    path = write_shard(str(tmp_path / "a.h5"), mixed_columns([(1, 2)], groups_per_pair=4))
    with h5py.File(path, "r") as f:
        offset = f["images"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as f:
        f.seek(offset + 5)
        byte = f.read(1)
        f.seek(offset + 5)
        f.write(bytes([byte[0] ^ 0x01]))
    data = CSMShards(path)                 # the scalar columns are intact
    with pytest.raises(ShardError, match=r"a\.h5: 'images': cannot read"):
        data[0]
    with pytest.raises(ShardError, match=r"a\.h5: 'images': cannot read"):
        CSMShards(path, verify=True)     # a lone file: verify reads every dataset



def label_row(values: dict[int, float]) -> np.ndarray:
    """A labels row of 10 classes holding `values` (class → value), zero elsewhere."""
    row = np.zeros(10, np.float32)
    for c, value in values.items():
        row[c] = value
    return row


@pytest.mark.parametrize("row, shown", [
    (label_row({1: 0.7, 2: 0.2}), "[0, 0.7, 0.2, 0, 0, 0, 0, 0, 0, 0] (sum 0.9)"),
    (label_row({1: 1.2, 2: -0.2}), "[0, 1.2, -0.2, 0, 0, 0, 0, 0, 0, 0] (sum 1)"),
    (label_row({1: np.nan, 2: 0.5}), "[0, nan, 0.5, 0, 0, 0, 0, 0, 0, 0] (sum nan)"),
    (label_row({1: 0.5, 2: 0.5 + 2e-5}), "[0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0] (sum 1.00002)"),
])
def test_labels_must_be_probability_vectors(tmp_path, row, shown):
    columns = mixed_columns([(1, 2)])
    columns["labels"][3] = row
    path = write_shard(str(tmp_path / "bad.h5"), columns)
    with pytest.raises(ShardError) as error:
        CSMShards(path)
    assert str(error.value) == (f"{path}: 'labels': row 3 holds {shown}, "
                                "expected non-negative numbers summing to 1 within 1e-05")
    assert error.value.path == path and error.value.dataset == "labels"


def test_label_sums_within_the_tolerance_are_accepted(tmp_path):
    columns = mixed_columns([(1, 2)])
    columns["labels"][3] = label_row({1: 0.5, 2: 0.5 + 5e-6})
    assert len(CSMShards(write_shard(str(tmp_path / "a.h5"), columns), verify=True)) == 10


def test_bad_labels_name_the_shard_and_its_row(tmp_path):
    """Any kind, in any shard of a run, also one a kind filter leaves out; the row counts within the shard."""
    write_shard(str(tmp_path / "a.h5"), mixed_columns([(1, 2)]), shard_index=0, num_shards=2)
    real = real_columns([1, 2, 3, 4])
    real["labels"][2] = label_row({3: 1.0, 4: 1.0})
    write_shard(str(tmp_path / "b.h5"), real, kind="real", shard_index=1, num_shards=2)
    write_manifest(str(tmp_path), [("a.h5", 0), ("b.h5", 1)])
    for kind in (None, "mixed"):
        with pytest.raises(ShardError, match=r"b\.h5: 'labels': row 2 holds \[0, 0, 0, 1, 1, 0, .*\] \(sum 2\)"):
            CSMShards(str(tmp_path), kind=kind)
    refused = run_cli("info", str(tmp_path))
    assert refused.returncode == 1 and "b.h5: 'labels': row 2 holds" in refused.stderr


def test_constant_mixed_images_are_refused_when_verifying(tmp_path, monkeypatch):
    columns = mixed_columns([(1, 2)], groups_per_pair=4)
    columns["images"][9] = 255          # what NaN quantises to
    columns["images"][16] = 0
    path = write_shard(str(tmp_path / "mixed-00000.h5"), columns)
    write_manifest(str(tmp_path), [("mixed-00000.h5", 0)])
    assert len(CSMShards(path)) == 20                           # images are read only to verify
    import csm_shards
    monkeypatch.setattr(csm_shards.shard_file, "BLOCK_BYTES", 64)   # blocks of one chunk (7 images)
    expected = (f"{path}: 'images': 2 of 20 mixed images are constant (first: row 9, every pixel 255); "
                "no generator makes those: the diffusion model or the sampler failed")
    for where in (path, str(tmp_path)):                         # lone file, and a manifest's SHA-256
        with pytest.raises(ShardError) as error:
            CSMShards(where, verify=True)
        assert str(error.value) == expected and error.value.dataset == "images"
    refused = run_cli("dump", str(tmp_path), "--verify")
    assert refused.returncode == 1 and expected in refused.stderr
    assert refused.stdout == ""


def test_constant_real_images_are_counted(tmp_path):
    columns = real_columns([0, 1, 2, 3, 4, 5, 6])
    columns["images"][[2, 5]] = 0
    path = write_shard(str(tmp_path / "real.h5"), columns, kind="real", sharpness=float("nan"))
    plain = CSMShards(path)
    assert plain.constant_real_images is None and plain.warnings == []
    data = CSMShards(path, verify=True)
    assert len(data) == 7 and data.constant_real_images == 2
    assert data.warnings == [f"{path}: 2 of 7 real images are constant (first: row 2, every pixel 0)"]
    result = run_cli("info", path, "--verify")
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"csm-shards: warning: {data.warnings[0]}\n"
    assert json.loads(result.stdout)["count"] == 7


# -- soft labels


def test_soft_labels_rederivation(mixed_run, real_run):
    directory, parts = mixed_run
    expected = concat(parts)
    data = CSMShards(directory)
    # The shards' own sharpness reproduces the stored labels.
    np.testing.assert_allclose(data.soft_labels(10.0), expected["labels"], atol=1e-6)
    # Another sharpness: λ' = clip(σ(s·(λ̂ − 0.5)), 0, 1) on a, 1 − λ' on b, 0 elsewhere.
    labels = data.soft_labels(3.0)
    rows = np.arange(len(data))
    ratio = 1 / (1 + np.exp(-3.0 * (expected["lambda_proj"].astype(np.float64) - 0.5)))
    np.testing.assert_allclose(labels[rows, expected["class_a"]], ratio, atol=1e-6)
    np.testing.assert_allclose(labels[rows, expected["class_b"]], 1 - ratio, atol=1e-6)
    np.testing.assert_allclose(labels.sum(axis=1), 1, atol=1e-6)
    assert labels.dtype == np.float32 and np.count_nonzero(labels, axis=1).max() <= 2
    # sharpness= on the reader replaces `label` in every sample.
    sharp = CSMShards(directory, sharpness=3.0)
    np.testing.assert_array_equal(sharp[7]["label"], labels[7])
    # Real samples keep their one-hot labels whatever the sharpness.
    real_dir, real = real_run
    np.testing.assert_array_equal(CSMShards(real_dir).soft_labels(3.0), real["labels"])


def test_calibrated_ratio_edges():
    np.testing.assert_allclose(calibrated_ratio([0.5, -1e9, 1e9], 10), [0.5, 0, 1])
    assert calibrated_ratio(np.nan, 10) == 0.5
    nan = np.array([np.nan], np.float32)
    assert csm_labels(np.array([1]), np.array([2]), nan, 3, 10.0)[0].tolist() == [0, 0.5, 0.5]


# -- filters


def test_filters(mixed_run, real_run):
    directory, parts = mixed_run
    expected = concat(parts)
    consistent = CSMShards(directory, consistent_only=True)
    keep = np.flatnonzero(expected["consistent"])
    assert len(consistent) == len(keep) and 0 < len(keep) < 30
    for i, row in enumerate(keep):
        assert_sample(consistent[i], expected, row)

    for pairs in ([(9, 7)], [("Sneaker", "ankle boot")], [(7, 9), (3, 5)]):
        data = CSMShards(directory, pairs=pairs)
        assert len(data) == 10 and set(data.column("class_a")) == {7}
    both = CSMShards(directory, pairs=[(7, 9), (2, 4)], consistent_only=True)
    keep = np.flatnonzero(np.isin(expected["class_a"], [7, 2]) & (expected["consistent"] == 1))
    np.testing.assert_array_equal(both.column("seed"), expected["seed"][keep])
    with pytest.raises(ValueError, match="unknown class 'Hat'"):
        CSMShards(directory, pairs=[("Hat", 1)])

    real_dir, real = real_run
    data = CSMShards(real_dir, pairs=[(7, 9)])           # real samples: their class in a pair
    np.testing.assert_array_equal(data.column("class_a"), real["class_a"][np.isin(real["class_a"], [7, 9])])


def test_kind_filter(tmp_path):
    write_shard(str(tmp_path / "m.h5"), mixed_columns([(1, 2)]), shard_index=0, num_shards=2)
    write_shard(str(tmp_path / "r.h5"), real_columns([1, 2, 3]), kind="real", shard_index=1, num_shards=2)
    write_manifest(str(tmp_path), [("m.h5", 0), ("r.h5", 1)])
    assert len(CSMShards(str(tmp_path))) == 13
    assert len(CSMShards(str(tmp_path), kind="mixed")) == 10
    real = CSMShards(str(tmp_path), kind="real")
    assert len(real) == 3 and real.kind_of(0) == "real" and real[2]["class_a"] == 3
    only_mixed = str(tmp_path / "m.h5")
    with pytest.raises(ShardError, match="holds no shard of kind 'real'"):
        CSMShards(only_mixed, kind="real")


# -- the CSM pairing


def test_paired_sampling_invariants(mixed_run, real_run):
    real = CSMShards(real_run[0])
    mixed = CSMShards(mixed_run[0])
    pairing = TrajectoryPairing(real, mixed, n_aug=3, seed=5)
    assert len(pairing) == len(real)
    group, lam = mixed.column("group"), mixed.column("lambda_gen")
    class_a, class_b = mixed.column("class_a"), mixed.column("class_b")
    for epoch in (0, 1):
        for i in range(len(pairing)):
            real_index, members = pairing.plan(i, epoch)
            c = int(real.column("class_a")[real_index])
            assert len(members) == 4 and len(set(members.tolist())) == 4
            assert len(set(group[members].tolist())) == 1                # one trajectory
            assert {c} <= {int(class_a[members[0]]), int(class_b[members[0]])}
            # The first member is the endpoint of class c.
            assert lam[members[0]] == (1.0 if class_a[members[0]] == c else 0.0)
            assert np.all((lam[members[1:]] > 0) & (lam[members[1:]] < 1))
            assert np.all(np.diff(lam[members[1:]]) > 0)                # interior in trajectory order
    # Deterministic given seed and epoch; another epoch draws differently.
    again = TrajectoryPairing(real, mixed, n_aug=3, seed=5)
    plans = [pairing.plan(i, 0)[1].tolist() for i in range(len(pairing))]
    assert plans == [again.plan(i, 0)[1].tolist() for i in range(len(pairing))]
    assert plans != [pairing.plan(i, 1)[1].tolist() for i in range(len(pairing))]
    pairing.set_epoch(1)
    assert [pairing.plan(i)[1].tolist() for i in range(len(pairing))] == [again.plan(i, 1)[1].tolist()
                                                                        for i in range(len(pairing))]


def test_pairing_classes_without_trajectories(mixed_run, tmp_path):
    mixed = CSMShards(mixed_run[0], pairs=[(7, 9)])
    path = write_shard(str(tmp_path / "r.h5"), real_columns([7, 9, 1, 7]), kind="real", sharpness=float("nan"))
    real = CSMShards(path)
    with pytest.raises(ShardError, match=r"classes 1 \(Trouser\)"):
        TrajectoryPairing(real, mixed)
    pairing = TrajectoryPairing(real, mixed, skip_unpaired_classes=True)
    assert pairing.unpaired_classes == [1] and pairing.real_positions.tolist() == [0, 1, 3]
    with pytest.raises(ShardError, match="no trajectory with an endpoint and 4 interior"):
        TrajectoryPairing(real, mixed, n_aug=4)          # 5 λ per trajectory: 3 interior


def test_pairing_respects_consistency(mixed_run, real_run):
    mixed = CSMShards(mixed_run[0], consistent_only=True)
    pairing = TrajectoryPairing(CSMShards(real_run[0]), mixed, n_aug=1, skip_unpaired_classes=True)
    for i in range(len(pairing)):
        _, members = pairing.plan(i)
        assert np.all(mixed.column("consistent")[members] == 1)


# -- command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "csm_shards", *args], capture_output=True, text=True, timeout=60)


def test_cli_dump(mixed_run, real_run):
    directory, parts = mixed_run
    expected = concat(parts)
    result = run_cli("dump", directory, "--indices", "0,5,17", "--images", "list")
    assert result.returncode == 0, result.stderr
    dump = json.loads(result.stdout)
    assert dump["count"] == 30 and dump["image_shape"] == list(IMAGE_SHAPE)
    assert [s["index"] for s in dump["samples"]] == [0, 5, 17]
    sample = dump["samples"][2]
    assert sample["file"] == "mixed-00001.h5" and sample["row"] == 7 and sample["kind"] == "mixed"
    assert sample["image"] == expected["images"][17].reshape(-1).tolist()
    assert np.array_equal(np.array(sample["label"], np.float32), expected["labels"][17])   # exact float32 values
    for name in SCALARS:
        assert np.array(sample[name], dtype=expected[name].dtype) == expected[name][17], name
    assert sample["image_sha256"] == hashlib.sha256(expected["images"][17].tobytes()).hexdigest()
    assert sample["label_sha256"] == hashlib.sha256(expected["labels"][17].astype("<f4").tobytes()).hexdigest()

    real = json.loads(run_cli("dump", real_run[0], "--indices", "1-2").stdout)
    assert [s["index"] for s in real["samples"]] == [1, 2] and real["samples"][0]["lambda_proj"] is None
    assert "image" not in real["samples"][0]

    info = json.loads(run_cli("info", directory).stdout)
    assert info["count"] == 30 and [s["shard_index"] for s in info["shards"]] == [0, 1, 2]

    bad = run_cli("dump", directory, "--indices", "30")
    assert bad.returncode == 1 and "out of range" in bad.stderr
    broken = os.path.join(directory, "mixed-00000.h5")
    with open(broken, "r+b") as f:
        f.write(b"garbage!")
    bad = run_cli("dump", directory, "--verify")
    assert bad.returncode == 1 and "mixed-00000.h5: SHA-256" in bad.stderr and bad.stdout == ""


# -- PyTorch


def test_torch_datasets(mixed_run, real_run):
    torch = pytest.importorskip("torch")
    from csm_shards import CSMDataset, PairedCSMDataset

    directory, parts = mixed_run
    expected = concat(parts)
    data = CSMDataset(directory)
    image, label = data[4]
    assert image.shape == (1, 6, 5) and image.dtype == torch.float32
    assert torch.equal(image, torch.from_numpy(expected["images"][4].transpose(2, 0, 1)).float() / 255)
    assert label.shape == (10,) and torch.equal(label, torch.from_numpy(expected["labels"][4]))
    sharp = CSMDataset(directory, transform=lambda x: torch.from_numpy(x.copy()), sharpness=2.0, consistent_only=True)
    image, label = sharp[0]
    assert image.dtype == torch.uint8 and image.shape == IMAGE_SHAPE
    assert torch.allclose(label, torch.from_numpy(sharp.shards.soft_labels(2.0)[0]))

    paired = PairedCSMDataset(real_run[0], directory, n_aug=2, seed=1)
    real_image, hard, mixed_images, targets = paired[3]
    assert real_image.shape == (1, 6, 5) and hard.dtype == torch.int64 and hard.shape == ()
    assert mixed_images.shape == (3, 1, 6, 5) and targets.shape == (3, 10) and targets.dtype == torch.float32
    _, members = paired.pairing.plan(3)
    assert torch.equal(targets, torch.from_numpy(expected["labels"][members]))
    assert int(hard) in (int(expected["class_a"][members[0]]), int(expected["class_b"][members[0]]))

    loader = torch.utils.data.DataLoader(paired, batch_size=4, shuffle=True, num_workers=2)
    batches = list(loader)
    assert sum(len(batch[0]) for batch in batches) == len(paired)
    assert batches[0][2].shape == (4, 3, 1, 6, 5) and batches[0][3].shape == (4, 3, 10)

    with pytest.raises(ShardError, match=r"'kind': is 'mixed', expected 'real' here"):
        PairedCSMDataset(directory, directory)


def test_train_example_runs(mixed_run, real_run, tmp_path):
    pytest.importorskip("torch")
    # examples/pytorch/train.py with csm_shards' PairedCSMDataset in a DataLoader, evaluated on --test
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "pytorch", "train.py"), "--loader", "dataloader",
                             "--real", real_run[0], "--mixed", mixed_run[0], "--test", real_run[0], "--max-steps", "3",
                             "--batch-size", "4", "--threads", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ECE" in result.stdout and "loss" in result.stdout


# -- csm generate → Python


CSM = os.path.join(ROOT, ".build", "release", "csm")
PROTOTYPES = os.path.join(ROOT, "Datasets", "fashion-mnist", "fashion-mnist-resnet20.prototypes.safetensors")


@pytest.mark.skipif(not (os.path.exists(CSM) and os.path.exists(PROTOTYPES)),
                    reason="needs a built csm (.build/release/csm) and the default prototypes file")
def test_reads_csm_generate_output(tmp_path):
    out = str(tmp_path / "gen")
    subprocess.run([CSM, "generate", "--out", out, "--pairs", "7:9", "--groups-per-pair", "1", "--steps", "2"],
                   check=True, cwd=ROOT, capture_output=True, timeout=300)
    data = CSMShards(out, verify=True)
    assert len(data) == 8 and data.image_shape == (28, 28, 1) and data.kind_of(0) == "mixed"
    assert set(data.column("class_a")) == {7} and set(data.column("class_b")) == {9}
    np.testing.assert_allclose(data.column("lambda_gen"), np.linspace(0, 1, 8), atol=1e-6)
    np.testing.assert_allclose(data.soft_labels(data.shards[0].sharpness), data.column("labels"), atol=1e-6)
    assert data[0]["image"].dtype == np.uint8 and data[0]["label"].shape == (10,)
