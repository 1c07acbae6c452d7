"""`TrajectoryPairing`: which mixed samples go with each real sample, as the CSM paper trains (numpy only)."""

from __future__ import annotations

import numpy as np

from .errors import ShardError
from .shards import CSMShards

__all__ = ["TrajectoryPairing"]


class TrajectoryPairing:
    """Which mixed samples go with each real sample, as the CSM paper trains (numpy only).

    For a real sample of class c, one trajectory (group) of the mixed data whose pair
    contains c is drawn at random; from it come the trajectory's endpoint of class c — the
    member generated with λ = 1 when c = class_a, λ = 0 when c = class_b — followed by
    `n_aug` distinct interior members (0 < λ < 1, in trajectory order) drawn at random. The
    draw is a pure function of (seed, epoch, real index): independent of batching, of
    DataLoader workers and of the order samples are asked for. It is numpy's generator and
    this class's rule, not `csm train`'s draws (docs/formats/loader-random-streams.md;
    examples/pytorch/train.py reproduces those).

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
