"""CSMDataset and PairedCSMDataset under torch.distributed: `torchrun --nproc-per-node 2`
with the gloo backend on the CPU runs distributed_worker.py (skipped without PyTorch;
`make test-distributed` installs it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def test_two_ranks_see_disjoint_halves_and_pairs_stay_paired(mixed_run, real_run, tmp_path):
    pytest.importorskip("torch")
    mixed, _ = mixed_run
    real, _ = real_run
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               os.path.join(HERE, "distributed_worker.py"), real, mixed]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "disjoint halves" in result.stdout, result.stdout
    print(result.stdout.strip().splitlines()[-1])
