"""Tests of the study driver's bookkeeping (tools/study/study.py): the plan's order and
readiness, the scheduler that keeps every core busy, a training's time over sittings, the
data fingerprints that hold a rerun to the data the committed models read, and the pieces
of the report built from them. Nothing here runs csm: finished units are written into a
temporary study's records."""
import json
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study as S  # noqa: E402


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "MODELS", str(tmp_path / "models"))
    s = S.Study(sys.executable, str(tmp_path / "work"), jobs=2)
    s.metrics = {}
    s.validation = lambda name: s.metrics[name]
    return s


def finish(study, name, stage="scarce", accuracy=0.9, ece=0.03):
    """Records training NAME as finished, with its validation metrics."""
    os.makedirs(os.path.dirname(study.model_path(name)), exist_ok=True)
    open(study.model_path(name), "w").close()
    study.runs[name] = {"stage": stage, "seconds": 1.0, "stdout": ""}
    study.metrics[name] = {"accuracy": accuracy, "ece": ece, "nll": 0.3}


def generated(study, pool, sha256="0" * 64):
    """Records pool POOL as generated: a manifest of one shard with this SHA-256."""
    os.makedirs(study.path(pool), exist_ok=True)
    with open(study.path(pool, "manifest.json"), "w") as out:
        json.dump({"shards": [{"count": 1, "sha256": sha256}]}, out)
    study.state["units"]["generate-" + pool] = {"stage": "data", "seconds": 1.0, "stdout": ""}


GRID = [S.setting(pool, s) for pool in S.POOLS for s in S.SHARPNESS]


def names(plan, ready=None):
    return [name for name, can_start, _ in plan if ready is None or can_start == ready]


def test_an_empty_study_starts_with_scarce_ce_and_generates_a_pool_before_its_grid(study):
    plan = study.plan(["scarce"])
    assert names(plan)[:3] == ["scarce-ce-seed0", "scarce-ce-seed1", "scarce-ce-seed2"]
    # The first grid training needs pool5760: its generation comes first and can start now.
    assert names(plan)[3:5] == ["generate-pool5760", "scarce-csm-pool5760-s1-n1-seed0"]
    assert dict((n, r) for n, r, _ in plan)["scarce-csm-pool5760-s1-n1-seed0"] is False
    assert names(plan).count("generate-pool5760") == 1 and names(plan).count("generate-pool54000") == 1
    assert "scarce-bsce-gra-seed0" in names(plan, ready=True)
    # Only the scarce stage: nothing of full or middle.
    assert not [n for n in names(plan) if n.startswith(("full", "middle"))]


def test_trainings_that_need_no_choice_fill_in_while_the_grid_runs(study):
    plan = study.plan(["scarce", "targeted", "full", "middle"])
    ready = names(plan, ready=True)
    for name in ("full-ce-seed0", "full-ls-seed0", "full-focal-seed0", "full-bsce-gra-seed0", "middle-ce-seed2"):
        assert name in ready
    assert ready.index("scarce-ce-seed0") < ready.index("full-ce-seed0") < ready.index("middle-ce-seed0")
    assert not [n for n in names(plan) if "targeted" in n or n.startswith("full-csm") or n.startswith("middle-csm")]


