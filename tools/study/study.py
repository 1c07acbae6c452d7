#!/usr/bin/env python3
"""The calibration study on Fashion-MNIST (make study): what CSM data does to a classifier's
calibration once training has converged, measured with csm's own commands.

    python3 tools/study/study.py --csm .build/release/csm [--work study-out] [--stage STAGE] [--jobs N] [--commit] [--plan] [--quick]

Regimes by labelled fraction of the fit split, each trained to convergence with one recipe
(ResNet-20, SGD, cosine schedule): "scarce" (a class-balanced 10%, 50 epochs), "full" (all
54,000 images, 30 epochs) and "middle" (a class-balanced 25%, 40 epochs).

Stages, in order (each resumes; see below):

  data     real train/test splits (csm import), a class-balanced 10% validation split of
           train (csm split --balanced --seed 0) and the rest ("fit"), the scarce and middle
           subsets of fit. The two mixed pools (csm generate --solver dpm2m, all 45 pairs x
           8 lambdas: 16 trajectories per pair = 5,760 images, 150 = 54,000) are made when a
           training first needs them.
  scarce   CE (3 seeds, validated every epoch for the convergence curves); CSM settings
           chosen on the validation split at the final length: sharpness x pool, then
           consistent-only and n_aug 2 at the best; the pick (lowest validation ECE among
           settings within 0.5 pt of CE's validation accuracy) with 3 seeds; BSCE-GRA and
           CSM + BSCE-GRA.
  targeted the scarce pick on a pool of the same size whose trajectories follow the pairs a
           pilot confuses (csm pairs with scarce CE seed 0 on the validation split, then
           csm generate --pair-weights), 3 seeds, against the uniform pool's 3 seeds.
  full     CE (3 seeds), LS, focal, BSCE-GRA; CSM at the scarce pick and at sharpness 4
           (seed 0 each), the one chosen on the validation split the same way (against full
           CE seed 0) with 3 seeds; CSM + BSCE-GRA at it.
  middle   CE and CSM at the scarce pick, 3 seeds each.
  evaluate every finished model on the 10,000 test images (csm evaluate --classifier,
           temperature fitted on the validation split, 1,000 bootstrap resamples for ECE).
  diagnose what each regime's CSM runs did with their data (tools/study/study_diagnostics.py):
           their fit of the pool, the pool's soft labels against the full CE models, class-wise
           test ECE, and in "scarce" per class pair what the targeted pool changed against the
           uniform one. --commit runs it after every finished training, with the evaluation.
  report   docs/calibration/fashion-mnist.{md,json} and the figures; runs still missing are
           listed as pending.

The four training stages run as one plan (Study.plan): a free core takes the most wanted
training that can start (the scarce choice first, then targeted, full, middle), and
trainings that need no choice (full CE, LS, focal, BSCE-GRA; middle CE) fill the cores
while a choice waits for its runs.

Every training writes its classifier to Datasets/fashion-mnist/study/ and its record (wall
time, per-epoch JSON lines) to Datasets/fashion-mnist/study/runs.json: both are meant to be
committed as they finish (--commit does it: after every finished training it evaluates it,
rewrites the report and commits those files alone), and a rerun on a fresh clone skips
every run recorded there. All
else (shards, checkpoints, logs, logits) lives in WORK and is remade byte-identically on the
same kind of CPU: Datasets/fashion-mnist/study/data.json keeps each data folder's
fingerprint (SHA-256 over its shards) for each kind of CPU that made it, every training's
record the fingerprints of the data it read, and data made differently on a kind of CPU
that made it before stops the study before a training uses it. An interrupted `csm train`
continues from its checkpoint; --keep-checkpoints --commit carries the checkpoints of
unfinished trainings to the next machine through the checkout. The test split is read only
by the evaluate stage, after every setting is fixed.

--quick runs the same pipeline with a few optimiser steps per model and small pools, its
models and report inside WORK (default study-quick/): a check of the machinery in minutes,
whose figures mean nothing.
"""
import argparse
import concurrent.futures
import datetime
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time
import typing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join("Datasets", "fashion-mnist", "study")
DOCS = os.path.join("docs", "calibration")

# The shared recipe: SGD, momentum 0.9, weight decay 5e-4, batch 128, crop + flip, cosine
# schedule, clipping at 2, the last epoch kept.
RECIPE = ["--arch", "resnet20", "--batch", "128", "--lr", "0.1", "--momentum", "0.9", "--weight-decay", "5e-4",
          "--schedule", "cosine", "--clip", "2", "--val-fraction", "0", "--keep", "last"]
LOSS_OPTIONS = {"ce": [], "ls": ["--smoothing", "0.05"], "focal": ["--gamma", "3"],
                "bsce-gra": ["--norm", "2", "--gamma", "2"], "csm": [], "csm-bsce-gra": ["--norm", "2", "--gamma", "2"]}
# Regimes: the real training data (a split made by the data stage) and the epochs to convergence.
REGIMES = {"scarce": {"data": "real-scarce", "epochs": 50, "fraction": 0.10},
           "full": {"data": "real-fit", "epochs": 30, "fraction": 1.0},
           "middle": {"data": "real-middle", "epochs": 40, "fraction": 0.25}}
SEEDS = [0, 1, 2]
# Mixed pools: trajectories per pair (x 8 lambdas x 45 pairs), all with DPM-Solver++(2M).
POOLS = {"pool5760": 16, "pool54000": 150}
TRAINING_STAGES = ("scarce", "targeted", "full", "middle")
TARGETED = "-targeted"           # a pool's budget allocated by the pilot's pair weights
LAMBDAS = 8
SHARPNESS = [1.0, 1.5, 2.3, 4.0, 10.0]
FULL_SHARPNESS = 4.0             # "full" chooses between the scarce pick and the pick at this sharpness
ACCURACY_SLACK = 0.005           # a setting may cost at most 0.5 pt of validation accuracy
BOOTSTRAP = 1000
BINS = 15
QUICK_STEPS = None               # (--quick: a fixed number of optimiser steps per training)


class UnitFailed(Exception):
    """A unit's command exited non-zero; the message names its log."""


def setting(pool: str, sharpness: float, n_aug: int = 1, consistent_only: bool = False) -> dict:
    return {"pool": pool, "sharpness": sharpness, "n_aug": n_aug, "consistent_only": consistent_only}


def setting_label(settings: dict) -> str:
    return (f"{settings['pool']}-s{settings['sharpness']:g}-n{settings['n_aug']}"
            + ("-consistent" if settings["consistent_only"] else ""))


