"""Data-parallel training across processes on MPI (mpi4py), Horovod's shape for a Keras model.

    import nncore as keras
    from nncore import distributed

    distributed.init()                 # size 1 when not launched by mpirun
    model.compile(optimizer=keras.optimizers.SGD(0.01 * distributed.size()), ...)
    model.fit(x, y, batch_size=32)     # batch_size is per rank; every rank passes the same x, y

    mpirun -n 4 python train.py

After ``init()`` in a job of more than one process, ``fit`` trains data-parallel by itself: each
rank takes its slice of every global batch (``batch_size * size`` rows), the gradients of a step
are averaged by one Allreduce of one flat float32 buffer, the initial weights and optimizer state
come from rank 0, epoch metrics and validation results are averaged over ranks (weighted by the
rows each rank saw), only rank 0 prints and writes files (ModelCheckpoint, BackupAndRestore,
CSVLogger, TensorBoard), and stopping decisions (EarlyStopping, TerminateOnNaN, any
``model.stop_training``) are taken by all ranks together. ``init(shard_data=False)`` keeps the
rest but lets every rank train on the arrays it was given (its own shard, as with Horovod).

For loops of one's own (``train_on_batch``) the Horovod pieces exist: ``DistributedOptimizer``,
``BroadcastGlobalVariablesCallback``, ``MetricAverageCallback``, ``LearningRateWarmupCallback``,
and ``allreduce`` / ``broadcast`` on numpy arrays.

Failures end the job: an uncaught exception on a rank is reported to every other rank, each
prints it and the job is aborted (MPI_Abort); a collective that does not complete within
``timeout`` seconds (a rank hung, or took a different number of steps) raises DistributedError
and aborts; a killed rank is detected by mpirun, which ends the others.

mpi4py is imported only by ``init()`` and only when launched by an MPI launcher; importing nncore
(or this module) never imports it. Install it with ``pip install "nncore[mpi]"`` (it needs an MPI
library, e.g. Debian's ``openmpi-bin libopenmpi-dev``).
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

__all__ = [
    "init", "is_initialized", "rank", "size", "local_rank", "local_size", "is_primary",
    "allreduce", "broadcast", "broadcast_variables", "barrier", "shutdown", "timing",
    "DistributedError", "DistributedOptimizer", "BroadcastGlobalVariablesCallback",
    "MetricAverageCallback", "LearningRateWarmupCallback",
]

# Environment variables MPI launchers set in every process they start (OpenMPI, MPICH/Hydra and
# Intel MPI, PMIx launchers such as srun --mpi=pmix, MVAPICH).
_LAUNCHER_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
_TAG_FAILED = 28270  # control messages: "this rank failed" (below MPI's minimum tag bound 32767)
DEFAULT_TIMEOUT = 600.0
# A collective's wait spins this long, then polls with short sleeps (NNCORE_MPI_SPIN_US).
SPIN_SECONDS = float(os.environ.get("NNCORE_MPI_SPIN_US", "2000")) * 1e-6
POLL_SLEEP = 2e-4

_ctx = None


class DistributedError(RuntimeError):
    """A collective timed out, or another rank failed (remote=True)."""

    def __init__(self, msg, remote=False):
        super().__init__(msg)
        self.remote = remote


class _Local:
    """The size-1 context: no MPI, every collective is the identity."""

    rank, size, local_rank, local_size = 0, 1, 0, 1
    mpi = None

    def __init__(self, timeout, shard_data):
        self.timeout, self.shard_data = timeout, shard_data
        self.seconds, self.calls, self.bytes = 0.0, 0, 0
        self.in_fit = False

    def allreduce_(self, buf, what="allreduce", op="sum"):
        return buf

    def bcast_(self, buf, root=0, what="broadcast"):
        return buf

    def barrier(self):
        pass

    def abort(self, exc):
        raise exc


class _Mpi(_Local):
    """A process group on MPI_COMM_WORLD. Every collective first waits, by polling a nonblocking
    barrier with a deadline, for all ranks to arrive; while waiting a rank also looks for a
    "failed" notice from another rank, so no rank waits forever for one that is gone."""

    def __init__(self, MPI, timeout, shard_data):
        super().__init__(timeout, shard_data)
        self.mpi = MPI
        self.comm = MPI.COMM_WORLD
        self.ctl = self.comm.Dup()  # failure notices never mix with the data collectives
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
        self._status = MPI.Status()
        self._aborting = False

    def _wait(self, req, what):
        start = time.monotonic()
        deadline = start + self.timeout
        spin_until = start + SPIN_SECONDS
        n = 0
        while not req.Test():
            n += 1
            if n % 16 == 0:
                self._check_peers()
                now = time.monotonic()
                if now > deadline:
                    raise DistributedError(
                        f"nncore.distributed: rank {self.rank}: {what} did not complete within "
                        f"{self.timeout:g} s; another rank failed, hung, or left this "
                        "collective (e.g. it ran a different number of steps)")
                if now > spin_until:
                    # A long wait (a peer far behind): poll without holding a core. Short waits
                    # spin, as MPI's blocking calls do: a sleeping rank wakes up late on a busy
                    # host and every collective would pay for it.
                    time.sleep(POLL_SLEEP)

    def _check_peers(self):
        if self.ctl.Iprobe(source=self.mpi.ANY_SOURCE, tag=_TAG_FAILED, status=self._status):
            src = self._status.Get_source()
            msg = self.ctl.recv(source=src, tag=_TAG_FAILED)
            raise DistributedError(f"nncore.distributed: rank {self.rank}: stopping because "
                                   f"rank {src} failed: {msg}", remote=True)

    # Each collective: a barrier polled with the deadline (every rank has arrived, none failed),
    # then MPI's own blocking collective moves the data: on one host that is about twice as fast
    # as polling a nonblocking Iallreduce, whose progress needs the caller's Test calls. A rank
    # that dies inside the blocking part is seen by mpirun, which ends the job.
    def allreduce_(self, buf, what="allreduce", op="sum"):
        t0 = time.perf_counter()
        self._wait(self.comm.Ibarrier(), what)
        self.comm.Allreduce(self.mpi.IN_PLACE, buf, op=self._ops[op])
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.bytes += buf.nbytes
        return buf

    def bcast_(self, buf, root=0, what="broadcast"):
        self._wait(self.comm.Ibarrier(), what)
        self.comm.Bcast(buf, root=root)
        return buf

    def barrier(self):
        self._wait(self.comm.Ibarrier(), "barrier")

    def abort(self, exc):
        """Tell every other rank why (unless the failure came from one of them), give them a
        moment to report it themselves, then MPI_Abort the job."""
        if self._aborting:
            return
        self._aborting = True
        try:
            if not getattr(exc, "remote", False):
                text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                reqs = [self.ctl.isend(text, dest=r, tag=_TAG_FAILED)
                        for r in range(self.size) if r != self.rank]
                # Peers see the notice at their next collective, print it and abort the job
                # themselves; abort here too once they had the time to.
                # (No need to wait for a peer that failed too: it sent its own notice.)
                end = time.monotonic() + min(10.0, self.timeout / 2)
                failed = set()
                while time.monotonic() < end and len(failed) < self.size - 1:
                    self.mpi.Request.Testall(reqs)
                    while self.ctl.Iprobe(source=self.mpi.ANY_SOURCE, tag=_TAG_FAILED,
                                          status=self._status):
                        src = self._status.Get_source()
                        self.ctl.recv(source=src, tag=_TAG_FAILED)
                        failed.add(src)
                    time.sleep(0.01)
        finally:
            sys.stderr.write(f"nncore.distributed: rank {self.rank} of {self.size}: aborting "
                             "the job\n")
            sys.stderr.flush()
            self.comm.Abort(1)


def _launched_by_mpi() -> bool:
    return any(k in os.environ for k in _LAUNCHER_ENV)


def init(timeout=None, threads="auto", shard_data=True):
    """Join the process group (idempotent); returns this module.

    timeout: seconds a collective may wait for the other ranks before the job is aborted
        (default NNCORE_MPI_TIMEOUT or 600).
    threads: nncore threads per rank; "auto" = the cores this rank may use divided by the ranks
        on this host (unless OMP_NUM_THREADS is set), or an int.
    shard_data: fit splits every global batch of the arrays it is given over the ranks (True),
        or each rank trains on the arrays it is given, as its own shard (False)."""
    global _ctx
    if _ctx is not None:
        return sys.modules[__name__]
    if timeout is None:
        timeout = float(os.environ.get("NNCORE_MPI_TIMEOUT", DEFAULT_TIMEOUT))
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if _launched_by_mpi():
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError("nncore.distributed: this process was started by an MPI launcher "
                              "but mpi4py is not importable; install it with "
                              f"pip install \"nncore[mpi]\" ({e})") from None
        ctx = _Mpi(MPI, float(timeout), bool(shard_data))
    else:
        ctx = _Local(float(timeout), bool(shard_data))
    _ctx = ctx
    if ctx.size > 1:
        _install_excepthook(ctx)
    _set_threads(ctx, threads)
    return sys.modules[__name__]


def _set_threads(ctx, threads):
    import nncore

    if threads == "auto":
        if "OMP_NUM_THREADS" in os.environ or ctx.local_size == 1:
            return
        host = os.cpu_count() or 1
        try:
            mine = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            mine = host
        # Bound by the launcher to fewer cores than the host has: those are this rank's.
        n = mine if mine < host else host // ctx.local_size
        nncore.set_num_threads(max(1, min(n, 1024)))
    elif threads is not None:
        nncore.set_num_threads(threads)


def _install_excepthook(ctx):
    def hook(tp, value, tb):
        prefix = f"[rank {ctx.rank}] "
        if getattr(value, "remote", False):
            sys.stderr.write(prefix + str(value) + "\n")
        else:
            text = "".join(traceback.format_exception(tp, value, tb))
            sys.stderr.write("".join(prefix + line + "\n" for line in text.splitlines()))
        sys.stderr.flush()
        ctx.abort(value)

    sys.excepthook = hook

    # mpirun ends the other ranks with SIGTERM when one dies (killed, segfault): say so.
    import signal

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        def on_term(signum, frame):
            os.write(2, f"[rank {ctx.rank}] nncore.distributed: terminated by the MPI launcher "
                        "(another rank of the job died or the job was cancelled)\n".encode())
            os._exit(128 + signum)

        try:
            signal.signal(signal.SIGTERM, on_term)
        except ValueError:  # not the main thread
            pass


def _get():
    if _ctx is None:
        raise RuntimeError("nncore.distributed is not initialised: call "
                           "nncore.distributed.init() first")
    return _ctx


def is_initialized() -> bool:
    return _ctx is not None


def rank() -> int:
    """This process's rank in the job (0 .. size-1)."""
    return _get().rank