def test_the_variants_follow_the_grid_and_the_choice_unlocks_the_rest(study):
    generated(study, "pool5760")
    generated(study, "pool54000")
    finish(study, "scarce-ce-seed0", accuracy=0.917, ece=0.030)
    for settings, ece in zip(GRID, [0.0083, 0.0105, 0.0188, 0.0236, 0.0331, 0.0096, 0.0085, 0.0078, 0.02, 0.03]):
        finish(study, S.model_name("scarce", "csm", 0, settings), accuracy=0.919, ece=ece)
    best = S.setting("pool54000", 2.3)
    plan = study.plan(["scarce", "targeted", "full", "middle"])
    variants = [S.model_name("scarce", "csm", 0, {**best, "consistent_only": True}),
                S.model_name("scarce", "csm", 0, {**best, "n_aug": 2})]
    assert names(plan, ready=True)[:6] == ["scarce-ce-seed1", "scarce-ce-seed2", "scarce-bsce-gra-seed0", *variants,
                                           "generate-pool54000-targeted"], "the pick's pool is known: its targeted twin"
    assert study.chosen() is None
    assert "generate-pool54000-targeted" not in names(study.plan(["scarce", "full"])), "not without the targeted stage"

    # The n_aug 2 variant is best but too costly in accuracy; consistent-only wins.
    finish(study, variants[0], accuracy=0.915, ece=0.007)
    finish(study, variants[1], accuracy=0.905, ece=0.005)
    chosen = study.chosen()
    assert chosen == {**best, "consistent_only": True}
    plan = study.plan(["scarce", "targeted", "full", "middle"])
    order = names(plan)
    seeds = [S.model_name("scarce", "csm", seed, chosen) for seed in (1, 2)]
    targeted = {**chosen, "pool": "pool54000" + S.TARGETED}
    assert order.index("generate-pool54000-targeted") < order.index(seeds[0]) \
        < order.index(S.model_name("scarce", "csm", 0, targeted)) < order.index(S.model_name("full", "csm", 0, chosen))
    # The targeted pool waits for nothing but the pilot, finished here; its trainings wait for it.
    readiness = dict((n, r) for n, r, _ in plan)
    assert readiness["generate-pool54000-targeted"] is True
    assert readiness[S.model_name("scarce", "csm", 0, targeted)] is False
    # Full trains the pick and sharpness 4; middle the pick.
    assert S.model_name("full", "csm", 0, {**chosen, "sharpness": 4.0}) in order
    assert S.model_name("middle", "csm", 2, chosen) in order


def test_full_chooses_between_the_scarce_pick_and_sharpness_4_on_validation(study):
    generated(study, "pool54000")
    pick = S.setting("pool54000", 2.3)
    sharp = {**pick, "sharpness": 4.0}
    study.chosen = lambda: pick
    plan = names(study.plan(["full"]))
    # Before the choice: CE seed 0 and one seed of each candidate lead; no other CSM seed, no CSM + BSCE-GRA.
    assert plan[:3] == ["full-ce-seed0", S.model_name("full", "csm", 0, pick), S.model_name("full", "csm", 0, sharp)]
    assert not [n for n in plan if n.startswith("full-csm") and not n.endswith("seed0")]
    assert not [n for n in plan if n.startswith("full-csm-bsce-gra")]
    assert study.full_chosen() is None
    assert study.table_models()["full"]["csm"][1][1] == S.model_name("full", "csm", 1, pick), "the pick while pending"

    # Sharpness 4 has the lower validation ECE within the accuracy floor: it gets the seeds.
    finish(study, "full-ce-seed0", stage="full", accuracy=0.935, ece=0.012)
    finish(study, S.model_name("full", "csm", 0, pick), stage="full", accuracy=0.936, ece=0.011)
    finish(study, S.model_name("full", "csm", 0, sharp), stage="full", accuracy=0.934, ece=0.008)
    assert study.full_chosen() == sharp
    plan = names(study.plan(["full"]))
    assert plan[:2] == [S.model_name("full", "csm", 1, sharp), S.model_name("full", "csm", 2, sharp)]
    assert S.model_name("full", "csm-bsce-gra", 0, sharp) in plan
    assert not [n for n in plan if n.startswith(S.model_name("full", "csm", 0, pick)[:-6])]
    table = study.table_models()["full"]
    assert [name for _, name in table["csm"]] == [S.model_name("full", "csm", s, sharp) for s in S.SEEDS]
    assert table["csm (sharpness 2.3)"] == [(0, S.model_name("full", "csm", 0, pick))]
    assert table["csm-bsce-gra"] == [(0, S.model_name("full", "csm-bsce-gra", 0, sharp))]
    assert [r["name"] for r in study.choice_rows("full")] == [
        "full-ce-seed0", S.model_name("full", "csm", 0, pick), S.model_name("full", "csm", 0, sharp)]


def test_the_targeted_pool_waits_for_its_pilot(study):
    generated(study, "pool54000")
    finish(study, "scarce-ce-seed0")
    study.chosen = lambda: S.setting("pool54000", 1.5)
    del study.runs["scarce-ce-seed0"]
    readiness = dict((n, r) for n, r, _ in study.plan(["targeted"]))
    assert readiness["scarce-ce-seed0"] is True
    assert readiness["generate-pool54000-targeted"] is False


