"""Make csm's test fixtures for networks whose channel counts are not multiples of 16.

    python3 tools/make_odd_width_fixtures.py [--out Tests/Fixtures/odd]

Needs `torch` and `safetensors` (`python3 -m pip install torch safetensors`). Reference
outputs are computed by PyTorch from the same float32 weights and inputs that csm reads: the
ResNets in float64, the EDM networks in float32 as edm_torch.py runs (as EDM's own fixtures);
all are stored as float32. The output is deterministic: rerunning rewrites the same files.

ResNet classifiers (torchvision names and semantics, BatchNorm in eval mode, random weights
rounded to float16 and stored as F16 `resnet-classifier/1` files), one per combination of
block and stem:

  * resnet-basic-cifar-24-48-40: widths [24, 48, 40], 1-channel 28×28 input with the
    Fashion-MNIST classes (what `csm prototypes --data real-test` runs on);
  * resnet-bottleneck-imagenet-8-24, resnet-basic-imagenet-8-40, resnet-bottleneck-cifar-24-8:
    3-channel 32×32 input.

Next to each, NAME.forward.safetensors: pixels_u8 [N, C, H, W] (U8), labels [N] (I64),
features [N, F], logits [N, K], prototypes [K, F] (the mean features of each label's images)
and counts [K].

EDM networks (built with tools/edm_torch.py, the port checked against EDM's own outputs by
tools/check_edm_torch.py) are too large to store whole. Their weights are instead a pure
function of the tensor's name that the Swift tests reproduce bit for bit, see `draws` and
`generated_values`. NAME.denoise.safetensors holds metadata `edm` (the model file's `edm`
entry) and `parameters` (a JSON list of [name, shape, exponent, offset, absolute], one per
stored tensor, in the file's order), and tensors x [N, C, H, W], sigma [N], class_labels
[N, label_dim] and denoised = D(x; sigma, class_labels).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edm_torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASK = (1 << 64) - 1
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# ---------------------------------------------------------------------------------------
# The weight generator shared with the Swift tests (Tests/CSMModelsTests/OddWidthTests.swift)


def fnv1a64(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def draws(name: str, count: int) -> np.ndarray:
    """`count` values in [-1, 1), each a multiple of 2^-23: a 64-bit LCG seeded with FNV-1a(name),
    the top 24 bits of each state as a signed integer over 2^23."""
    state = fnv1a64(name)
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        signed = state - (1 << 64) if state >> 63 else state
        out[i] = (signed >> 40) / float(1 << 23)
    return out


def generation_rule(name: str, shape: list[int]) -> tuple[int, float, bool]:
    """(exponent, offset, absolute): value = offset + (|u| if absolute else u) * 2^exponent.
    Matrices and kernels get about 1/sqrt(fan-in); 1-D scales sit near 1, other vectors near 0."""
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        return -round(math.log2(math.sqrt(fan_in))), 0.0, False
    if name.endswith("freqs"):
        return 4, 0.0, False
    if name.endswith("weight"):
        return -1, 0.5, True
    return -3, 0.0, False


def generated_values(name: str, shape: list[int], rule: tuple[int, float, bool]) -> torch.Tensor:
    exponent, offset, absolute = rule
    u = draws(name, math.prod(shape))
    values = offset + (np.abs(u) if absolute else u) * 2.0 ** exponent
    assert np.array_equal(values.astype(np.float32).astype(np.float64), values), name  # exact in float32
    return torch.from_numpy(values).reshape(shape)


# ---------------------------------------------------------------------------------------
# ResNet (torchvision's BasicBlock / Bottleneck, CIFAR or ImageNet stem)


class Block(torch.nn.Module):
    def __init__(self, kind: str, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.kind = kind
        expansion = 1 if kind == "basic" else 4
        if kind == "basic":
            self.conv1 = torch.nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(planes)
            self.conv2 = torch.nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(planes)
        else:
            self.conv1 = torch.nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(planes)
            self.conv2 = torch.nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(planes)
            self.conv3 = torch.nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = torch.nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * expansion:
            self.downsample = torch.nn.Sequential(torch.nn.Conv2d(inplanes, planes * expansion, 1, stride, bias=False),
                                                  torch.nn.BatchNorm2d(planes * expansion))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        if self.kind == "basic":
            h = self.bn2(self.conv2(h))
        else:
            h = F.relu(self.bn2(self.conv2(h)))
            h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet(torch.nn.Module):
    def __init__(self, block: str, layers: list[int], widths: list[int], stem: str, in_channels: int, num_classes: int):
        super().__init__()
        self.stem = stem
        if stem == "cifar":
            self.conv1 = torch.nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        else:
            self.conv1 = torch.nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(widths[0])
        inplanes = widths[0]
        for stage, (count, planes) in enumerate(zip(layers, widths)):
            blocks = []
            for index in range(count):
                blocks.append(Block(block, inplanes, planes, 2 if stage > 0 and index == 0 else 1))
                inplanes = planes * (1 if block == "basic" else 4)
            setattr(self, f"layer{stage + 1}", torch.nn.Sequential(*blocks))
        self.stages = len(layers)
        self.fc = torch.nn.Linear(inplanes, num_classes)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        if self.stem == "imagenet":
            h = F.max_pool2d(h, 3, 2, 1)
        for stage in range(self.stages):
            h = getattr(self, f"layer{stage + 1}")(h)
        features = h.mean(dim=(2, 3))
        return features, self.fc(features)


def make_resnet(out: str, name: str, arch: dict, height: int, width: int, class_names: list[str],
                mean: list[float], std: list[float], count: int, seed: int) -> None:
    torch.manual_seed(seed)
    net = ResNet(arch["block"], arch["layers"], arch["widths"], arch["stem"], arch["in_channels"], arch["num_classes"])
    with torch.no_grad():
        for key, tensor in net.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            shape = list(tensor.shape)
            if key.endswith("running_var"):
                values = 0.5 + torch.rand(shape)
            elif key.endswith("running_mean"):
                values = 0.2 * torch.randn(shape)
            elif len(shape) == 1 and key.endswith("weight"):
                values = 0.6 + 0.8 * torch.rand(shape)
            elif len(shape) == 1:
                values = 0.1 * torch.randn(shape)
            else:
                values = torch.randn(shape) * math.sqrt(2 / math.prod(shape[1:]))
            tensor.copy_(values.half().float())  # the values the F16 file holds
    net = net.eval()
    c = arch["in_channels"]
    metadata = {
        "format": "resnet-classifier/1",
        "resnet": json.dumps(arch),
        "input": json.dumps({"height": height, "width": width, "channels": c, "scale": 1 / 255, "mean": mean, "std": std}),
        "class_names": json.dumps(class_names),
        "provenance": f"random weights from tools/make_odd_width_fixtures.py (seed {seed}), a test fixture",
    }
    tensors = {k: (v.clone() if k.endswith("num_batches_tracked") else v.half().contiguous())
               for k, v in net.state_dict().items()}
    save_file(tensors, os.path.join(out, f"{name}.safetensors"), metadata=metadata)

    pixels = torch.randint(0, 256, (count, c, height, width), dtype=torch.uint8)
    labels = torch.arange(count) % arch["num_classes"]
    labels = labels[torch.randperm(count)]
    scale = 1 / 255
    x = (pixels.double() * scale - torch.tensor(mean, dtype=torch.float64).view(1, c, 1, 1)) \
        / torch.tensor(std, dtype=torch.float64).view(1, c, 1, 1)
    with torch.no_grad():
        features, logits = net.double()(x)
    k, f = arch["num_classes"], features.shape[1]
    prototypes = torch.zeros(k, f, dtype=torch.float64)
    counts = torch.zeros(k, dtype=torch.float64)
    for i in range(count):
        prototypes[labels[i]] += features[i]
        counts[labels[i]] += 1
    prototypes /= counts.clamp(min=1).unsqueeze(1)
    save_file({"pixels_u8": pixels.contiguous(), "labels": labels.to(torch.int64), "features": features.float(),
               "logits": logits.float(), "prototypes": prototypes.float(), "counts": counts.float()},
              os.path.join(out, f"{name}.forward.safetensors"),
              metadata={"model": f"{name}.safetensors", "made_by": "tools/make_odd_width_fixtures.py"})
    print(f"{name}: {sum(t.numel() for t in tensors.values())} values, features {tuple(features.shape)}, "
          f"|features| max {features.abs().max():.3g}")


# ---------------------------------------------------------------------------------------
# EDM


def make_edm(out: str, name: str, class_name: str, init_kwargs: dict, sigmas: list[float], seed: int) -> None:
    net = edm_torch.build_network(class_name, dict(init_kwargs))
    parameters = []
    state = net.state_dict()
    with torch.no_grad():
        for key, tensor in state.items():
            if key.endswith("resample_filter"):
                continue  # fixed by the metadata; csm derives it
            shape = list(tensor.shape)
            rule = generation_rule(key, shape)
            tensor.copy_(generated_values(key, shape, rule))
            parameters.append([key, shape, rule[0], rule[1], rule[2]])
    net = net.eval().requires_grad_(False)

    torch.manual_seed(seed)
    n, c, r = len(sigmas), init_kwargs["img_channels"], init_kwargs["img_resolution"]
    sigma = torch.tensor(sigmas, dtype=torch.float32)
    clean = torch.rand(n, c, r, r) * 2 - 1
    x = (clean + sigma.view(n, 1, 1, 1) * torch.randn(n, c, r, r)).float()
    labels = torch.zeros(n, init_kwargs["label_dim"])
    for i in range(n):  # one-hot and mixed class vectors
        a, b = i % init_kwargs["label_dim"], (i + 1) % init_kwargs["label_dim"]
        labels[i, a] += 0.7 if i % 2 else 1.0
        labels[i, b] += 0.3 if i % 2 else 0.0
    with torch.inference_mode():
        denoised = net(x, sigma, labels)
    save_file({"x": x.contiguous(), "sigma": sigma, "class_labels": labels, "denoised": denoised.float().contiguous()},
              os.path.join(out, f"{name}.denoise.safetensors"),
              metadata={"edm": json.dumps({"class_name": class_name, "init_kwargs": init_kwargs}),
                        "parameters": json.dumps(parameters), "made_by": "tools/make_odd_width_fixtures.py"})
    print(f"{name}: {sum(math.prod(p[1]) for p in parameters)} generated values, "
          f"|denoised| max {denoised.abs().max():.3g}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO, "Tests", "Fixtures", "odd"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    def arch(block, layers, widths, stem, in_channels, num_classes):
        return {"block": block, "layers": layers, "widths": widths, "stem": stem, "in_channels": in_channels,
                "num_classes": num_classes}

    make_resnet(args.out, "resnet-basic-cifar-24-48-40", arch("basic", [1, 1, 1], [24, 48, 40], "cifar", 1, 10),
                28, 28, FASHION, [0.2860], [0.3530], count=20, seed=1)
    rgb = ([0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
    make_resnet(args.out, "resnet-bottleneck-imagenet-8-24", arch("bottleneck", [1, 1], [8, 24], "imagenet", 3, 5),
                32, 32, list("abcde"), *rgb, count=4, seed=2)
    make_resnet(args.out, "resnet-basic-imagenet-8-40", arch("basic", [1, 1], [8, 40], "imagenet", 3, 5),
                32, 32, list("abcde"), *rgb, count=4, seed=3)
    make_resnet(args.out, "resnet-bottleneck-cifar-24-8", arch("bottleneck", [1, 1], [24, 8], "cifar", 3, 5),
                32, 32, list("abcde"), *rgb, count=4, seed=4)

    common = dict(img_resolution=8, img_channels=3, label_dim=4, dropout=0.0)
    make_edm(args.out, "songunet-vp-24", "VPPrecond",
             dict(common, model_type="SongUNet", model_channels=24, channel_mult=[1, 2], num_blocks=1,
                  attn_resolutions=[4]), sigmas=[0.05, 1.0, 20.0], seed=5)
    make_edm(args.out, "songunet-ncsnpp-ve-24", "VEPrecond",
             dict(common, model_type="SongUNet", model_channels=24, channel_mult=[1, 1], num_blocks=1,
                  attn_resolutions=[4], embedding_type="fourier", channel_mult_noise=2, encoder_type="residual",
                  decoder_type="skip", resample_filter=[1, 3, 3, 1]), sigmas=[0.1, 5.0, 50.0], seed=6)
    make_edm(args.out, "dhariwal-edm-40-80", "EDMPrecond",
             dict(common, model_type="DhariwalUNet", model_channels=40, channel_mult=[1, 2], channel_mult_emb=1,
                  num_blocks=1, attn_resolutions=[4]), sigmas=[0.02, 0.8, 30.0], seed=7)
    return 0


if __name__ == "__main__":
    sys.exit(main())
