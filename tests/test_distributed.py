"""nncore.distributed, launched for real: `mpirun -n 2 --oversubscribe` on this host (loopback),
every launch bounded by a timeout. Each rank runs tests/_distributed_worker.py; the reference (one
process training on the global batch) runs here with the worker's own model and data helpers.

Equivalence criterion (issue 15): with 2 ranks x batch B and shuffle=False, every step equals one
process's step on the global batch 2B up to the order of the sums. Per element the error is
|w_2ranks - w_1proc| / max(|w_1proc|, rms of that weight tensor) (the tensor's scale guards the
elements that are near zero); SGD: each of the N steps, taken by one process from the ranks'
weights before it, within 1e-6 for every element; Adam, after all N steps (its 1e-7 epsilon
amplifies sum-order differences in near-zero gradients): 99.9% within 1e-6, all within 1e-5. The two
ranks' weights are bitwise identical.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import _distributed_worker as W
import numpy as np
import pytest
from conftest import missing, require

HERE = pathlib.Path(__file__).resolve().parent
WORKER = HERE / "_distributed_worker.py"


def _need_mpi():
    require("mpi4py")
    if shutil.which("mpirun") is None:
        missing("mpirun is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev)")


def launch(mode, out, *args, n=2, timeout=120, check=True):
    """Run the worker under mpirun; (returncode, combined output, seconds)."""
    _need_mpi()
    cmd = ["mpirun", "-n", str(n), "--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += ["--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo",
            sys.executable, str(WORKER), mode, str(out), *map(str, args)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("OMP_NUM_THREADS", None)  # each rank picks cores / ranks on this host
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"mpirun did not finish within {timeout} s (a hang): {e.stdout}\n{e.stderr}")
    dt = time.monotonic() - t0
    text = p.stdout + p.stderr
    if check:
        assert p.returncode == 0, f"mpirun failed ({p.returncode}):\n{text}"
        assert "done 0" in text and "done 1" in text, text
    return p.returncode, text, dt


def ranks(out, n=2):
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(n)]


def scaled_errors(got, ref):
    errs = []
    for g, w in zip(got, ref):
        w64 = w.astype(np.float64)
        scale = np.maximum(np.abs(w64), np.sqrt(np.mean(w64 ** 2)))
        errs.append((np.abs(g.astype(np.float64) - w64) / np.maximum(scale, 1e-30)).ravel())
    return np.concatenate(errs)


B, N = 16, 5  # per-rank batch (global batch 32, the seed CNN's), steps
CONFIGS = ("cnn:sgd", "cnn:adam", "lstm:sgd", "lstm:adam", "dense:sgd:shuffle",
           "dense:sgd:partial", "dense:sgd:stop", "dense:sgd:dataset")


@pytest.fixture(scope="module")
def equiv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("equiv")
    launch("equiv", out, "--configs", ",".join(CONFIGS), "--batch", B, "--steps", N)
    return ranks(out)


def reference(kind, opt, x=None, y=None, seed_draw=False):
    from nncore.utils.random import get_rng

    model = W.build(kind, 100, opt, 0.05 if opt == "sgd" else 1e-3)  # rank 0's seed
    if x is None:
        x, y = W.data(kind, B * 2 * N)
    if seed_draw:  # what rank 0 draws for the shuffle seed when fit starts
        p = np.random.default_rng([get_rng().integers(2 ** 62), 0]).permutation(len(x))
        x, y = x[p], y[p]
    h = model.fit(x, y, batch_size=2 * B, epochs=1, verbose=0, shuffle=False,
                  validation_data=W.data(kind, 10, seed=8))
    return model.get_weights(), h.history


def _weights(rec, cfg):
    k = 0
    out = []
    while f"{cfg}/w{k}" in rec:
        out.append(rec[f"{cfg}/w{k}"])
        k += 1
    return out


def stepwise_reference(kind, rec, cfg):
    """SGD, step by step: from the ranks' weights before each step, one process's step on that
    global batch. The comparison does not compound: over several steps, a sum-order difference can
    move a ReLU or a max-pool window across its kink and the trajectories then part for good (seen
    on Zen 5 for the CNN at its third step, between any two ISA paths too), although every step
    is the global batch's. -> (max scaled error over the steps, per-step logs, final weights)."""
    model = W.build(kind, 100, "sgd", 0.05)  # rank 0's seed: its weights are the broadcast ones
    x, y = W.data(kind, B * 2 * N)
    prev = [rec[f"{cfg}/init{i}"] for i in range(len(model.get_weights()))]
    err, logs = 0.0, []
    for k in range(N):
        got = _weights(rec, f"{cfg}/step{k}")
        assert len(got) == len(prev), f"step {k} not recorded"
        model.set_weights(prev)
        logs.append(model.train_on_batch(x[k * 2 * B:(k + 1) * 2 * B],
                                         y[k * 2 * B:(k + 1) * 2 * B], return_dict=True))
        err = max(err, scaled_errors(got, model.get_weights()).max())
        prev = got
    return err, logs, model


