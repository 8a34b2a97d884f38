"""Data-parallel training over MPI (dcgan.distributed), two ranks on this machine.

Each test runs tests/mpi_worker.py under MPICH's mpiexec. Tolerances: with sync_bn, 2 ranks x
batch 8 and 1 process x batch 16 compute the same step up to float32 summation order, so the
logged losses agree to 2e-5 relative; after Adam (which divides by the gradient's own size, so
a rounding-level gradient of either sign moves a weight by up to lr) 99% of the parameters agree
to 1e-5 absolute, while without sync_bn most of them differ by far more (checked too).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dcgan
from dcgan import distributed

HERE = Path(__file__).resolve().parent
WORKER = str(HERE / "mpi_worker.py")
sys.path.insert(0, str(HERE))
import mpi_worker  # noqa: E402


def _mpi_ready() -> str:
    try:
        from dcgan import _mpi  # noqa: F401
    except ImportError as e:
        return f"dcgan._mpi is not importable ({e}); install with pip install \".[mpi]\""
    try:
        distributed.mpiexec_path()
    except RuntimeError as e:
        return str(e)
    return ""


_why = _mpi_ready()
if _why and os.environ.get("CI"):
    raise RuntimeError(f"CI must run the MPI tests: {_why}")
pytestmark = pytest.mark.skipif(bool(_why), reason=_why or "MPI ready")


def mpirun(n, *args, timeout=180, env=None):
    e = dict(os.environ, OMP_NUM_THREADS="1")
    e.update(env or {})
    t0 = time.perf_counter()
    p = subprocess.run([distributed.mpiexec_path(), "-n", str(n), sys.executable, *args], env=e,
                       capture_output=True, text=True, timeout=timeout, cwd=str(HERE))
    return p, time.perf_counter() - t0


def train(tmp_path, n=2, **opts):
    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    p, _ = mpirun(n, WORKER, "train", str(out), *[f"{k}={v}" for k, v in opts.items()])
    assert p.returncode == 0, p.stderr[-3000:]
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(n)]


def one_process(steps, batch, sync_bn):
    opts = {"batch": str(batch), "sync_bn": "1" if sync_bn else "0"}
    tr = dcgan.Trainer(mpi_worker.config(opts))
    assert tr.world_size == 1
    tr.fit(mpi_worker.data(), steps=steps, progress=False)
    arrays = {f"{net}/{k}": v for net in ("generator", "discriminator")
              for k, v in list(tr.weights(net).items()) + list(tr.buffers(net).items())}
    return tr.history, arrays


def param_diffs(rank0, arrays):
    return np.concatenate([np.abs(rank0[k] - v).ravel() for k, v in arrays.items()])


def test_sync_bn_two_ranks_match_one_process_with_twice_the_batch(tmp_path, monkeypatch):
    # On oneDNN's direct kernels: the Winograd layer of mnist (G's 7x7 stride-1 5x5 layer,
    # cpp/src/cpu/winograd.cpp) multiplies tiles x channels matrices whose row count follows
    # the batch, and its rounding (about 1e-5 of a layer's largest output) with it, so batch 8
    # and batch 16 drift apart by a few 1e-5 in the losses for that reason alone.
    monkeypatch.setenv("DCGAN_CPU_WINO", "native")
    steps = 4
    r0, r1 = train(tmp_path, steps=steps, batch=8, sync_bn=1)
    assert int(r0["world"]) == 2
    hist, arrays = one_process(steps, 16, sync_bn=True)
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        np.testing.assert_allclose(r0[key], hist[key], rtol=2e-5, atol=1e-6, err_msg=key)
        np.testing.assert_array_equal(r0[key], r1[key])  # logged losses are global means
    d = param_diffs(r0, arrays)
    assert np.quantile(d, 0.99) < 1e-5, np.quantile(d, 0.99)
    assert d.max() < 2 * 2e-4 * steps  # at most a few Adam steps of lr 2e-4 anywhere


def test_without_sync_bn_ranks_agree_but_normalise_their_own_batch(tmp_path):
    steps = 4
    r0, r1 = train(tmp_path, steps=steps, batch=8, sync_bn=0, check=1)
    # Every rank holds identical parameters (bit for bit), and the hash check agrees.
    for k in r0:
        if "/" in k:
            np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
    assert str(r0["mismatch"]) == "" and str(r1["mismatch"]) == ""
    # Per-rank BatchNorm statistics: not the one-process run with the global batch.
    hist, arrays = one_process(steps, 16, sync_bn=False)
    assert np.abs(np.asarray(r0["d_loss"]) - hist["d_loss"]).max() > 1e-5
    assert np.quantile(param_diffs(r0, arrays), 0.99) > 1e-4


def test_two_rank_checkpoint_resumes_bit_exactly(tmp_path):
    whole = train(tmp_path, steps=6, sync_bn=1)
    ck = tmp_path / "half.npz"
    train(tmp_path, steps=3, sync_bn=1, save=ck)
    resumed = train(tmp_path, steps=3, sync_bn=1, resume=ck)
    for a, b in zip(whole, resumed):
        for k in a:
            if k not in ("world", "mismatch"):
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_replica_check_catches_ranks_that_drift_apart(tmp_path):
    p, _ = mpirun(2, WORKER, "perturb", str(tmp_path), "steps=4", "check=2", "bad=1")
    assert p.returncode != 0
    assert "replicas diverged" in p.stderr and "rank(s) 1 hold other parameters" in p.stderr, p.stderr[-2000:]


@pytest.mark.parametrize("mode", ["raise", "die"])
def test_a_failing_rank_ends_every_rank(tmp_path, mode):
    p, took = mpirun(2, WORKER, mode, str(tmp_path), "steps=50", "bad=1", timeout=120)
    assert p.returncode != 0
    assert took < 60, took
    if mode == "raise":
        assert "rank 1 failed" in p.stderr and "deliberate failure on rank 1" in p.stderr
    assert not list(tmp_path.glob("rank*.npz"))  # nobody finished


def test_a_stalled_rank_times_out_the_job(tmp_path):
    p, took = mpirun(2, WORKER, "stall", str(tmp_path), "steps=50", "bad=1", timeout=120,
                     env={"DCGAN_COMM_TIMEOUT": "4"})
    assert p.returncode != 0
    assert "waited 4 s for the other ranks" in p.stderr or "waited 5 s for the other ranks" in p.stderr, \
        p.stderr[-2000:]
    assert took < 60, took


def test_cli_nproc_runs_end_to_end(tmp_path):
    data = os.environ.get("DCGAN_DATA")
    if not data:
        pytest.skip("DCGAN_DATA (the folder holding mnist/) is not set")
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"preset": "mnist", "dropout": 0.0}')
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dcgan", "train", "--config", str(cfg), "--data", data, "--max-images", "256",
           "--steps", "5", "--batch-size", "8", "--nproc", "2", "--out", str(out), "--no-progress"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("training 'mnist'") == 1, p.stdout  # rank 0 alone reports
    assert "on 2 ranks x batch 8" in p.stdout
    meta, _ = dcgan.checkpoint.read(out / "checkpoint.npz")
    assert meta["train_state"]["step"] == 5
    assert meta["config"]["batch_size"] == 8
    assert (out / "losses.csv").read_text().count("\n") == 6


def test_import_and_one_process_training_never_load_mpi():
    code = ("import dcgan, numpy as np\n"
            "t = dcgan.Trainer(dcgan.Config.mnist(batch_size=8))\n"
            "t.fit((np.random.default_rng(0).random((16, 28, 28)) * 255).astype(np.uint8), steps=1, progress=False)\n"
            "maps = open('/proc/self/maps').read()\n"
            "print('libmpi' in maps, t.world_size, t._core.communicator)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "1", "local"]


def test_launched_size_reads_the_process_manager(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.launched_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.launched_size() == 4
    monkeypatch.setenv("PMI_SIZE", "3")
    assert distributed.launched_size() == 3
    monkeypatch.setenv("PMI_SIZE", "junk")
    assert distributed.launched_size() == 4


def test_comm_timeout_is_validated(monkeypatch):
    monkeypatch.setenv("DCGAN_COMM_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="DCGAN_COMM_TIMEOUT must be a number"):
        distributed.comm_timeout()
    monkeypatch.setenv("DCGAN_COMM_TIMEOUT", "-1")
    with pytest.raises(ValueError, match=">= 0"):
        distributed.comm_timeout()
    monkeypatch.setenv("DCGAN_COMM_TIMEOUT", "30")
    assert distributed.comm_timeout() == 30.0


def test_cli_strips_nproc_for_the_ranks():
    from dcgan.cli import _without_nproc
    assert _without_nproc(["train", "--nproc", "2", "--steps", "3"]) == ["train", "--steps", "3"]
    assert _without_nproc(["train", "--nproc=4", "--out", "x"]) == ["train", "--out", "x"]


def test_config_fields_are_validated():
    with pytest.raises(ValueError, match="distributed must be 'auto'"):
        dcgan.Config.mnist(distributed="mpi")
    with pytest.raises(ValueError, match="check_replicas_every"):
        dcgan.Config.mnist(check_replicas_every=-1)
    with pytest.raises(ValueError, match="sync_bn must be True or False"):
        dcgan.Config.mnist(sync_bn="yes")


def test_core_rejects_a_foreign_communicator():
    cfg = dcgan.Config.mnist(batch_size=8)
    with pytest.raises(ValueError, match="comm must be a communicator"):
        dcgan._core.Trainer(cfg.core_config(), object())


def _gpu_count() -> int:
    cuda = next((b for b in dcgan.backends() if b["name"] == "cuda"), None)
    if not (cuda and cuda["available"]):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@pytest.mark.skipif(_gpu_count() < 2, reason="needs two usable CUDA GPUs (NCCL between two ranks)")
def test_two_gpu_ranks_over_nccl_agree_with_two_cpu_ranks(tmp_path):
    gpu = train(tmp_path, steps=4, batch=8, device="cuda")
    cpu = train(tmp_path, steps=4, batch=8)
    for key in ("d_loss", "g_loss"):
        np.testing.assert_allclose(gpu[0][key], cpu[0][key], rtol=1e-3, atol=1e-4, err_msg=key)
    for k in gpu[0]:
        if "/" in k:
            np.testing.assert_array_equal(gpu[0][k], gpu[1][k], err_msg=k)
