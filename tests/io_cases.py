"""Index builders shared by the persistence tests (tests/test_io_*.py).

Each case builds the same index twice, once with voisin and once with
faiss-cpu, from the same seeded data, and knows how to set the search knobs
(nprobe, efSearch) identically on both. Cases whose voisin family is not in
this checkout yet are skipped with the reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import voisin

D = 16
NB = 1200
NQ = 20
K = 8


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training/database vectors, queries, ids) with clustered structure."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, D)).astype(np.float32) * 3
    xb = (centers[rng.integers(0, 20, NB)] + rng.normal(size=(NB, D))).astype(np.float32)
    xq = (centers[rng.integers(0, 20, NQ)] + rng.normal(size=(NQ, D))).astype(np.float32)
    ids = rng.choice(10 * NB, NB, replace=False).astype(np.int64) + 5
    return xb, xq, ids


@dataclass
class Case:
    name: str
    build_voisin: Callable[[], Any]
    build_faiss: Callable[[], Any]
    #: sets search knobs on an index of either library (same values on both)
    tune: Callable[[Any], None] = lambda index: None
    #: same bytes from both libraries for the same content
    deterministic: bool = False
    #: share of the file that a memory-mapped load must leave in the mapping
    mapped_fraction: float = 0.5
    requires: tuple[str, ...] = field(default_factory=tuple)
    #: fast-scan distances come from 8-bit quantized tables whose rounding is
    #: not bit-identical between the two libraries: compare within this relative
    #: tolerance (the codes themselves round-trip exactly, see test_io_roundtrip)
    approx: float | None = None
    #: the queries a search against faiss uses (default: data()'s)
    queries: Callable[[np.ndarray], np.ndarray] = lambda xq: xq

    def faiss_queries(self) -> np.ndarray:
        return self.queries(data()[1])

    def voisin(self) -> Any:
        """The voisin index (built once per session: tests must not modify it)."""
        missing = [a for a in self.requires if not hasattr(voisin, a)]
        if missing:
            pytest.skip(f"{', '.join(missing)} not in this voisin build yet")
        return _built(self.name, "voisin", self.build_voisin)

    def faiss(self) -> Any:
        """The faiss index (built once per session: tests must not modify it)."""
        faiss = pytest.importorskip("faiss")
        missing = [a for a in self.requires if not hasattr(faiss, a)]
        if missing:  # pragma: no cover - faiss has all of them
            pytest.skip(f"faiss lacks {missing}")
        return _built(self.name, "faiss", self.build_faiss)


_BUILT: dict[tuple[str, str], Any] = {}


def _built(name: str, lib: str, build: Callable[[], Any]) -> Any:
    key = (name, lib)
    if key not in _BUILT:
        with warnings.catch_warnings():
            # small training sets on purpose (fast tests): k-means says so
            warnings.simplefilter("ignore", UserWarning)
            _BUILT[key] = build()
    return _BUILT[key]


def _flat(lib: Any, metric: str) -> Any:
    xb, _, _ = data()
    index = lib.IndexFlatL2(D) if metric == "l2" else lib.IndexFlatIP(D)
    index.add(xb)
    return index


def _idmap(lib: Any, cls: str) -> Any:
    xb, _, ids = data()
    index = getattr(lib, cls)(lib.IndexFlatL2(D))
    index.add_with_ids(xb, ids)
    return index


def _faiss() -> Any:
    return pytest.importorskip("faiss")


CASES: list[Case] = [
    Case("flat_l2", lambda: _flat(voisin, "l2"), lambda: _flat(_faiss(), "l2"), deterministic=True),
    Case("flat_ip", lambda: _flat(voisin, "ip"), lambda: _flat(_faiss(), "ip"), deterministic=True),
    Case("idmap", lambda: _idmap(voisin, "IndexIDMap"), lambda: _idmap(_faiss(), "IndexIDMap"),
         deterministic=True),
    Case("idmap2", lambda: _idmap(voisin, "IndexIDMap2"), lambda: _idmap(_faiss(), "IndexIDMap2"),
         deterministic=True),
]

def _hnsw(lib: Any, metric: str) -> Any:
    xb, _, _ = data()
    if metric == "l2":
        index = lib.IndexHNSWFlat(D, 12)
    else:
        index = lib.IndexHNSWFlat(D, 12, lib.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 60
    index.add(xb)
    return index


def _set_ef(index: Any) -> None:
    index.hnsw.efSearch = 48


def _pq(lib: Any, nbits: int) -> Any:
    xb, _, _ = data()
    index = lib.IndexPQ(D, 4, nbits)
    index.train(xb)
    index.add(xb)
    return index


def _pq_polysemous(lib: Any) -> Any:
    index = _pq(lib, 8)
    index.search_type = 4  # ST_polysemous: the file carries it
    index.polysemous_ht = 14
    return index


CASES += [
    Case("pq8", lambda: _pq(voisin, 8), lambda: _pq(_faiss(), 8), requires=("IndexPQ",)),
    Case("pq8_polysemous", lambda: _pq_polysemous(voisin), lambda: _pq_polysemous(_faiss()),
         requires=("IndexPQ",)),
    Case("pq5", lambda: _pq(voisin, 5), lambda: _pq(_faiss(), 5), requires=("IndexPQ",),
         mapped_fraction=0.1),
    Case("hnsw_flat", lambda: _hnsw(voisin, "l2"), lambda: _hnsw(_faiss(), "l2"), tune=_set_ef,
         requires=("IndexHNSWFlat",), mapped_fraction=0.2),
    Case("hnsw_flat_ip", lambda: _hnsw(voisin, "ip"), lambda: _hnsw(_faiss(), "ip"), tune=_set_ef,
         requires=("IndexHNSWFlat",), mapped_fraction=0.2),
]

def _centroids(nlist: int, far: int = 0) -> np.ndarray:
    """Fixed coarse centroids (rows of the data), plus ``far`` unused ones."""
    xb, _, _ = data()
    cent = xb[::NB // nlist][:nlist - far].copy()
    if far:
        cent = np.vstack([cent, np.full((far, D), 1e4, np.float32) + np.arange(far)[:, None]])
    return cent.astype(np.float32)


def _ivf_flat(lib: Any, metric: str, nlist: int = 16, far: int = 0, train: bool = False) -> Any:
    xb, _, _ = data()
    mt = lib.METRIC_L2 if metric == "l2" else lib.METRIC_INNER_PRODUCT
    quantizer = lib.IndexFlatL2(D) if metric == "l2" else lib.IndexFlatIP(D)
    if not train:
        quantizer.add(_centroids(nlist, far))
    index = lib.IndexIVFFlat(quantizer, D, nlist, mt)
    if train:
        index.train(xb)
    index.add(xb)
    return index


def _ivfpq(lib: Any, by_residual: bool = True) -> Any:
    xb, _, _ = data()
    quantizer = lib.IndexFlatL2(D)
    index = lib.IndexIVFPQ(quantizer, D, 16, 4, 8)
    index.by_residual = by_residual
    index.train(xb)
    index.add(xb)
    return index


def _set_nprobe(index: Any) -> None:
    index.nprobe = 4


CASES += [
    Case("ivf_flat_given", lambda: _ivf_flat(voisin, "l2"), lambda: _ivf_flat(_faiss(), "l2"),
         tune=_set_nprobe, deterministic=True, requires=("IndexIVFFlat",), mapped_fraction=0.0),
    Case("ivf_flat_ip_given", lambda: _ivf_flat(voisin, "ip"), lambda: _ivf_flat(_faiss(), "ip"),
         tune=_set_nprobe, deterministic=True, requires=("IndexIVFFlat",), mapped_fraction=0.0),
    Case("ivf_flat_sparse", lambda: _ivf_flat(voisin, "l2", 64, 56),
         lambda: _ivf_flat(_faiss(), "l2", 64, 56), tune=_set_nprobe, deterministic=True,
         requires=("IndexIVFFlat",), mapped_fraction=0.0),
    Case("ivf_flat_trained", lambda: _ivf_flat(voisin, "l2", train=True),
         lambda: _ivf_flat(_faiss(), "l2", train=True), tune=_set_nprobe,
         requires=("IndexIVFFlat",), mapped_fraction=0.0),
    Case("ivfpq", lambda: _ivfpq(voisin), lambda: _ivfpq(_faiss()), tune=_set_nprobe,
         requires=("IndexIVFPQ",), mapped_fraction=0.0),
    Case("ivfpq_no_residual", lambda: _ivfpq(voisin, False), lambda: _ivfpq(_faiss(), False),
         tune=_set_nprobe, requires=("IndexIVFPQ",), mapped_fraction=0.0),
]

def _pq_fastscan(lib: Any) -> Any:
    xb, _, _ = data()
    index = lib.IndexPQFastScan(D, 4, 4)
    index.train(xb)
    index.add(xb[:1000])  # not a multiple of the 32-vector block
    return index


def _ivfpq_fastscan(lib: Any, by_residual: bool) -> Any:
    xb, _, _ = data()
    index = lib.IndexIVFPQFastScan(lib.IndexFlatL2(D), D, 16, 8, 4)
    index.by_residual = by_residual
    index.train(xb)
    index.add(xb)
    return index


CASES += [
    Case("pq_fastscan", lambda: _pq_fastscan(voisin), lambda: _pq_fastscan(_faiss()),
         requires=("IndexPQFastScan",), mapped_fraction=0.0, approx=0.05),
    Case("ivfpq_fastscan", lambda: _ivfpq_fastscan(voisin, True),
         lambda: _ivfpq_fastscan(_faiss(), True), tune=_set_nprobe,
         requires=("IndexIVFPQFastScan",), mapped_fraction=0.0, approx=0.05),
    Case("ivfpq_fastscan_no_residual", lambda: _ivfpq_fastscan(voisin, False),
         lambda: _ivfpq_fastscan(_faiss(), False), tune=_set_nprobe,
         requires=("IndexIVFPQFastScan",), mapped_fraction=0.0, approx=0.05),
]

def _idmap_over(lib: Any, inner: Callable[[Any], Any]) -> Any:
    xb, _, ids = data()
    index = lib.IndexIDMap2(inner(lib))
    index.add_with_ids(xb, ids)
    return index


def _inner(index: Any) -> Any:
    """The wrapped index, as its concrete class (faiss hands out base-class proxies)."""
    if isinstance(index, voisin.Index):
        return index.index
    return _faiss().downcast_index(index.index)


def _empty_ivf(lib: Any) -> Any:
    quantizer = lib.IndexFlatL2(D)
    quantizer.add(_centroids(16))
    return lib.IndexIVFFlat(quantizer, D, 16)


def _empty_hnsw(lib: Any) -> Any:
    index = lib.IndexHNSWFlat(D, 8)
    index.hnsw.efConstruction = 40
    return index


CASES += [
    Case("idmap2_ivf", lambda: _idmap_over(voisin, _empty_ivf), lambda: _idmap_over(_faiss(), _empty_ivf),
         tune=lambda index: setattr(_inner(index), "nprobe", 4), deterministic=True,
         requires=("IndexIVFFlat",), mapped_fraction=0.0),
    Case("idmap_hnsw", lambda: _idmap_over(voisin, _empty_hnsw),
         lambda: _idmap_over(_faiss(), _empty_hnsw),
         tune=lambda index: setattr(_inner(index).hnsw, "efSearch", 32),
         requires=("IndexHNSWFlat",), mapped_fraction=0.2),
]

def _hnsw_sq(lib: Any) -> Any:
    xb, _, _ = data()
    index = lib.IndexHNSWSQ(D, 0, 12)  # qtype 0 = QT_8bit in both libraries
    index.hnsw.efConstruction = 60
    index.train(xb)
    index.add(xb)
    return index


CASES += [
    Case("hnsw_sq8", lambda: _hnsw_sq(voisin), lambda: _hnsw_sq(_faiss()), tune=_set_ef,
         requires=("IndexHNSWSQ",), mapped_fraction=0.0),
]

def _bf16_exact(xq: np.ndarray) -> np.ndarray:
    """``xq`` rounded to bfloat16: on CPUs with AVX512-BF16 faiss's bf16 scanner
    rounds the query to bf16 as well (voisin keeps it float32, the exact
    distance to the decoded vectors), so only queries that bf16 holds exactly
    give the same distances from both libraries on every CPU."""
    u = np.ascontiguousarray(xq, dtype=np.float32).view(np.uint32)
    u = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return u.view(np.float32)


def _sq(lib: Any, qtype: int) -> Any:
    xb, _, _ = data()
    index = lib.IndexScalarQuantizer(D, qtype)
    index.train(xb)
    index.add(xb)
    return index


def _ivf_sq(lib: Any, qtype: int, by_residual: bool) -> Any:
    xb, _, _ = data()
    quantizer = lib.IndexFlatL2(D)
    quantizer.add(_centroids(16))
    index = lib.IndexIVFScalarQuantizer(quantizer, D, 16, qtype, lib.METRIC_L2, by_residual)
    index.train(xb)
    index.add(xb)
    return index


# FAISS's qtype numbers: 0 SQ8, 1 SQ4, 2 SQ8 uniform, 4 fp16, 6 SQ6, 7 bf16
CASES += [
    Case(f"sq_qt{qt}", (lambda qt=qt: _sq(voisin, qt)), (lambda qt=qt: _sq(_faiss(), qt)),
         deterministic=True, requires=("IndexScalarQuantizer",),
         queries=_bf16_exact if qt == 7 else (lambda xq: xq))
    for qt in (0, 1, 2, 4, 6, 7)
] + [
    Case("ivf_sq8_residual", lambda: _ivf_sq(voisin, 0, True), lambda: _ivf_sq(_faiss(), 0, True),
         tune=_set_nprobe, deterministic=True, requires=("IndexIVFScalarQuantizer",),
         mapped_fraction=0.0),
    Case("ivf_sq4", lambda: _ivf_sq(voisin, 1, False), lambda: _ivf_sq(_faiss(), 1, False),
         tune=_set_nprobe, deterministic=True, requires=("IndexIVFScalarQuantizer",),
         mapped_fraction=0.0),
]

def _rabitq(lib: Any, metric: str, nb_bits: int) -> Any:
    xb, _, _ = data()
    mt = lib.METRIC_L2 if metric == "l2" else lib.METRIC_INNER_PRODUCT
    index = lib.IndexRaBitQ(D, mt, nb_bits)
    index.train(xb)
    index.add(xb)
    index.qb = 6
    return index


def _ivf_rabitq(lib: Any, metric: str, nb_bits: int) -> Any:
    xb, _, _ = data()
    mt = lib.METRIC_L2 if metric == "l2" else lib.METRIC_INNER_PRODUCT
    quantizer = lib.IndexFlatL2(D) if metric == "l2" else lib.IndexFlatIP(D)
    quantizer.add(_centroids(16))
    index = lib.IndexIVFRaBitQ(quantizer, D, 16, mt, True, nb_bits)
    index.train(xb)
    index.add(xb)
    return index


# RaBitQ: Ixrq/Ixrr (flat) and Iwrq/Iwrr (IVF over given centroids)
CASES += [
    Case(f"rabitq{nb}_{m}", (lambda m=m, nb=nb: _rabitq(voisin, m, nb)),
         (lambda m=m, nb=nb: _rabitq(_faiss(), m, nb)), deterministic=True, requires=("IndexRaBitQ",))
    for m, nb in (("l2", 1), ("ip", 3))
] + [
    Case(f"ivf_rabitq{nb}_{m}", (lambda m=m, nb=nb: _ivf_rabitq(voisin, m, nb)),
         (lambda m=m, nb=nb: _ivf_rabitq(_faiss(), m, nb)), tune=_set_nprobe, deterministic=True,
         requires=("IndexIVFRaBitQ",), mapped_fraction=0.0)
    for m, nb in (("l2", 1), ("ip", 2))
]


def _pretransform(lib: Any, kind: str) -> Any:
    xb, _, _ = data()
    if kind == "pca":
        index = lib.IndexPreTransform(lib.PCAMatrix(D, 8), lib.IndexFlatL2(8))
    elif kind == "opq":
        opq = lib.OPQMatrix(D, 4)
        opq.niter = 3
        index = lib.IndexPreTransform(opq, lib.IndexPQ(D, 4, 4))
    elif kind == "rrot":
        index = lib.IndexPreTransform(lib.RandomRotationMatrix(D, D), lib.IndexFlatL2(D))
    else:  # L2 normalisation then inner product: cosine
        index = lib.IndexPreTransform(lib.NormalizationTransform(D, 2.0), lib.IndexFlatIP(D))
    index.train(xb)
    index.add(xb)
    return index


def _refine(lib: Any, flat: bool) -> Any:
    xb, _, _ = data()
    base = lib.IndexPQ(D, 4, 4)
    if flat:
        index = lib.IndexRefineFlat(base)
    else:
        index = lib.IndexRefine(base, lib.IndexScalarQuantizer(D, 4))  # 4 = QT_fp16
    index.train(xb)
    index.add(xb)
    return index


def _set_k_factor(index: Any) -> None:
    index.k_factor = 4.0


CASES += [
    Case(f"pretransform_{kind}", (lambda kind=kind: _pretransform(voisin, kind)),
         (lambda kind=kind: _pretransform(_faiss(), kind)), requires=("IndexPreTransform",),
         mapped_fraction=0.3 if kind in ("pca", "rrot", "norm") else 0.0)
    for kind in ("pca", "opq", "rrot", "norm")
] + [
    Case("refine_flat", lambda: _refine(voisin, True), lambda: _refine(_faiss(), True),
         tune=_set_k_factor, requires=("IndexRefineFlat",), mapped_fraction=0.5),
    Case("refine_sq", lambda: _refine(voisin, False), lambda: _refine(_faiss(), False),
         tune=_set_k_factor, requires=("IndexRefine", "IndexScalarQuantizer"), mapped_fraction=0.0),
]


def _additive(lib: Any, desc: str) -> Any:
    """An additive-quantizer index from its factory string, plain k-means training."""
    xb, _, _ = data()
    owner = lib.index_factory(D, desc)
    index = lib.downcast_index(owner) if lib is not voisin else owner
    if hasattr(index, "prq"):
        for s in range(index.prq.nsplits):
            q = index.prq.subquantizer(s)
            (lib.downcast_AdditiveQuantizer(q) if lib is not voisin else q).train_type = 0
    elif hasattr(index, "rq"):
        index.rq.train_type = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index.train(xb)
    index.add(xb)
    return owner  # faiss: the factory's object owns the C++ index the downcast views


CASES += [
    Case(f"additive_{desc}", (lambda desc=desc: _additive(voisin, desc)),
         (lambda desc=desc: _additive(_faiss(), desc)), tune=_set_nprobe if "IVF" in desc else
         (lambda index: None), requires=("IndexResidualQuantizer",), mapped_fraction=0.0)
    for desc in ("RQ3x5", "RQ2x5_Nqint8", "PRQ2x2x5_Nfloat", "IVF16,RQ2x5", "IVF16(RCQ1x4),Flat",
                 "LSQ2x4", "IVF16,LSQ2x4_Nqint8")
]

CASE_IDS = [c.name for c in CASES]


def search_both(index: Any, xq: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    D_, I_ = index.search(xq, k)
    return np.asarray(D_), np.asarray(I_)


def assert_same_search(a: Any, b: Any, xq: np.ndarray, k: int = K,
                       approx: float | None = None) -> None:
    """Two indexes (any mix of voisin and faiss) give the same (D, I) up to float rounding.

    Ids may differ only where the two distances tie; a different id at a
    non-tied rank is a real difference and fails. With ``approx`` (fast-scan),
    the median relative distance difference stays within it and 80% of the ids match.
    """
    from conftest import assert_same_results
    Da, Ia = search_both(a, xq, k)
    Db, Ib = search_both(b, xq, k)
    if approx is not None:
        rel = np.abs(Da - Db) / np.maximum(np.abs(Db), 1e-6)
        assert np.median(rel) <= approx, np.median(rel)
        overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(Ia.tolist(), Ib.tolist())])
        assert overlap >= 0.8, overlap
        return
    scale = np.abs(Da[Ia >= 0]).max() if (Ia >= 0).any() else 1.0
    assert_same_results(Da, Ia, Db, Ib, 1e-5 * (1.0 + scale))
