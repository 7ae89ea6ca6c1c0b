"""``import voisin as faiss``: FAISS's getting-started code runs unchanged.

The scripts below are FAISS's tutorial (wiki "Getting started", "Faster
search", "Lower memory footprint", plus the index factory and index I/O),
statement for statement; only the database and query sizes are smaller so the
test stays fast. Each script is run twice with its own ``import faiss`` line
untouched: once with the real faiss-cpu, once with ``sys.modules["faiss"]``
pointing at voisin. The results must agree: exact search identically,
approximate search with the recall FAISS gets (their k-means draws differ).
"""

from __future__ import annotations

import contextlib
import io
import sys
import textwrap

import numpy as np
import pytest

import voisin

real_faiss = pytest.importorskip("faiss")

SETUP = """
import numpy as np
d = 64                           # dimension
nb = 20000                       # database size
nq = 500                         # nb of queries
np.random.seed(1234)             # make reproducible
xb = np.random.random((nb, d)).astype('float32')
xb[:, 0] += np.arange(nb) / 1000.
xq = np.random.random((nq, d)).astype('float32')
xq[:, 0] += np.arange(nq) / 1000.
"""

GETTING_STARTED = SETUP + """
import faiss                   # make faiss available
index = faiss.IndexFlatL2(d)   # build the index
print(index.is_trained)
index.add(xb)                  # add vectors to the index
print(index.ntotal)

k = 4                          # we want to see 4 nearest neighbors
D, I = index.search(xb[:5], k) # sanity check
print(I)
print(D)
D, I = index.search(xq, k)     # actual search
print(I[:5])                   # neighbors of the 5 first queries
print(I[-5:])                  # neighbors of the 5 last queries
"""

FASTER_SEARCH = SETUP + """
import faiss

nlist = 100
k = 4
quantizer = faiss.IndexFlatL2(d)  # the other index
index = faiss.IndexIVFFlat(quantizer, d, nlist)
assert not index.is_trained
index.train(xb)
assert index.is_trained

index.add(xb)                  # add may be a bit slower as well
D, I = index.search(xq, k)     # actual search
print(I[-5:])                  # neighbors of the 5 last queries
index.nprobe = 10              # default nprobe is 1, try a few more
D, I = index.search(xq, k)
print(I[-5:])                  # neighbors of the 5 last queries
"""

LOWER_MEMORY = SETUP + """
import faiss

nlist = 100
m = 8                             # number of subquantizers
k = 4
quantizer = faiss.IndexFlatL2(d)  # this remains the same
index = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8)
                                  # 8 specifies that each sub-vector is encoded as 8 bits
index.train(xb)
index.add(xb)
D, I = index.search(xb[:5], k) # sanity check
print(I)
print(D)
index.nprobe = 10              # make comparable with experiment above
D, I = index.search(xq, k)     # search
print(I[-5:])
"""

FACTORY_AND_IO = SETUP + """
import faiss

index = faiss.index_factory(d, "IVF100,Flat")
index.train(xb)
index.add(xb)
faiss.write_index(index, path)
index = faiss.read_index(path)
index.nprobe = 10
D, I = index.search(xq, 4)
print(I[-5:])

index = faiss.index_factory(d, "Flat")
index.add(xb)
faiss.write_index(index, path)
index2 = faiss.read_index(path)
D, I = index2.search(xq, 4)
print(I[-5:])
"""


def run(script: str, lib, monkeypatch, **extra) -> dict:
    """Execute ``script`` with ``import faiss`` resolving to ``lib``; return its namespace."""
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "faiss", lib)
        ns: dict = dict(extra)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(textwrap.dedent(script), "<faiss tutorial>", "exec"), ns)
        ns["stdout"] = out.getvalue()
        return ns


def ground_truth(ns: dict, k: int = 4) -> np.ndarray:
    flat = real_faiss.IndexFlatL2(ns["d"])
    flat.add(ns["xb"])
    return flat.search(ns["xq"], k)[1]


def recall(I: np.ndarray, gt: np.ndarray) -> float:
    """Share of the true k nearest neighbours found (order ignored)."""
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(I.tolist(), gt.tolist())]))


def _needs(*names: str) -> None:
    missing = [n for n in names if not hasattr(voisin, n)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in this voisin build yet")


def test_getting_started(monkeypatch):
    v = run(GETTING_STARTED, voisin, monkeypatch)
    f = run(GETTING_STARTED, real_faiss, monkeypatch)
    assert v["stdout"].splitlines()[:2] == ["True", "20000"] == f["stdout"].splitlines()[:2]
    np.testing.assert_array_equal(v["I"], f["I"])
    np.testing.assert_allclose(v["D"], f["D"], rtol=1e-4, atol=1e-3)
    vl, fl = v["stdout"].splitlines(), f["stdout"].splitlines()
    assert len(vl) == len(fl) == 22
    # the printed ids (sanity check, first and last queries) are the same text;
    # lines 7-11 are distances, equal up to float32 rounding (checked above)
    assert vl[2:7] == fl[2:7] and vl[12:] == fl[12:]
    assert vl[2].startswith("[[  0 ")  # the first vector finds itself


def test_faster_search(monkeypatch):
    _needs("IndexIVFFlat")
    v = run(FASTER_SEARCH, voisin, monkeypatch)
    f = run(FASTER_SEARCH, real_faiss, monkeypatch)
    gt = ground_truth(v)
    assert v["index"].nprobe == 10 and v["index"].ntotal == 20000
    rv, rf = recall(v["I"], gt), recall(f["I"], gt)
    assert rv >= rf - 0.05, (rv, rf)


def test_lower_memory_footprint(monkeypatch):
    _needs("IndexIVFPQ")
    v = run(LOWER_MEMORY, voisin, monkeypatch)
    f = run(LOWER_MEMORY, real_faiss, monkeypatch)
    gt = ground_truth(v)
    rv, rf = recall(v["I"], gt), recall(f["I"], gt)
    assert rv >= rf - 0.05, (rv, rf)
    assert v["index"].code_size == f["index"].code_size == 8


def test_index_factory_and_io(monkeypatch, tmp_path):
    _needs("IndexIVFFlat", "index_factory")
    path = str(tmp_path / "tutorial.index")
    v = run(FACTORY_AND_IO, voisin, monkeypatch, path=path)
    # the file voisin wrote last opens in faiss and searches the same
    f_loaded = real_faiss.read_index(path)
    np.testing.assert_array_equal(f_loaded.search(v["xq"], 4)[1], v["I"])
    f = run(FACTORY_AND_IO, real_faiss, monkeypatch, path=path)
    np.testing.assert_array_equal(v["I"], f["I"])
