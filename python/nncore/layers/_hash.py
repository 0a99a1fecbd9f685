"""The string hashes Keras's hashing layers use (through TensorFlow), written out in Python:
FarmHash's 64-bit fingerprint (``tf.strings.to_hash_bucket_fast``: fingerprint64(s) mod n) and
keyed SipHash-2-4 (``tf.strings.to_hash_bucket_strong`` with a 2 x 64-bit key). Bytes are read
little-endian; all arithmetic is modulo 2**64.

``buckets`` runs the C++ kernels (``_core.hash_strings`` / ``hash_ints``, csrc/kernels/hash.cpp)
over the whole batch; the Python functions here are their reference twin (``buckets_reference``),
which the tests compare with them bit for bit."""

from __future__ import annotations

import struct

import numpy as np

_M = (1 << 64) - 1
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F


def _u64(b, i):
    return struct.unpack_from("<Q", b, i)[0]


def _u32(b, i):
    return struct.unpack_from("<I", b, i)[0]


def _rot(v, s):
    return ((v >> s) | (v << (64 - s))) & _M if s else v


def _shift_mix(v):
    return v ^ (v >> 47)


def _len16(u, v, mul):
    a = ((u ^ v) * mul) & _M
    a ^= a >> 47
    b = ((v ^ a) * mul) & _M
    b ^= b >> 47
    return (b * mul) & _M


def _len0to16(s, n):
    if n >= 8:
        mul = (_K2 + n * 2) & _M
        a = (_u64(s, 0) + _K2) & _M
        b = _u64(s, n - 8)
        c = (_rot(b, 37) * mul + a) & _M
        d = ((_rot(a, 25) + b) * mul) & _M
        return _len16(c, d, mul)
    if n >= 4:
        mul = (_K2 + n * 2) & _M
        a = _u32(s, 0)
        return _len16((n + (a << 3)) & _M, _u32(s, n - 4), mul)
    if n > 0:
        y = (s[0] + (s[n >> 1] << 8)) & 0xFFFFFFFF
        z = (n + (s[n - 1] << 2)) & 0xFFFFFFFF
        return (_shift_mix(((y * _K2) ^ (z * _K0)) & _M) * _K2) & _M
    return _K2


def _len17to32(s, n):
    mul = (_K2 + n * 2) & _M
    a = (_u64(s, 0) * _K1) & _M
    b = _u64(s, 8)
    c = (_u64(s, n - 8) * mul) & _M
    d = (_u64(s, n - 16) * _K2) & _M
    return _len16((_rot((a + b) & _M, 43) + _rot(c, 30) + d) & _M,
                  (a + _rot((b + _K2) & _M, 18) + c) & _M, mul)


def _len33to64(s, n):
    mul = (_K2 + n * 2) & _M
    a = (_u64(s, 0) * _K2) & _M
    b = _u64(s, 8)
    c = (_u64(s, n - 8) * mul) & _M
    d = (_u64(s, n - 16) * _K2) & _M
    y = (_rot((a + b) & _M, 43) + _rot(c, 30) + d) & _M
    z = _len16(y, (a + _rot((b + _K2) & _M, 18) + c) & _M, mul)
    e = (_u64(s, 16) * mul) & _M
    f = _u64(s, 24)
    g = ((y + _u64(s, n - 32)) * mul) & _M
    h = ((z + _u64(s, n - 24)) * mul) & _M
    return _len16((_rot((e + f) & _M, 43) + _rot(g, 30) + h) & _M,
                  (e + _rot((f + a) & _M, 18) + g) & _M, mul)


def _weak32(s, i, a, b):
    # A 16-byte hash of s[i:i+32] with seeds a, b.
    w, x, y, z = _u64(s, i), _u64(s, i + 8), _u64(s, i + 16), _u64(s, i + 24)
    a = (a + w) & _M
    b = _rot((b + a + z) & _M, 21)
    c = a
    a = (a + x + y) & _M
    b = (b + _rot(a, 44)) & _M
    return (a + z) & _M, (b + c) & _M