def model_name(regime: str, loss: str, seed: int, settings: dict | None = None) -> str:
    """File stem of a trained classifier: REGIME-LOSS[-SETTING]-seedN."""
    return f"{regime}-{loss}" + (f"-{setting_label(settings)}" if settings else "") + f"-seed{seed}"


def log_lines(log_path: str) -> list[str]:
    """A unit's log as stripped lines, each progress redraw (carriage return) its own line."""
    return [line.strip() for line in open(log_path, errors="replace").read().replace("\r", "\n").splitlines()]


def training_seconds(log_path: str) -> float | None:
    """How long a training's epochs took, over every sitting its log holds: each epoch's
    `seconds` from its JSON line (`csm train --json`), or, for an epoch whose line was lost
    with an interrupted sitting, its images over the rate of its last progress line (the
    training pass alone). Work an interruption threw away is not counted. None without epochs."""
    timed, estimated = {}, {}
    for line in log_lines(log_path):
        if line.startswith("{"):
            try:
                epoch = json.loads(line)
            except ValueError:
                continue
            if "epoch" in epoch and "seconds" in epoch:
                timed[epoch["epoch"]] = epoch["seconds"]
        elif match := re.match(r"epoch (\d+)/\d+:\s+100%\s+(\d+)/\d+ img\s+([\d.]+) img/s", line):
            if float(match[3]) > 0:
                estimated[int(match[1])] = int(match[2]) / float(match[3])
    epochs = set(timed) | set(estimated)
    return round(sum(timed.get(e, estimated.get(e)) for e in epochs), 1) if epochs else None


def generation_seconds(log_path: str) -> float | None:
    """How long a `csm generate` took over every sitting its log holds: each sitting's last
    progress line, its images over its rate (a sitting is a run of lines that count towards
    the same total, the images it had left to make). None without progress lines."""
    sittings: list[tuple[int, int, float]] = []   # (total, done, rate) of each sitting's last line
    for line in log_lines(log_path):
        match = re.match(r"generating:\s+\d+%\s+(\d+)/(\d+) images\s+([\d.]+) images/s", line)
        if match:
            done, total, rate = int(match[1]), int(match[2]), float(match[3])
            if sittings and sittings[-1][0] == total and done >= sittings[-1][1]:
                sittings[-1] = (total, done, rate)
            else:
                sittings.append((total, done, rate))
    return round(sum(done / rate for _, done, rate in sittings if rate > 0), 1) if sittings else None


class Training(typing.NamedTuple):
    """One classifier to train: the stage that wants it, its regime, loss, seed, CSM setting
    (None without mixed data) and whether it validates after every epoch."""
    stage: str
    regime: str
    loss: str
    seed: int
    settings: dict | None = None
    curves: bool = False

    @property
    def name(self) -> str:
        return model_name(self.regime, self.loss, self.seed, self.settings)


def unit_seconds(record: dict) -> float:
    """A finished unit's seconds: a training's epochs over every sitting, a generation's
    own timing, else its wall time."""
    return record.get("train_seconds") or record.get("generate_seconds") or record["seconds"]


def checkpoint_metadata(path: str) -> dict:
    """The metadata of the training checkpoint at PATH (its safetensors header's
    __metadata__; docs/formats/checkpoint.md); empty without a readable checkpoint."""
    try:
        with open(path, "rb") as file:
            size = struct.unpack("<Q", file.read(8))[0]
            return dict(json.loads(file.read(size))["__metadata__"])
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return {}


def checkpoint_epochs(path: str) -> int:
    """The epochs the training checkpoint at PATH holds; 0 without a readable checkpoint."""
    try:
        return int(checkpoint_metadata(path).get("epochs_done", 0))
    except ValueError:
        return 0


def write_atomically(destination: str, fill: typing.Callable[[str], None]) -> None:
    """Writes DESTINATION through a temporary file beside it (FILL writes that file; then
    fsync and rename), so a reader never sees half a file."""
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    temporary = destination + ".tmp"
    fill(temporary)
    with open(temporary, "rb") as file:
        os.fsync(file.fileno())
    os.replace(temporary, destination)


def copy_atomically(source: str, destination: str) -> None:
    write_atomically(destination, lambda temporary: shutil.copyfile(source, temporary))


def cpu() -> str:
    """This machine's kind of CPU: its model name, with family and model number where
    /proc/cpuinfo gives them (one model name may cover several generations)."""
    fields: dict[str, str] = {}
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor()
    return f"{name} (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else name


def machine() -> str:
    """This machine in words: kind of CPU, core count, kernel."""
    return f"{cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def same_cpu(first: str, second: str) -> bool:
    """Whether two `machine()` descriptions name the same kind of CPU. One written before
    family and model were noted compares by model name alone."""
    kinds = [re.sub(r", \d+ cores, .*$", "", m) for m in (first, second)]
    if any("(family " not in kind for kind in kinds):
        kinds = [re.sub(r" \(family \d+, model \d+\)$", "", kind) for kind in kinds]
    return kinds[0] == kinds[1]


