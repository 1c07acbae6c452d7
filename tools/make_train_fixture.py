"""Makes the PyTorch reference for csm's trainable ResNets (Tests/Fixtures/train/).

For each case it builds a small torchvision-style ResNet (torchvision's parameter names and
layouts), perturbs its batch-norm parameters and running statistics so that nothing is
trivially 0 or 1, and writes two files:

  NAME.model.safetensors  the network as a resnet-classifier/1 file (what csm loads);
  NAME.step.safetensors   one training-mode forward/backward on a fixed batch: `input`
                          (NCHW), `labels`, `logits` (train mode), `grad.<parameter>` of the
                          mean cross-entropy for every parameter, and `after.<bn>.running_mean`
                          / `after.<bn>.running_var` (the running statistics after that forward).

Run from the repository root: python3 tools/make_train_fixture.py [--out Tests/Fixtures/train]
(needs torch and safetensors; float64 on CPU, stored as float32).
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


class Block(torch.nn.Module):
    """torchvision's BasicBlock / Bottleneck (stride on the 3×3 conv), 1×1 projection shortcut."""

    def __init__(self, kind, inputs, planes, stride):
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
        return F.relu(h + (self.downsample(x) if self.downsample is not None else x))


class ResNet(torch.nn.Module):
    def __init__(self, arch):
        super().__init__()
        self.arch = arch
        widths, stem = arch["widths"], arch["stem"]
        expansion = 1 if arch["block"] == "basic" else 4
        if stem == "cifar":
            self.conv1 = torch.nn.Conv2d(arch["in_channels"], widths[0], 3, 1, 1, bias=False)
        else:
            self.conv1 = torch.nn.Conv2d(arch["in_channels"], widths[0], 7, 2, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(widths[0])
        channels = widths[0]
        for stage, (count, planes) in enumerate(zip(arch["layers"], widths)):
            blocks = []
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(Block(arch["block"], channels, planes, stride))
                channels = planes * expansion
            setattr(self, f"layer{stage + 1}", torch.nn.Sequential(*blocks))
        self.fc = torch.nn.Linear(channels, arch["num_classes"])

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        if self.arch["stem"] == "imagenet":
            h = F.max_pool2d(h, 3, 2, 1)
        for stage in range(len(self.arch["layers"])):
            h = getattr(self, f"layer{stage + 1}")(h)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


CASES = {
    # Odd widths (the im2col route), an identity block and a projection shortcut.
    "basic-cifar": dict(arch=dict(block="basic", layers=[2, 1, 1], widths=[3, 5, 7], stem="cifar", in_channels=3,
                                  num_classes=3), size=(9, 10), batch=8),
    # Widths that are multiples of 16: 3×3 convolutions and their input gradients go through Winograd.
    "basic-winograd": dict(arch=dict(block="basic", layers=[1, 1], widths=[16, 32], stem="cifar", in_channels=1,
                                     num_classes=4), size=(8, 8), batch=4),
    # Bottleneck blocks behind the ImageNet stem (7×7 stride 2, max-pool), odd image size.
    "bottleneck-imagenet": dict(arch=dict(block="bottleneck", layers=[1, 1], widths=[3, 5], stem="imagenet", in_channels=3,
                                          num_classes=4), size=(19, 17), batch=4),
}


def make(name, case, out, generator):
    arch = case["arch"]
    model = ResNet(arch).double()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.3, 0.3, generator=generator)
                module.running_mean.uniform_(-0.5, 0.5, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.num_batches_tracked.fill_(7)
    height, width = case["size"]
    channels = arch["in_channels"]
    metadata = {
        "format": "resnet-classifier/1",
        "resnet": json.dumps(arch),
        "input": json.dumps(dict(height=height, width=width, channels=channels, scale=1 / 255, mean=[0.5] * channels,
                                 std=[0.25] * channels)),
        "class_names": json.dumps([f"class {k}" for k in range(arch["num_classes"])]),
        "provenance": f"tools/make_train_fixture.py case {name}",
    }
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out, f"{name}.model.safetensors"), metadata=metadata)

    x = torch.randn(case["batch"], channels, height, width, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, arch["num_classes"], (case["batch"],), generator=generator)
    # The network as stored (float32 values), computed in float64.
    model.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in state.items()})
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    step = {"input": x.float(), "labels": labels.to(torch.int64), "logits": logits.detach().float()}
    for key, parameter in model.named_parameters():
        step[f"grad.{key}"] = parameter.grad.float()
    for key, buffer in model.state_dict().items():
        if key.endswith("running_mean") or key.endswith("running_var"):
            step[f"after.{key}"] = buffer.float()
    save_file({k: v.contiguous() for k, v in step.items()}, os.path.join(out, f"{name}.step.safetensors"))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, loss {loss.item():.6f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="Tests/Fixtures/train")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    generator = torch.Generator().manual_seed(20240611)
    for name, case in CASES.items():
        make(name, case, args.out, generator)


if __name__ == "__main__":
    main()