def size() -> int:
    """Number of processes in the job (1 when not launched by mpirun)."""
    return _get().size


def local_rank() -> int:
    """Rank among the processes on this host."""
    return _get().local_rank


def local_size() -> int:
    """Number of processes of the job on this host."""
    return _get().local_size


def is_primary() -> bool:
    """True on rank 0, the rank that prints and writes files."""
    return _get().rank == 0


def barrier() -> None:
    _get().barrier()


def timing() -> dict:
    """Time spent in allreduce by this rank since init: seconds, calls, bytes."""
    c = _get()
    return {"seconds": c.seconds, "calls": c.calls, "bytes": c.bytes}


def shutdown() -> None:
    """Forget the context (MPI itself is finalised by mpi4py at exit)."""
    global _ctx
    _ctx = None


def allreduce(value, average=True, name=None):
    """Sum (average=True: mean) of a numpy array or number over all ranks; a new array."""
    c = _get()
    a = np.array(value, dtype=np.result_type(np.asarray(value).dtype, np.float32), copy=True)
    a = np.ascontiguousarray(a)
    c.allreduce_(a.reshape(-1), name or "allreduce")
    if average:
        a /= a.dtype.type(c.size)
    return a if a.ndim else a[()]


def broadcast(value, root_rank=0, name=None):
    """rank root_rank's value of a numpy array (same shape and dtype on every rank)."""
    c = _get()
    a = np.ascontiguousarray(np.array(value, copy=True))
    c.bcast_(a.reshape(-1), root_rank, name or "broadcast")
    return a if a.ndim else a[()]