def test_the_scheduler_keeps_every_core_busy_and_recomputes_the_plan(study):
    """Unit b can start only once a has finished; c and d are always ready. With two cores,
    a and c start at once; when a finishes its core takes b (more wanted than d), and d
    starts on whichever core frees next."""
    done, started, lock = set(), [], threading.Lock()

    def task(name, seconds):
        def run():
            with lock:
                started.append((name, study.worker.cores))
            time.sleep(seconds)
            with lock:
                done.add(name)
        return run

    units = [("a", lambda: True, 0.05), ("b", lambda: "a" in done, 0.05), ("c", lambda: True, 0.3), ("d", lambda: True, 0.01)]
    study.plan = lambda stages: [(n, ready(), task(n, t)) for n, ready, t in units if n not in done]
    study.chosen = lambda: {}
    study.trainings(["scarce"])
    assert done == {"a", "b", "c", "d"}
    assert [n for n, _ in started] == ["a", "c", "b", "d"]
    cores = dict(started)
    assert sorted(cores["a"] + cores["c"]) == [0, 1] and cores["b"] == cores["a"]


def test_a_generation_that_alone_can_start_takes_every_free_core(study):
    """On a fresh machine the CSM trainings wait for their pool: its generation gets both
    cores. Beside a training that can start, it gets one."""
    done, started, lock = set(), [], threading.Lock()

    def task(name):
        def run():
            with lock:
                started.append((name, study.worker.cores))
            time.sleep(0.05)
            with lock:
                done.add(name)
        return run

    units = [("generate-pool54000", lambda: True), ("full-csm-seed1", lambda: "generate-pool54000" in done)]
    study.plan = lambda stages: [(n, ready(), task(n)) for n, ready in units if n not in done]
    study.chosen = lambda: {}
    study.trainings(["full"])
    assert started == [("generate-pool54000", [0, 1]), ("full-csm-seed1", [0])]
    done.clear(), started.clear()
    units.append(("full-ce-seed2", lambda: True))
    study.trainings(["full"])
    assert started == [("generate-pool54000", [0]), ("full-ce-seed2", [1]), ("full-csm-seed1", [0])]


def test_the_scheduler_finishes_running_units_then_raises_the_first_failure(study):
    finished = []

    def fail():
        raise S.UnitFailed("study: x failed")

    def slow():
        time.sleep(0.1)
        finished.append("slow")

    study.plan = lambda stages: [(n, True, t) for n, t in (("x", fail), ("slow", slow), ("later", slow)) if n not in finished]
    with pytest.raises(S.UnitFailed, match="x failed"):
        study.trainings(["scarce"])
    assert finished == ["slow"], "the running unit finished; nothing new started after the failure"


def test_the_scheduler_names_what_waits_when_nothing_can_start(study):
    study.plan = lambda stages: [("stuck", False, None)]
    with pytest.raises(S.UnitFailed, match="nothing can start; waiting: stuck"):
        study.trainings(["scarce"])


def test_training_seconds_adds_the_epochs_of_every_sitting(tmp_path):
    log = tmp_path / "run.log"
    line = lambda epoch, seconds: json.dumps({"epoch": epoch, "seconds": seconds, "train_loss": 1.0})  # noqa: E731
    log.write_text(
        # Sitting 1: epochs 1 and 2 finished, but only epoch 1's line reached the log; epoch 3
        # was cut off at 40%.
        "epoch 1/4:  50% 50/100 img  10.0 img/s  ETA 5s\repoch 1/4: 100% 100/100 img  20.0 img/s  ETA 0s\n"
        + line(1, 5.5) + "\n"
        + "epoch 2/4: 100% 100/100 img  25.0 img/s  ETA 0s\n"
        + "epoch 3/4:  40% 40/100 img  20.0 img/s  ETA 3s\n"
        # Sitting 2 resumes after epoch 2.
        + "resuming from x.checkpoint after epoch 2 (step 20)\n"
        + "epoch 3/4: 100% 100/100 img  50.0 img/s  ETA 0s\n" + line(3, 2.5) + "\n"
        + "epoch 4/4: 100% 100/100 img  50.0 img/s  ETA 0s\n" + line(4, 2.0) + "\n")
    # Epoch 2 from its progress line (100 / 25 = 4 s), the others from their lines.
    assert S.training_seconds(str(log)) == pytest.approx(5.5 + 4 + 2.5 + 2.0)
    empty = tmp_path / "empty.log"
    empty.write_text("Error: something\n")
    assert S.training_seconds(str(empty)) is None


