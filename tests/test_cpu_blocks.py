"""Cache sizes from CPUID and the GEMM cache blocks chosen from them at run time."""

from __future__ import annotations

import os
import pathlib
import numpy as np
import pytest

import nncore
from nncore import _core
from nncore import kernels as ops

from conftest import ALL_ISAS


def test_caches_are_plausible():
    c = _core.cpu_caches()
    assert c["source"] in ("cpuid", "default")
    if os.uname().machine in ("x86_64", "AMD64"):
        assert c["source"] == "cpuid"  # leaf 4 (Intel) or 0x8000001D (AMD) answered
    assert 8 << 10 <= c["l1d"] <= 1 << 20
    assert 64 << 10 <= c["l2"] <= 64 << 20
    assert c["l3"] >= 0 and c["l3"] <= 2 << 30
    # Linux's own reading of the same CPUID leaves, where it exposes it.
    base = "/sys/devices/system/cpu/cpu0/cache"
    if os.path.isdir(base):
        for idx in sorted(os.listdir(base)):
            d = os.path.join(base, idx)
            if not idx.startswith("index"):
                continue
            kind = pathlib.Path(d, "type").read_text().strip()
            level = int(pathlib.Path(d, "level").read_text())
            size = pathlib.Path(d, "size").read_text().strip()
            if kind == "Instruction" or level > 3 or not size.endswith("K"):
                continue
            want = int(size[:-1]) << 10
            assert c[{1: "l1d", 2: "l2", 3: "l3"}[level]] == want, (idx, c)


@pytest.mark.parametrize("isa_name", ALL_ISAS)
def test_gemm_blocks_within_bounds(isa_name):
    b = _core.gemm_blocks(isa_name)
    c = _core.cpu_caches()
    assert b["mc"] % b["mr"] == 0 and b["nc"] % b["nr"] == 0
    assert b["mr"] <= b["mc"] and b["nr"] <= b["nc"] and b["kc"] >= 1
    # the packed A block fits half the L2 and the B panel half the L3, unless already minimal
    assert b["mc"] == b["mr"] or b["mc"] * b["kc"] * 4 <= c["l2"] // 2
    assert b["nc"] == b["nr"] or b["kc"] * b["nc"] * 4 <= c["l3"] // 2


def test_show_config_reports_caches_and_blocks(capsys):
    cfg = nncore.show_config()
    assert cfg["caches"] == dict(_core.cpu_caches())
    assert cfg["gemm_blocks"] == dict(_core.gemm_blocks(_core.get_isa()))
    assert "gemm_blocks" in capsys.readouterr().out


@pytest.mark.parametrize("m,n,k", [(700, 5000, 300), (2000, 300, 600), (37, 4500, 70)])
def test_blocked_gemm_bitwise_for_any_thread_count(isa, threads, rng, m, n, k):
    """Shapes that cross the MC and NC blocks: 1, 2 and 3 threads give the same bits, and the
    float64 reference within the float32 bound."""
    from conftest import assert_within_bound, gemm_error_bound

    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    outs = []
    for nt in (1, 2, 3):
        nncore.set_num_threads(nt)
        outs.append(ops.matmul(a, b))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    assert_within_bound(outs[0], a.astype(np.float64) @ b.astype(np.float64), gemm_error_bound(a, b))
