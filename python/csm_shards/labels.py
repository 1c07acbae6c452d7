"""Soft labels from the stored columns, as csm's reannotation computes them (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["calibrated_ratio", "soft_labels_from_columns"]


def calibrated_ratio(lambda_proj: np.ndarray | float, sharpness: float) -> np.ndarray:
    """λ' = clip(σ(s·(λ̂ − 0.5)), 0, 1) in float64, as csm's reannotation computes it.

    A non-finite λ̂ gives 0.5 (csm's convention).
    """
    projection = np.asarray(lambda_proj, dtype=np.float64)
    with np.errstate(over="ignore"):
        ratio = 1.0 / (1.0 + np.exp(-float(sharpness) * (projection - 0.5)))
    ratio = np.clip(ratio, 0.0, 1.0)
    return np.where(np.isfinite(projection), ratio, 0.5)


def soft_labels_from_columns(class_a: np.ndarray, class_b: np.ndarray, lambda_proj: np.ndarray,
                             num_classes: int, sharpness: float) -> np.ndarray:
    """Soft labels [N, K] from the stored columns: λ' on class_a and 1 − λ' on class_b for
    mixed samples (class_b ≥ 0), one-hot on class_a for real samples (class_b = −1).

    λ' is rounded to float32 before 1 − λ' is taken, as csm does, so that for the sharpness a
    shard was written with the result matches its `labels` up to λ̂'s float32 rounding.
    """
    n = len(class_a)
    labels = np.zeros((n, num_classes), dtype=np.float32)
    rows = np.arange(n)
    mixed = class_b >= 0
    ratio = calibrated_ratio(lambda_proj[mixed], sharpness).astype(np.float32)
    labels[rows[mixed], class_a[mixed]] += ratio
    labels[rows[mixed], class_b[mixed]] += np.float32(1) - ratio
    labels[rows[~mixed], class_a[~mixed]] = 1
    return labels