def _bcast_arrays(c, arrays, root):
    """Broadcast a list of arrays in place from root: one buffer per dtype."""
    by_dtype = {}
    for a in arrays:
        by_dtype.setdefault(np.dtype(a.dtype).str, []).append(a)
    for key in sorted(by_dtype):
        group = by_dtype[key]
        buf = np.concatenate([np.ascontiguousarray(a).reshape(-1) for a in group]) if group \
            else np.empty(0)
        c.bcast_(buf, root, "broadcast of the weights")
        off = 0
        for a in group:
            a[...] = buf[off:off + a.size].reshape(a.shape)
            off += a.size


def broadcast_variables(model, root_rank=0):
    """Copy rank root_rank's weights (all of them, trainable or not), optimizer state (step count,
    slots, scalars) and constant learning rate to every rank."""
    c = _get()
    if c.size == 1:
        return
    weights = list(model.weights)
    _bcast_arrays(c, weights, root_rank)
    opt = getattr(model, "optimizer", None)
    if opt is not None and hasattr(opt, "get_state"):
        params = list(model.trainable_weights)
        state = opt.get_state(params)
        head = np.array([float(state[0]), opt._lr if opt._schedule is None else 0.0], np.float64)
        c.bcast_(head, root_rank, "broadcast of the optimizer state")
        rest = [np.array(a, copy=True) for a in state[1:]]
        _bcast_arrays(c, rest, root_rank)
        opt.set_state(params, [np.array(int(head[0]), np.int64)] + rest)
        if opt._schedule is None:
            opt.learning_rate = float(head[1])


from ._horovod import (  # noqa: E402 - the pieces below use the context above
    BroadcastGlobalVariablesCallback,
    DistributedOptimizer,
    LearningRateWarmupCallback,
    MetricAverageCallback,
)


def _fit_run(model):
    """The distributed side of one fit (trainers/trainer.py), or None outside a process group of
    more than one process."""
    if _ctx is None or _ctx.size == 1:
        return None
    from ._fit import FitRun

    return FitRun(_ctx, model)
