"""Training a classifier in PyTorch on csm shards: the PyTorch twin of `csm train`, and the
example of training with the csm_shards package (pip install "./python[torch]").

    csm import fashion-mnist --split train --out data/real-train     # real shards
    csm import fashion-mnist --split test --out data/real-test
    csm generate --out data/mixed                                   # class-mixed shards, soft labels
    python3 examples/pytorch/train.py --real data/real-train --mixed data/mixed --test data/real-test --epochs 1
    python3 examples/pytorch/train.py --real data/real-train [--mixed data/mixed] --loss csm \
        --arch resnet20 --epochs 30 --batch 128 --lr 0.1 --clip 2 --json --out torch.safetensors

The default loader (--loader csm) is csm train's: the validation split, the epoch order, the
random crops (zero padding 4) and flips, and the mixed partners of every real sample (a
trajectory of its class: the endpoint most like that class + --n-aug interior members) are
drawn with csm's counter-based generator (SplitMix64 keyed by seed, epoch and position), so
both see the same batches; the inputs are normalised by the training split's per-channel
mean and standard deviation. --loader dataloader instead feeds csm_shards' PyTorch datasets
(PairedCSMDataset with --mixed, CSMDataset without) to a torch DataLoader with --workers
processes: the paper's pairing drawn by csm_shards, images in [0, 1], no crops or flips, all
of --real trained on (no validation split) — the pattern to copy into another training loop.

Either way the network is a resnet-classifier/1 ResNet with torchvision's initialisation; SGD
as torch.optim.SGD with weight decay on every parameter; clip_grad_norm_ over all parameters;
multistep (per epoch) or cosine (per optimiser step) schedule with linear warm-up; losses ce,
ls, focal, bsce-gra, csm, csm-bsce-gra (default: csm with --mixed, else ce), each the mean over
the batch. The real and mixed images of a step go through the network as one batch; the CSM
loss is cross entropy on the real images + squared L2 between softmax and the soft target on
the mixed ones.

One line per epoch (train loss, validation accuracy/NLL/ECE, images/s, peak memory; JSON with
--json); --test SHARDS adds the accuracy, NLL and ECE (15 bins) on those real shards at the end.
The --out file is a resnet-classifier/1 file `csm evaluate --classifier` reads. With
--max-steps and --no-validation it is a throughput benchmark (tools/bench/bench.py).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from csm_shards import CSMShards   # the Python reader: pip install ./python

MASK = (1 << 64) - 1


class LoaderRandom:
    """csm's LoaderRandom (CSMLoader/ImageTransform.swift): SplitMix64 seeded by mixing keys
    (docs/formats/loader-random-streams.md)."""

    def __init__(self, *keys: int) -> None:
        s = 0x243F6A8885A308D3
        for key in keys:
            s = self._mix(s ^ (key & MASK))
        self.state = s

    @staticmethod
    def _mix(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        return self._mix(self.state)

    def below(self, bound: int) -> int:
        return self.next() % bound

    def permutation(self, count: int) -> list[int]:
        order = list(range(count))
        for i in range(count - 1, 0, -1):
            j = self.below(i + 1)
            order[i], order[j] = order[j], order[i]
        return order


def transform(image: np.ndarray, mean: np.ndarray, std: np.ndarray, padding: int, flip: bool,
              random: LoaderRandom) -> np.ndarray:
    """csm's ImageTransform: crop with zero padding, flip, normalise; HWC uint8 → CHW float32."""
    h, w, _ = image.shape
    dy = random.below(2 * padding + 1) - padding if padding > 0 else 0
    dx = random.below(2 * padding + 1) - padding if padding > 0 else 0
    flipped = flip and random.next() & 1 == 1
    x = (image.astype(np.float32) * np.float32(1 / 255) - mean) / std
    out = np.broadcast_to(-mean / std, (h, w, len(mean))).astype(np.float32).copy()
    # out[y, x] = x[y + dy, x' + dx] with x' = w − 1 − x when flipped, i.e. the flipped image shifted by −dx.
    source = x[:, ::-1] if flipped else x
    if flipped:
        dx = -dx
    ys, yd = max(0, dy), max(0, -dy)
    xs, xd = max(0, dx), max(0, -dx)
    out[yd:h - ys, xd:w - xs] = source[ys:h - yd, xs:w - xd]
    return out.transpose(2, 0, 1)


