"""One process of the torch.distributed test (launched by test_distributed.py with
`torchrun --nproc-per-node 2`, gloo backend, CPU).

Every rank iterates CSMDataset and PairedCSMDataset through a DistributedSampler for two
epochs and sends what its DataLoader delivered to rank 0, which checks against the shards
read directly with h5py:

- the ranks' samples are disjoint and together are every sample once (each rank a half);
- every image arrives with its own label;
- every paired item stays paired: its mixed images are one trajectory of a class pair that
  contains the real image's class, the first is that class's endpoint, the rest interior
  members, each with its own soft target — and the draws equal a single process's.

Usage: distributed_worker.py REAL_DIR MIXED_DIR
"""

from __future__ import annotations

import hashlib
import os
import sys

import h5py
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from csm_shards import CSMDataset, CSMShards, PairedCSMDataset

N_AUG = 2
EPOCHS = (0, 1)


def key(image: torch.Tensor) -> str:
    """An image's identity: SHA-256 of its uint8 pixels (the datasets give x / 255)."""
    pixels = (image * 255).round().to(torch.uint8).numpy()
    return hashlib.sha256(pixels.tobytes()).hexdigest()


def raw_samples(directory: str) -> dict[str, dict]:
    """Every sample of a folder's shards, read with h5py, by image identity."""
    samples: dict[str, dict] = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".h5"):
            continue
        with h5py.File(os.path.join(directory, name), "r") as f:
            columns = {column: f[column][:] for column in f}
        for row in range(len(columns["images"])):
            image = columns["images"][row]
            identity = hashlib.sha256(np.ascontiguousarray(image.transpose(2, 0, 1)).tobytes()).hexdigest()
            assert identity not in samples, f"{name}: two samples share an image; the test needs distinct images"
            samples[identity] = {column: values[row] for column, values in columns.items()}
    return samples


def seen_by_this_rank(real: str, mixed: str, rank: int, world: int) -> dict:
    single = CSMDataset(mixed)
    single_sampler = DistributedSampler(single, num_replicas=world, rank=rank, shuffle=True, seed=0)
    paired = PairedCSMDataset(real, mixed, n_aug=N_AUG, seed=3)
    paired_sampler = DistributedSampler(paired, num_replicas=world, rank=rank, shuffle=True, seed=0)
    seen: dict = {"single": {}, "paired": {}}
    for epoch in EPOCHS:
        single_sampler.set_epoch(epoch)
        items = []
        for images, labels in DataLoader(single, batch_size=3, sampler=single_sampler, num_workers=1):
            items += [(key(image), label.numpy()) for image, label in zip(images, labels)]
        seen["single"][epoch] = items

        paired_sampler.set_epoch(epoch)
        paired.set_epoch(epoch)
        items = []
        for real_images, classes, mixed_images, targets in DataLoader(paired, batch_size=3, sampler=paired_sampler,
                                                                     num_workers=1):
            assert mixed_images.shape[1] == N_AUG + 1 and targets.shape[1] == N_AUG + 1
            for r, c, m, t in zip(real_images, classes, mixed_images, targets):
                items.append((key(r), int(c), [key(image) for image in m], t.numpy()))
        seen["paired"][epoch] = items
    return seen


def check(real: str, mixed: str, seen: list[dict]) -> None:
    world = len(seen)
    raw_mixed, raw_real = raw_samples(mixed), raw_samples(real)
    reference = PairedCSMDataset(real, mixed, n_aug=N_AUG, seed=3)
    real_shards = CSMShards(real)
    position = {hashlib.sha256(np.ascontiguousarray(real_shards[i]["image"].transpose(2, 0, 1)).tobytes()).hexdigest(): i
                for i in range(len(real_shards))}
    for epoch in EPOCHS:
        # CSMDataset: disjoint halves that together are every sample, each with its label.
        per_rank = [[identity for identity, _ in rank_seen["single"][epoch]] for rank_seen in seen]
        for rank, identities in enumerate(per_rank):
            assert len(identities) == len(raw_mixed) // world, f"epoch {epoch}: rank {rank} saw {len(identities)} samples"
            assert len(set(identities)) == len(identities), f"epoch {epoch}: rank {rank} saw a sample twice"
        assert not set(per_rank[0]) & set(per_rank[1]), f"epoch {epoch}: the ranks share samples"
        assert set(per_rank[0]) | set(per_rank[1]) == set(raw_mixed), f"epoch {epoch}: samples nobody saw"
        for rank_seen in seen:
            for identity, label in rank_seen["single"][epoch]:
                np.testing.assert_array_equal(label, raw_mixed[identity]["labels"])

        # PairedCSMDataset: disjoint halves of the real samples, each item paired.
        per_rank = [[item[0] for item in rank_seen["paired"][epoch]] for rank_seen in seen]
        for rank, identities in enumerate(per_rank):
            assert len(identities) == len(raw_real) // world and len(set(identities)) == len(identities), \
                f"epoch {epoch}: rank {rank} saw {len(identities)} real samples ({len(set(identities))} distinct)"
        assert not set(per_rank[0]) & set(per_rank[1]), f"epoch {epoch}: the ranks share real samples"
        assert set(per_rank[0]) | set(per_rank[1]) == set(raw_real), f"epoch {epoch}: real samples nobody saw"
        reference.set_epoch(epoch)
        for rank_seen in seen:
            for real_identity, label, members, targets in rank_seen["paired"][epoch]:
                c = int(raw_real[real_identity]["class_a"])
                assert label == c, f"real sample of class {c} came with label {label}"
                rows = [raw_mixed[m] for m in members]
                assert len({int(row["group"]) for row in rows}) == 1, "a paired item mixes trajectories"
                a, b = int(rows[0]["class_a"]), int(rows[0]["class_b"])
                assert c in (a, b), f"class {c} paired with a trajectory of pair ({a}, {b})"
                assert rows[0]["lambda_gen"] == (1 if c == a else 0), "the first mixed sample is not class c's endpoint"
                assert all(0 < row["lambda_gen"] < 1 for row in rows[1:]), "an augmentation is not an interior member"
                np.testing.assert_array_equal(targets, np.stack([row["labels"] for row in rows]))
                # The same draws as one process makes for this real sample and epoch.
                _, _, expected_images, expected_targets = reference[position[real_identity]]
                assert members == [key(image) for image in expected_images], "draws differ from a single process"
                np.testing.assert_array_equal(targets, expected_targets.numpy())


def main() -> int:
    real, mixed = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2, f"expected 2 processes, got {world}"
    torch.set_num_threads(1)
    seen = seen_by_this_rank(real, mixed, rank, world)
    gathered: list = [None] * world
    dist.all_gather_object(gathered, seen)
    if rank == 0:
        check(real, mixed, gathered)
        counts = {epoch: [len(s["single"][epoch]) for s in gathered] for epoch in EPOCHS}
        print(f"distributed: {world} ranks (gloo); CSMDataset samples per rank {counts}; "
              f"PairedCSMDataset real samples per rank {[len(s['paired'][0]) for s in gathered]}; "
              f"disjoint halves, labels and pairs intact, draws equal a single process's", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
