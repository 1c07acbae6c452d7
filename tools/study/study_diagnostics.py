"""What the calibration study's CSM runs did with their data (tools/study/study.py, stage
`diagnose`, once per regime; the report shows it): measurements that say what the next data
change should be when CSM misses its goal.

- fit: how far each CSM model of a regime fits the mixed pool it trained on — the CSM loss's
  mixed term (squared L2 between softmax and soft label, summed over classes) and how often
  its top class is the label's larger class, on every pool sample;
- labels: how good the pool's soft labels are against an independent judge, the mean softmax
  of the study's "full" CE models: mean |label − judge| on class a, by λ_gen and per pair;
  the same for the raw projection λ̂ (clipped to [0, 1]) and for the labels of other
  sharpnesses, which says how far the chosen sharpness softens the labels past the judge;
- classes: which classes carry the test ECE — each predicted class's share of it, for CE and
  CSM (seed 0 of each, in the regime);
- direction: which way CE, CSM and the regime's BSCE-GRA models err (seed 0 of each) — mean
  confidence minus accuracy, and how much of the ECE comes from over-confident bins and how
  much from under-confident ones;
- pairs: what the targeted pool changed where it spent its budget — for each class pair its
  trajectories in the uniform and the targeted pool, and on the test split, for the CSM
  models of each pool (mean over seeds), how often the pair's two classes are mistaken for
  each other and how over-confident the models are on the pair's images.

Every input is a logits file written by `csm evaluate --save-logits` (safetensors: `logits`
[N, K], `labels` [N]) and shards read with csm_shards; nothing here trains or samples.
"""
import numpy as np

from csm_shards import CSMShards


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def load_file(path: str) -> dict[str, np.ndarray]:
    """A logits file's tensors (safetensors, imported here: the measurements need it only
    for files)."""
    from safetensors.numpy import load_file as load
    return load(path)


def load_probabilities(path: str) -> np.ndarray:
    return softmax(load_file(path)["logits"])


def pool_fit(probabilities: np.ndarray, targets: np.ndarray) -> dict:
    """The CSM loss's mixed term and the top-class agreement on every pool sample."""
    squared = ((probabilities - targets) ** 2).sum(1)
    agree = probabilities.argmax(1) == targets.argmax(1)
    return {"samples": int(len(targets)), "mixed_loss": float(squared.mean()), "top_class_agreement": float(agree.mean())}


JUDGED_SHARPNESS = (1, 1.5, 2.3, 4, 6, 10, 20, 50)


def label_quality(pool: CSMShards, targets: np.ndarray, judge: np.ndarray) -> dict:
    """Mean |soft label − judge probability| on class a, by λ_gen level and per pair; and the
    mean gap of the clipped raw projection λ̂ and of the labels at each of JUDGED_SHARPNESS
    (λ' = σ(s·(λ̂ − 0.5)), docs/formats/csm-shard.md; a non-finite λ̂ counts as 0.5)."""
    class_a = pool.column("class_a").astype(np.int64)
    class_b = pool.column("class_b").astype(np.int64)
    lambda_gen = pool.column("lambda_gen")
    rows = np.arange(len(class_a))
    # The judge's share of a within the pair, so that mass on other classes does not count.
    judged = judge[rows, class_a] / np.maximum(judge[rows, class_a] + judge[rows, class_b], 1e-12)
    error = np.abs(targets[rows, class_a] - judged)
    by_level = {f"{level:.3f}": float(error[np.isclose(lambda_gen, level)].mean()) for level in np.unique(lambda_gen)}
    by_pair = {}
    for a, b in sorted(set(zip(class_a.tolist(), class_b.tolist()))):
        members = (class_a == a) & (class_b == b)
        by_pair[f"{pool.class_names[a]}:{pool.class_names[b]}"] = float(error[members].mean())
    projection = np.nan_to_num(pool.column("lambda_proj").astype(np.float64), nan=0.5, posinf=0.5, neginf=0.5)
    by_sharpness = {f"{s:g}": float(np.abs(1 / (1 + np.exp(-s * (projection - 0.5))) - judged).mean())
                    for s in JUDGED_SHARPNESS}
    return {"mean": float(error.mean()), "by_lambda_gen": by_level, "by_pair": by_pair,
            "projection": float(np.abs(np.clip(projection, 0, 1) - judged).mean()), "by_sharpness": by_sharpness}


def top_class_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int):
    """Each sample's top-class confidence, predicted class, correctness (0 or 1) and
    equal-width bin (0..bins-1, a bin's upper edge inclusive, as `csm evaluate` bins)."""
    confidence = probabilities.max(1)
    predicted = probabilities.argmax(1)
    correct = (predicted == labels).astype(np.float64)
    return confidence, predicted, correct, np.clip(np.ceil(confidence * bins).astype(np.int64), 1, bins) - 1


