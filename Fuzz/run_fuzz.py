#!/usr/bin/env python3
"""Runs csm's libFuzzer harnesses (built by `make fuzz`) from the committed seed corpus and
reports, per harness, executions, exec/s, coverage and crashes.

    python3 Fuzz/run_fuzz.py --seconds 300 [--parallel 2] [HARNESS ...]

Each harness runs in libFuzzer's fork mode (-fork=1, crashes, timeouts and OOMs do not stop
it), from a fresh working corpus seeded by Fuzz/Corpus/HARNESS, for --seconds. Afterwards
every crash, timeout or OOM input is replayed and classified by its stack:

  csm      the fault lies in csm's code (or in a buffer csm allocated);
  libhdf5  the fault lies inside libhdf5, in memory csm did not allocate: an input csm's
           checks let through to a libhdf5 bug (the shard reader checks, for instance, the
           global heap before H5Aread follows it), named by the first libhdf5 function.

Either is a finding to fix: exit status 1 when any input crashed, hung or ran out of memory. Inputs and logs stay under
.build-fuzz/work/HARNESS/ (artifacts/, fuzz.log), the table in .build-fuzz/work/summary.txt.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build-fuzz", "release")
WORK = os.path.join(ROOT, ".build-fuzz", "work")
HARNESSES = ["FuzzSafeTensors", "FuzzNumPy", "FuzzIDX", "FuzzManifest", "FuzzShard"]
ENV = dict(os.environ,
           SWIFT_BACKTRACE="enable=no",  # let ASan/libFuzzer report traps, not Swift's backtracer
           ASAN_OPTIONS="detect_leaks=0")
FORK_STATUS = re.compile(r"^#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s:? (\d+) "
                         r"oom/timeout/crash: (\d+)/(\d+)/(\d+) time: (\d+)s")
FRAME = re.compile(r"^\s+#\d+ 0x[0-9a-f]+ (?:in (\S+) )?(.*)$")


def run(harness, seconds):
    work = os.path.join(WORK, harness)
    shutil.rmtree(work, ignore_errors=True)
    corpus, artifacts = os.path.join(work, "corpus"), os.path.join(work, "artifacts")
    os.makedirs(corpus)
    os.makedirs(artifacts)
    command = [os.path.join(BIN, harness), "-fork=1", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1",
               "-timeout=20", "-rss_limit_mb=2048", f"-max_total_time={seconds}",
               f"-artifact_prefix={artifacts}/", corpus, os.path.join(ROOT, "Fuzz", "Corpus", harness)]
    with open(os.path.join(work, "fuzz.log"), "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=ENV, cwd=work)
    status = None
    with open(os.path.join(work, "fuzz.log"), errors="replace") as log:
        for line in log:
            match = FORK_STATUS.match(line)
            if match:
                status = [int(g) for g in match.groups()]
    findings = [classify(harness, os.path.join(artifacts, name)) for name in sorted(os.listdir(artifacts))]
    return harness, status, findings


def classify(harness, path):
    """(kind of input, verdict, signature, path) for one crash/timeout/oom input."""
    kind = os.path.basename(path).split("-")[0]
    replay = subprocess.run([os.path.join(BIN, harness), "-timeout=20", "-rss_limit_mb=2048", path],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, cwd=os.path.dirname(path),
                            timeout=300).stdout.decode(errors="replace")
    with open(path + ".log", "w") as log:
        log.write(replay)
    stacks, current = [], None
    for line in replay.splitlines():
        frame = FRAME.match(line)
        if frame:
            if current is None:
                current = []
                stacks.append(current)
            current.append((frame.group(1) or "", frame.group(2)))
        else:
            current = None
    if not stacks:
        return kind, "csm", "no stack (replay did not reproduce: see the .log)", path
    crash = [f for f in stacks[0] if not runtime_frame(f)]
    if not crash:
        return kind, "csm", "no frame outside the sanitizer runtime", path
    if "libhdf5" not in crash[0][1]:
        return kind, "csm", describe(crash[0]), path
    # A fault inside libhdf5 on a buffer that csm's Swift code allocated is csm's bug.
    for stack in stacks[1:]:
        for function, location in stack:
            if runtime_frame((function, location)):
                continue
            if function.startswith("$s") or ".swift" in location:
                return kind, "csm", "libhdf5 fault on a buffer allocated at " + describe((function, location)), path
            break
    named = next((f for f in crash if "libhdf5" in f[1] and f[0]), crash[0])
    return kind, "libhdf5", named[0] or describe(named), path


def runtime_frame(frame):
    function, location = frame
    return ("compiler-rt" in location or function.startswith(("__sanitizer", "fuzzer::", "__interceptor", "__asan"))
            or "libc.so" in location or "sysdeps" in location or function in ("malloc", "free", "calloc", "realloc"))


def describe(frame):
    function, location = frame
    return f"{function} {location}".strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=300, help="fuzzing time per harness")
    parser.add_argument("--parallel", type=int, default=1, help="harnesses run at once")
    parser.add_argument("harnesses", nargs="*", default=HARNESSES)
    args = parser.parse_args()
    results, pending, lock = {}, list(args.harnesses), threading.Lock()

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                harness = pending.pop(0)
            print(f"fuzzing {harness} for {args.seconds} s …", flush=True)
            results[harness] = run(harness, args.seconds)

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.parallel))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = [f"{'harness':<16} {'executions':>11} {'exec/s':>7} {'cov':>5} {'ft':>6} {'corpus':>6} {'time':>5} "
             f"{'crash/timeout/oom':>18}  verdict"]  # cov: edges (libFuzzer's cov), ft: features
    failed = False
    for harness in args.harnesses:
        _, status, findings = results[harness]
        if status is None:
            lines.append(f"{harness:<16} no libFuzzer status line: see {WORK}/{harness}/fuzz.log")
            failed = True
            continue
        execs, cov, ft, corp, rate, _, _, _, seconds = status
        # Count the saved inputs: libFuzzer's last status line can predate the last job's end.
        crash, timeout, oom = (sum(f[0] == kind for f in findings) for kind in ("crash", "timeout", "oom"))
        ours = [f for f in findings if f[1] == "csm"]
        failed |= bool(findings)
        verdict = "ok" if not findings else f"{len(ours)} in csm, {len(findings) - len(ours)} inside libhdf5"
        lines.append(f"{harness:<16} {execs:>11} {execs // max(1, seconds):>7} {cov:>5} {ft:>6} {corp:>6} {seconds:>4}s "
                     f"{f'{crash}/{timeout}/{oom}':>18}  {verdict}")
        for kind, verdict, signature, path in findings:
            lines.append(f"    {kind:<8} {verdict:<8} {signature}  ({os.path.relpath(path, ROOT)})")
    summary = "\n".join(lines)
    print(summary)
    with open(os.path.join(WORK, "summary.txt"), "w") as out:
        out.write(summary + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
