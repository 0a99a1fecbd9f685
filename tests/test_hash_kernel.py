"""The C++ string hashes (_core.hash_strings / hash_ints: FarmHash fingerprint64, keyed
SipHash-2-4) against their Python reference twin (layers/_hash.py), bit for bit, over every
length branch, Unicode, bytes and integers; 1 vs 2 threads equal; bad arguments refused."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from nncore import _core
from nncore.layers import _hash

SALTS = [None, (0, 0), (1234567, 89), ((1 << 64) - 1, 1 << 63), (-5, 7)]


def _strings(rng, n=400):
    out = [""]
    for length in list(range(0, 200)) + [255, 256, 257, 1000, 4097]:
        out.append(bytes(rng.integers(0, 256, length, dtype=np.uint8)))
    out += ["é", "日本語のテキスト", "mixed ascii and ü" * 9, "a" * 64, "b" * 65, "c" * 128]
    out += [bytes(rng.integers(32, 127, int(rng.integers(0, 90)), dtype=np.uint8)).decode()
            for _ in range(n)]
    return out


def _reference(values, salt):
    b = [_hash.as_bytes(v) for v in values]
    if salt is None:
        return np.array([_hash.fingerprint64(s) for s in b], np.uint64)
    return np.array([_hash.siphash24(salt, s) for s in b], np.uint64)


@pytest.mark.parametrize("salt", SALTS)
def test_string_hashes_equal_the_reference_bit_for_bit(salt, rng, threads):
    values = _strings(rng)
    want = _reference(values, salt)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        outs.append(_hash.hashes(values, salt))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert outs[0].dtype == np.uint64
    np.testing.assert_array_equal(outs[0], want)
    for n in (1, 7, 1 << 20, (1 << 63) + 5):
        np.testing.assert_array_equal(_hash.buckets(values, n, salt),
                                      _hash.buckets_reference(values, n, salt))


@pytest.mark.parametrize("salt", SALTS[:3])
def test_integer_hashes_equal_the_reference(salt, rng, threads):
    values = [0, 1, -1, 9, 10, -10, 2 ** 63 - 1, -(2 ** 63), 12345678901234] + \
        rng.integers(-(1 << 62), 1 << 62, 3000).tolist()
    want = _reference(values, salt)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        outs.append(_core.hash_ints(np.asarray(values, np.int64),
                                    None if salt is None else salt))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], want)
    np.testing.assert_array_equal(_hash.buckets(values, 97, salt),
                                  _hash.buckets_reference(values, 97, salt))


def test_large_batches_split_over_threads_equal(rng, threads):
    values = [bytes(rng.integers(0, 256, int(k), dtype=np.uint8))
              for k in rng.integers(0, 300, 20000)]
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        outs.append(_hash.hashes(values, (3, 4)))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0][::97], _reference(values[::97], (3, 4)))


def test_known_values():
    # FarmHash's fingerprint64 of "" is k2 (its definition); TensorFlow's bucket of "" for
    # to_hash_bucket_fast(…, 2**63) is that value mod 2**63.
    assert int(_hash.hashes([""])[0]) == 0x9AE16A3B2F90404F
    assert _hash.hashes([]).shape == (0,)


def test_bad_arguments_are_refused():
    d = np.frombuffer(b"abcdef", np.uint8)
    with pytest.raises(ValueError, match="past the end of data"):
        _core.hash_strings(d, np.array([0, 3, 9], np.int64))
    with pytest.raises(ValueError, match="non-decreasing"):
        _core.hash_strings(d, np.array([0, 4, 2], np.int64))
    with pytest.raises(ValueError, match="offsets.0. must be 0"):
        _core.hash_strings(d, np.array([1, 2], np.int64))
    with pytest.raises(ValueError, match="at least one"):
        _core.hash_strings(d, np.array([], np.int64))
    with pytest.raises(TypeError, match="uint8"):
        _core.hash_strings(d.astype(np.int32), np.array([0, 1], np.int64))
    with pytest.raises(TypeError, match="int64"):
        _core.hash_ints(np.array([1, 2], np.int32))
    with pytest.raises(TypeError):
        _core.hash_strings(d, np.array([0, 1], np.int64), key=(-1, 2))  # keys are uint64