def test_commit_takes_the_study_files_alone(tmp_path, monkeypatch):
    import subprocess
    root = tmp_path / "checkout"
    root.mkdir()
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, check=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "study@example.com")
    git("config", "user.name", "study")
    (root / "README.md").write_text("front door\n")
    (root / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    monkeypatch.setattr(S, "ROOT", str(root))
    monkeypatch.setattr(S, "MODELS", "models")
    monkeypatch.setattr(S, "DOCS", "docs")
    study = S.Study(sys.executable, str(tmp_path / "work"), jobs=1)
    (root / "models").mkdir()
    (root / "models" / "a.safetensors").write_bytes(b"model")
    (root / "docs").mkdir()
    (root / "docs" / "report.md").write_text("report\n")
    (root / "README.md").write_text("front door, outcome\n")
    (root / "code.py").write_text("x = 2\n")          # work in progress: never committed by the study
    (root / "notes.txt").write_text("mine\n")

    assert study.commit("study: one model")
    shown = git("show", "--name-only", "--format=%s", "HEAD").stdout.split()
    assert shown[:3] == ["study:", "one", "model"]
    assert sorted(shown[3:]) == ["README.md", "docs/report.md", "models/a.safetensors"]
    assert git("status", "--porcelain").stdout.split("\n")[:2] == [" M code.py", "?? notes.txt"]
    assert not study.commit("study: nothing new"), "nothing changed: no commit"
    (root / ".git" / "index.lock").write_text("")
    (root / "docs" / "report.md").write_text("report 2\n")
    assert not study.commit("study: locked")


def test_after_training_follows_each_finished_training(study):
    calls, done = [], set()

    def train(name):
        def run():
            study.runs[name] = {"stage": "scarce", "seconds": 1.0, "stdout": ""}
            done.add(name)
        return run

    def generate():
        done.add("generate-pool")

    study.plan = lambda stages: [(n, True, t) for n, t in (("generate-pool", generate), ("m1", train("m1")),
                                                           ("m2", train("m2"))) if n not in done]
    def after(name):
        calls.append(name)
        if name == "m1":
            raise S.UnitFailed(f"study: evaluating {name} failed")
        raise KeyError("a bug in the report")

    study.after_training = after
    study.trainings(["scarce"])
    assert sorted(calls) == ["m1", "m2"], "called for trainings, not for a pool's generation; no failure of it stops a training"


def test_a_freed_core_starts_its_next_training_while_the_last_one_is_committed(study):
    """m2 can start only once m1 has finished; m1's after_training waits (at most 5 s) for
    m2 to start, which it can only do if the commit does not hold up the scheduler."""
    done, m2_started, seen = set(), threading.Event(), {}

    def train(name):
        def run():
            if name == "m2":
                m2_started.set()
            study.runs[name] = {"stage": "scarce", "seconds": 1.0, "stdout": ""}
            done.add(name)
        return run

    study.plan = lambda stages: [(n, ready, train(n)) for n, ready in (("m1", True), ("m2", "m1" in done))
                                 if n not in done]
    study.chosen = lambda: {}

    def after(name):
        if name == "m1":
            seen["m2 started during m1's commit"] = m2_started.wait(timeout=5)

    study.after_training = after
    study.trainings(["scarce"])
    assert seen == {"m2 started during m1's commit": True}


def test_a_pool_being_generated_blocks_no_training_of_another_pool(study):
    """While one pool is generated (its unit runs, holding that pool's lock), asking for an
    already generated pool returns at once."""
    generated(study, "pool54000")
    started, release = threading.Event(), threading.Event()

    def generate(name, stage, command, outputs, committed=False):
        started.set()
        release.wait(5)
        generated(study, name.removeprefix("generate-"))

    study.unit = generate
    study.pair_weights = lambda: "weights.json"
    worker = threading.Thread(target=study.pool, args=("pool54000" + S.TARGETED,))
    worker.start()
    assert started.wait(5)
    begin = time.time()
    assert study.pool("pool54000") == study.path("pool54000")
    assert time.time() - begin < 1
    release.set()
    worker.join()


def test_generation_seconds_adds_every_sitting(tmp_path):
    log = tmp_path / "generate.log"
    log.write_text(
        # Sitting 1: 300 of 1,000 images at 10 images/s, then stopped; sitting 2 makes the 700 left at 14.
        "generating:   0% 0/1000 images  0.0 images/s  ETA 0s\r"
        "generating:  20% 200/1000 images  10.0 images/s  ETA 80s\rgenerating:  30% 300/1000 images  10.0 images/s  ETA 70s\n"
        "csm generate: stopped by SIGTERM; the finished shards are kept\n"
        "generating:   0% 0/700 images  0.0 images/s  ETA 0s\rgenerating: 100% 700/700 images  14.0 images/s  ETA 0s\n")
    assert S.generation_seconds(str(log)) == pytest.approx(30 + 50)
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert S.generation_seconds(str(empty)) is None


def test_the_plan_estimates_core_minutes_from_recorded_rates_and_checkpoints(study, capsys):
    os.makedirs(study.path("real-scarce"), exist_ok=True)
    with open(study.path("real-scarce", "manifest.json"), "w") as out:
        json.dump({"shards": [{"count": 5000}, {"count": 400}]}, out)
    finish(study, "scarce-ce-seed0")
    study.runs["scarce-ce-seed0"]["stdout"] = "".join(
        json.dumps({"epoch": e, "images_per_second": rate}) + "\n" for e, rate in ((1, 200.0), (2, 300.0), (3, 250.0)))
    finish(study, "scarce-csm-pool5760-s1-n1-seed0")
    study.runs["scarce-csm-pool5760-s1-n1-seed0"]["stdout"] = json.dumps({"epoch": 1, "images_per_second": 360.0}) + "\n"
    # The data a training read (its record's fingerprints) gives its regime and whether it drew mixed images.
    study.runs["scarce-ce-seed0"]["data"] = {"real-scarce": "a" * 64}
    study.runs["scarce-csm-pool5760-s1-n1-seed0"]["data"] = {"real-scarce": "a" * 64, "pool5760": "b" * 64}
    rates = study.epoch_rates()
    assert rates[("scarce", False)] == 250.0 and rates[("scarce", True)] == rates[(None, True)] == 360.0
    assert ("full", False) not in rates
    # A checkpoint of 10 epochs (a safetensors header with epochs_done) leaves 40 of 50.
    os.makedirs(study.path("checkpoints"), exist_ok=True)
    header = json.dumps({"__metadata__": {"epochs_done": "10", "format": "csm-training-checkpoint/1"}}).encode()
    with open(study.path("checkpoints", "scarce-ce-seed1.checkpoint"), "wb") as out:
        out.write(len(header).to_bytes(8, "little") + header)
    assert study.checkpoint_epochs("scarce-ce-seed1") == 10 and study.checkpoint_epochs("scarce-ce-seed2") == 0
    ce = S.Training("scarce", "scarce", "ce", 1)
    assert study.training_minutes(ce, rates) == pytest.approx(5400 * 40 / 250.0 / 60)
    csm = S.Training("scarce", "scarce", "csm", 0, S.setting("pool54000", 2.3, n_aug=2))
    assert study.training_minutes(csm, rates) == pytest.approx(5400 * 4 * 50 / 360.0 / 60), "real + 3 mixed per real"
    assert study.training_minutes(S.Training("full", "full", "ce", 0), rates) is None, "no fit split yet"
    study.print_plan(["scarce"])
    out = capsys.readouterr().out
    assert "scarce-ce-seed1" in out and "(checkpoint at epoch 10)" in out and "core-hours" in out


def test_data_made_on_another_kind_of_cpu_is_a_version_and_made_differently_stops_the_study(study, monkeypatch):
    """The first fingerprint of a data folder is kept in data.json beside the models; the same
    bytes pass. Other bytes from a kind of CPU data.json does not know are kept as that
    CPU's version; other bytes again from a known kind stop the study with the folder."""
    monkeypatch.setattr(S, "cpu", lambda: "Intel(R) Xeon(R) Processor @ 2.80GHz (family 6, model 106)")
    generated(study, "pool54000")
    study.check_data("pool54000")
    kept = json.load(open(study.data_path))["pool54000"]
    assert kept["sha256"] == study.fingerprint("pool54000") and kept["machine"] == S.machine()
    study.check_data("pool54000")
    assert S.Study(sys.executable, study.work).data_record == {"pool54000": kept}, "saved, and read by a rerun"
    monkeypatch.setattr(S, "cpu", lambda: "AMD EPYC (family 25, model 17)")
    generated(study, "pool54000", sha256="1" * 64)
    study.check_data("pool54000")
    other = json.load(open(study.data_path))["pool54000"]["other_cpus"]
    assert other == [{"sha256": study.fingerprint("pool54000"), "machine": S.machine()}]
    assert other[0]["machine"].startswith("AMD EPYC (family 25, model 17), ")
    generated(study, "pool54000")
    study.check_data("pool54000")   # the first version passes on any machine
    generated(study, "pool54000", sha256="2" * 64)
    with pytest.raises(S.UnitFailed) as refused:
        study.check_data("pool54000")
    assert study.path("pool54000") in str(refused.value) and "data.json" in str(refused.value)
    with pytest.raises(S.UnitFailed):   # from pool() too, before a training uses the pool
        study.pool("pool54000")


def test_same_cpu_compares_kinds_of_cpu():
    xeon = "Intel(R) Xeon(R) Processor @ 2.80GHz, 2 cores, Linux 6.18.44-fc-v1272"
    zen4 = "AMD EPYC (family 25, model 17), 2 cores, Linux 6.18.44"
    assert S.same_cpu(xeon, "Intel(R) Xeon(R) Processor @ 2.80GHz (family 6, model 106), 2 cores, Linux 6.1")
    assert not S.same_cpu(xeon, zen4)
    assert not S.same_cpu(zen4, "AMD EPYC (family 26, model 2), 2 cores, Linux 6.18.44")
    assert S.same_cpu(zen4, "AMD EPYC (family 25, model 17), 16 cores, Linux 6.1")


def test_the_report_marks_models_trained_on_another_version_of_their_data(study, monkeypatch):
    import study_report
    monkeypatch.setattr(S, "cpu", lambda: "Intel(R) Xeon(R) Processor @ 2.80GHz (family 6, model 106)")
    generated(study, "pool54000")
    study.check_data("pool54000")
    monkeypatch.setattr(S, "cpu", lambda: "AMD EPYC (family 25, model 17)")
    generated(study, "pool54000", sha256="1" * 64)
    study.check_data("pool54000")
    for seed in range(3):
        finish(study, f"scarce-ce-seed{seed}")
    study.runs["scarce-ce-seed0"]["data"] = {"pool54000": study.data_record["pool54000"]["sha256"]}
    study.runs["scarce-ce-seed1"]["data"] = {"pool54000": study.fingerprint("pool54000")}
    study.runs["scarce-ce-seed2"]["data"] = {"pool54000": "3" * 64}
    assert study.other_data("scarce-ce-seed0") == {}
    assert study.other_data("scarce-ce-seed1") == {"pool54000": S.machine()}
    assert study.other_data("scarce-ce-seed2") == {"pool54000": None}
    metrics = {key: 0.5 for key in study_report.METRICS}
    rows = [{"seed": 0, "train_seconds": 60, **metrics},
            {"seed": 1, "train_seconds": 60, "other_data": {"pool54000": S.machine()}, **metrics}]
    lines = study_report.Report(study, S).table({"methods": {"ce": rows}})
    assert lines[2].startswith("| ce | 0 |") and lines[3].startswith("| ce | 1† |")
    assert lines[-1].startswith(f"† Trained on pool54000 as made on {S.machine()}. The other rows read pool54000 as made on ")


def test_a_training_records_the_data_it_read(study):
    generated(study, "real-scarce", sha256="3" * 64)
    generated(study, "pool54000")
    seen = {}
    study.unit = lambda name, stage, command, outputs, committed=False, extra=None: seen.setdefault(name, extra)
    study.train(S.Training("scarce", "scarce", "csm", 0, S.setting("pool54000", 2.3)))
    study.train(S.Training("scarce", "scarce", "ce", 0))
    assert seen == {"scarce-csm-pool54000-s2.3-n1-seed0": {"data": {"real-scarce": study.fingerprint("real-scarce"),
                                                                   "pool54000": study.fingerprint("pool54000")}},
                    "scarce-ce-seed0": {"data": {"real-scarce": study.fingerprint("real-scarce")}}}


def test_the_convergence_axes_take_round_steps():
    import study_figures
    assert study_figures.round_ticks(0.0, 0.134) == pytest.approx((0.0, 0.15, [0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15]))
    low, high, ticks = study_figures.round_ticks(0.61, 0.96)
    assert (low, high) == pytest.approx((0.6, 1.0)) and ticks == pytest.approx([0.6, 0.7, 0.8, 0.9, 1.0])
    assert study_figures.round_ticks(0.8, 0.95)[2] == pytest.approx([0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95])


def test_the_outcome_of_a_pending_regime_gives_what_is_in_so_far(study):
    import study_report
    report = study_report.Report(study, S)

    def done(seed, accuracy, ece, ts_ece):
        return {"seed": seed, "accuracy": accuracy, "ece": ece, "ts_ece": ts_ece}

    regimes = {"scarce": {"methods": {"ce": [{"seed": 0, "pending": True}]}},
               "middle": {"methods": {"ce": [done(0, 0.92, 0.03, 0.01), done(1, 0.94, 0.05, 0.02)],
                                      "csm": [{"seed": 0, "pending": True}]}},
               "full": {"methods": {"ce": [done(0, 0.9425, 0.013, 0.0064), {"seed": 1, "pending": True}]}}}
    lines = report.outcome(regimes)
    assert lines[0] == "- **scarce**: pending (0 of 1 models trained and evaluated; the CSM setting is still being chosen)."
    assert lines[1].endswith("CE so far (mean of 2 seeds): accuracy 93.00%, ECE 4.00% (seeds 3.00%–5.00%), "
                             "after temperature scaling 1.50%.")
    assert lines[2].endswith("(1 of 2 models trained and evaluated; the CSM setting is still being chosen). "
                             "CE so far (seed 0): accuracy 94.25%, ECE 1.30%, after temperature scaling 0.64%.")

    # With the setting chosen, the goal still waits for every seed of CE and CSM.
    report.chosen = {"pool": "pool54000", "sharpness": 2.3, "n_aug": 1, "consistent_only": False}
    regimes["middle"]["methods"]["csm"] = [done(0, 0.93, 0.01, 0.008), {"seed": 1, "pending": True}]
    line = report.outcome(regimes)[1]
    assert line == ("- **middle**: pending (3 of 4 models trained and evaluated). CE so far (mean of 2 seeds): accuracy "
                    "93.00%, ECE 4.00% (seeds 3.00%–5.00%), after temperature scaling 1.50%. CSM so far (seed 0): "
                    "accuracy 93.00%, ECE 1.00%, after temperature scaling 0.80%.")
    regimes["middle"]["methods"]["csm"][1] = done(1, 0.93, 0.01, 0.008)
    assert "Goal (below CE's ECE, at a cost of at most 0.5 pt of accuracy): **met**" in report.outcome(regimes)[1]


def test_the_fractions_figure_waits_for_two_regimes_then_draws_every_seed(tmp_path):
    import study_figures
    from PIL import Image

    def regime(fraction, ce, csm=()):
        row = lambda seed, ece: {"seed": seed, "accuracy": 0.9 + fraction / 20, "ece": ece, "ts_ece": ece / 3}
        return {"fraction": fraction, "methods": {"ce": [row(s, e) for s, e in enumerate(ce)] + [{"seed": 9, "pending": True}],
                                                  "csm": [row(s, e) for s, e in enumerate(csm)]}}

    path = str(tmp_path / "fractions.png")
    regimes = {"scarce": regime(0.1, [0.035, 0.036], [0.01]), "full": regime(1.0, [])}
    assert not study_figures.fractions(regimes, path) and not os.path.exists(path)
    regimes["full"] = regime(1.0, [0.013])
    assert study_figures.fractions(regimes, path)
    image = Image.open(path).convert("RGB")
    assert image.size == (2 * study_figures.PANEL_WIDTH, study_figures.PANEL_HEIGHT + 40)
    # CSM's colour appears (its seed at 10%), and nothing is left beside the figure.
    assert study_figures.METHOD_STYLES["csm"][1] in {colour for _, colour in image.getcolors(1 << 20)}
    assert os.listdir(tmp_path) == ["fractions.png"]


def checkpoint(path, epochs, real):
    """A training checkpoint's header alone (docs/formats/checkpoint.md): its epochs and the
    real split its configuration names."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    header = json.dumps({"__metadata__": {"epochs_done": str(epochs), "format": "csm-training-checkpoint/1",
                                          "configuration": json.dumps({"real": real})}}).encode()
    with open(path, "wb") as out:
        out.write(len(header).to_bytes(8, "little") + header + b"weights")


def test_kept_checkpoints_carry_unfinished_trainings_to_a_fresh_machine(study, tmp_path, monkeypatch):
    checkpoint(study.path("checkpoints", "full-ce-seed2.checkpoint"), 12, study.path("real-fit"))
    checkpoint(study.path("checkpoints", "full-ce-seed1.checkpoint"), 30, study.path("real-fit"))
    with open(study.path("logs", "full-ce-seed2.log"), "w") as log:
        log.write(json.dumps({"epoch": 1, "seconds": 150.0}) + "\n")
    finish(study, "full-ce-seed1", stage="full")
    assert study.keep_checkpoints() == ["full-ce-seed2"], "finished trainings' checkpoints are not kept"
    assert S.checkpoint_epochs(study.kept_checkpoint("full-ce-seed2")) == 12
    assert S.training_seconds(study.kept_log("full-ce-seed2")) == 150.0, "its log goes along"
    assert study.keep_checkpoints() == [], "nothing new: nothing to copy"
    # A fresh machine: WORK is made anew at the same place, the checkout's files come along.
    # The plan counts the kept epochs, the training starts from the kept checkpoint and drops
    # it once it has finished.
    work = study.work
    os.rename(work, str(tmp_path / "old-work"))
    fresh = S.Study(sys.executable, work, jobs=2)
    assert fresh.checkpoint_epochs("full-ce-seed2") == 12
    generated(fresh, "real-fit")
    seen = []

    def unit(name, stage, command, outputs, committed=False, extra=None):
        seen.append(S.checkpoint_epochs(command[command.index("--checkpoint") + 1]))
        seen.append(S.training_seconds(fresh.path("logs", name + ".log")))
        open(fresh.model_path(name), "w").close()
        fresh.runs[name] = {"stage": stage, "seconds": 1.0, "stdout": ""}

    fresh.unit = unit
    fresh.train(S.Training("full", "full", "ce", 2))
    assert seen == [12, 150.0], "the checkpoint, and the log that times its epochs"
    assert not os.path.exists(fresh.kept_checkpoint("full-ce-seed2")) and not os.path.exists(fresh.kept_log("full-ce-seed2"))
    # A kept checkpoint behind WORK's own is not restored over it, nor one that read its data
    # elsewhere (csm train would refuse a run of other settings).
    checkpoint(fresh.kept_checkpoint("full-ls-seed0"), 3, fresh.path("real-fit"))
    checkpoint(fresh.path("checkpoints", "full-ls-seed0.checkpoint"), 5, fresh.path("real-fit"))
    fresh.restore_checkpoint("full-ls-seed0", fresh.path("real-fit"))
    assert S.checkpoint_epochs(fresh.path("checkpoints", "full-ls-seed0.checkpoint")) == 5
    checkpoint(fresh.kept_checkpoint("full-focal-seed0"), 3, "/elsewhere/study-out/real-fit")
    fresh.restore_checkpoint("full-focal-seed0", fresh.path("real-fit"))
    assert not os.path.exists(fresh.path("checkpoints", "full-focal-seed0.checkpoint"))


def test_the_wall_time_of_every_sitting_is_committed_by_stage(study, tmp_path):
    finish(study, "scarce-ce-seed0")
    study.runs["scarce-ce-seed0"]["train_seconds"] = 100.0
    study.unit("split", "data", [sys.executable, "-c", "import time; time.sleep(0.2)"], [])
    seconds = study.sittings[study.state["sitting"]]["seconds"]["data"]
    assert 0 < seconds < 60
    # Another machine: a new WORK adds its own sitting; the report sums them all.
    fresh = S.Study(sys.executable, str(tmp_path / "fresh"), jobs=2)
    fresh.state["sitting"] = "second"
    fresh.unit("select", "select", [sys.executable, "-c", "import time; time.sleep(0.2)"], [])
    fresh.unit("split", "data", [sys.executable, "-c", "import time; time.sleep(0.2)"], [])
    again = S.Study(sys.executable, str(tmp_path / "third"), jobs=2)
    assert set(again.sittings) == {study.state["sitting"], "second"}
    assert again.stage_seconds("data") == pytest.approx(seconds + again.sittings["second"]["seconds"]["data"])
    assert study.stage_seconds("scarce") == 100.0, "trainings: their records in runs.json"
    assert again.stage_seconds("select") > 0