def steps_per_epoch(samples: int) -> int:
    return -(-samples // 128)


class Study:
    def __init__(self, csm: str, work: str, jobs: int = 1) -> None:
        self.csm = os.path.abspath(csm)
        self.jobs = jobs
        self.lock = threading.Lock()
        self.pool_locks: dict[str, threading.Lock] = {}   # one per pool: its generation runs once
        self.worker = threading.local()
        self.after_training = None   # called with a training's name when it has finished (--commit)
        self.work = os.path.abspath(work)
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        self.state_path = os.path.join(self.work, "state.json")
        self.state = self.load(self.state_path, {"units": {}})
        self.runs_path = os.path.join(ROOT, MODELS, "runs.json")
        self.runs = self.load(self.runs_path, {})
        # Each data folder's fingerprint when it was first made, committed with the models.
        self.data_path = os.path.join(ROOT, MODELS, "data.json")
        self.data_record = self.load(self.data_path, {})
        # The seconds of every sitting's units that are not committed trainings (data, select,
        # evaluate, diagnose), by stage, committed with the models: WORK is lost with its
        # machine, and the report's wall times cover every sitting. This sitting is this
        # WORK folder, named by when it was first used.
        self.sittings_path = os.path.join(ROOT, MODELS, "sittings.json")
        self.sittings = self.load(self.sittings_path, {})
        if "sitting" not in self.state:
            self.state["sitting"] = datetime.datetime.now().isoformat(timespec="seconds")
            self.save(self.state_path, self.state)

    # -- bookkeeping ---------------------------------------------------------------------

    @staticmethod
    def load(path: str, empty: dict) -> dict:
        return json.load(open(path)) if os.path.exists(path) else empty

    @staticmethod
    def save(path: str, document: dict) -> None:
        def fill(temporary: str) -> None:
            with open(temporary, "w") as out:
                json.dump(document, out, indent=1, sort_keys=True)
                out.write("\n")
        write_atomically(path, fill)

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    def model_path(self, name: str) -> str:
        return os.path.join(ROOT, MODELS, name + ".safetensors")

    def record(self, name: str) -> dict | None:
        """The finished unit NAME: a training's record from runs.json, or another unit's from WORK."""
        with self.lock:
            return self.runs.get(name) or self.state["units"].get(name)

    def unit(self, name: str, stage: str, command: list[str], outputs: list[str], committed: bool = False,
             extra: dict | None = None) -> dict:
        """Runs `command` once (logged to WORK/logs/NAME.log) unless NAME is finished and its
        outputs exist; records its wall time, stdout and `extra` under NAME (in runs.json when
        `committed`, else in WORK/state.json). Inside `trainings`, the command runs pinned
        to the calling worker's cores, with one thread for each."""
        record = self.record(name)
        if record and all(os.path.exists(p) for p in outputs):
            return record
        cores = getattr(self.worker, "cores", None)
        environment = None
        if cores is not None:
            command = ["taskset", "-c", ",".join(str(core) for core in cores), *command]
            environment = {**os.environ, "CSM_THREADS": str(len(cores))}
        print(f"[{stage}] {name}: {' '.join(os.path.relpath(c, ROOT) if c.startswith('/') else c for c in command)}",
              flush=True)
        log_path = self.path("logs", name + ".log")
        start = time.time()
        # stdout goes to the log line by line as well, so an interrupted training's epoch
        # lines survive for the record of the sitting that finishes it.
        stdout = []
        with open(log_path, "a") as log:
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=environment)
            for line in process.stdout:
                stdout.append(line)
                log.write(line)
                log.flush()
            returncode = process.wait()
        seconds = time.time() - start
        if returncode != 0:
            tail = open(log_path, errors="replace").read().strip().splitlines()[-3:]
            raise UnitFailed(f"study: {name} failed (exit {returncode}); log {log_path}:\n  " + "\n  ".join(tail))
        record = {"stage": stage, "seconds": round(seconds, 1), "stdout": "".join(stdout),
                  "finished": datetime.datetime.now().isoformat(timespec="seconds"), **(extra or {})}
        if committed:
            record["train_seconds"] = training_seconds(log_path)
        elif name.startswith("generate-"):
            record["generate_seconds"] = generation_seconds(log_path)
        with self.lock:
            if committed:
                self.runs[name] = record
                self.save(self.runs_path, self.runs)
            else:
                self.state["units"][name] = record
                self.save(self.state_path, self.state)
                by_stage: dict[str, float] = {}
                for unit in self.state["units"].values():
                    by_stage[unit["stage"]] = by_stage.get(unit["stage"], 0) + unit_seconds(unit)
                self.sittings[self.state["sitting"]] = {"machine": machine(),
                                                        "seconds": {k: round(v, 1) for k, v in by_stage.items()}}
                self.save(self.sittings_path, self.sittings)
        print(f"[{stage}] {name}: finished in {seconds / 60:.1f} min", flush=True)
        return record

    def count(self, data: str) -> int:
        manifest = json.load(open(self.path(data, "manifest.json")))
        return sum(shard["count"] for shard in manifest["shards"])

    def stage_seconds(self, stage: str) -> float:
        """Wall seconds of STAGE over every sitting: its committed trainings' and the other
        units' that sittings.json holds."""
        return (sum(unit_seconds(u) for u in self.runs.values() if u["stage"] == stage)
                + sum(sitting["seconds"].get(stage, 0) for sitting in self.sittings.values()))

    def commit(self, message: str) -> bool:
        """Commits the classifiers with their records, the report and the README's outcome
        (--commit), nothing else of the checkout. False when git's index is locked (another
        git command is running; the next commit takes the changes) or nothing changed."""
        paths = [MODELS, DOCS, "README.md"]
        if os.path.exists(os.path.join(ROOT, ".git", "index.lock")):
            print("[commit] skipped: git's index is locked", flush=True)
            return False
        git = lambda *arguments: subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True)  # noqa: E731
        added = git("add", "--", *paths)
        if added.returncode != 0:
            raise UnitFailed(f"study: git add failed: {added.stderr.strip()}")
        if git("diff", "--cached", "--quiet", "--", *paths).returncode == 0:
            return False
        committed = git("commit", "-q", "-m", message, "--", *paths)
        if committed.returncode != 0:
            raise UnitFailed(f"study: git commit failed: {committed.stderr.strip()}")
        print(f"[commit] {message.splitlines()[0]}", flush=True)
        return True

    # -- data ----------------------------------------------------------------------------

    def data(self) -> None:
        csm = self.csm
        for split in ("train", "test"):
            self.unit(f"import-{split}", "data", [csm, "import", "fashion-mnist", "--split", split, "--out",
                                                  self.path(f"real-{split}")], [self.path(f"real-{split}", "manifest.json")])
        self.unit("split-val", "data", [csm, "split", self.path("real-train"), "--fraction", "0.1", "--seed", "0",
                                        "--balanced", "--out", self.path("real-val"), "--rest", self.path("real-fit")],
                  [self.path("real-val", "manifest.json"), self.path("real-fit", "manifest.json")])
        for seed, (regime, spec) in enumerate(((r, s) for r, s in REGIMES.items() if s["data"] != "real-fit"), start=1):
            self.unit(f"split-{regime}", "data", [csm, "split", self.path("real-fit"), "--fraction", str(spec["fraction"]),
                                                  "--seed", str(seed), "--balanced", "--out", self.path(spec["data"])],
                      [self.path(spec["data"], "manifest.json")])
        for folder in ["real-train", "real-test", "real-val", "real-fit"] + [s["data"] for s in REGIMES.values()]:
            self.check_data(folder)

    def fingerprint(self, folder: str) -> str:
        """SHA-256 over the shards of data folder FOLDER (in WORK) as its manifest lists them,
        each shard's image count and SHA-256 in order: equal exactly when the shards are."""
        manifest = json.load(open(self.path(folder, "manifest.json")))
        digest = hashlib.sha256()
        for shard in manifest["shards"]:
            digest.update(f"{shard['count']} {shard['sha256']}\n".encode())
        return digest.hexdigest()

    def check_data(self, folder: str) -> None:
        """Holds data folder FOLDER to the fingerprints data.json (committed beside the models)
        keeps for it: the first time, records it with the machine that made it. csm makes the
        same bytes from the same inputs (pool54000 came out the same on an Intel Xeon and an
        AMD EPYC Zen 4), but a kind of CPU not yet tried might round differently, and with the
        machine drawn anew each sitting a stop there would stop the study for good: a version
        made on a kind of CPU data.json does not know yet is added to the folder's
        "other_cpus", and the report marks the models trained on it. Data made differently on
        a kind of CPU that made it before stops the study here, before any training uses it."""
        current = self.fingerprint(folder)
        with self.lock:
            known = self.data_record.get(folder)
            if known is None:
                self.data_record[folder] = {"sha256": current, "machine": machine()}
                self.save(self.data_path, self.data_record)
                return
            versions = [known, *known.get("other_cpus", [])]
            if any(version["sha256"] == current for version in versions):
                return
            if not any(same_cpu(version["machine"], machine()) for version in versions):
                known.setdefault("other_cpus", []).append({"sha256": current, "machine": machine()})
                self.save(self.data_path, self.data_record)
                print(f"[data] {folder}: made on a kind of CPU new to {os.path.relpath(self.data_path, ROOT)} "
                      f"({cpu()}), with other bytes than on {known['machine']}: recorded as its version", flush=True)
                return
        record = os.path.relpath(self.data_path, ROOT)
        raise UnitFailed(f"study: {self.path(folder)} is not the data the committed models were trained on: its shards' "
                         f"SHA-256 differ from every version {record} holds, one of them made on this kind of CPU "
                         f"({cpu()}). Delete the folder and run again to make it anew.")

    def data_used(self, training: "Training") -> dict[str, str]:
        """The fingerprints of the data folders TRAINING reads (its real split, its pool)."""
        folders = [REGIMES[training.regime]["data"]] + ([training.settings["pool"]] if training.loss.startswith("csm") else [])
        return {folder: self.fingerprint(folder) for folder in folders}

    def other_data(self, name: str) -> dict[str, str | None]:
        """The data folders training NAME read in another version than the one data.json
        names first, each with the machine that made that version (None for a version
        data.json does not hold); empty for a record without fingerprints."""
        used = (self.runs.get(name) or {}).get("data", {})
        other = {}
        for folder, sha in used.items():
            known = self.data_record.get(folder)
            if known is not None and known["sha256"] != sha:
                other[folder] = next((v["machine"] for v in known.get("other_cpus", []) if v["sha256"] == sha), None)
        return other

    def pool(self, name: str) -> str:
        """The mixed pool NAME's folder, generated on first use. NAME-targeted is pool NAME's
        budget spent by the pilot's pair weights (see `pair_weights`). A pool being generated
        blocks only the callers that want that pool."""
        if self.generated(name):
            self.check_data(name)
            return self.path(name)
        base, targeted = name.removesuffix(TARGETED), name.endswith(TARGETED)
        command = [self.csm, "generate", "--out", self.path(name), "--groups-per-pair", str(POOLS[base]),
                   "--lambdas", str(LAMBDAS), "--seed", "0", "--solver", "dpm2m"]
        if targeted:
            command += ["--pair-weights", self.pair_weights()]
        with self.lock:
            lock = self.pool_locks.setdefault(name, threading.Lock())
        with lock:
            self.unit("generate-" + name, "data", command, [self.path(name, "manifest.json")])
        self.check_data(name)
        return self.path(name)

    def pair_weights(self) -> str:
        """Pair weights from the pilot, a CE classifier trained on the scarce split only (no
        image of the rest of the fit split enters them), measured on the validation split."""
        weights = self.path("pair-weights.json")
        self.unit("pairs", "targeted", [self.csm, "pairs", "--classifier", self.model_path(model_name("scarce", "ce", 0)),
                                        "--data", self.path("real-val"), "--out", weights, "--picture",
                                        self.path("pair-confusion.png"), "--top", "45"],
                  [weights, self.path("pair-confusion.png")])
        return weights

    # -- training ------------------------------------------------------------------------

    def generated(self, pool: str) -> bool:
        return self.record("generate-" + pool) is not None and os.path.exists(self.path(pool, "manifest.json"))

    def train(self, training: "Training") -> str:
        """Runs one training (unless recorded) and returns its name."""
        name, regime, settings = training.name, training.regime, training.settings
        spec = REGIMES[regime]
        length = ["--epochs", str(spec["epochs"])] + (["--max-steps", str(QUICK_STEPS)] if QUICK_STEPS else [])
        command = [self.csm, "train", "--real", self.path(spec["data"]), "--loss", training.loss, "--seed", str(training.seed),
                   *RECIPE, *length, *LOSS_OPTIONS[training.loss], "--json", "--checkpoint",
                   self.path("checkpoints", name + ".checkpoint"), "--out", self.model_path(name)]
        if training.curves:  # validation accuracy and ECE after every epoch
            command += ["--val-data", self.path("real-val")]
        if training.loss.startswith("csm"):
            # A finished training is skipped below: its pool need not be generated.
            command += ["--mixed", self.path(settings["pool"]) if self.finished(name) else self.pool(settings["pool"])]
            command += ["--sharpness", f"{settings['sharpness']:g}", "--n-aug", str(settings["n_aug"])]
            command += ["--consistent-only"] if settings["consistent_only"] else []
        os.makedirs(self.path("checkpoints"), exist_ok=True)
        os.makedirs(os.path.join(ROOT, MODELS), exist_ok=True)
        data = None if self.finished(name) else self.data_used(training)
        if not self.finished(name):
            self.restore_checkpoint(name, self.path(spec["data"]))
        self.unit(name, training.stage, command, [self.model_path(name)], committed=True, extra={"data": data})
        for kept in (self.kept_checkpoint(name), self.kept_log(name)):
            if os.path.exists(kept):
                os.remove(kept)   # the finished classifier and its record replace them
        return name

    def validation(self, name: str) -> dict:
        """Accuracy, NLL and ECE (with its bootstrap interval) of model NAME on the validation split."""
        record = self.unit("val-" + name, "select",
                           [self.csm, "evaluate", "--classifier", self.model_path(name), "--data", self.path("real-val"),
                            "--bins", str(BINS), "--bootstrap", str(BOOTSTRAP), "--json"], [self.model_path(name)])
        return json.loads(record["stdout"])

    # -- what to train, and in which order -----------------------------------------------

    def plan(self, stages: list[str]) -> list[tuple[str, bool, object]]:
        """What the training stages in `stages` still need, most wanted first: (unit name,
        whether it can start now, a zero-argument functools.partial that runs it: `train`
        with its Training, or `pool` with the pool's name). A CSM training
        whose pool is not generated yet is preceded by the pool's generation. Recomputed
        after every finished unit, so settings are chosen as soon as their inputs exist."""
        wanted: list[Training | str] = []   # trainings, and pools wanted before their trainings

        def add(stage: str, regime: str, loss: str, seeds: list[int], settings: dict | None = None, curves: bool = False):
            if stage in stages:
                wanted.extend(Training(stage, regime, loss, seed, settings, curves) for seed in seeds)

        grid = [setting(pool, s) for pool in POOLS for s in SHARPNESS]
        # scarce: CE (the reference of every choice), the grid, then the variants at its best.
        add("scarce", "scarce", "ce", SEEDS, curves=True)
        for settings in grid:
            add("scarce", "scarce", "csm", [0], settings)
        add("scarce", "scarce", "bsce-gra", [0])
        best = self.pick(grid, required=False)
        chosen = self.chosen()
        targeted = None if chosen is None else {**chosen, "pool": chosen["pool"] + TARGETED}
        if best is not None:
            for variant in ({**best, "consistent_only": True}, {**best, "n_aug": 2}):
                add("scarce", "scarce", "csm", [0], variant)
            targeted_done = targeted is not None and all(
                self.finished(model_name("scarce", "csm", seed, targeted)) for seed in SEEDS)
            if "targeted" in stages and not targeted_done:
                # The variants keep the best's pool, so the pick's targeted pool can be made now.
                wanted.append(best["pool"] + TARGETED)
        if chosen is not None:
            add("scarce", "scarce", "csm", SEEDS, chosen)
            add("targeted", "scarce", "ce", [0], curves=True)      # the pilot
            add("targeted", "scarce", "csm", SEEDS, targeted)
            add("scarce", "scarce", "csm-bsce-gra", [0], chosen)
        # full: CE seed 0 (the reference of its choice) and the candidates, then the choice's
        # seeds. Trainings that need no choice keep the cores busy while a choice waits.
        add("full", "full", "ce", [0], curves=True)
        for settings in self.full_candidates():
            add("full", "full", "csm", [0], settings)
        full_chosen = self.full_chosen()
        if full_chosen is not None:
            add("full", "full", "csm", SEEDS, full_chosen)
        add("full", "full", "ce", SEEDS, curves=True)
        if full_chosen is not None:
            add("full", "full", "csm-bsce-gra", [0], full_chosen)
        for loss in ("ls", "focal", "bsce-gra"):
            add("full", "full", loss, [0])
        if chosen is not None:
            add("middle", "middle", "csm", SEEDS, chosen)
        add("middle", "middle", "ce", SEEDS, curves=True)

        plan, seen = [], set()

        def generation(pool: str) -> None:
            """The pool's generation, once; a targeted pool waits for its pilot."""
            if "generate-" + pool not in seen and not self.generated(pool):
                seen.add("generate-" + pool)
                ready = not pool.endswith(TARGETED) or self.finished(model_name("scarce", "ce", 0))
                plan.append(("generate-" + pool, ready, functools.partial(self.pool, pool)))

        for item in wanted:
            if isinstance(item, str):
                generation(item)
                continue
            if item.name in seen or self.finished(item.name):
                continue
            seen.add(item.name)
            pool = item.settings["pool"] if item.loss.startswith("csm") else None
            waits = pool is not None and not self.generated(pool)
            if waits:
                generation(pool)
            plan.append((item.name, not waits, functools.partial(self.train, item)))
        return plan

    def checkpoint_epochs(self, name: str) -> int:
        """The epochs training NAME's checkpoint holds, in WORK or kept in the checkout."""
        return max(checkpoint_epochs(self.path("checkpoints", name + ".checkpoint")),
                   checkpoint_epochs(self.kept_checkpoint(name)))

    def kept_checkpoint(self, name: str) -> str:
        """Where training NAME's checkpoint is kept in the checkout (--keep-checkpoints)."""
        return os.path.join(ROOT, MODELS, "checkpoints", name + ".checkpoint")

    def keep_checkpoints(self) -> list[str]:
        """Copies the checkpoint of every unfinished training in WORK that is ahead of the one
        kept in the checkout into Datasets/fashion-mnist/study/checkpoints/, with the
        training's log (its epochs' seconds, for the record of the sitting that finishes it),
        and drops what is kept of finished trainings, so that a fresh clone on another machine
        goes on from them. Returns the trainings whose kept checkpoint changed."""
        changed = []
        folder = os.path.join(ROOT, MODELS, "checkpoints")
        os.makedirs(folder, exist_ok=True)
        work = self.path("checkpoints")
        for file in sorted(os.listdir(work) if os.path.isdir(work) else []):
            name = file.removesuffix(".checkpoint")
            if not file.endswith(".checkpoint") or self.finished(name):
                continue
            epochs = checkpoint_epochs(self.path("checkpoints", file))
            if epochs > checkpoint_epochs(self.kept_checkpoint(name)):
                copy_atomically(self.path("checkpoints", file), self.kept_checkpoint(name))
                if os.path.exists(self.path("logs", name + ".log")):
                    copy_atomically(self.path("logs", name + ".log"), self.kept_log(name))
                print(f"[keep] {name}: checkpoint at epoch {epochs} kept in {os.path.relpath(folder, ROOT)}", flush=True)
                changed.append(name)
        for file in sorted(os.listdir(folder)):
            name = file.removesuffix(".checkpoint").removesuffix(".log")
            if self.finished(name):
                os.remove(os.path.join(folder, file))
                if file.endswith(".checkpoint"):
                    changed.append(name)
        return changed

    def kept_log(self, name: str) -> str:
        return os.path.join(ROOT, MODELS, "checkpoints", name + ".log")

    def restore_checkpoint(self, name: str, real: str) -> None:
        """Puts training NAME's kept checkpoint in WORK when it is ahead of WORK's own and was
        made with this WORK: csm train resumes only a run of the same settings, the data
        folders' paths (REAL, its real split) among them."""
        work, kept = self.path("checkpoints", name + ".checkpoint"), self.kept_checkpoint(name)
        if checkpoint_epochs(kept) <= checkpoint_epochs(work):
            return
        try:
            made_with = json.loads(checkpoint_metadata(kept)["configuration"]).get("real")
        except (KeyError, ValueError, AttributeError):
            made_with = None
        if made_with != real:
            print(f"[keep] {name}: the kept checkpoint read {made_with}, not {real}: starting afresh", flush=True)
            return
        copy_atomically(kept, work)
        if os.path.exists(self.kept_log(name)) and not os.path.exists(self.path("logs", name + ".log")):
            copy_atomically(self.kept_log(name), self.path("logs", name + ".log"))
        print(f"[keep] {name}: going on from the kept checkpoint (epoch {checkpoint_epochs(work)})", flush=True)

    def epoch_rates(self) -> dict[tuple, float]:
        """The median images/s of the recorded trainings' epochs, by (regime, whether they
        drew mixed data) and by (None, mixed) over all regimes, over every machine that trained,
        validation and checkpoints included."""
        rates: dict[tuple, list[float]] = {}
        for record in self.runs.values():
            # The data a training read says its regime (its real split) and whether it drew mixed data (a pool).
            regime = next((r for r, spec in REGIMES.items() if spec["data"] in record.get("data", {})), None)
            mixed = any(folder.startswith("pool") for folder in record.get("data", {}))
            for line in record["stdout"].splitlines():
                if line.startswith("{"):
                    rate = json.loads(line)["images_per_second"]
                    for key in ((regime, mixed), (None, mixed)):
                        rates.setdefault(key, []).append(rate)
        return {key: statistics.median(values) for key, values in rates.items()}

    def training_minutes(self, training: Training, rates: dict[tuple, float]) -> float | None:
        """Core-minutes TRAINING still needs: the epochs its checkpoint lacks, each of its
        regime's real images plus the mixed ones drawn with them, at the regime's rate (all
        regimes' before the regime has one). None before any rate or the data exists."""
        data = REGIMES[training.regime]["data"]
        mixed = training.loss.startswith("csm")
        rate = rates.get((training.regime, mixed), rates.get((None, mixed)))
        if rate is None or not os.path.exists(self.path(data, "manifest.json")):
            return None
        images = self.count(data) * (2 + training.settings["n_aug"] if mixed else 1)
        epochs = REGIMES[training.regime]["epochs"] - self.checkpoint_epochs(training.name)
        return images * epochs / rate / 60

    def print_plan(self, stages: list[str]) -> None:
        """What `stages` still need, most wanted first, with each training's core-minutes at
        this machine's measured rates (--plan). Starts nothing."""
        rates, total, unknown = self.epoch_rates(), 0.0, 0
        plan = self.plan(stages)
        print(f"{len(plan)} units left, most wanted first (core-minutes at the median rate of the recorded epochs, "
              "by regime and by whether the training draws mixed data):")
        for name, ready, task in plan:
            minutes = self.training_minutes(task.args[0], rates) if task.func == self.train else None
            done = self.checkpoint_epochs(name) if task.func == self.train else 0
            total += minutes or 0
            unknown += minutes is None
            print(f"  {'ready  ' if ready else 'waiting'}  {name:<48} "
                  + (f"{minutes:6.0f}" if minutes is not None else "     ?")
                  + (f"  (checkpoint at epoch {done})" if done else ""))
        if "full" in stages and self.chosen() is not None and self.full_chosen() is None:
            # Its seeds 1 and 2 and CSM + BSCE-GRA cost the same whichever candidate wins.
            later = [Training("full", "full", loss, seed, self.chosen()) for loss, seed in
                     (("csm", 1), ("csm", 2), ("csm-bsce-gra", 0))]
            minutes = sum(self.training_minutes(t, rates) or 0 for t in later)
            total += minutes
            print(f"  then, once \"full\" has chosen its setting: CSM seeds 1 and 2 and CSM + BSCE-GRA at it, "
                  f"{minutes:.0f} core-minutes")
        print(f"about {total / 60:.1f} core-hours" + (f" besides {unknown} unit(s) not estimated" if unknown else "")
              + f": about {total / 60 / self.jobs:.1f} hours with --jobs {self.jobs}")

    def trainings(self, stages: list[str]) -> None:
        """Runs the plan of `stages` on `jobs` workers, each pinned to its own core with
        CSM_THREADS=1 when jobs > 1 (on 2 cores two one-core trainings make about a third
        more progress than one two-thread training at a time; outputs do not depend on the
        thread count). A free core always takes the most wanted unit that can start, so no
        core waits while another finishes what a choice needs; a pool's generation that is
        the only unit that can start takes every free core (on a fresh machine the CSM
        trainings wait for it). The first failure stops new starts; the running units
        finish, then it is raised."""
        free = list(range(self.jobs)) if self.jobs > 1 else [None]
        with self.lock:
            self.state["training_jobs"] = self.jobs   # for the report, whatever --jobs writes it
            self.save(self.state_path, self.state)
        running: dict[str, tuple[concurrent.futures.Future, list[int | None]]] = {}
        failure = None

        def on_cores(cores, task):
            self.worker.cores = None if cores == [None] else cores
            return task()

        def follow(name: str) -> None:
            try:
                self.after_training(name)
            except Exception as problem:   # the trainings go on; the next one retries
                print(f"[commit] after {name}: {type(problem).__name__}: {problem}", flush=True)

        # after_training runs on a thread of its own, one training after another, so a freed
        # core takes its next unit at once instead of waiting for the evaluation and commit.
        with concurrent.futures.ThreadPoolExecutor(len(free)) as executor, \
                concurrent.futures.ThreadPoolExecutor(1) as follower:
            while True:
                plan = [] if failure else [entry for entry in self.plan(stages) if entry[0] not in running]
                can_start = [name for name, ready, _ in plan if ready]
                for name, ready, task in plan:
                    if free and ready:
                        generation_alone = can_start == [name] and name.startswith("generate-") and free != [None]
                        cores = free[:] if generation_alone else [free[0]]
                        del free[:len(cores)]
                        running[name] = (executor.submit(on_cores, cores, task), cores)
                if not running:
                    if plan:
                        waiting = ", ".join(name for name, _, _ in plan)
                        raise UnitFailed(f"study: nothing can start; waiting: {waiting}")
                    break
                done, _ = concurrent.futures.wait([f for f, _ in running.values()],
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                for name in [n for n, (f, _) in running.items() if f in done]:
                    future, cores = running.pop(name)
                    free.extend(cores)
                    if future.exception() is not None and failure is None:
                        failure = future.exception()
                    elif future.exception() is None and name in self.runs and self.after_training:
                        follower.submit(follow, name)
        if failure:
            raise failure
        if self.chosen() is None and any(s in stages for s in ("targeted", "full", "middle")):
            raise UnitFailed("study: the CSM setting is not chosen yet: run the scarce stage first")

    # -- the choice of CSM settings (validation split only) ------------------------------

    def pick(self, candidates: list[dict], required: bool = True, regime: str = "scarce") -> dict | None:
        """The setting with the lowest validation ECE among those within ACCURACY_SLACK of
        CE's validation accuracy (seed 0 of `regime`), each judged by its seed-0 training in
        `regime`; the most accurate when none is. With `required` False, None until every
        candidate and CE have finished."""
        names = [model_name(regime, "csm", 0, s) for s in candidates] + [model_name(regime, "ce", 0)]
        if not required and not all(self.finished(n) for n in names):
            return None
        floor = self.validation(model_name(regime, "ce", 0))["accuracy"] - ACCURACY_SLACK
        scored = [(s, self.validation(model_name(regime, "csm", 0, s))) for s in candidates]
        eligible = [(s, m) for s, m in scored if m["accuracy"] >= floor]
        if eligible:
            return min(eligible, key=lambda sm: sm[1]["ece"])[0]
        return max(scored, key=lambda sm: sm[1]["accuracy"])[0]

    def finished(self, name: str) -> bool:
        return self.record(name) is not None and os.path.exists(self.model_path(name))

    def chosen(self) -> dict | None:
        """The scarce regime's pick; None until its grid has finished."""
        first = [setting(pool, s) for pool in POOLS for s in SHARPNESS]
        if not self.finished(model_name("scarce", "ce", 0)) or \
                not all(self.finished(model_name("scarce", "csm", 0, s)) for s in first):
            return None
        best = self.pick(first)
        second = [best, {**best, "consistent_only": True}, {**best, "n_aug": 2}]
        if not all(self.finished(model_name("scarce", "csm", 0, s)) for s in second):
            return None
        return self.pick(second)

    def full_candidates(self) -> list[dict]:
        """The settings "full" chooses between on its own validation runs: the scarce pick and
        the pick at FULL_SHARPNESS (just the pick when the two are one). Empty before the pick."""
        chosen = self.chosen()
        if chosen is None:
            return []
        return [chosen] + ([{**chosen, "sharpness": FULL_SHARPNESS}] if chosen["sharpness"] != FULL_SHARPNESS else [])

    def full_chosen(self) -> dict | None:
        """The "full" regime's setting: of its candidates, the pick by `pick` on the validation
        split (seed 0 of each, against full CE seed 0); None until those have finished."""
        candidates = self.full_candidates()
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        return self.pick(candidates, required=False, regime="full")

    def full_other(self) -> dict | None:
        """The "full" candidate that is not its setting (the scarce pick's counterpart while the
        choice waits); None with a single candidate."""
        main = self.full_chosen() or self.chosen()
        return next((c for c in self.full_candidates() if c != main), None)

    def setting_for(self, regime: str, method: str) -> dict | None:
        """The CSM setting behind a table row (None for the other methods and before the
        scarce pick). In "full", "csm" is its choice (the scarce pick while the choice waits)
        and "csm (sharpness S)" the other candidate."""
        chosen = self.chosen()
        if chosen is None or not method.startswith("csm"):
            return None
        if regime == "full":
            return self.full_other() if method.startswith("csm (sharpness") else self.full_chosen() or chosen
        if method == "csm (targeted pool)":
            return {**chosen, "pool": chosen["pool"] + TARGETED}
        return chosen

    def choice_rows(self, regime: str) -> list[dict]:
        """Validation metrics of CE (seed 0) and every finished candidate setting (seed 0)
        that `regime` chooses among: the grid and its variants in "scarce", the two
        candidates in "full"."""
        if regime == "full":
            candidates = [None] + self.full_candidates()
        else:
            candidates = [None] + [setting(p, s) for p in POOLS for s in SHARPNESS]
            best = self.pick(candidates[1:], required=False)
            if best is not None:
                candidates += [{**best, "consistent_only": True}, {**best, "n_aug": 2}]
        rows = []
        for settings in candidates:
            name = model_name(regime, "ce" if settings is None else "csm", 0, settings)
            if not self.finished(name):
                continue
            metrics = self.validation(name)
            rows.append({"setting": settings, "name": name, "accuracy": metrics["accuracy"], "ece": metrics["ece"],
                         "ece_ci": metrics.get("ece_ci"), "nll": metrics["nll"]})
        return rows

    # -- evaluation ----------------------------------------------------------------------

    def table_models(self) -> dict:
        """Every regime's table: method label -> [(seed, model name)], finished or not."""
        chosen = self.chosen()
        tables = {}
        for regime in REGIMES:
            rows = {"ce": [(s, model_name(regime, "ce", s)) for s in SEEDS]}
            if regime == "full":
                rows.update({loss: [(0, model_name(regime, loss, 0))] for loss in ("ls", "focal", "bsce-gra")})
            if regime == "scarce":
                rows["bsce-gra"] = [(0, model_name(regime, "bsce-gra", 0))]
            if chosen is not None:
                methods = ["csm"]
                other = self.full_other() if regime == "full" else None
                if other is not None:
                    methods.append(f"csm (sharpness {other['sharpness']:g})")
                methods += [] if regime == "middle" else ["csm-bsce-gra"]
                methods += ["csm (targeted pool)"] if regime == "scarce" else []
                for method in methods:
                    settings = self.setting_for(regime, method)
                    loss = "csm-bsce-gra" if method == "csm-bsce-gra" else "csm"
                    seeds = SEEDS if method in ("csm", "csm (targeted pool)") else [0]
                    rows[method] = [(s, model_name(regime, loss, s, settings)) for s in seeds]
            tables[regime] = rows
        return tables

    def diagnose(self) -> None:
        """tools/study/study_diagnostics.py's measurements of each regime's CSM runs at its
        setting: their fit of the pool, the pool's labels against the full CE models, which
        way seed 0 of CE, CSM and (where the regime has them) BSCE-GRA and CSM + BSCE-GRA err
        on the test split, and class-wise test ECE against the regime's CE seed 0; in
        "scarce" also what the targeted pool changed, pair by pair. Each model's pool logits
        are evaluated once."""
        import study_diagnostics
        judges = [name for name in (model_name("full", "ce", s) for s in SEEDS) if self.finished(name)]

        def on_pool(name: str, pool: str) -> str:
            logits = self.path("pool-logits", pool, name + ".safetensors")
            os.makedirs(os.path.dirname(logits), exist_ok=True)
            self.unit(f"pool-{pool}-{name}", "diagnose", [self.csm, "evaluate", "--classifier", self.model_path(name),
                                                         "--data", self.pool(pool), "--save-logits", logits, "--json"],
                      [logits])
            return logits

        documents = {}
        for regime in REGIMES:
            settings = self.setting_for(regime, "csm")
            csm = [name for name in (model_name(regime, "csm", s, settings) for s in SEEDS)
                   if settings is not None and self.finished(name)]
            if not csm:
                continue
            pool = settings["pool"]
            test = {method: self.path("logits", name + ".safetensors")
                    for method, name in (("ce", model_name(regime, "ce", 0)), ("csm", csm[0]),
                                         ("bsce-gra", model_name(regime, "bsce-gra", 0)),
                                         ("csm-bsce-gra", model_name(regime, "csm-bsce-gra", 0, settings)))}
            document = study_diagnostics.diagnose(self.pool(pool), settings["sharpness"], settings["consistent_only"],
                                                  {name: on_pool(name, pool) for name in csm},
                                                  [on_pool(name, pool) for name in judges],
                                                  {m: p for m, p in test.items() if os.path.exists(p)})
            if regime == "scarce":
                targeted = self.setting_for(regime, "csm (targeted pool)")
                logits = {kind: [self.path("logits", model_name(regime, "csm", seed, s) + ".safetensors") for seed in SEEDS]
                          for kind, s in (("uniform", settings), ("targeted", targeted))}
                logits = {kind: [path for path in paths if os.path.exists(path)] for kind, paths in logits.items()}
                committed = None
                if all(len(paths) == len(SEEDS) for paths in logits.values()) and not self.generated(targeted["pool"]):
                    report = self.load(os.path.join(ROOT, DOCS, "fashion-mnist.json"), {})
                    committed = ((report.get("diagnostics") or {}).get("scarce") or {}).get("pairs")
                if committed:
                    # Every model it compares is finished, so the committed comparison stands;
                    # the targeted pool is not made again for it on a new machine.
                    document["pairs"] = committed
                elif all(logits.values()):
                    document["pairs"] = study_diagnostics.pair_effect(self.pool(pool), self.pool(targeted["pool"]),
                                                                     self.pair_weights(), logits["uniform"], logits["targeted"])
            documents[regime] = document
        if not documents:
            print("[diagnose] no CSM model at a regime's setting yet: nothing to diagnose", flush=True)
            return
        with self.lock:
            self.state["diagnostics"] = documents
            self.save(self.state_path, self.state)

    def evaluate(self) -> None:
        os.makedirs(self.path("logits"), exist_ok=True)
        os.makedirs(self.path("diagrams"), exist_ok=True)
        for regime, rows in self.table_models().items():
            for method, models in rows.items():
                for seed, name in models:
                    model = self.model_path(name)
                    if self.record(name) is None or not os.path.exists(model):
                        continue
                    logits = self.path("logits", name + ".safetensors")
                    self.unit("test-" + name, "evaluate",
                              [self.csm, "evaluate", "--classifier", model, "--data", self.path("real-test"), "--val-data",
                               self.path("real-val"), "--bins", str(BINS), "--bootstrap", str(BOOTSTRAP), "--json",
                               "--save-logits", logits], [logits])
                    if seed == 0:  # the figure's panel: reliability before and after temperature scaling
                        diagram = self.path("diagrams", name + ".png")
                        self.unit("diagram-" + name, "evaluate",
                                  [self.csm, "evaluate", "--classifier", model, "--data", self.path("real-test"),
                                   "--val-data", self.path("real-val"), "--bins", str(BINS), "--diagram", diagram],
                                  [diagram])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csm", default=os.path.join(ROOT, ".build", "release", "csm"), help="the csm binary")
    parser.add_argument("--work", help="working folder: shards, logs, state (default study-out/, study-quick/ with --quick)")
    parser.add_argument("--quick", action="store_true", help="a few steps per model, outputs inside --work (a pipeline check)")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1),
                        help="trainings run at once, each pinned to one core (default: the cores, at most 8)")
    order = ["data", "scarce", "targeted", "full", "middle", "evaluate", "diagnose", "report"]
    parser.add_argument("--stage", choices=order, help="run up to and including this stage (default: all)")
    parser.add_argument("--only", choices=order, help="run this stage alone (its inputs must exist)")
    parser.add_argument("--plan", action="store_true",
                        help="print what the training stages still need, with estimated core-minutes, and exit "
                             "(on a fresh clone it makes the real splits first: seconds)")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="copy the checkpoints of unfinished trainings into Datasets/fashion-mnist/study/checkpoints/ "
                             "(with --commit, commit them) and exit: a fresh clone on another machine goes on from them")
    parser.add_argument("--commit", action="store_true",
                        help="after every finished training, evaluate it, rewrite the report and git-commit the "
                             "classifiers, their records, the report and the README's outcome (nothing else)")
    args = parser.parse_args()
    if args.commit and args.quick:
        parser.error("--commit commits the study's own report: not with --quick")
    global MODELS, DOCS, QUICK_STEPS, POOLS, BOOTSTRAP
    if args.quick:
        args.work = args.work or os.path.join(ROOT, "study-quick")
        MODELS, DOCS = os.path.join(args.work, "models"), os.path.join(args.work, "docs")
        QUICK_STEPS, POOLS, BOOTSTRAP = 3, {"pool45": 1, "pool90": 2}, 20
    args.work = args.work or os.path.join(ROOT, "study-out")
    if not os.access(args.csm, os.X_OK):
        sys.exit(f"study: {args.csm}: not an executable csm (run make build)")
    study = Study(args.csm, args.work, max(1, args.jobs))

    def report() -> None:
        import study_report
        study_report.write(study, sys.modules[__name__])

    def commit(_: str | None = None) -> None:
        # The classifier and its record first: the evaluation may wait for a pool the
        # diagnosis needs, and a stop meanwhile must not lose the training.
        study.commit(f"study: trainings finished so far committed with their records ({len(study.runs)} in runs.json)")
        study.evaluate()
        study.diagnose()
        report()
        study.commit("study: report regenerated with the trainings finished so far")

    if args.commit:
        study.after_training = commit
    stages = [args.only] if args.only else order[:order.index(args.stage or "report") + 1]
    if args.keep_checkpoints:
        if study.keep_checkpoints() and args.commit:
            study.commit("study: checkpoints of the unfinished trainings kept, for the next machine")
        return 0
    if args.plan:
        if not os.path.exists(study.path("real-val", "manifest.json")):
            study.data()   # the choices read the validation split: the real splits first (seconds)
        study.print_plan([s for s in stages if s in TRAINING_STAGES])
        return 0
    # The training stages run as one plan, so a core never waits for another stage's choice.
    steps = [s for s in stages if s not in TRAINING_STAGES]
    if any(s in TRAINING_STAGES for s in stages):
        steps.insert(1 if steps[:1] == ["data"] else 0, "train")
    for step in steps:
        start = time.time()
        try:
            if step == "report":
                report()
                if args.commit:
                    study.commit("study: report regenerated")
            elif step == "train":
                study.trainings([s for s in stages if s in TRAINING_STAGES])
            else:
                getattr(study, step)()
        except UnitFailed as failure:
            sys.exit(str(failure))
        walls = study.state.setdefault("stage_wall", {})
        walls[step] = round(walls.get(step, 0) + time.time() - start, 1)
        study.save(study.state_path, study.state)
        print(f"[{step}] done ({(time.time() - start) / 60:.1f} min wall)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
