#!/usr/bin/env python3
"""The calibration study on Fashion-MNIST (make study): what CSM data does to a classifier's
calibration, measured with csm's own commands.

    python3 tools/study.py --csm .build/release/csm [--work study-out] [--stage STAGE] [--quick]

Stages, in order (each resumes: a finished unit is recorded in WORK/state.json with its wall
time and never rerun; an interrupted `csm train` continues from its checkpoint):

  data     real train/test splits (csm import), a class-balanced 10% validation split of
           train (csm split --balanced --seed 0) and the rest ("fit"), the scarce regime's
           class-balanced 10% of fit (--seed 1), and the CSM set (csm generate, all 45 pairs).
  grid     CSM settings chosen on the validation split only: `csm` loss at reduced length over
           sharpness x n_aug, then consistent-only and the mixed share at the best of those;
           the pick has the lowest validation ECE among settings whose validation accuracy is
           within 0.5 pt of CE's at the same length.
  full     ResNet-20 on fit, one recipe, every method; ce and csm with two seeds.
  scarce   the same on the scarce subset, with the same number of optimiser steps.
  evaluate every model on the 10,000 test images (csm evaluate --classifier, temperature
           fitted on the validation split, 1,000 bootstrap resamples for ECE).
  report   docs/calibration/fashion-mnist.{md,json} and the reliability-diagram figure.

The trained classifiers go to Datasets/fashion-mnist/study/ (committed); everything else
(shards, checkpoints, logs, logits) stays in WORK. Settings are fixed here, before any test
figure exists; the test split is read only by the evaluate stage.

--quick runs the same pipeline a few optimiser steps per model on a small CSM set, with its
models and report inside WORK (default study-quick/): a check of the machinery in minutes,
whose figures mean nothing.
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join("Datasets", "fashion-mnist", "study")
DOCS = os.path.join("docs", "calibration")

# The shared recipe (issue: SGD, momentum 0.9, weight decay 5e-4, batch 128, crop + flip,
# cosine schedule, clipping at 2), its length, and the methods.
RECIPE = ["--arch", "resnet20", "--batch", "128", "--lr", "0.1", "--momentum", "0.9", "--weight-decay", "5e-4",
          "--schedule", "cosine", "--clip", "2", "--val-fraction", "0", "--keep", "last"]
FULL_EPOCHS = 2                  # of the fit split (54,000 images: 422 steps each); what 2 cores allow in a session
FULL_STEPS = None                # (--quick: a fixed number of steps instead)
GRID_STEPS = 211                 # per grid setting: half an epoch of fit
GROUPS_PER_PAIR = 16             # x 8 lambdas x 45 pairs = 5,760 mixed images
LAMBDAS = 8
LOSS_OPTIONS = {"ce": [], "ls": ["--smoothing", "0.05"], "focal": ["--gamma", "3"],
                "bsce-gra": ["--norm", "2", "--gamma", "2"], "csm": [], "csm-bsce-gra": ["--norm", "2", "--gamma", "2"]}
REGIMES = {
    "full": [("ce", 0), ("ce", 1), ("ls", 0), ("focal", 0), ("bsce-gra", 0), ("csm", 0), ("csm", 1), ("csm-bsce-gra", 0)],
    "scarce": [("ce", 0), ("ce", 1), ("bsce-gra", 0), ("csm", 0), ("csm", 1), ("csm-bsce-gra", 0)],
}
SHARPNESS = [2.3, 4.0, 10.0]
N_AUG = [1, 2]
SHARES = [1.0, 0.5]
ACCURACY_SLACK = 0.005           # a setting may cost at most 0.5 pt of validation accuracy
BOOTSTRAP = 1000
BINS = 15


class UnitFailed(Exception):
    """A unit's command exited non-zero; the message names its log."""