def all_images(shards: CSMShards) -> np.ndarray:
    """Every image of `shards` [N, H, W, C], read a shard at a time (the reader's per-sample
    access, when a filter has left out rows)."""
    import h5py
    parts = []
    for info in shards.shards:
        with h5py.File(info.path, "r") as f:
            parts.append(f["images"][:])
    images = np.concatenate(parts) if parts else np.zeros((0, *shards.image_shape), np.uint8)
    if len(images) != len(shards):
        images = np.stack([shards[i]["image"] for i in range(len(shards))])
    return images


class Data:
    """Real shards split as csm train splits them, and the mixed partners csm draws."""

    def __init__(self, args) -> None:
        self.real = CSMShards(args.real, kind="real")
        self.images = all_images(self.real)
        self.classes = self.real.column("class_a").astype(np.int64)
        n = len(self.real)
        order = [i for i in LoaderRandom(args.seed, 0x56414C4944415445).permutation(n)]
        held = int(math.floor(args.val_fraction * n + 0.5))
        self.val = sorted(order[:held])
        self.train = sorted(order[held:])
        if not self.train or (args.val_fraction > 0 and not self.val):
            sys.exit(f"{args.real}: an empty split ({n} real samples, validation fraction {args.val_fraction})")
        pixels = self.images[self.train].astype(np.float64) / 255
        self.mean = pixels.mean(axis=(0, 1, 2)).astype(np.float32)
        self.std = np.maximum(pixels.std(axis=(0, 1, 2)), 1e-3 / 255).astype(np.float32)
        self.args = args
        self.mixed = None
        if args.mixed:
            self.mixed = CSMShards(args.mixed, kind="mixed", sharpness=args.sharpness)
            self.mixed_images = all_images(self.mixed)
            self.mixed_labels = (self.mixed.soft_labels(args.sharpness) if args.sharpness is not None
                                 else self.mixed.column("labels"))
            group, lam = self.mixed.column("group"), self.mixed.column("lambda_gen")
            class_a, class_b = self.mixed.column("class_a"), self.mixed.column("class_b")
            consistent = self.mixed.column("consistent")
            members: dict[int, list[int]] = {}
            for i in range(len(self.mixed)):
                if args.consistent_only and consistent[i] == 0:
                    continue
                members.setdefault(int(group[i]), []).append(i)
            self.by_class: list[list[list[int]]] = [[] for _ in range(self.real.num_classes)]
            for key in sorted(members):
                trajectory = sorted(members[key], key=lambda i: lam[i])
                if len(trajectory) < 2:
                    continue
                self.by_class[int(class_a[trajectory[0]])].append(trajectory)
                self.by_class[int(class_b[trajectory[0]])].append(trajectory)
            self.class_a = class_a
            unpaired = sorted({int(self.classes[i]) for i in self.train if not self.by_class[int(self.classes[i])]})
            if unpaired and not args.skip_unpaired:
                names = ", ".join(f"{c} ({self.real.class_names[c]})" for c in unpaired)
                sys.exit(f"{args.mixed}: no mixed trajectory contains classes {names}")

    def steps_per_epoch(self) -> int:
        return (len(self.train) + self.args.batch - 1) // self.args.batch

    def group(self, index: int, position: int, epoch: int) -> list[int]:
        if self.args.mixed_share < 1:
            share = LoaderRandom(self.args.seed, epoch, position, 0x5348415245)
            if (share.next() >> 11) * 2.0 ** -53 >= self.args.mixed_share:
                return []
        c = int(self.classes[index])
        random = LoaderRandom(self.args.seed, epoch, position, 0x50414952)
        candidates = self.by_class[c]
        if not candidates:
            return []
        trajectory = candidates[random.below(len(candidates))]
        endpoint = trajectory[-1] if int(self.class_a[trajectory[0]]) == c else trajectory[0]
        interior = trajectory[1:-1]
        chosen = [endpoint]
        for _ in range(self.args.n_aug):
            chosen.append(interior[random.below(len(interior))] if interior else endpoint)
        return chosen

    def batches(self, epoch: int):
        args = self.args
        order = [self.train[i] for i in LoaderRandom(args.seed, epoch, 0x53485546).permutation(len(self.train))]
        padding, flip = (0, False) if args.no_augment else (4, True)
        for start in range(0, len(order), args.batch):
            chosen = order[start:start + args.batch]
            images = [transform(self.images[i], self.mean, self.std, padding, flip, LoaderRandom(args.seed, epoch, start + j))
                      for j, i in enumerate(chosen)]
            labels = torch.from_numpy(self.classes[chosen])
            targets = None
            if self.mixed is not None:
                mixed = [m for j, i in enumerate(chosen) for m in self.group(i, start + j, epoch)]
                # Mixed sample j of the batch takes the epoch's draws number start·(n_aug + 1) + j.
                first = start * (args.n_aug + 1)
                images += [transform(self.mixed_images[m], self.mean, self.std, padding, flip,
                                     LoaderRandom(args.seed ^ 0x4D495845, epoch, first + j)) for j, m in enumerate(mixed)]
                targets = torch.from_numpy(self.mixed_labels[mixed])
            yield torch.from_numpy(np.stack(images)), labels, targets

    def validation(self):
        for start in range(0, len(self.val), 256):
            chosen = self.val[start:start + 256]
            x = np.stack([transform(self.images[i], self.mean, self.std, 0, False, LoaderRandom(0)) for i in chosen])
            yield torch.from_numpy(x), torch.from_numpy(self.classes[chosen])


