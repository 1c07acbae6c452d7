"""Tests of the study's diagnosis (tools/study/study_diagnostics.py) and of its section of
the report: each measurement on small inputs whose answer is worked out by hand. Nothing
here runs csm or reads shards: the pool is a stand-in with the two things the measurements
read, its columns and its class names."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study as S  # noqa: E402
import study_diagnostics as D  # noqa: E402
import study_report  # noqa: E402


class Pool:
    """What label_quality reads of a CSMShards pool."""

    def __init__(self, class_a, class_b, lambda_gen, class_names, lambda_proj=None):
        self.columns = {"class_a": np.array(class_a), "class_b": np.array(class_b), "lambda_gen": np.array(lambda_gen),
                        "lambda_proj": np.array(lambda_proj if lambda_proj is not None else [0.5] * len(class_a))}
        self.class_names = class_names

    def column(self, name):
        return self.columns[name]


def test_softmax_rows_sum_to_one_and_survive_large_logits():
    p = D.softmax(np.array([[0.0, 0.0], [1000.0, 0.0], [np.log(3.0), 0.0]], dtype=np.float32))
    np.testing.assert_allclose(p.sum(1), 1)
    np.testing.assert_allclose(p[0], [0.5, 0.5])
    np.testing.assert_allclose(p[1], [1, 0])
    np.testing.assert_allclose(p[2], [0.75, 0.25], rtol=1e-6)


def test_pool_fit_is_the_mixed_term_and_the_top_class_agreement():
    targets = np.array([[0.7, 0.3, 0.0], [0.2, 0.8, 0.0]])
    assert D.pool_fit(targets, targets) == {"samples": 2, "mixed_loss": 0.0, "top_class_agreement": 1.0}
    probabilities = np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]])
    fit = D.pool_fit(probabilities, targets)
    # Sample 0: (0.2² + 0.2²) = 0.08 and its top class (0, on a tie argmax takes the first) agrees.
    assert fit["mixed_loss"] == pytest.approx(0.04)
    assert fit["top_class_agreement"] == 1.0
    fit = D.pool_fit(np.array([[0.4, 0.6, 0.0], [0.2, 0.8, 0.0]]), targets)
    assert fit["top_class_agreement"] == 0.5


def test_confidence_direction_splits_ece_into_over_and_under_confidence():
    # Two bins in use (15 bins): confidence 0.9 (bin 13) on 4 samples, 3 right: accuracy 0.75,
    # over-confident by 0.15; confidence 0.6 (bin 8) on 2 samples, both right: under by 0.4.
    p = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 0])
    direction = D.confidence_direction(p, labels)
    assert direction["over"] == pytest.approx(0.15 * 4 / 6)
    assert direction["under"] == pytest.approx(0.4 * 2 / 6)
    # Mean confidence 4.8/6 = 0.8 against accuracy 5/6.
    assert direction["gap"] == pytest.approx(0.8 - 5 / 6)
    assert direction == pytest.approx(D.confidence_direction(p[::-1], labels[::-1]))


def test_label_quality_compares_class_a_within_the_pair():
    names = ["x", "y", "z"]
    # λ̂: the judge's shares, but one beyond [0, 1] (1.3, clipped to 1: 0.1 off) and one not finite (as 0.5).
    pool = Pool([0, 0, 1, 1], [1, 1, 2, 2], [0.0, 1.0, 0.0, 1.0], names, lambda_proj=[0.2, 1.3, 0.3, np.nan])
    targets = np.array([[0.2, 0.8, 0.0], [0.9, 0.1, 0.0], [0.0, 0.3, 0.7], [0.0, 0.6, 0.4]])
    # The judge puts mass on the third class of the pair too: only a's share within (a, b) counts.
    judge = np.array([[0.1, 0.4, 0.5], [0.45, 0.05, 0.5], [0.5, 0.15, 0.35], [0.0, 0.5, 0.5]])
    quality = D.label_quality(pool, targets, judge)
    # Shares of a: 0.2, 0.9, 0.3, 0.5; errors 0, 0, 0, 0.1.
    assert quality["mean"] == pytest.approx(0.025)
    assert quality["by_lambda_gen"] == pytest.approx({"0.000": 0.0, "1.000": 0.05})
    assert quality["by_pair"] == pytest.approx({"x:y": 0.0, "y:z": 0.05})
    assert quality["projection"] == pytest.approx((0 + 0.1 + 0 + 0) / 4)
    # Sharpness 1 around λ̂ = 0.5: σ(−0.3), σ(0.8), σ(−0.2), σ(0) against the shares.
    sigma = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    expected = np.mean([abs(sigma(-0.3) - 0.2), abs(sigma(0.8) - 0.9), abs(sigma(-0.2) - 0.3), abs(0.5 - 0.5)])
    assert quality["by_sharpness"]["1"] == pytest.approx(expected)
    assert list(quality["by_sharpness"]) == ["1", "1.5", "2.3", "4", "6", "10", "20", "50"]


def test_class_ece_charges_each_predicted_class_its_own_gap():
    # Class 0 predicted twice at confidence 0.9, once right (gap 0.4 in its bin); class 1
    # predicted twice at confidence 1.0, both right (gap 0).
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.0, 1.0], [0.0, 1.0]])
    labels = np.array([0, 1, 1, 1])
    shares = D.class_ece(probabilities, labels, bins=15)
    assert shares == pytest.approx([0.4 * 2 / 4, 0.0])
    # Both classes in one bin: their gaps would cancel in ECE, not in the class-wise shares.
    probabilities = np.array([[0.8, 0.2], [0.8, 0.2], [0.2, 0.8], [0.2, 0.8]])
    labels = np.array([0, 0, 0, 0])
    shares = D.class_ece(probabilities, labels, bins=15)
    assert shares == pytest.approx([0.2 * 2 / 4, 0.8 * 2 / 4])
    assert sum(shares) >= abs(0.5 - 0.8)


def test_pair_test_errors_count_confusions_within_the_pair_only():
    labels = np.array([0, 0, 1, 1, 2])
    probabilities = np.array([
        [0.9, 0.1, 0.0],   # a right, confidence 0.9
        [0.3, 0.7, 0.0],   # a taken for b: a confusion
        [0.0, 0.6, 0.4],   # b right
        [0.0, 0.2, 0.8],   # b taken for the third class: wrong, but not a confusion of the pair
        [0.9, 0.0, 0.1],   # not in the pair
    ])
    confused, gap = D.pair_test_errors(probabilities, labels, 0, 1)
    assert confused == 1
    assert gap == pytest.approx(((0.9 - 1) + (0.7 - 0) + (0.6 - 1) + (0.8 - 0)) / 4)


def test_the_report_shows_the_label_quality_direction_and_class_wise_table(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "MODELS", str(tmp_path / "models"))
    report = study_report.Report(S.Study(sys.executable, str(tmp_path / "work")), S)
    document = {"pool": "/somewhere/pool54000", "sharpness": 2.3, "consistent_only": False,
                "fit": {"full-csm-seed0": {"samples": 54000, "mixed_loss": 0.25, "top_class_agreement": 0.82}},
                "labels": {"mean": 0.1, "by_lambda_gen": {"0.000": 0.05, "1.000": 0.15},
                           "by_pair": {"x:y": 0.2, "y:z": 0.0}, "judges": 3, "projection": 0.097,
                           "by_sharpness": {"20": 0.031, "2.3": 0.266, "50": 0.035}},   # as sort_keys saves them
                "classes": {"names": ["x", "y"], "ce": [0.01, 0.02], "csm": [0.005, 0.001]},
                "direction": {"ce": {"gap": 0.0125, "over": 0.013, "under": 0.0005},
                              "csm": {"gap": -0.01, "over": 0.002, "under": 0.011},
                              "csm-bsce-gra": {"gap": -0.14, "over": 0.0, "under": 0.1479}}}
    text = "\n".join(report.regime_diagnosis("full", document))
    assert ("CE +1.25 pt, ECE 1.35% = over-confident 1.30% + under-confident 0.05%; CSM -1.00 pt, ECE 1.30% = "
            "over-confident 0.20% + under-confident 1.10%; CSM + BSCE-GRA -14.00 pt, ECE 14.79% = over-confident 0.00% "
            "+ under-confident 14.79%.") in text
    assert "## Diagnosis (full)" in text
    assert "| full-csm-seed0 | 54,000 | 0.2500 | 82.00% |" in text
    assert "mean softmax of 3 full CE model(s)" in text and "mean |label − judge| 0.100" in text
    assert "0.00: 0.050, 1.00: 0.150" in text and "worst pairs x:y 0.200, y:z 0.000" in text
    assert "| y | 2.00% | 0.10% |" in text
    assert ("The raw projection λ̂ (clipped to [0, 1]) is 0.097 from the judge; the labels of each sharpness: 2.3 0.266, "
            "20 0.031, 50 0.035. The judge is closest to sharpness 20: the chosen 2.3 trains on labels softer than the "
            "judge's.") in text