class Study:
    def __init__(self, csm: str, work: str, jobs: int = 1) -> None:
        self.csm = os.path.abspath(csm)
        self.jobs = jobs
        self.lock = threading.Lock()
        self.worker = threading.local()
        self.work = os.path.abspath(work)
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        self.state_path = os.path.join(self.work, "state.json")
        self.state = json.load(open(self.state_path)) if os.path.exists(self.state_path) else {"units": {}}

    # -- bookkeeping ---------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    def save_state(self) -> None:
        temporary = self.state_path + ".tmp"
        with open(temporary, "w") as out:
            json.dump(self.state, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.state_path)

    def done(self, unit: str) -> bool:
        return unit in self.state["units"]

    def unit(self, name: str, stage: str, command: list[str], outputs: list[str]) -> dict:
        """Runs `command` once (logged to WORK/logs/NAME.log) unless NAME is finished and its
        outputs exist; records its wall time and stdout under NAME. Inside `parallel`, the
        command runs pinned to the calling worker's core."""
        with self.lock:
            record = self.state["units"].get(name)
        if record and all(os.path.exists(p) for p in outputs):
            return record
        core = getattr(self.worker, "core", None)
        environment = None
        if core is not None:
            command = ["taskset", "-c", str(core), *command]
            environment = {**os.environ, "CSM_THREADS": "1"}
        print(f"[{stage}] {name}: {' '.join(os.path.relpath(c, ROOT) if c.startswith('/') else c for c in command)}",
              flush=True)
        log_path = self.path("logs", name + ".log")
        start = time.time()
        with open(log_path, "a") as log:
            result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=environment)
            log.write(result.stdout)
        seconds = time.time() - start
        if result.returncode != 0:
            tail = open(log_path).read().strip().splitlines()[-3:]
            raise UnitFailed(f"study: {name} failed (exit {result.returncode}); log {log_path}:\n  " + "\n  ".join(tail))
        record = {"stage": stage, "seconds": round(seconds, 1), "stdout": result.stdout,
                  "finished": datetime.datetime.now().isoformat(timespec="seconds")}
        with self.lock:
            self.state["units"][name] = record
            self.save_state()
        return record

    def parallel(self, tasks: list) -> list:
        """Runs independent units (zero-argument callables) on `jobs` workers, each pinned to
        its own core with CSM_THREADS=1 when jobs > 1: on 2 cores two one-core trainings
        make about a third more progress than one two-thread training at a time. Outputs do
        not depend on the thread count. Returns the results in the order of `tasks`."""
        if self.jobs <= 1 or len(tasks) <= 1:
            return [task() for task in tasks]
        cores = queue.Queue()
        for core in range(self.jobs):
            cores.put(core % (os.cpu_count() or 1))

        def run(task):
            self.worker.core = cores.get()
            try:
                return task()
            finally:
                cores.put(self.worker.core)
                self.worker.core = None

        with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
            futures = [pool.submit(run, task) for task in tasks]
            concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
            failed = [f.exception() for f in futures if f.done() and f.exception() is not None]
            if failed:
                for future in futures:
                    future.cancel()
                raise failed[0]
            return [f.result() for f in futures]

    # -- stages --------------------------------------------------------------------------

    def data(self) -> None:
        csm = self.csm
        self.unit("generate", "data", [csm, "generate", "--out", self.path("mixed"), "--groups-per-pair",
                                       str(GROUPS_PER_PAIR), "--lambdas", str(LAMBDAS), "--seed", "0"],
                  [self.path("mixed", "manifest.json")])
        for split in ("train", "test"):
            self.unit(f"import-{split}", "data", [csm, "import", "fashion-mnist", "--split", split, "--out",
                                                  self.path(f"real-{split}")], [self.path(f"real-{split}", "manifest.json")])
        self.unit("split-val", "data", [csm, "split", self.path("real-train"), "--fraction", "0.1", "--seed", "0",
                                        "--balanced", "--out", self.path("real-val"), "--rest", self.path("real-fit")],
                  [self.path("real-val", "manifest.json"), self.path("real-fit", "manifest.json")])
        self.unit("split-scarce", "data", [csm, "split", self.path("real-fit"), "--fraction", "0.1", "--seed", "1",
                                           "--balanced", "--out", self.path("real-scarce")],
                  [self.path("real-scarce", "manifest.json")])

    def train(self, name: str, stage: str, out: str, real: str, loss: str, seed: int, length: list[str],
              settings: dict | None) -> None:
        command = [self.csm, "train", "--real", self.path(real), "--loss", loss, "--seed", str(seed), *RECIPE, *length,
                   *LOSS_OPTIONS[loss], "--checkpoint", self.path("checkpoints", name + ".checkpoint"), "--out", out]
        if loss.startswith("csm"):
            command += ["--mixed", self.path("mixed"), *mixed_options(settings)]
        os.makedirs(self.path("checkpoints"), exist_ok=True)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        self.unit(name, stage, command, [out])

    def validation_metrics(self, name: str, model: str) -> dict:
        record = self.unit("val-" + name, "grid", [self.csm, "evaluate", "--classifier", model, "--data",
                                                    self.path("real-val"), "--bins", str(BINS), "--json"], [model])
        return json.loads(record["stdout"])

    def grid(self) -> dict:
        length = ["--epochs", "1000", "--max-steps", str(GRID_STEPS)]

        def run(settings: dict | None) -> dict:
            label = "ce" if settings is None else setting_label(settings)
            model = self.path("grid", label + ".safetensors")
            self.train("grid-" + label, "grid", model, "real-fit", "ce" if settings is None else "csm", 0, length, settings)
            metrics = self.validation_metrics("grid-" + label, model)
            row = {"setting": settings, "label": label, "accuracy": metrics["accuracy"], "ece": metrics["ece"],
                   "nll": metrics["nll"]}
            return row

        def pick(candidates: list[dict]) -> dict:
            eligible = [r for r in candidates if r["accuracy"] >= floor]
            return min(eligible, key=lambda r: r["ece"]) if eligible else max(candidates, key=lambda r: r["accuracy"])

        # Sharpness x n_aug (and CE's baseline beside them), then consistent-only and the
        # mixed share at the best of those; rows in this order whatever finishes first.
        first_settings = [{"sharpness": s, "n_aug": n, "consistent_only": False, "share": 1.0}
                          for s in SHARPNESS for n in N_AUG]
        baseline, *first = self.parallel([lambda: run(None)] + [lambda s=s: run(s) for s in first_settings])
        floor = baseline["accuracy"] - ACCURACY_SLACK
        best = pick(first)
        variants = [{**best["setting"], **variant} for variant in ({"consistent_only": True}, {"share": SHARES[1]})]
        second = [best, *self.parallel([lambda s=s: run(s) for s in variants])]
        chosen = pick(second)
        rows = [baseline, *first, *second[1:]]
        result = {"baseline": baseline, "rows": rows, "chosen": chosen["setting"], "accuracy_floor": floor,
                  "steps": GRID_STEPS}
        self.state["grid"] = result
        self.save_state()
        return result

    def regime(self, regime: str) -> None:
        settings = self.state["grid"]["chosen"]
        steps = FULL_STEPS or round(FULL_EPOCHS * steps_per_epoch(self.count("real-fit")))
        # Scarce: as many epochs as it takes to make the same number of optimiser steps.
        data = "real-fit" if regime == "full" else "real-scarce"
        samples = self.count(data)
        per_epoch = steps_per_epoch(samples)
        length = ["--epochs", str(-(-steps // per_epoch)), "--max-steps", str(steps)]

        def train(loss: str, seed: int) -> None:
            name = model_name(regime, loss, seed)
            self.train(name, regime, os.path.join(ROOT, MODELS, name + ".safetensors"), data, loss, seed, length, settings)

        # The CSM trainings (several images per real one) first, so that the workers end together.
        methods = sorted(REGIMES[regime], key=lambda method: not method[0].startswith("csm"))
        self.parallel([lambda loss=loss, seed=seed: train(loss, seed) for loss, seed in methods])
        self.state.setdefault("lengths", {})[regime] = {"steps": steps, "epochs": round(steps / per_epoch, 2),
                                                         "samples": samples}
        self.save_state()

    def evaluate(self) -> None:
        os.makedirs(self.path("logits"), exist_ok=True)
        os.makedirs(self.path("diagrams"), exist_ok=True)
        for regime, methods in REGIMES.items():
            for loss, seed in methods:
                name = model_name(regime, loss, seed)
                model = os.path.join(ROOT, MODELS, name + ".safetensors")
                logits = self.path("logits", name + ".safetensors")
                self.unit("test-" + name, "evaluate",
                          [self.csm, "evaluate", "--classifier", model, "--data", self.path("real-test"), "--val-data",
                           self.path("real-val"), "--bins", str(BINS), "--bootstrap", str(BOOTSTRAP), "--json",
                           "--save-logits", logits], [logits])
                if seed != 0:
                    continue
                # The figure's panels: one diagram per method from its test logits, and CE's
                # before and after temperature scaling (fitted on the validation split).
                diagram = self.path("diagrams", name + ".png")
                self.unit("diagram-" + name, "evaluate",
                          [self.csm, "evaluate", "--logits", logits, "--bins", str(BINS), "--diagram", diagram], [diagram])
                if loss == "ce":
                    diagram = self.path("diagrams", name + "-ts.png")
                    self.unit("diagram-" + name + "-ts", "evaluate",
                              [self.csm, "evaluate", "--classifier", model, "--data", self.path("real-test"), "--val-data",
                               self.path("real-val"), "--bins", str(BINS), "--diagram", diagram], [diagram])

    def count(self, data: str) -> int:
        manifest = json.load(open(self.path(data, "manifest.json")))
        return sum(shard["count"] for shard in manifest["shards"])

    def stage_seconds(self, stage: str) -> float:
        return sum(u["seconds"] for u in self.state["units"].values() if u["stage"] == stage)


def steps_per_epoch(samples: int) -> int:
    return -(-samples // 128)


def mixed_options(settings: dict | None) -> list[str]:
    if settings is None:
        return []
    options = ["--sharpness", str(settings["sharpness"]), "--n-aug", str(settings["n_aug"]),
               "--mixed-share", str(settings["share"])]
    return options + (["--consistent-only"] if settings["consistent_only"] else [])


def setting_label(settings: dict) -> str:
    return (f"csm-s{settings['sharpness']:g}-n{settings['n_aug']}-share{settings['share']:g}"
            + ("-consistent" if settings["consistent_only"] else ""))


def model_name(regime: str, loss: str, seed: int) -> str:
    return f"{regime}-{loss}-seed{seed}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csm", default=os.path.join(ROOT, ".build", "release", "csm"), help="the csm binary")
    parser.add_argument("--work", help="working folder: shards, logs, state (default study-out/, study-quick/ with --quick)")
    parser.add_argument("--quick", action="store_true", help="a few steps per model, outputs inside --work (a pipeline check)")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1),
                        help="trainings run at once, each pinned to one core (default: the cores, at most 8)")
    parser.add_argument("--stage", choices=["data", "grid", "full", "scarce", "evaluate", "report"],
                        help="run up to and including this stage (default: all)")
    args = parser.parse_args()
    global MODELS, DOCS, FULL_STEPS, GRID_STEPS, GROUPS_PER_PAIR, BOOTSTRAP
    if args.quick:
        args.work = args.work or os.path.join(ROOT, "study-quick")
        MODELS, DOCS = os.path.join(args.work, "models"), os.path.join(args.work, "docs")
        FULL_STEPS, GRID_STEPS, GROUPS_PER_PAIR, BOOTSTRAP = 4, 2, 1, 20
    args.work = args.work or os.path.join(ROOT, "study-out")
    if not os.access(args.csm, os.X_OK):
        sys.exit(f"study: {args.csm}: not an executable csm (run make build)")
    study = Study(args.csm, args.work, max(1, args.jobs))
    order = ["data", "grid", "full", "scarce", "evaluate", "report"]
    last = order.index(args.stage) if args.stage else len(order) - 1
    for stage in order[:last + 1]:
        start = time.time()
        try:
            if stage == "report":
                sys.modules.setdefault("study", sys.modules[__name__])  # the report reads this run's settings
                import study_report
                study_report.write(study)
            elif stage in REGIMES:
                study.regime(stage)
            else:
                getattr(study, stage)()
        except UnitFailed as failure:
            sys.exit(str(failure))
        walls = study.state.setdefault("stage_wall", {})
        walls[stage] = round(walls.get(stage, 0) + time.time() - start, 1)
        study.save_state()
        print(f"[{stage}] done ({walls[stage] / 60:.1f} min wall, {study.stage_seconds(stage) / 60:.1f} min of unit "
              "time in this stage)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