@pytest.mark.parametrize("cfg", CONFIGS[:4])
def test_two_ranks_equal_one_process_on_the_global_batch(equiv_run, cfg):
    kind, opt = cfg.split(":")
    r0, r1 = equiv_run
    w0, w1 = _weights(r0, cfg), _weights(r1, cfg)
    # ranks built their models from different seeds ...
    assert any(not np.array_equal(r0[f"{cfg}/init{i}"], r1[f"{cfg}/init{i}"])
               for i in range(len(w0)))
    # ... and end bitwise identical
    for a, b in zip(w0, w1):
        assert np.array_equal(a, b)
    got = json.loads(str(r0[f"{cfg}/history"]))
    assert got == json.loads(str(r1[f"{cfg}/history"]))
    if opt == "sgd":
        err, logs, model = stepwise_reference(kind, r0, cfg)
        assert err <= 1e-6, err
        for a, b in zip(w0, _weights(r0, f"{cfg}/step{N - 1}")):
            assert np.array_equal(a, b)
        # epoch logs: the mean of the global batches' losses and metrics, validation averaged
        # over ranks, at the ranks' final weights
        hist = {k: [float(np.mean([lg[k] for lg in logs]))] for k in ("loss", "accuracy")}
        model.set_weights(w0)
        val = model.evaluate(*W.data(kind, 10, seed=8), verbose=0, return_dict=True)
        hist.update(val_loss=[val["loss"]], val_accuracy=[val["accuracy"]])
    else:
        ref, hist = reference(kind, opt)
        assert len(ref) == len(w0)
        e = scaled_errors(w0, ref)
        assert np.mean(e <= 1e-6) >= 0.999, np.mean(e <= 1e-6)
        assert e.max() <= 1e-5, e.max()
    # they did train: the weights moved far more than the tolerance
    init = [r0[f"{cfg}/init{i}"] for i in range(len(w0))]
    assert scaled_errors(w0, init).max() > 1e-3
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(got[k], hist[k], rtol=2e-6, atol=1e-7, err_msg=k)


def test_shuffle_is_one_permutation_shared_by_the_ranks(equiv_run):
    cfg = "dense:sgd:shuffle"
    r0, r1 = equiv_run
    w0 = _weights(r0, cfg)
    for a, b in zip(w0, _weights(r1, cfg)):
        assert np.array_equal(a, b)
    ref, _ = reference("dense", "sgd", seed_draw=True)
    assert scaled_errors(w0, ref).max() <= 1e-6
    unshuffled, _ = reference("dense", "sgd")
    assert scaled_errors(w0, unshuffled).max() > 1e-3  # the order did change