class PairedData:
    """--loader dataloader: csm_shards' PyTorch datasets in a torch DataLoader. With --mixed,
    PairedCSMDataset (a real image, its class, and its trajectory's class endpoint + --n-aug
    interior members with their soft targets, drawn per epoch by csm_shards); without,
    CSMDataset. Images in [0, 1] (mean 0, std 1), no crops or flips, no validation split."""

    def __init__(self, args) -> None:
        from csm_shards import CSMDataset, PairedCSMDataset
        if args.mixed:
            self.dataset = PairedCSMDataset(args.real, args.mixed, n_aug=args.n_aug, seed=args.seed,
                                            sharpness=args.sharpness, consistent_only=args.consistent_only,
                                            skip_unpaired_classes=args.skip_unpaired)
            self.real = self.dataset.real
        else:
            self.dataset = CSMDataset(args.real, kind="real")
            self.real = self.dataset.shards
        channels = self.real.image_shape[2]
        self.mean, self.std = np.zeros(channels, np.float32), np.ones(channels, np.float32)
        self.val: list[int] = []
        self.args = args

    def steps_per_epoch(self) -> int:
        return (len(self.dataset) + self.args.batch - 1) // self.args.batch

    def batches(self, epoch: int):
        from torch.utils.data import DataLoader
        if self.args.mixed:
            self.dataset.set_epoch(epoch)                    # the draws of this epoch reach the workers
        for batch in DataLoader(self.dataset, self.args.batch, shuffle=True, num_workers=self.args.workers):
            if self.args.mixed:
                real, labels, mixed, targets = batch         # mixed [B, n_aug + 1, C, H, W], targets [B, n_aug + 1, K]
                yield torch.cat([real, mixed.flatten(0, 1)]), labels, targets.flatten(0, 1)
            else:
                images, soft = batch
                yield images, soft.argmax(1), None


# ---------------------------------------------------------------------------------------
# resnet-classifier/1 networks


PRESETS = {
    "resnet20": ("basic", [3, 3, 3], [16, 32, 64]),
    "resnet32": ("basic", [5, 5, 5], [16, 32, 64]),
    "resnet56": ("basic", [9, 9, 9], [16, 32, 64]),
    "resnet18": ("basic", [2, 2, 2, 2], [64, 128, 256, 512]),
    "resnet50": ("bottleneck", [3, 4, 6, 3], [64, 128, 256, 512]),
}


