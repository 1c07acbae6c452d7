"""resnet-classifier/1 networks in PyTorch (docs/formats/resnet-classifier.md): torchvision's
BasicBlock / Bottleneck (stride on the 3×3 convolution, 1×1 projection shortcut) behind a
CIFAR stem (3×3) or an ImageNet stem (7×7 stride 2, 3×3 max-pool), with torchvision's
parameter names, so a state_dict is what csm reads. PyTorch's default initialisation; the
fixture scripts set the values they need.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, kind: str, inputs: int, planes: int, stride: int):
        super().__init__()
        self.kind = kind
        outputs = planes * (1 if kind == "basic" else 4)
        if kind == "basic":
            self.conv1 = torch.nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(planes)
            self.conv2 = torch.nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(planes)
        else:
            self.conv1 = torch.nn.Conv2d(inputs, planes, 1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(planes)
            self.conv2 = torch.nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(planes)
            self.conv3 = torch.nn.Conv2d(planes, outputs, 1, bias=False)
            self.bn3 = torch.nn.BatchNorm2d(outputs)
        self.downsample = None
        if stride != 1 or inputs != outputs:
            self.downsample = torch.nn.Sequential(torch.nn.Conv2d(inputs, outputs, 1, stride, bias=False),
                                                  torch.nn.BatchNorm2d(outputs))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        if self.kind == "basic":
            h = self.bn2(self.conv2(h))
        else:
            h = F.relu(self.bn2(self.conv2(h)))
            h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet(torch.nn.Module):
    """The network of a `resnet` metadata entry: ResNet(**json.loads(file.metadata["resnet"]))."""

    def __init__(self, block: str, layers: list[int], widths: list[int], stem: str, in_channels: int, num_classes: int):
        super().__init__()
        self.stem = stem
        if stem == "cifar":
            self.conv1 = torch.nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        else:
            self.conv1 = torch.nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(widths[0])
        channels = widths[0]
        for stage, (count, planes) in enumerate(zip(layers, widths)):
            blocks = []
            for index in range(count):
                blocks.append(Block(block, channels, planes, 2 if stage > 0 and index == 0 else 1))
                channels = planes * (1 if block == "basic" else 4)
            setattr(self, f"layer{stage + 1}", torch.nn.Sequential(*blocks))
        self.stages = len(layers)
        self.fc = torch.nn.Linear(channels, num_classes)

    def features(self, x):
        """The globally average-pooled output of the last stage."""
        h = F.relu(self.bn1(self.conv1(x)))
        if self.stem == "imagenet":
            h = F.max_pool2d(h, 3, 2, 1)
        for stage in range(self.stages):
            h = getattr(self, f"layer{stage + 1}")(h)
        return h.mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.features(x))
