"""Fuzz the reader over mutated valid files of every index type (bounded time).

Mutations: byte flips, overwritten 1/4/8-byte fields (with huge, negative and
boundary values), truncations, insertions and deletions. The reader must
either raise ``IndexFileError`` or return an index that searches without
crashing; files that carry voisin's checksum must always be rejected.
Any other exception (IndexError, MemoryError, RecursionError...) or a crash
fails the test. Hypothesis runs a fixed number of examples, so CI time is bounded.
"""

from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import voisin
from io_cases import CASES
from voisin.io import IndexFileError
from voisin.io.checksum import TRAILER_SIZE

faiss = pytest.importorskip("faiss")

EXAMPLES = 300


@lru_cache(maxsize=None)
def valid_files() -> tuple[tuple[str, bytes, bool], ...]:
    """(name, bytes, has_checksum) for every case available in this build."""
    out = []
    for case in CASES:
        missing = [a for a in case.requires if not hasattr(voisin, a)]
        if missing:
            continue
        v = case.voisin()
        out.append((f"{case.name}/voisin", voisin.serialize_index(v).tobytes(), True))
        out.append((f"{case.name}/voisin-plain", voisin.serialize_index(v, checksum=False).tobytes(),
                    False))
        out.append((f"{case.name}/faiss", bytes(faiss.serialize_index(case.faiss())), False))
        if case.name.startswith(("ivf", "hnsw_flat")):
            out.append((f"{case.name}/voisin-layout",
                        voisin.serialize_index(v, checksum=False, layout="voisin").tobytes(), False))
    return tuple(out)


INTERESTING = [0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               1 << 31, 1 << 32, 1 << 40, 1 << 62, (1 << 63) - 1, (1 << 64) - 1]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("set8"), st.floats(0, 1, exclude_max=True), st.sampled_from(INTERESTING)),
    st.tuples(st.just("set4"), st.floats(0, 1, exclude_max=True),
              st.sampled_from([v for v in INTERESTING if v < 1 << 32])),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1, exclude_max=True), st.integers(1, 64)),
    st.tuples(st.just("delete"), st.floats(0, 1, exclude_max=True), st.integers(1, 64)),
)


def mutate(buf: bytes, ops) -> bytes:
    b = bytearray(buf)
    for kind, where, arg in ops:
        if not b:
            break
        pos = int(where * len(b))
        if kind == "flip":
            b[pos] ^= arg
        elif kind == "set8":
            b[pos:pos + 8] = struct.pack("<Q", arg)[:len(b[pos:pos + 8])]
        elif kind == "set4":
            b[pos:pos + 4] = struct.pack("<I", arg)[:len(b[pos:pos + 4])]
        elif kind == "truncate":
            del b[pos:]
        elif kind == "insert":
            b[pos:pos] = bytes((pos * 7 + i) & 0xFF for i in range(arg))
        elif kind == "delete":
            del b[pos:pos + arg]
    return bytes(b)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(which=st.integers(0, 10_000), ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_files_are_rejected_or_safe(which, ops):
    files = valid_files()
    name, original, has_checksum = files[which % len(files)]
    bad = mutate(original, ops)
    try:
        index = voisin.deserialize_index(bad)
    except IndexFileError as exc:
        assert str(exc), name
        return
    if has_checksum and bad != original:
        # the only undetectable damage: a cut exactly at the start of the trailer
        assert bad == original[:len(original) - TRAILER_SIZE], f"{name}: damage not detected"
    # whatever loaded must be usable without crashing
    xq = np.ones((2, index.d), dtype=np.float32)
    D, I = index.search(xq, 3)
    assert D.shape == (2, 3) and I.shape == (2, 3)


def test_checksum_catches_what_the_format_cannot():
    """Single-byte flips: every one is caught with the trailer; without it many load silently."""
    rng = np.random.default_rng(0)
    files = [f for f in valid_files() if f[2]]
    silent_plain = 0
    trials = 0
    for name, buf, _ in files:
        plain = buf[:-TRAILER_SIZE]
        for _ in range(20):
            pos = int(rng.integers(len(plain)))
            flip = int(rng.integers(1, 256))
            for src, checked in ((buf, True), (plain, False)):
                bad = bytearray(src)
                bad[pos] ^= flip
                try:
                    voisin.deserialize_index(bytes(bad))
                except IndexFileError:
                    continue
                assert not checked, f"{name}: flip at {pos} not detected despite the checksum"
                silent_plain += 1
            trials += 1
    assert trials > 0
    # most bytes of an index are payload (floats, codes, ids): the format alone cannot tell
    assert silent_plain > trials // 2


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 10_000), ops=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_files_are_safe_when_memory_mapped(tmp_path, which, ops):
    """The mapped path hands out views instead of copies; the same checks must hold."""
    files = valid_files()
    name, original, _ = files[which % len(files)]
    bad = mutate(original, ops)
    path = tmp_path / "fuzzed.index"
    path.write_bytes(bad)
    try:
        index = voisin.read_index(path, voisin.IO_FLAG_MMAP, verify_checksum=False)
    except IndexFileError:
        return
    xq = np.ones((2, index.d), dtype=np.float32)
    D, I = index.search(xq, 3)
    assert D.shape == (2, 3), name
