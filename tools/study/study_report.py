"""The calibration study's report (tools/study/study.py, stage `report`): docs/calibration/
fashion-mnist.json (machine-readable), fashion-mnist.md (outcome, tables, convergence,
settings, data, wall times, machine) and its figures (tools/study/study_figures.py).

Runs that have not finished yet are listed as pending: the report can be written at any
point of a study that is still running, and says how far it got."""
import json
import os
import statistics
import subprocess

import study_figures

METRICS = ["accuracy", "nll", "brier", "ece", "adaece", "cece", "temperature", "ts_ece", "ts_nll"]
METHOD_TITLES = {"ce": "CE", "csm": "CSM", "bsce-gra": "BSCE-GRA", "csm-bsce-gra": "CSM + BSCE-GRA"}
REGIME_TITLES = {"scarce": "a class-balanced 10% of the fit split", "middle": "a class-balanced 25% of the fit split",
                 "full": "the whole fit split"}


def pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def epochs_of(model_path: str) -> list[dict]:
    """Every epoch of a classifier's training, from the history `csm train` keeps in the
    file's `training` metadata (it survives a resumed training; docs/formats/resnet-classifier.md),
    with the keys of `csm train --json`: epoch, train_loss and, when validated, val_accuracy,
    val_nll, val_ece."""
    with open(model_path, "rb") as file:
        size = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(size))
    training = json.loads(header.get("__metadata__", {}).get("training", "{}"))
    keys = {"epoch": "epoch", "trainLoss": "train_loss", "validationAccuracy": "val_accuracy",
            "validationNLL": "val_nll", "validationECE": "val_ece"}
    return [{keys[k]: v for k, v in epoch.items() if k in keys} for epoch in training.get("epochs", [])]


def spread(rows: list[dict]) -> str:
    """The range of test ECE over the seeds of a method."""
    values = [r["ece"] for r in rows]
    return pct(values[0]) if len(values) == 1 else f"{pct(min(values))}–{pct(max(values))}"


README_BEGIN = "<!-- study outcome: written by tools/study/study_report.py -->"
README_END = "<!-- end of study outcome -->"


def update_readme(path: str, lines: list[str]) -> bool:
    """Replaces the README's block between README_BEGIN and README_END with `lines`;
    False (and nothing written) when the README has no such block."""
    text = open(path).read()
    if README_BEGIN not in text or README_END not in text:
        return False
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    updated = head + README_BEGIN + "\n" + "\n".join(lines) + "\n" + README_END + tail
    if updated != text:
        with open(path + ".tmp", "w") as out:
            out.write(updated)
        os.replace(path + ".tmp", path)
    return True