def class_ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[float]:
    """Each predicted class's own calibration error, weighted by its share of the samples:
    for the samples predicted as k, Σ over equal-width confidence bins of |accuracy −
    confidence| × (bin's samples of k) / N. The values add up to at least ECE."""
    confidence, predicted, correct, index = top_class_bins(probabilities, labels, bins)
    n = len(labels)
    shares = []
    for k in range(probabilities.shape[1]):
        total = 0.0
        for b in range(bins):
            members = (index == b) & (predicted == k)
            if members.any():
                total += abs(correct[members].mean() - confidence[members].mean()) * np.count_nonzero(members) / n
        shares.append(total)
    return shares


def confidence_direction(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict:
    """Which way a model errs: its mean top-class confidence minus its accuracy (positive when
    over-confident), and ECE split into the equal-width bins where confidence exceeds accuracy
    ("over") and where it falls short ("under"); over + under = ECE."""
    confidence, _, correct, index = top_class_bins(probabilities, labels, bins)
    over = under = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            gap = (confidence[members].mean() - correct[members].mean()) * np.count_nonzero(members) / len(labels)
            over, under = (over + gap, under) if gap > 0 else (over, under - gap)
    return {"gap": float(confidence.mean() - correct.mean()), "over": float(over), "under": float(under)}


def pair_test_errors(probabilities: np.ndarray, labels: np.ndarray, a: int, b: int) -> tuple[int, float]:
    """On the test images of class a or b: how many are predicted as the other class of the
    pair, and the mean of (top-class confidence − correct), over-confidence when positive."""
    members = (labels == a) | (labels == b)
    predicted = probabilities[members].argmax(1)
    truth = labels[members]
    confused = int(np.count_nonzero(((truth == a) & (predicted == b)) | ((truth == b) & (predicted == a))))
    gap = float((probabilities[members].max(1) - (predicted == truth)).mean())
    return confused, gap


def pair_effect(uniform_pool: str, targeted_pool: str, weights_path: str, uniform_logits: list[str],
                targeted_logits: list[str]) -> dict:
    """Per class pair: the pilot's weight, trajectories in each pool, and on the test split
    the confusions between its two classes and the over-confidence on its images, each the
    mean over the models trained on that pool."""
    import json
    uniform, targeted = CSMShards(uniform_pool), CSMShards(targeted_pool)
    weights = {(p["a"], p["b"]): p["weight"] for p in json.load(open(weights_path))["pairs"]}

    def trajectories(pool: CSMShards) -> dict:
        config = json.load(open(pool.manifest_path))["config"]
        pairs = [tuple(pair) for pair in config["pairs"]]
        allocation = (config.get("pair_weights") or {}).get("groups") or [config["groups_per_pair"]] * len(pairs)
        return dict(zip(pairs, (int(g) for g in allocation)))

    per_pool = {"uniform": trajectories(uniform), "targeted": trajectories(targeted)}
    tests = {"uniform": [load_file(path) for path in uniform_logits], "targeted": [load_file(path) for path in targeted_logits]}
    rows = []
    for (a, b), groups in per_pool["targeted"].items():
        row = {"pair": f"{uniform.class_names[a]}:{uniform.class_names[b]}", "weight": weights.get((a, b)),
               "trajectories": {"uniform": per_pool["uniform"].get((a, b)), "targeted": groups}}
        for name, models in tests.items():
            measured = [pair_test_errors(softmax(m["logits"]), m["labels"].astype(np.int64), a, b) for m in models]
            row[name] = {"confusions": float(np.mean([c for c, _ in measured])),
                         "overconfidence": float(np.mean([g for _, g in measured]))}
        rows.append(row)
    rows.sort(key=lambda r: -(r["weight"] or 0))
    return {"weights": weights_path, "models": {"uniform": len(uniform_logits), "targeted": len(targeted_logits)},
            "pairs": rows}


def diagnose(pool_path: str, sharpness: float, consistent_only: bool, csm_logits: dict[str, str], judge_logits: list[str],
             test_logits: dict[str, str]) -> dict:
    """Everything above for one study: `csm_logits` maps each CSM model to its logits on the
    pool, `judge_logits` are the judges' logits on the pool, `test_logits` maps a method to
    its test logits."""
    pool = CSMShards(pool_path)
    targets = pool.soft_labels(sharpness)
    used = pool.column("consistent") != 0 if consistent_only else np.ones(len(targets), dtype=bool)
    document = {"pool": pool_path, "sharpness": sharpness, "consistent_only": consistent_only,
                "fit": {name: pool_fit(load_probabilities(path)[used], targets[used]) for name, path in csm_logits.items()}}
    if judge_logits:
        judge = np.mean([load_probabilities(path) for path in judge_logits], axis=0)
        document["labels"] = label_quality(pool, targets, judge)
        document["labels"]["judges"] = len(judge_logits)
    document["classes"] = {"names": list(pool.class_names)}
    for method, path in test_logits.items():
        logits = load_file(path)
        probabilities, labels = softmax(logits["logits"]), logits["labels"].astype(np.int64)
        document["classes"][method] = class_ece(probabilities, labels)
        document.setdefault("direction", {})[method] = confidence_direction(probabilities, labels)
    return document
