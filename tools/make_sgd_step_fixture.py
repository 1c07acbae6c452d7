"""Writes the one-SGD-step fixture of csm train's tests (Tests/Fixtures/training/).

    python3 tools/make_sgd_step_fixture.py [--out Tests/Fixtures/training]

A small resnet-classifier/1 network (basic blocks, layers [1, 1], widths [4, 8], cifar stem,
1 channel, 3 classes; batch-norm weights, biases and running statistics perturbed so that
none is trivial) is saved as `init.safetensors`. `step.safetensors` holds 64 images of 8×8
(uint8 values as float32, `images` [64, 8, 8, 1] HWC, `labels` [64]) and, for each loss
L of ce, ls, focal, bsce-gra, the state_dict after one torch.optim.SGD step on all 64 images
in training mode (lr 0.1, momentum 0.9, weight decay 5e-4; ls ε 0.1, focal γ 3, bsce-gra γ 2
norm 2) under `L/NAME`. Inputs are normalised with the network's input mean and std.
"""

import argparse
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_torch  # noqa: E402


class Args:
    smoothing, norm = 0.1, 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                      "Tests", "Fixtures", "training"))
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    generator = np.random.default_rng(0)
    model = train_torch.ResNet("basic", [1, 1], [4, 8], "cifar", 1, 3)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("bn1.weight") or name.endswith("bn2.weight") or name.endswith("downsample.1.weight"):
                tensor.copy_(torch.from_numpy(generator.uniform(0.5, 1.5, tensor.shape).astype(np.float32)))
            elif name.endswith(".bias") and "bn" in name or name.endswith("downsample.1.bias"):
                tensor.copy_(torch.from_numpy(generator.normal(0, 0.2, tensor.shape).astype(np.float32)))
            elif name.endswith("running_mean"):
                tensor.copy_(torch.from_numpy(generator.normal(0, 0.3, tensor.shape).astype(np.float32)))
            elif name.endswith("running_var"):
                tensor.copy_(torch.from_numpy(generator.uniform(0.5, 2, tensor.shape).astype(np.float32)))
    mean, std = 0.4, 0.3
    images = generator.integers(0, 256, (64, 8, 8, 1)).astype(np.uint8)
    labels = np.arange(64) % 3
    names = ["alpha", "beta", "gamma"]

    class Data:
        real = type("Real", (), {"image_shape": (8, 8, 1), "class_names": names})()
    Data.mean, Data.std = np.array([mean], np.float32), np.array([std], np.float32)
    train_torch.save(model, os.path.join(out, "init.safetensors"), Data,
                     {"provenance": "tools/make_sgd_step_fixture.py: perturbed torchvision initialisation"})

    initial = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.from_numpy(((images.astype(np.float32) / 255 - mean) / std).transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(labels)
    tensors = {"images": torch.from_numpy(images.astype(np.float32)), "labels": y.float()}
    for loss in ["ce", "ls", "focal", "bsce-gra"]:
        model.load_state_dict(initial)
        model.train()
        args = Args()
        args.loss, args.gamma = loss, 3.0 if loss == "focal" else 2.0
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        value = train_torch.loss_of(args, model(x), y, None)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        for name, tensor in model.state_dict().items():
            if tensor.dtype != torch.int64:
                tensors[f"{loss}/{name}"] = tensor.detach().clone()
        print(f"{loss}: loss {value.item():.6f}")
    save_file(tensors, os.path.join(out, "step.safetensors"),
              metadata={"lr": "0.1", "momentum": "0.9", "weight_decay": "5e-4", "torch": torch.__version__})
    print(f"wrote {out}/init.safetensors and {out}/step.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
