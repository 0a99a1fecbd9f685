"""Threads API, ISA selection, fork safety and import time."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import missing, platform_skip

import nncore
from nncore import ops

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def _run(code: str, env=None, timeout=60) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env or ENV)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_thread_api(threads):
    nncore.set_num_threads(3)
    assert nncore.get_num_threads() == 3
    nncore.set_num_threads(1)
    assert nncore.get_num_threads() == 1
    for bad in (0, -1):
        with pytest.raises(ValueError):
            nncore.set_num_threads(bad)
    for bad in (2.0, "2", None, True):
        with pytest.raises(TypeError):
            nncore.set_num_threads(bad)
    assert nncore.get_num_threads() == 1


def test_default_threads_from_env():
    env = dict(ENV, OMP_NUM_THREADS="3")
    assert _run("import nncore; print(nncore.get_num_threads())", env).strip() == "3"
    env = {k: v for k, v in ENV.items() if k != "OMP_NUM_THREADS"}
    want = len(os.sched_getaffinity(0))
    assert _run("import nncore; print(nncore.get_num_threads())", env).strip() == str(want)


def test_isa_env_and_set(isa):
    assert ops.get_isa() == isa
    env = dict(ENV, NNCORE_ISA="generic")
    assert _run("from nncore import ops; print(ops.get_isa())", env).strip() == "generic"
    with pytest.raises(ValueError, match="unknown ISA"):
        ops.set_isa("sse9")
    assert ops.get_isa() == isa


def test_unsupported_isa_rejected():
    all_isas = ["generic", "avx2", "avx512"]
    missing = [i for i in all_isas if i not in ops.supported_isas()]
    if not missing:
        platform_skip("this CPU supports every ISA nncore has")
    with pytest.raises(ValueError, match="not supported"):
        ops.set_isa(missing[0])


def test_show_config(capsys):
    cfg = nncore.show_config()
    assert cfg["isa"] in cfg["supported_isas"]
    assert cfg["threads"] >= 1 and "gemm_kernel" in cfg
    assert "isa" in capsys.readouterr().out


def _child_matmul(q):
    a = np.ones((300, 300), np.float32)
    q.put(float(ops.matmul(a, a)[0, 0]))


# Python 3.12+ warns about fork() in a process with threads; that is the situation under test.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_after_parallel_does_not_hang(threads):
    # libgomp's pool does not survive fork(): the child must run kernels serially and exit.
    nncore.set_num_threads(2)
    a = np.ones((512, 512), np.float32)
    ops.matmul(a, a)  # the parent has now run a parallel region
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_matmul, args=(q,))
    p.start()
    p.join(timeout=60)
    if p.is_alive():
        p.kill()
        pytest.fail("forked child hung running a kernel")
    assert p.exitcode == 0
    assert q.get(timeout=5) == 300.0
    # the parent keeps its threads
    assert nncore.get_num_threads() == 2


def test_fork_child_reports_single_thread():
    out = _run("""
        import os, numpy as np, nncore
        from nncore import ops
        nncore.set_num_threads(2)
        ops.matmul(np.ones((512, 512), np.float32), np.ones((512, 512), np.float32))
        pid = os.fork()
        if pid == 0:
            ops.matmul(np.ones((512, 512), np.float32), np.ones((512, 512), np.float32))
            os._exit(0 if nncore.get_num_threads() == 1 else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """, timeout=60)
    assert out.strip() == "0"


def test_import_time():
    # `import nncore` (numpy's own import included) must be well under 0.2 s; best of 5 cold starts.
    code = (
        "import time; t = time.perf_counter(); import numpy, nncore, nncore.ops; "
        "print(time.perf_counter() - t)"
    )
    times = [float(_run(code)) for _ in range(5)]
    assert min(times) < 0.2, times


def test_core_stub_in_sync():
    # python/nncore/_core.pyi (tools/gen_core_stub.py) names exactly what the module exports.
    import ast
    import pathlib

    from nncore import _core

    stub = pathlib.Path(nncore.__file__).with_name("_core.pyi")
    if not stub.exists():
        missing("the _core.pyi stub is not installed next to the package")
    tree = ast.parse(stub.read_text())
    declared = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    declared |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    exported = {n for n in dir(_core) if not n.startswith("__")}
    assert declared == exported