def test_partial_last_global_batch_is_weighted_by_rows(equiv_run):
    """7 rows left for the last global batch: ranks take 3 and 4; the step, the loss and the
    averaged accuracy are one process's on those 7 rows."""
    cfg = "dense:sgd:partial"
    r0, r1 = equiv_run
    w0 = _weights(r0, cfg)
    for a, b in zip(w0, _weights(r1, cfg)):
        assert np.array_equal(a, b)
    x, y = W.data("dense", B * 2 * N + 7)
    ref, hist = reference("dense", "sgd", x, y)
    assert scaled_errors(w0, ref).max() <= 1e-6
    got = json.loads(str(r0[cfg + "/history"]))
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(got[k], hist[k], rtol=2e-6, atol=1e-7, err_msg=k)


def test_a_stop_asked_by_one_rank_stops_all_at_the_same_step(equiv_run):
    """Rank 1 sets stop_training after batch 1: both ranks stop with the weights of 2 steps."""
    cfg = "dense:sgd:stop"
    r0, r1 = equiv_run
    w0 = _weights(r0, cfg)
    for a, b in zip(w0, _weights(r1, cfg)):
        assert np.array_equal(a, b)
    x, y = W.data("dense", B * 2 * N)
    ref, _ = reference("dense", "sgd", x[:4 * B], y[:4 * B])
    assert scaled_errors(w0, ref).max() <= 1e-6


def test_own_shards_through_a_pydataset(equiv_run):
    """Each rank's PyDataset yields its slice of every global batch: the same training."""
    cfg = "dense:sgd:dataset"
    r0, r1 = equiv_run
    w0 = _weights(r0, cfg)
    for a, b in zip(w0, _weights(r1, cfg)):
        assert np.array_equal(a, b)
    ref, _ = reference("dense", "sgd")
    assert scaled_errors(w0, ref).max() <= 1e-6


def test_datasets_of_different_lengths_fail_on_every_rank(tmp_path):
    rc, text, _ = launch("mismatch", tmp_path, "--steps", 4, "--timeout", 20, check=False)
    assert rc != 0
    for r in (0, 1):
        assert f"[rank {r}] ValueError: fit: the ranks' data give different numbers of steps " \
               "per epoch (from 3 to 4" in text, text


def test_rank0_writes_files_and_early_stopping_agrees(tmp_path):
    _, text, _ = launch("files", tmp_path, "--epochs", 4, "--steps", 3)
    r0, r1 = ranks(tmp_path)
    assert (tmp_path / "ckpt0.nncore").is_file() and (tmp_path / "log0.csv").is_file()
    assert (tmp_path / "backup0").is_dir()
    assert not (tmp_path / "ckpt1.nncore").exists() and not (tmp_path / "log1.csv").exists()
    assert not (tmp_path / "backup1").exists()
    h0, h1 = json.loads(str(r0["history"])), json.loads(str(r1["history"]))
    assert h0 == h1 and len(h0["loss"]) == 2  # EarlyStopping stopped both after epoch 2
    assert len((tmp_path / "log0.csv").read_text().strip().splitlines()) == 3
    assert text.count("Epoch 1/4") == 1  # only rank 0 printed progress
    import nncore

    saved = nncore.saving.load_model(tmp_path / "ckpt0.nncore")
    for a, b in zip(saved.get_weights(), [r0[f"w{i}"] for i in range(4)]):
        np.testing.assert_array_equal(a, b)


def test_horovod_pieces_in_an_own_loop(tmp_path):
    launch("loop", tmp_path, "--steps", 3)
    r0, r1 = ranks(tmp_path)
    for i in range(4):
        assert np.array_equal(r0[f"w{i}"], r1[f"w{i}"])
    assert float(r0["avg_value"]) == float(r1["avg_value"]) == 1.5  # mean of 1 and 2
    # DistributedOptimizer averaged: same as one process taking each global batch whole
    model = W.build("dense", 100, "sgd", 0.05)
    x, y = W.data("dense", 8 * 2 * 3)
    for k in range(3):
        model.train_on_batch(x[16 * k:16 * (k + 1)], y[16 * k:16 * (k + 1)])
    assert scaled_errors([r0[f"w{i}"] for i in range(4)], model.get_weights()).max() <= 1e-6