def fingerprint64(data: bytes) -> int:
    """FarmHash Fingerprint64 of a byte string (an unsigned 64-bit integer)."""
    s, n = data, len(data)
    if n <= 16:
        return _len0to16(s, n)
    if n <= 32:
        return _len17to32(s, n)
    if n <= 64:
        return _len33to64(s, n)
    seed = 81
    x = seed
    y = (seed * _K1 + 113) & _M
    z = (_shift_mix((y * _K2 + 113) & _M) * _K2) & _M
    v0 = v1 = w0 = w1 = 0
    x = (x * _K2 + _u64(s, 0)) & _M
    end = ((n - 1) // 64) * 64  # whole 64-byte blocks before the last 1..64 bytes
    last = n - 64
    i = 0
    while True:
        x = (_rot((x + y + v0 + _u64(s, i + 8)) & _M, 37) * _K1) & _M
        y = (_rot((y + v1 + _u64(s, i + 48)) & _M, 42) * _K1) & _M
        x ^= w1
        y = (y + v0 + _u64(s, i + 40)) & _M
        z = (_rot((z + w0) & _M, 33) * _K1) & _M
        v0, v1 = _weak32(s, i, (v1 * _K1) & _M, (x + w0) & _M)
        w0, w1 = _weak32(s, i + 32, (z + w1) & _M, (y + _u64(s, i + 16)) & _M)
        z, x = x, z
        i += 64
        if i == end:
            break
    mul = (_K1 + ((z & 0xFF) << 1)) & _M
    i = last
    w0 = (w0 + ((n - 1) & 63)) & _M
    v0 = (v0 + w0) & _M
    w0 = (w0 + v0) & _M
    x = (_rot((x + y + v0 + _u64(s, i + 8)) & _M, 37) * mul) & _M
    y = (_rot((y + v1 + _u64(s, i + 48)) & _M, 42) * mul) & _M
    x ^= (w1 * 9) & _M
    y = (y + v0 * 9 + _u64(s, i + 40)) & _M
    z = (_rot((z + w0) & _M, 33) * mul) & _M
    v0, v1 = _weak32(s, i, (v1 * mul) & _M, (x + w0) & _M)
    w0, w1 = _weak32(s, i + 32, (z + w1) & _M, (y + _u64(s, i + 16)) & _M)
    z, x = x, z
    return _len16((_len16(v0, w0, mul) + _shift_mix(y) * _K0 + z) & _M,
                  (_len16(v1, w1, mul) + x) & _M, mul)


def _sip_round(v0, v1, v2, v3):
    v0 = (v0 + v1) & _M
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _M
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _M
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _M
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def _rotl(v, s):
    return ((v << s) | (v >> (64 - s))) & _M


def siphash24(key, data: bytes) -> int:
    """SipHash-2-4 of a byte string under a key of two unsigned 64-bit integers."""
    k0, k1 = (int(k) & _M for k in key)
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    n = len(data)
    full = n - n % 8
    for i in range(0, full, 8):
        m = _u64(data, i)
        v3 ^= m
        v0, v1, v2, v3 = _sip_round(*_sip_round(v0, v1, v2, v3))
        v0 ^= m
    tail = data[full:] + b"\0" * (7 - n % 8)
    m = int.from_bytes(tail, "little") | ((n & 0xFF) << 56)
    v3 ^= m
    v0, v1, v2, v3 = _sip_round(*_sip_round(v0, v1, v2, v3))
    v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def as_bytes(v) -> bytes:
    """What TensorFlow hashes for a value: a string's UTF-8 bytes (bytes as given), an
    integer's decimal text (tf.strings.as_string)."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    return str(int(v)).encode("ascii")


def buckets_reference(values, num_buckets, salt=None):
    """Bucket of each value: fingerprint64 (or SipHash-2-4 keyed by salt) mod num_buckets, in
    Python (the reference twin of ``buckets``)."""
    if salt is None:
        return [fingerprint64(as_bytes(v)) % num_buckets for v in values]
    return [siphash24(salt, as_bytes(v)) % num_buckets for v in values]


def hashes(values, salt=None) -> np.ndarray:
    """The uint64 hash of each value (str, bytes or int, as ``as_bytes`` reads it), by the C++
    kernels: fingerprint64, or SipHash-2-4 keyed by salt (two ints)."""
    from .. import _core

    key = None if salt is None else (int(salt[0]) & _M, int(salt[1]) & _M)
    values = list(values)
    types = set(map(type, values))
    if types == {int} and -(1 << 63) <= min(values) and max(values) < 1 << 63:
        return _core.hash_ints(np.asarray(values, np.int64), key)
    offsets = np.zeros(len(values) + 1, np.int64)
    if types == {str}:
        joined = "".join(values)
        if joined.isascii():  # one encode, and a character is a byte
            np.cumsum(np.fromiter(map(len, values), np.int64, len(values)), out=offsets[1:])
            return _core.hash_strings(np.frombuffer(joined.encode("ascii"), np.uint8), offsets,
                                      key)
    data = [as_bytes(v) for v in values]
    np.cumsum(np.fromiter(map(len, data), np.int64, len(data)), out=offsets[1:])
    return _core.hash_strings(np.frombuffer(b"".join(data), np.uint8), offsets, key)


def buckets(values, num_buckets, salt=None) -> np.ndarray:
    """Bucket of each value (int64): fingerprint64 (or SipHash-2-4 keyed by salt) mod
    num_buckets."""
    return (hashes(values, salt) % np.uint64(num_buckets)).astype(np.int64)
