"""One epoch of CSM training in PyTorch on csm shards: a small CNN, real + mixed samples.

    csm import … --out data/real-train        # real shards (kind=real), e.g. Fashion-MNIST train
    csm generate --out data/mixed              # class-mixed shards with soft labels
    python3 tools/train_example.py --real data/real-train --mixed data/mixed [--test data/real-test] --max-steps 200

Loss (CSM): cross entropy on the real images + squared L2 between softmax and the soft
target on the mixed images. Prints the loss while training, then accuracy and ECE (15 bins)
on --test (default: the real training shards).
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from csm_shards import CSMDataset, PairedCSMDataset

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--real", required=True, help="real shards (manifest, folder or .h5)")
parser.add_argument("--mixed", required=True, help="mixed shards from csm generate")
parser.add_argument("--test", help="real shards to evaluate on (default: --real)")
parser.add_argument("--max-steps", type=int, default=200)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--n-aug", type=int, default=2, help="interior trajectory samples per real sample")
parser.add_argument("--sharpness", type=float, help="re-derive the soft targets with this sharpness")
parser.add_argument("--workers", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(0)

data = PairedCSMDataset(args.real, args.mixed, n_aug=args.n_aug, sharpness=args.sharpness, skip_unpaired_classes=True)
channels, classes = data.real.image_shape[2], data.real.num_classes
model = nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(32, classes))
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

data.set_epoch(0)                                    # one epoch; call again with e for epoch e
model.train()
for step, (real, label, mixed, target) in enumerate(DataLoader(data, args.batch_size, shuffle=True,
                                                               num_workers=args.workers)):
    if step >= args.max_steps:
        break
    logits = model(torch.cat([real, mixed.flatten(0, 1)]))       # [B + B·(n_aug+1), K]
    ce = F.cross_entropy(logits[:len(real)], label)
    l2 = (logits[len(real):].softmax(1) - target.flatten(0, 1)).pow(2).sum(1).mean()
    loss = ce + l2
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 20 == 0 or step == args.max_steps - 1:
        print(f"step {step:4d}  loss {loss.item():.4f}  (cross entropy {ce.item():.4f}, L2 {l2.item():.4f})")

test = CSMDataset(args.test or args.real, kind="real")
test = Subset(test, range(min(len(test), 10_000)))
model.eval()
with torch.no_grad():
    pairs = [(model(x).softmax(1), y.argmax(1)) for x, y in DataLoader(test, 256)]
probs, labels = torch.cat([p for p, _ in pairs]), torch.cat([y for _, y in pairs])
confidence, prediction = probs.max(1)
correct = (prediction == labels).float()
bins = (confidence * 15).ceil().long().clamp(1, 15) - 1              # 15 equal-width bins, (lo, hi]
ece = sum((correct[bins == b].mean() - confidence[bins == b].mean()).abs() * (bins == b).float().mean()
          for b in range(15) if (bins == b).any())
print(f"test: {len(labels)} real samples, accuracy {correct.mean().item():.4f}, ECE {float(ece):.4f}")
