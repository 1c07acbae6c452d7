"""The loader benchmark's PyTorch peer: a DataLoader with 2 workers over csm shards.

    python3 tools/bench/bench_loader_torch.py DATA [--batch-size 128] [--epochs 5] [--workers 2]

Reads the shards through the csm_shards package (CSMDataset; `pip install ./python`), applies the same augmentation
as `csm bench-loader` — random crop with 2 pixels of zero padding, random horizontal flip,
normalisation — in numpy inside the workers, and times whole epochs after one warm-up epoch
(the shards are then in the page cache). Prints one JSON line: images_per_s, images,
seconds, batch, workers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from csm_shards import CSMDataset


class CropFlipNormalise:
    """uint8 HWC → float32 CHW: random crop (zero padding), random flip, (x/255 − mean)/std."""

    def __init__(self, padding: int = 2, mean: float = 0.5, std: float = 0.25):
        self.padding, self.mean, self.std = padding, mean, std

    def __call__(self, image: np.ndarray):
        import torch
        h, w, _ = image.shape
        p = self.padding
        padded = np.pad(image, ((p, p), (p, p), (0, 0)))
        y, x = np.random.randint(0, 2 * p + 1, size=2)
        crop = padded[y:y + h, x:x + w]
        if np.random.rand() < 0.5:
            crop = crop[:, ::-1]
        out = (crop.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import torch
    from torch.utils.data import DataLoader

    dataset = CSMDataset(args.data, transform=CropFlipNormalise())
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0)
    for _ in loader:  # warm-up: workers started, files cached
        pass
    images = 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        for batch, _labels in loader:
            images += batch.shape[0]
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_s": images / seconds, "images": images, "seconds": seconds,
                      "batch": args.batch_size, "workers": args.workers, "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