def test_threads_default_to_cores_per_rank(equiv_run):
    r0 = equiv_run[0]
    assert int(r0["size"]) == 2 and int(r0["local_size"]) == 2
    host, mine = os.cpu_count(), int(r0["affinity"])
    # unbound ranks share the host's cores; ranks bound by the launcher use their own
    assert int(r0["threads"]) == (max(1, host // 2) if mine >= host else mine)


@pytest.mark.parametrize("mode", ["fail", "kill", "hang"])
def test_a_failing_rank_ends_the_job(tmp_path, mode):
    timeout = 6  # the collective timeout given to the ranks
    rc, text, dt = launch(mode, tmp_path, "--timeout", timeout, "--steps", 6, timeout=90,
                          check=False)
    assert rc != 0, text
    assert dt < 60, (dt, text)
    assert "done 0" not in text and "done 1" not in text
    if mode == "fail":  # both ranks report the error, then the job is aborted
        assert "[rank 1]" in text and "ValueError: boom on purpose" in text, text
        assert "[rank 0] nncore.distributed: rank 0: stopping because rank 1 failed: " \
               "ValueError: boom on purpose" in text, text
    elif mode == "kill":  # mpirun notices the dead process and ends the job
        assert "signal 9" in text or "Killed" in text, text
        assert "[rank 0] nncore.distributed: terminated by the MPI launcher" in text, text
    else:  # rank 0 times out in the gradient allreduce
        assert "[rank 0]" in text and f"did not complete within {timeout} s" in text, text


def test_single_process_fallback(tmp_path):
    """Not launched by mpirun: size 1, plain training (as one process on batch B)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"):
        env.pop(k, None)
    p = subprocess.run([sys.executable, str(WORKER), "equiv", str(tmp_path), "--configs",
                        "dense:sgd", "--steps", "3"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    rec = dict(np.load(tmp_path / "rank0.npz"))
    assert int(rec["size"]) == 1
    model = W.build("dense", 100, "sgd", 0.05)
    x, y = W.data("dense", 8 * 3)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
              validation_data=W.data("dense", 10, seed=8))
    for a, b in zip(_weights(rec, "dense:sgd"), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_import_nncore_never_imports_mpi4py():
    code = ("import sys, nncore, nncore.distributed, nncore.distributed._fit\n"
            "m = nncore.Sequential([nncore.Input((3,)), nncore.layers.Dense(2)])\n"
            "m.compile(optimizer='sgd', loss='mse')\n"
            "import numpy as np; m.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'\n"
            "nncore.distributed.init()\n"
            "assert nncore.distributed.size() == 1\n"
            "assert 'mpi4py' not in sys.modules, 'init() outside mpirun imported mpi4py'\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"):
        env.pop(k, None)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_api_before_init_and_warmup_rule(monkeypatch):
    import nncore.distributed as dist
    import nncore.distributed._horovod as hv

    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match="init"):
            dist.rank()
    with pytest.raises(ValueError):
        dist.LearningRateWarmupCallback(0.0)

    class Four:
        size = 4

    monkeypatch.setattr(hv, "_ctx", lambda: Four)
    cb = dist.LearningRateWarmupCallback(0.4, warmup_epochs=2)
    # Horovod's rule for 4 ranks: lr(e) = 0.4/4 * (1 + e*3/2), then 0.4
    assert cb._lr(0) == pytest.approx(0.1)
    assert cb._lr(1) == pytest.approx(0.25)
    assert cb._lr(2) == pytest.approx(0.4)
    assert cb._lr(7) == pytest.approx(0.4)