class Report:
    def __init__(self, study, S) -> None:
        self.study, self.S = study, S
        self.tables = study.table_models()
        self.chosen = study.chosen()

    # -- collecting ----------------------------------------------------------------------

    def test_metrics(self, name: str) -> dict | None:
        record = self.study.state["units"].get("test-" + name)
        return json.loads(record["stdout"]) if record else None

    def row(self, regime: str, method: str, seed: int, name: str) -> dict:
        S, study = self.S, self.study
        row = {"seed": seed, "model": os.path.join(S.MODELS, name + ".safetensors")}
        record = study.runs.get(name)
        metrics = self.test_metrics(name)
        if record is None or metrics is None:
            row["pending"] = True
            return row
        row.update({key: metrics[key] for key in METRICS if key in metrics})
        for key in ("ece_ci", "ts_ece_ci"):
            if key in metrics:
                row[key] = metrics[key]
        row["train_seconds"] = record.get("train_seconds") or record["seconds"]
        other = study.other_data(name)
        if other:
            row["other_data"] = other
        epochs = epochs_of(self.study.model_path(name))
        if epochs:
            row["epochs"] = epochs[-1]["epoch"]
            row["final_train_loss"] = epochs[-1]["train_loss"]
        if method.startswith("csm") and self.chosen is not None:
            row["replay"] = self.replay(regime, method)
        return row

    def replay(self, regime: str, method: str) -> float:
        """Mixed images drawn per epoch over the pool's size."""
        settings = self.study.setting_for(regime, method)
        real = self.study.count(self.S.REGIMES[regime]["data"])
        base = settings["pool"].removesuffix(self.S.TARGETED)
        pool = self.study.count(settings["pool"]) if os.path.exists(self.study.path(settings["pool"], "manifest.json")) else \
            45 * self.S.LAMBDAS * self.S.POOLS[base]
        return real * (1 + settings["n_aug"]) / pool

    def regimes(self) -> dict:
        S, study = self.S, self.study
        result = {}
        for regime, rows in self.tables.items():
            spec = S.REGIMES[regime]
            data = spec["data"]
            samples = study.count(data) if os.path.exists(study.path(data, "manifest.json")) else None
            methods = {method: [self.row(regime, method, seed, name) for seed, name in models]
                       for method, models in rows.items()}
            entry = {"methods": methods, "epochs": spec["epochs"], "fraction": spec["fraction"], "samples": samples}
            if samples:
                entry["steps"] = spec["epochs"] * S.steps_per_epoch(samples)
            curves = {}
            for seed, name in rows["ce"]:
                if study.finished(name):
                    curves[str(seed)] = [{"epoch": e["epoch"], "val_accuracy": e.get("val_accuracy"), "val_ece": e.get("val_ece"),
                                          "train_loss": e["train_loss"]} for e in epochs_of(study.model_path(name))]
            entry["ce_curves"] = curves
            result[regime] = entry
        return result

    def grid(self, regime: str = "scarce") -> dict:
        """The validation runs `regime` chose its CSM setting from, and the choice."""
        rows = self.study.choice_rows(regime)
        floor = next((r["accuracy"] - self.S.ACCURACY_SLACK for r in rows if r["setting"] is None), None)
        chosen = self.chosen if regime == "scarce" else self.study.full_chosen()
        return {"rows": rows, "chosen": chosen, "accuracy_floor": floor, "regime": regime,
                "epochs": self.S.REGIMES[regime]["epochs"], "validation_samples": self.study.count("real-val")}

    # -- writing -------------------------------------------------------------------------

    def outcome(self, regimes: dict) -> list[str]:
        """The goal, checked on the test figures and said plainly (or what is still missing)."""
        lines = []
        for regime, goal in (("scarce", "at most 0.5x CE's ECE"), ("middle", "below CE's ECE"), ("full", "not above CE's ECE")):
            methods = regimes[regime]["methods"]
            ce = [r for r in methods["ce"] if not r.get("pending")]
            csm = [r for r in methods.get("csm", []) if not r.get("pending")]
            chosen = self.study.full_chosen() if regime == "full" else self.chosen
            # The goal is judged once: on every seed of both, at the regime's chosen setting.
            if (not ce or not csm or chosen is None
                    or any(r.get("pending") for r in methods["ce"] + methods.get("csm", []))):
                done = sum(not r.get("pending") for rows in methods.values() for r in rows)
                total = sum(len(rows) for rows in methods.values())
                lines.append(f"- **{regime}**: pending ({done} of {total} models trained and evaluated"
                             + ("" if chosen else "; the CSM setting is still being chosen") + ")."
                             + self.so_far("CE", ce) + self.so_far("CSM" if chosen else "CSM at the scarce pick", csm))
                continue
            ce_ece, csm_ece = statistics.mean(r["ece"] for r in ce), statistics.mean(r["ece"] for r in csm)
            ce_acc, csm_acc = statistics.mean(r["accuracy"] for r in ce), statistics.mean(r["accuracy"] for r in csm)
            ce_ts = statistics.mean(r["ts_ece"] for r in ce)
            cost = (ce_acc - csm_acc) * 100
            ratio = csm_ece / ce_ece
            if regime == "scarce":
                met = ratio <= 0.5 and cost <= 0.5
            else:
                met = csm_ece <= ce_ece and cost <= 0.5
            seeds = f"{len(csm)} CSM and {len(ce)} CE seeds"
            line = (f"- **{regime}**: CSM's ECE is {ratio:.2f}x CE's ({pct(csm_ece)}, seeds {spread(csm)}, vs {pct(ce_ece)}, "
                    f"seeds {spread(ce)}; CE after temperature scaling {pct(ce_ts)}), accuracy {pct(csm_acc)} vs "
                    f"{pct(ce_acc)} ({abs(cost):.2f} pt {'lower' if cost > 0 else 'higher'}; means of {seeds}). "
                    f"Goal ({goal}, at a cost of at most 0.5 pt of accuracy): "
                    f"**{'met' if met else 'not met'}**.")
            if regime == "scarce":
                line += (f" Stretch goal (CSM without temperature scaling as calibrated as CE with it): "
                         f"{'met' if csm_ece <= ce_ts else 'not met'}.")
            if regime == "full":
                apart = max(r["ece"] for r in csm) < min(r["ece"] for r in ce)
                line += f" Stretch goal (every CSM seed below every CE seed): {'met' if apart else 'not met'}."
            means = {m: statistics.mean(r["ece"] for r in rows) for m, rows in methods.items()
                     if rows and not any(r.get("pending") for r in rows)}
            if len(means) == len(methods):
                best = min(means, key=means.get)
                line += f" Lowest ECE of the {len(means)} methods: {best} ({pct(means[best])})."
            lines.append(line)
        uniform = [r for r in regimes["scarce"]["methods"].get("csm", []) if not r.get("pending")]
        targeted = [r for r in regimes["scarce"]["methods"].get("csm (targeted pool)", []) if not r.get("pending")]
        if uniform and targeted:
            u_ece, t_ece = statistics.mean(r["ece"] for r in uniform), statistics.mean(r["ece"] for r in targeted)
            u_acc, t_acc = statistics.mean(r["accuracy"] for r in uniform), statistics.mean(r["accuracy"] for r in targeted)
            cut = 1 - t_ece / u_ece
            met = cut >= 0.15 and t_acc >= u_acc - 0.005
            gap = (t_acc - u_acc) * 100
            lines.append(f"- **targeted pool** (scarce): ECE {pct(t_ece)} against the uniform pool's {pct(u_ece)} ({abs(cut) * 100:.0f}% "
                         f"{'lower' if cut >= 0 else 'higher'}), accuracy {pct(t_acc)} vs {pct(u_acc)} ({abs(gap):.2f} pt "
                         f"{'higher' if gap >= 0 else 'lower'}; means of {len(targeted)} and {len(uniform)} seeds). Goal (at least "
                         f"15% lower ECE at no accuracy cost, within the study's 0.5 pt tolerance): **{'met' if met else 'not met'}**.")
        else:
            lines.append("- **targeted pool** (scarce): pending.")
        return lines

    @staticmethod
    def so_far(method: str, rows: list[dict]) -> str:
        """The sentence on a pending regime's evaluated `rows` of one method: accuracy, ECE (with
        the seeds' range) and ECE after temperature scaling; empty without any."""
        if not rows:
            return ""
        which = f"seed {rows[0]['seed']}" if len(rows) == 1 else f"mean of {len(rows)} seeds"
        return (f" {method} so far ({which}): accuracy {pct(statistics.mean(r['accuracy'] for r in rows))}, ECE "
                f"{pct(statistics.mean(r['ece'] for r in rows))}" + (f" (seeds {spread(rows)})" if len(rows) > 1 else "")
                + f", after temperature scaling {pct(statistics.mean(r['ts_ece'] for r in rows))}.")

    def table(self, regime: dict) -> list[str]:
        lines = ["| method | seed | accuracy | NLL | Brier | ECE [95% interval] | AdaECE | cECE | T | ECE after TS | NLL after TS "
                 "| replay | train min |",
                 "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for method, rows in regime["methods"].items():
            for r in rows:
                if r.get("pending"):
                    lines.append(f"| {method} | {r['seed']} | pending | | | | | | | | | | |")
                    continue
                interval = f" [{r['ece_ci'][0] * 100:.2f}, {r['ece_ci'][1] * 100:.2f}]" if "ece_ci" in r else ""
                replay = f"{r['replay']:.2f}" if "replay" in r else ""
                seed = f"{r['seed']}†" if r.get("other_data") else r["seed"]
                lines.append(f"| {method} | {seed} | {pct(r['accuracy'])} | {r['nll']:.4f} | {r['brier']:.4f} | "
                             f"{pct(r['ece'])}{interval} | {pct(r['adaece'])} | {pct(r['cece'])} | {r['temperature']:.3f} | "
                             f"{pct(r['ts_ece'])} | {r['ts_nll']:.4f} | {replay} | {r['train_seconds'] / 60:.0f} |")
        other = sorted({(folder, made_on or "") for rows in regime["methods"].values() for r in rows
                        for folder, made_on in r.get("other_data", {}).items()})
        if other:
            versions = "; ".join(f"{folder} as made on {made_on}" if made_on else f"an earlier version of {folder}"
                                 for folder, made_on in other)
            first = "; ".join(f"{folder} as made on {self.study.data_record[folder]['machine']}"
                              for folder in sorted({folder for folder, _ in other}))
            lines += ["", f"† Trained on {versions}. The other rows read {first}: the same `csm generate` command "
                          f"makes other bytes on another kind of CPU "
                          f"(`{os.path.join(self.S.MODELS, 'data.json')}` keeps every version's fingerprint)."]
        return lines

    def grid_table(self, grid: dict) -> list[str]:
        lines = ["| setting | pool | sharpness | n_aug | consistent only | val accuracy | val ECE [95% interval] | val NLL |",
                 "|---|---:|---:|---:|---|---:|---|---:|"]
        for r in grid["rows"]:
            s = r["setting"]
            ci = f" [{r['ece_ci'][0] * 100:.2f}, {r['ece_ci'][1] * 100:.2f}]" if r.get("ece_ci") else ""
            if s is None:
                lines.append(f"| CE (reference) | | | | | {pct(r['accuracy'])} | {pct(r['ece'])}{ci} | {r['nll']:.4f} |")
                continue
            mark = " **(chosen)**" if s == grid["chosen"] else ""
            size = 45 * self.S.LAMBDAS * self.S.POOLS[s["pool"]]
            lines.append(f"| csm{mark} | {size:,} | {s['sharpness']:g} | {s['n_aug']} | {'yes' if s['consistent_only'] else 'no'} | "
                         f"{pct(r['accuracy'])} | {pct(r['ece'])}{ci} | {r['nll']:.4f} |")
        return lines

    def diagnosis(self) -> list[str]:
        """The diagnose stage's measurements of each regime, where it has run."""
        documents = self.study.state.get("diagnostics") or {}
        return [line for regime in ("scarce", "middle", "full") if regime in documents
                for line in self.regime_diagnosis(regime, documents[regime])]

    def regime_diagnosis(self, regime: str, d: dict) -> list[str]:
        """One regime's diagnosis `d` (study_diagnostics.diagnose's document) as markdown."""
        lines = [f"## Diagnosis ({regime})", "",
                 f"What the CSM runs did with their pool (`{os.path.basename(d['pool'])}`, sharpness {d['sharpness']:g}"
                 + (", consistent samples only" if d["consistent_only"] else "") + "), from tools/study/study_diagnostics.py.", "",
                 "| model | pool samples | mixed loss (Σ (softmax − label)²) | top class = label's larger class |", "|---|---:|---:|---:|"]
        for name, fit in d["fit"].items():
            lines.append(f"| {name} | {fit['samples']:,} | {fit['mixed_loss']:.4f} | {pct(fit['top_class_agreement'])} |")
        if "labels" in d:
            labels = d["labels"]
            worst = sorted(labels["by_pair"].items(), key=lambda item: -item[1])[:5]
            lines += ["", f"Soft labels against the mean softmax of {labels['judges']} full CE model(s) (the judge's share of "
                      f"class a within the pair): mean |label − judge| {labels['mean']:.3f}; by λ_gen "
                      + ", ".join(f"{float(k):.2f}: {v:.3f}" for k, v in labels["by_lambda_gen"].items())
                      + "; worst pairs " + ", ".join(f"{k} {v:.3f}" for k, v in worst) + "."]
            if "by_sharpness" in labels:
                closest = min(labels["by_sharpness"], key=labels["by_sharpness"].get)
                lines += ["", f"The raw projection λ̂ (clipped to [0, 1]) is {labels['projection']:.3f} from the judge; "
                          "the labels of each sharpness: "
                          + ", ".join(f"{k} {v:.3f}" for k, v in sorted(labels["by_sharpness"].items(), key=lambda kv: float(kv[0])))
                          + f". The judge is closest to sharpness {closest}: the chosen {d['sharpness']:g} trains on labels "
                          + ("softer than" if float(closest) > d["sharpness"] else "as sharp as or sharper than")
                          + " the judge's."]
        direction = d.get("direction", {})
        if direction:
            ordered = [m for m in METHOD_TITLES if m in direction]
            lines += ["", "Which way the models err on the test split, seed 0 of each (mean top-class confidence − accuracy; "
                      "ECE split into the bins where confidence exceeds accuracy and those where it falls short): "
                      + "; ".join(f"{METHOD_TITLES[m]} {direction[m]['gap'] * 100:+.2f} pt, ECE "
                                  f"{pct(direction[m]['over'] + direction[m]['under'])} = over-confident "
                                  f"{pct(direction[m]['over'])} + under-confident {pct(direction[m]['under'])}"
                                  for m in ordered) + "."]
        classes = d.get("classes", {})
        methods = [m for m in ("ce", "csm") if m in classes]
        if methods:
            lines += ["", "Class-wise calibration error on the test split, seed 0 of each (each predicted class's own "
                      "|accuracy − confidence| over the bins, weighted by its share of the samples):", "",
                      "| class | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
            for k, name in enumerate(classes["names"]):
                lines.append(f"| {name} | " + " | ".join(pct(classes[m][k]) for m in methods) + " |")
        if "pairs" in d:
            lines += self.pair_diagnosis(d["pairs"])
        return lines + [""]

    @staticmethod
    def pair_diagnosis(effect: dict) -> list[str]:
        """The targeted pool against the uniform one, pair by pair (the ten heaviest pairs
        and the rest together)."""
        rows, models = effect["pairs"], effect["models"]
        lines = ["", f"The targeted pool against the uniform one, per class pair, on the test split (means over "
                 f"{models['targeted']} and {models['uniform']} CSM models): confusions count the test images of either "
                 "class predicted as the other; over-confidence is the mean of (top-class confidence − correct) on the "
                 "images of the two classes. Pairs by the pilot's weight.", "",
                 "| pair | weight | trajectories uniform → targeted | confusions uniform → targeted "
                 "| over-confidence uniform → targeted |", "|---|---:|---:|---:|---:|"]

        def line(label, weight, chosen):
            u = sum(r["trajectories"]["uniform"] or 0 for r in chosen)
            t = sum(r["trajectories"]["targeted"] for r in chosen)
            cu = sum(r["uniform"]["confusions"] for r in chosen)
            ct = sum(r["targeted"]["confusions"] for r in chosen)
            gu = sum(r["uniform"]["overconfidence"] for r in chosen) / len(chosen)
            gt = sum(r["targeted"]["overconfidence"] for r in chosen) / len(chosen)
            return f"| {label} | {weight} | {u} → {t} | {cu:.1f} → {ct:.1f} | {pct(gu)} → {pct(gt)} |"

        for r in rows[:10]:
            lines.append(line(r["pair"], f"{r['weight']:.3f}" if r["weight"] is not None else "", [r]))
        if len(rows) > 10:
            rest = rows[10:]
            lines.append(line(f"the other {len(rest)} pairs (over-confidence: their mean)",
                              f"{sum(r['weight'] or 0 for r in rest):.3f}", rest))
        return lines

    def write(self) -> None:
        S, study = self.S, self.study
        docs = os.path.join(S.ROOT, S.DOCS)
        os.makedirs(docs, exist_ok=True)
        regimes = self.regimes()
        grid, full_grid = self.grid(), self.grid("full")
        stages = ("data", "select", "scarce", "targeted", "full", "middle", "evaluate", "diagnose")
        unit_minutes = {stage: round(study.stage_seconds(stage) / 60, 1) for stage in stages}
        jobs = study.state.get("training_jobs", study.jobs)   # what the trainings ran with, not this report
        machines = sorted({sitting["machine"] for sitting in study.sittings.values()} | {S.machine()})
        version = subprocess.run([study.csm, "--version"], capture_output=True, text=True).stdout.strip()
        pools = {name: {"groups_per_pair": groups, "lambdas": S.LAMBDAS, "pairs": 45, "samples": 45 * S.LAMBDAS * groups,
                        "solver": "dpm2m"} for name, groups in S.POOLS.items()}
        document = {"dataset": "fashion-mnist", "regimes": regimes, "grid": grid, "full_grid": full_grid, "recipe": S.RECIPE, "mixed": pools,
                    "samples": {d: study.count(d) for d in ("real-train", "real-val", "real-fit", "real-scarce", "real-middle",
                                                            "real-test") if os.path.exists(study.path(d, "manifest.json"))},
                    "bins": S.BINS, "bootstrap": S.BOOTSTRAP, "unit_minutes": unit_minutes, "jobs": jobs,
                    "machine": S.machine(), "machines": machines, "csm_version": version,
                    # sorted as WORK's state file keeps it, so the JSON is the same whether the
                    # diagnosis was just computed or read back
                    "diagnostics": json.loads(json.dumps(study.state.get("diagnostics"), sort_keys=True))}
        json_path = os.path.join(docs, "fashion-mnist.json")
        with open(json_path + ".tmp", "w") as out:
            json.dump(document, out, indent=1)
            out.write("\n")
        os.replace(json_path + ".tmp", json_path)
        has_reliability = study_figures.reliability(self.tables, lambda name: study.path("diagrams", name + ".png"),
                                                    os.path.join(docs, "fashion-mnist-reliability.png"))
        has_convergence = study_figures.convergence(regimes, os.path.join(docs, "fashion-mnist-convergence.png"))
        has_fractions = study_figures.fractions(regimes, os.path.join(docs, "fashion-mnist-fractions.png"))

        finished = sum(1 for r in regimes.values() for rows in r["methods"].values() for row in rows if not row.get("pending"))
        total = sum(len(rows) for r in regimes.values() for rows in r["methods"].values())
        trainings = len(study.runs)
        chosen = self.chosen
        outcome = self.outcome(regimes)
        md = ["# Calibration study: Fashion-MNIST", "",
              "Made by `make study` (tools/study/study.py) with csm's own commands: `csm import`, `csm split`, `csm generate`, "
              "`csm train`, `csm evaluate`. ResNet-20 is trained to convergence in three regimes that differ in how many "
              "labelled images it gets; every figure below is on the 10,000 test images, read once after every setting "
              "was fixed on the validation split.", "",
              f"**Progress: {trainings} trainings finished; {finished} of the {total} models the tables list so far are "
              "evaluated" + ("" if chosen else " (the CSM rows appear once the scarce grid has chosen the setting)")
              + ".** The study resumes where it stopped "
              "(`make study`); finished classifiers and their training records are committed under "
              "`Datasets/fashion-mnist/study/`.", "",
              "## Outcome", "", *outcome, ""]
        if has_fractions:
            md += ["![Test accuracy and ECE against the labelled fraction, CE and CSM](fashion-mnist-fractions.png)", ""]
        if has_reliability:
            md += ["![Reliability diagrams](fashion-mnist-reliability.png)", ""]
        # The pilot's picture is made in WORK; the committed copy stands on a machine whose
        # WORK never needed the targeted pool's weights (its trainings had all finished).
        pairs_picture = study.path("pair-confusion.png")
        if os.path.exists(pairs_picture):
            import shutil
            shutil.copyfile(pairs_picture, os.path.join(docs, "fashion-mnist-pairs.png"))
        if os.path.exists(os.path.join(docs, "fashion-mnist-pairs.png")):
            md += ["## Targeted pool", "",
                   "The pilot (scarce CE, seed 0) on the validation split: `csm pairs` weighs each class pair by how often "
                   "and how confidently the pilot confuses it, and `csm generate --pair-weights` spends the chosen pool's "
                   "budget by those weights (every pair at least one trajectory). The scarce table compares CSM on this pool "
                   "with CSM on the uniform pool of the same size.", "",
                   "![The pilot's confusion matrix on the validation split](fashion-mnist-pairs.png)", ""]
        md += ["## Convergence", "",
               "CE is validated on the validation split after every epoch (`csm train --val-data`): accuracy levels off "
               "and ECE shows how over-confident CE becomes as training converges.", ""]
        md += (["![CE validation accuracy and ECE against epoch](fashion-mnist-convergence.png)", ""] if has_convergence
               else ["Pending: no CE run has finished yet.", ""])
        for regime in ("scarce", "middle", "full"):
            entry = regimes[regime]
            size = f"{entry['samples']:,} images" if entry["samples"] else "images"
            steps = f", {entry['steps']:,} optimiser steps" if entry.get("steps") else ""
            md += [f"## Regime \"{regime}\": {REGIME_TITLES[regime]} ({size})", "",
                   f"{entry['epochs']} epochs{steps}.", "", *self.table(entry), ""]
        md += ["ECE, AdaECE and class-wise ECE with 15 bins; the interval is the 2.5th-97.5th percentile of ECE over "
               f"{S.BOOTSTRAP:,} bootstrap resamples of the test images. T is the temperature fitted on the validation "
               "split (minimum NLL); \"after TS\" divides the test logits by it. \"replay\" is the mixed images drawn per "
               "epoch over the pool's size. \"train min\" adds up the training's epochs over every sitting it took (on a "
               "shared core, so it varies with what else ran). The diffusion model that made the mixed images and the classifier that "
               "reannotated them were trained on the whole Fashion-MNIST training split, so in the scarce and middle "
               "regimes the CSM data carries information from images those classifiers never see.", "",
               *self.diagnosis(),
               "## Recipe", "",
               f"`csm train {' '.join(S.RECIPE)} --epochs E` — SGD with momentum 0.9, weight decay 5e-4 on every parameter, "
               "batch 128 real images, random crop (padding 4) and horizontal flip, cosine schedule from 0.1, gradient "
               "norm clipped at 2, the last epoch kept. Method options: "
               + ", ".join(f"`{k}` {' '.join(v) or '(none)'}" for k, v in S.LOSS_OPTIONS.items()) + ". "
               + ("CSM methods add `--mixed` with the chosen setting: "
                  f"the {45 * S.LAMBDAS * S.POOLS[chosen['pool']]:,}-image pool, sharpness {chosen['sharpness']:g}, n_aug "
                  f"{chosen['n_aug']}, {'consistent samples only' if chosen['consistent_only'] else 'all samples'}"
                  + (f" (in \"full\", sharpness {full_grid['chosen']['sharpness']:g}, chosen below)."
                     if full_grid["chosen"] and full_grid["chosen"] != chosen else ".")
                  if chosen else "CSM methods add `--mixed` with the setting chosen below (pending)."), "",
               "## CSM settings (validation split only)", "",
               f"Each setting trained the `csm` loss on the scarce split for the regime's full {grid['epochs']} epochs "
               f"(seed 0) and was judged on the {grid['validation_samples']:,}-image validation split (class-balanced): the "
               "lowest validation ECE among settings within 0.5 pt of CE's validation accuracy"
               + (f" (floor {pct(grid['accuracy_floor'])})" if grid["accuracy_floor"] is not None else "")
               + ". Sharpness x pool first, then consistent-only and n_aug 2 at the best of those. The interval shows how "
               "far the validation split can tell settings apart.", "", *self.grid_table(grid), "",
               f"In \"full\" the same rule chose between the scarce pick and the pick at sharpness {S.FULL_SHARPNESS:g}: "
               f"seed 0 of each trained on the fit split for {full_grid['epochs']} epochs and was judged against full CE "
               "seed 0 on the validation split. The chosen setting has the regime's 3 CSM seeds and its CSM + BSCE-GRA run; "
               "the other appears in the table with seed 0.", "",
               *(self.grid_table(full_grid) if full_grid["rows"] else ["Pending: none of these runs has finished yet."]), "",
               "## Data", "",
               "- Real: Fashion-MNIST train 60,000 = validation 6,000 (class-balanced 10%, `csm split --seed 0 --balanced`) "
               "+ fit 54,000; scarce 5,400 (class-balanced 10% of fit, `--seed 1`); middle 13,500 (class-balanced 25% of "
               "fit, `--seed 2`); test 10,000.",
               "- Mixed: `csm generate --solver dpm2m --seed 0 --lambdas 8` with the shipped diffusion model and "
               "classifier, all 45 pairs: "
               + ", ".join(f"{p['groups_per_pair']} trajectories per pair = {p['samples']:,} images" for p in pools.values())
               + ". λ̂ is stored and `csm train --sharpness` re-derives the soft labels.",
               f"- Fingerprints: `{os.path.join(S.MODELS, 'data.json')}` keeps each folder's SHA-256 over its shards and "
               "the machine that made it (and a version for each kind of CPU that made other bytes, if any); "
               "each training's record in `runs.json` the fingerprints of the data it read.", "",
               "## Wall time", "",
               f"Trainings ran {jobs} at a time, each pinned to one core (`tools/study/study.py --jobs`); the minutes add up "
               "each command's wall time (a training's: its epochs over every sitting, a generation's: every sitting; work "
               "lost to an interruption is not counted), on every machine the study ran on (`sittings.json` beside the "
               "models keeps each sitting's minutes for the units that are not trainings).", "",
               "| stage | minutes |", "|---|---:|", *[f"| {k} | {unit_minutes[k]} |" for k in stages],
               f"| total | {round(sum(unit_minutes.values()), 1)} |", "",
               f"Machines: {'; '.join(machines)}. csm {version}.", "",
               "## Check it", "",
               "The classifiers are committed under `Datasets/fashion-mnist/study/` (records in `runs.json` there). "
               "`csm evaluate --classifier Datasets/fashion-mnist/study/scarce-ce-seed0.safetensors --data <csm import "
               "fashion-mnist --split test>` gives the table's accuracy and ECE, and `python3 tools/study/check_study_torch.py "
               "--test study-out/real-test` recomputes both with PyTorch for every finished model.", ""]
        md_path = os.path.join(docs, "fashion-mnist.md")
        with open(md_path + ".tmp", "w") as out:
            out.write("\n".join(md))
        os.replace(md_path + ".tmp", md_path)
        print(f"wrote {os.path.relpath(md_path, S.ROOT)}, {os.path.relpath(json_path, S.ROOT)} and the figures "
              f"({finished} of {total} models)")
        if os.path.abspath(docs) == os.path.join(S.ROOT, "docs", "calibration"):   # not a --quick run's report
            status = (f"All {total} models are trained and evaluated." if finished == total else
                      f"In progress: {finished} of {total} models are trained and evaluated, and `make study` resumes "
                      "where it stopped.")
            summary = [f"{status} The outcome on the test split (ECE with 15 bins before temperature scaling, means over "
                       "seeds with each seed's range; the tables, bootstrap intervals and diagnosis are in "
                       "[docs/calibration/fashion-mnist.md](docs/calibration/fashion-mnist.md)):", "", *outcome]
            if has_fractions:
                summary += ["", "![Test accuracy and ECE against the labelled fraction, CE and CSM]"
                                "(docs/calibration/fashion-mnist-fractions.png)"]
            targeted = regimes["scarce"]["methods"].get("csm (targeted pool)", [])
            if targeted and not any(r.get("pending") for r in targeted) and \
                    os.path.exists(os.path.join(docs, "fashion-mnist-pairs.png")):
                summary += ["", "The pilot's confusion on the validation split, which the targeted pool follows:", "",
                            "![The pilot's confusion matrix](docs/calibration/fashion-mnist-pairs.png)"]
            if update_readme(os.path.join(S.ROOT, "README.md"), summary):
                print("updated the study's outcome in README.md")


def write(study, settings) -> None:
    """Writes the report of `study` (a tools/study/study.py Study); `settings` is the study module,
    whose constants (regimes, recipe, pools) the report describes."""
    Report(study, settings).write()