class Block(nn.Module):
    def __init__(self, kind: str, inputs: int, planes: int, stride: int) -> None:
        super().__init__()
        self.kind = kind
        expansion = 1 if kind == "basic" else 4
        outputs = planes * expansion
        if kind == "basic":
            self.conv1 = nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
        else:
            self.conv1 = nn.Conv2d(inputs, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, outputs, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(outputs)
        self.downsample = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        if self.kind == "basic":
            out = self.bn2(self.conv2(out))
        else:
            out = F.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """A resnet-classifier/1 network with torchvision's parameter names and initialisation."""

    def __init__(self, block: str, layers: list[int], widths: list[int], stem: str, in_channels: int, classes: int) -> None:
        super().__init__()
        self.config = {"block": block, "layers": layers, "widths": widths, "stem": stem, "in_channels": in_channels,
                       "num_classes": classes}
        self.stem = stem
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        channels = widths[0]
        expansion = 1 if block == "basic" else 4
        for stage, (count, planes) in enumerate(zip(layers, widths)):
            blocks = []
            for index in range(count):
                blocks.append(Block(block, channels, planes, 2 if stage > 0 and index == 0 else 1))
                channels = planes * expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.stages = len(layers)
        self.fc = nn.Linear(channels, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if self.stem == "imagenet":
            x = F.max_pool2d(x, 3, 2, 1)
        for stage in range(self.stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def save(model: ResNet, path: str, data: Data, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file
    h, w, c = data.real.image_shape
    meta = dict(metadata)
    meta.update({
        "format": "resnet-classifier/1",
        "resnet": json.dumps(model.config),
        "input": json.dumps({"height": h, "width": w, "channels": c, "scale": 1 / 255,
                             "mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std]}),
        "class_names": json.dumps(list(data.real.class_names)),
    })
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    state = {k: (v.float() if v.dtype != torch.int64 else v) for k, v in state.items()}
    save_file(state, path, metadata=meta)


# ---------------------------------------------------------------------------------------
# Losses: the mean over the batch (the CSM losses: each part over its own samples)


def bsce_gra(logits, labels, gamma: float, norm: float):
    p = logits.softmax(1)
    onehot = F.one_hot(labels, logits.shape[1]).to(p.dtype)
    weight = torch.linalg.vector_norm(onehot - p, ord=norm, dim=1).pow(gamma).detach()
    return (weight * F.cross_entropy(logits, labels, reduction="none")).mean()


def focal(logits, labels, gamma: float):
    log_p = F.log_softmax(logits, 1).gather(1, labels[:, None])[:, 0]
    return (-(1 - log_p.exp()).pow(gamma) * log_p).mean()


def loss_of(args, logits, labels, targets):
    n = len(labels)
    real = logits[:n]
    if args.loss == "ce":
        return F.cross_entropy(real, labels)
    if args.loss == "ls":
        return F.cross_entropy(real, labels, label_smoothing=args.smoothing)
    if args.loss == "focal":
        return focal(real, labels, args.gamma)
    if args.loss == "bsce-gra":
        return bsce_gra(real, labels, args.gamma, args.norm)
    first = F.cross_entropy(real, labels) if args.loss == "csm" else bsce_gra(real, labels, args.gamma, args.norm)
    mixed = logits[n:]
    if len(mixed) == 0:
        return first
    return first + (mixed.softmax(1) - targets).pow(2).sum(1).mean()


def learning_rate(args, step: int, per_epoch: int, total: int) -> float:
    if args.schedule == "multistep":
        rate = args.lr * args.gamma_lr ** sum(1 for m in args.milestones if m <= step // per_epoch)
    else:
        rate = args.lr * (1 + math.cos(math.pi * min(step, total) / total)) / 2
    warmup = round(args.warmup_epochs * per_epoch)
    return rate * (step + 1) / warmup if step < warmup else rate


def metrics(model, batches, prefix: str) -> dict[str, float]:
    """Accuracy, NLL and ECE (15 equal-width bins (lo, hi], as csm evaluate) over `batches`."""
    model.eval()
    with torch.no_grad():
        pairs = [(model(x), y) for x, y in batches]
    model.train()
    logits, labels = torch.cat([p for p, _ in pairs]).double(), torch.cat([y for _, y in pairs])
    probs = logits.softmax(1)
    confidence, prediction = probs.max(1)
    correct = (prediction == labels).double()
    bins = (confidence * 15).ceil().long().clamp(1, 15) - 1
    ece = sum(float((correct[bins == b].mean() - confidence[bins == b].mean()).abs() * (bins == b).double().mean())
              for b in range(15) if (bins == b).any())
    return {f"{prefix}_accuracy": float(correct.mean()), f"{prefix}_nll": float(F.cross_entropy(logits, labels)),
            f"{prefix}_ece": ece}


def validate(model, data: Data) -> dict[str, float]:
    return metrics(model, data.validation(), "val")


def real_batches(shards: CSMShards, data):
    """Every image of `shards` with its class, normalised as the training inputs, without crops or flips."""
    if shards.image_shape != data.real.image_shape or shards.num_classes != data.real.num_classes:
        sys.exit(f"train: --test: images {shards.image_shape}, {shards.num_classes} classes; "
                 f"the training shards have {data.real.image_shape}, {data.real.num_classes}")
    images, classes = all_images(shards), shards.column("class_a").astype(np.int64)
    for start in range(0, len(images), 256):
        x = (images[start:start + 256].astype(np.float32) * np.float32(1 / 255) - data.mean) / data.std
        yield torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(classes[start:start + 256])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", required=True, help="real shards (manifest, folder or .h5)")
    parser.add_argument("--mixed", help="mixed shards from csm generate (with --loss csm / csm-bsce-gra)")
    parser.add_argument("--test", help="real shards to report accuracy, NLL and ECE on after training")
    parser.add_argument("--loader", default="csm", choices=["csm", "dataloader"],
                        help="csm: csm train's split and draws (default); dataloader: csm_shards' datasets in a DataLoader")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (--loader dataloader)")
    parser.add_argument("--loss", choices=["ce", "ls", "focal", "bsce-gra", "csm", "csm-bsce-gra"],
                        help="default: csm with --mixed, else ce")
    parser.add_argument("--arch", default="resnet20", choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--batch", "--batch-size", type=int, default=128, help="real images per step")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--nesterov", action="store_true")
    parser.add_argument("--clip", type=float, default=0.0)
    parser.add_argument("--schedule", default="multistep", choices=["multistep", "cosine"])
    parser.add_argument("--milestones", help="epochs, comma-separated (default: 40%% and 60%% of --epochs)")
    parser.add_argument("--gamma-lr", type=float, default=0.1)
    parser.add_argument("--warmup-epochs", type=float, default=0.0)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--gamma", type=float)
    parser.add_argument("--norm", type=float, default=2.0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--n-aug", type=int, default=1, help="interior trajectory members per real sample")
    parser.add_argument("--sharpness", type=float, help="re-derive the mixed soft labels with this sharpness")
    parser.add_argument("--skip-unpaired", action="store_true")
    parser.add_argument("--consistent-only", action="store_true", help="trajectories from consistent mixed samples only")
    parser.add_argument("--mixed-share", type=float, default=1.0, help="probability that a real sample brings its mixed group")
    parser.add_argument("--no-validation", action="store_true", help="skip the per-epoch validation (benchmarks)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    args.loss = args.loss or ("csm" if args.mixed else "ce")
    if args.loader == "dataloader" and args.mixed_share < 1:
        sys.exit("train: --mixed-share needs --loader csm")
    if args.gamma is None:
        args.gamma = 3.0 if args.loss == "focal" else 2.0
    if args.loss.startswith("csm") != bool(args.mixed):
        sys.exit("train: --mixed goes with --loss csm / csm-bsce-gra, and they need it")
    args.milestones = ([int(m) for m in args.milestones.split(",")] if args.milestones
                       else [m for m in (int(args.epochs * 0.4), int(args.epochs * 0.6)) if m > 0])
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = Data(args) if args.loader == "csm" else PairedData(args)
    block, layers, widths = PRESETS[args.arch]
    h, w, c = data.real.image_shape
    model = ResNet(block, layers, widths, "cifar" if max(h, w) <= 64 else "imagenet", c, data.real.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                                nesterov=args.nesterov)
    per_epoch = data.steps_per_epoch()
    total = min(args.epochs * per_epoch, args.max_steps or args.epochs * per_epoch)
    step = 0
    model.train()
    for epoch in range(args.epochs):
        if step >= total:
            break
        started, images, losses = time.perf_counter(), 0, []
        for x, labels, targets in data.batches(epoch):
            if step >= total:
                break
            rate = learning_rate(args, step, per_epoch, total)
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss = loss_of(args, model(x), labels, targets)
            if not torch.isfinite(loss):
                sys.exit(f"train: the loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            optimizer.zero_grad()
            loss.backward()
            if args.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            step += 1
            images += len(x)
            losses.append(loss.item())
        seconds = time.perf_counter() - started
        record = {"epoch": epoch + 1, "steps": step, "lr": rate, "train_loss": float(np.mean(losses)),
                  "seconds": seconds, "images_per_second": images / seconds,
                  "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch": torch.__version__}
        if data.val and not args.no_validation:
            record.update(validate(model, data))
        print(json.dumps(record) if args.json else
              " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()), flush=True)
    if args.test:
        shards = CSMShards(args.test, kind="real")
        record = {"test_samples": len(shards), **metrics(model, real_batches(shards, data), "test")}
        print(json.dumps(record) if args.json else
              f"test: {record['test_samples']} real samples, accuracy {record['test_accuracy']:.4f}, "
              f"NLL {record['test_nll']:.4f}, ECE {record['test_ece']:.4f}", flush=True)
    if args.out:
        save(model, args.out, data, {"provenance": f"examples/pytorch/train.py: {args.arch}, loss {args.loss}, "
                                                   f"{args.loader} loader, {step} SGD steps"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
