"""PyTorch datasets over csm shards: `CSMDataset` and `PairedCSMDataset`.

torch is imported when one of these classes is built (or unpickled in a DataLoader
worker), not when csm_shards is imported: the reader works without PyTorch.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .errors import ShardError
from .pairing import TrajectoryPairing
from .shards import CSMShards

if TYPE_CHECKING:
    import torch

__all__ = ["CSMDataset", "PairedCSMDataset"]


def _torch() -> ModuleType:
    """The torch module; an ImportError that says how to install it when it is missing."""
    try:
        import torch
    except ImportError:
        raise ImportError("CSMDataset and PairedCSMDataset need PyTorch: pip install torch") from None
    return torch


def _image_tensor(image: np.ndarray, transform: Any) -> Any:
    """HWC uint8 → transform(image), or float32 CHW in [0, 1] without a transform."""
    if transform is not None:
        return transform(image)
    torch = _torch()
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)


class _TorchDataset:
    """Pickles without the torch module it holds (`self.torch`), which a DataLoader worker
    imports again when it unpickles the dataset."""

    torch: ModuleType

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["torch"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.torch = _torch()


class CSMDataset(_TorchDataset):
    """A map-style PyTorch dataset (the `torch.utils.data.Dataset` protocol) over csm shards.

    Item i is (image, soft label): the image as a float32 tensor [C, H, W] in [0, 1], or
    `transform(image)` where `image` is the uint8 [H, W, C] numpy array (what torchvision's
    `ToTensor` / `v2.ToImage` accept); the label a float32 tensor [K] — the stored soft
    label, or re-derived from λ̂ with `sharpness` (real samples: one-hot). Other arguments
    are CSMShards's filters (`consistent_only`, `pairs`, `kind`), `verify` and `allow_incomplete`.

    Files open lazily in each DataLoader worker; the CSMShards is `self.shards`.
    """

    def __init__(self, path: str | os.PathLike[str], transform: Any = None, sharpness: float | None = None,
                 consistent_only: bool = False, *, pairs: Iterable[tuple[int | str, int | str]] | None = None,
                 kind: str | None = None, verify: bool = False, allow_incomplete: bool = False) -> None:
        self.torch = _torch()
        self.shards = CSMShards(path, verify=verify, consistent_only=consistent_only, pairs=pairs, kind=kind,
                                sharpness=sharpness, allow_incomplete=allow_incomplete)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        """(image, soft label) of sample `index`."""
        sample = self.shards[index]
        return _image_tensor(sample["image"], self.transform), self.torch.from_numpy(sample["label"])


class PairedCSMDataset(_TorchDataset):
    """Real samples paired with mixed trajectories, as the CSM paper trains.

    Item i is (real image [C, H, W], hard label (int64 scalar), mixed images
    [n_aug + 1, C, H, W], soft targets [n_aug + 1, K]). The mixed samples come from one
    trajectory whose class pair contains the real sample's class c: first its endpoint of
    class c (λ = 1 when c = class_a, λ = 0 when c = class_b), then `n_aug` interior members
    (0 < λ < 1) drawn at random — see `TrajectoryPairing`. Draws are deterministic given
    `seed` and the epoch; call `set_epoch(e)` before each epoch (with DataLoader's default
    non-persistent workers the new epoch reaches the workers).

    The CSM loss on a batch: cross entropy of the real images against the hard labels plus
    the squared L2 distance Σ_k (softmax_k − target_k)² on the mixed images, averaged over
    them (flatten [B, n_aug + 1, …] to [B·(n_aug + 1), …]).

    Args:
        real_path, mixed_path: shards (a manifest, its folder, a .h5 file, or a CSMShards);
            the real path's shards must be of kind `real`, the mixed path's of kind `mixed`.
        n_aug: interior members per real sample.
        seed: seed of the draws.
        transform: applied to every image (real and mixed), given as uint8 [H, W, C].
        sharpness: re-derive the mixed targets from λ̂ with this sharpness.
        consistent_only: draw only classifier-consistent mixed samples.
        skip_unpaired_classes: drop real samples whose class no trajectory covers instead
            of raising.
        verify, allow_incomplete: as for CSMShards, for both paths.
    """

    def __init__(self, real_path: str | os.PathLike[str] | CSMShards, mixed_path: str | os.PathLike[str] | CSMShards,
                 n_aug: int = 2, seed: int = 0, *, transform: Any = None, sharpness: float | None = None,
                 consistent_only: bool = False, skip_unpaired_classes: bool = False, verify: bool = False,
                 allow_incomplete: bool = False) -> None:
        self.torch = _torch()
        real = real_path if isinstance(real_path, CSMShards) else CSMShards(
            real_path, verify=verify, allow_incomplete=allow_incomplete)
        mixed = mixed_path if isinstance(mixed_path, CSMShards) else CSMShards(
            mixed_path, verify=verify, consistent_only=consistent_only, sharpness=sharpness,
            allow_incomplete=allow_incomplete)
        for shards, wanted in ((real, "real"), (mixed, "mixed")):
            for info in shards.shards:
                if info.kind != wanted:
                    raise ShardError(info.path, f"is '{info.kind}', expected '{wanted}' here", "kind")
        self.pairing = TrajectoryPairing(real, mixed, n_aug=n_aug, seed=seed,
                                         skip_unpaired_classes=skip_unpaired_classes)
        self.transform = transform

    @property
    def real(self) -> CSMShards:
        """The real samples."""
        return self.pairing.real

    @property
    def mixed(self) -> CSMShards:
        """The mixed samples."""
        return self.pairing.mixed

    def set_epoch(self, epoch: int) -> None:
        """Uses the draws of `epoch` from now on."""
        self.pairing.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.pairing)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(real image, hard label, mixed images, soft targets) of pair `index`, drawn for the
        current epoch."""
        torch = self.torch
        real_position, mixed_positions = self.pairing.plan(index)
        real = self.real[real_position]
        mixed = [self.mixed[int(p)] for p in mixed_positions]
        images = torch.stack([_image_tensor(m["image"], self.transform) for m in mixed])
        targets = torch.from_numpy(np.stack([m["label"] for m in mixed]))
        return (_image_tensor(real["image"], self.transform), torch.tensor(int(real["class_a"]), dtype=torch.int64),
                images, targets)
