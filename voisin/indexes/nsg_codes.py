"""IndexNSGPQ and IndexNSGSQ: FAISS's NSG graph over a compressed storage.

As in FAISS, ``index.storage`` is an :class:`IndexPQ` / :class:`IndexScalarQuantizer`
that holds the codes; the graph (``index.nsg``) holds positions in it. The build is
FAISS's ``IndexNSG::add`` over the storage's distances: the k-NN graph (NN-Descent,
``build_type`` 1, or exact, 0) and the NSG pruning compare *decoded* vectors with each
other, which is what FAISS's code-to-code distances are (PQ: the symmetric table; SQ:
both codes decoded). voisin runs that build on a temporary float copy of the decoded
codes, with the float kernels of :mod:`voisin.kernels.graph_build`.

A search compares the float query with the codes, as FAISS does (PQ: the query's
distance table, ADC; SQ: the decoded components), through
:mod:`voisin.kernels.graph_codes`: 8-bit codes in place, PQ codes of fewer bits
unpacked to one byte per sub-quantizer. The other code sizes (PQ with nbits > 8,
SQ4, SQ6, fp16, bf16) keep a decoded float copy for the walk, voisin's one difference
in memory from FAISS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_int
from ..kernels import graph_codes as KC
from ..kernels import graphs as KG
from ..metric import METRIC_L2, check_metric
from ..selector import IDSelector
from .graph_flat import IndexNSGFlat
from .hnsw import sq8_params  # (hnsw_sq imports hnsw first)
from .pq import IndexPQ
from .sq import IndexScalarQuantizer

_NO_MASK = np.zeros(0, dtype=np.bool_)


class _IndexNSGCodes(IndexNSGFlat):
    """What IndexNSGPQ and IndexNSGSQ share: a code storage, a graph built over the
    decoded codes, a walk over the codes."""

    _extra_metrics = False

    def __init__(self, d: int, R: int, metric: int):
        super().__init__(d, R, metric)
        self.is_trained = False

    # --- what a subclass supplies ---------------------------------------------------
    def _walk_fields(self, codes: np.ndarray) -> tuple | None:
        """(kernel, fields) walking ``codes`` in place, or None for a decoded copy."""
        raise NotImplementedError

    def _on_trained(self) -> None:
        """Refresh what the walk needs from the trained codec."""

    # --- FAISS's mutators -----------------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        self.storage.train(x)
        self._on_trained()
        self.is_trained = True

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                f"{type(self).__name__} numbers vectors by position and cannot take ids: "
                f"wrap it, e.g. IndexIDMap({type(self).__name__}(...)).add_with_ids(x, ids)")
        new = self.storage.sa_encode(x)
        old = self.storage.codes
        codes = np.concatenate([old, new]) if old.shape[0] else new
        # the graph is built over old + new rows (a later add rebuilds it, as
        # IndexNSGFlat does; FAISS refuses a second add); a failed build changes nothing
        X = self.storage.sa_decode(codes)
        X.flags.writeable = False
        graph, ep = self._build(X)
        self.storage._append(new)
        self._install_codes(self.storage.codes, graph, ep, X)
        self.ntotal = self.storage.ntotal

    def _install_codes(self, codes: np.ndarray, graph: np.ndarray, ep: int,
                       decoded: np.ndarray | None = None) -> None:
        walk = self._walk_fields(codes)
        if walk is None:
            rows = self.storage.sa_decode(codes) if decoded is None else decoded
            walk = (None, (rows,))
        self._install(codes, graph, ep)
        X, graph, (ep, fills) = self._snap
        self._snap = (X, graph, (ep, fills, walk))

    def load_state(self, codes: np.ndarray, graph: np.ndarray, enterpoint: int) -> None:
        """Install stored codes (n, code_size) (already in ``storage``), a graph (n, R)
        with -1 padding and its navigation node, read from a file."""
        self.ntotal = codes.shape[0]
        if codes.shape[0]:
            self._install_codes(codes, graph, enterpoint)

    def _reset(self) -> None:
        self.storage.reset()
        self._snap = None
        self.ntotal = 0
        self._clear()

    def _remove(self, sel: IDSelector) -> int:
        raise NotImplementedError(
            f"{type(self).__name__} cannot remove vectors (its graph is built once over all "
            "of them, as in FAISS): rebuild the index without them")

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        return self.storage._reconstruct_keys(keys)

    def _synced_storage(self):
        return self.storage

    @property
    def xb(self) -> np.ndarray:
        raise AttributeError(f"{type(self).__name__} stores codes, not vectors: use "
                             "index.codes, or reconstruct_n(0, ntotal) for the decoded rows")

    @property
    def codes(self) -> np.ndarray:
        """The stored codes (ntotal, code_size) uint8, read-only."""
        return self.storage.codes

    def _walk(self, snap, x, k, D, I, filt) -> None:
        X, graph, (ep, fills, (kernel, fields)) = snap
        n = X.shape[0]
        size = self._pool_size(k, n) if filt is None else filt[0]
        fill = fills.get(size)
        if fill is None:
            fill = fills[size] = self._fill(n, size)
        metric = self._kmetric
        if kernel is None:  # a decoded float copy
            rows = fields[0]
            if filt is None:
                KG.nsg_search(graph, rows, x, metric, self._karg, ep, size, fill, k, D, I)
            else:
                KG.nsg_search_filtered(graph, rows, x, metric, self._karg, ep, size, fill, k,
                                       filt[1], D, I)
            return
        mask = _NO_MASK if filt is None else filt[1]
        kernel(graph, *fields, x, metric, ep, size, fill, k, mask, D, I)


class IndexNSGPQ(_IndexNSGCodes):
    """An NSG graph over product-quantizer codes (FAISS's ``IndexNSGPQ``).

    ``pq_m`` sub-quantizers of ``pq_nbits`` bits (``storage`` is an :class:`IndexPQ`,
    L2 only, as in FAISS); out-degree ``R``. Needs ``train`` before ``add``. The graph
    knobs are IndexNSGFlat's (``nsg.search_L``, ``GK``, ``build_type``...). Factory:
    ``"NSG{R},PQ{m}[x{nbits}][np]"`` (``np``: no polysemous training, which the
    factory otherwise turns on, as FAISS's does).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((2000, 16), dtype="float32")
        >>> index = voisin.IndexNSGPQ(16, 8, 32)
        >>> index.train(xb); index.add(xb)
        >>> index.nsg.search_L = 32
        >>> D, I = index.search(xb[:3], 5)
        >>> I.shape, index.codes.shape
        ((3, 5), (2000, 8))
    """

    def __init__(self, d: int, pq_m: int = 8, R: int = 32, pq_nbits: int = 8):
        super().__init__(d, R, METRIC_L2)
        self.storage = IndexPQ(self.d, check_int(pq_m, "pq_m", lo=1),
                               check_int(pq_nbits, "pq_nbits", lo=1, hi=16))
        self.is_trained = False

    @property
    def pq(self):
        """The storage's ProductQuantizer."""
        return self.storage.pq

    def _walk_fields(self, codes):
        pq = self.storage.pq
        if pq.nbits > 8:
            return None
        if pq.nbits < 8:
            # packed codes: the walk reads one byte per sub-quantizer (M bytes a vector)
            codes = np.ascontiguousarray(pq.unpack(codes), dtype=np.uint8)
        return (KC.nsg_search_pq, (codes, np.ascontiguousarray(pq.centroids, np.float32)))

    def set_storage(self, storage: IndexPQ) -> None:
        """Install a storage read from a file (the graph must be empty)."""
        if self.ntotal:
            raise RuntimeError("set_storage: the index already holds vectors")
        if not isinstance(storage, IndexPQ) or storage.d != self.d:
            raise ValueError(f"storage: expected an IndexPQ of d={self.d}, got {storage!r}")
        self.storage = storage
        self.is_trained = bool(storage.is_trained)


class IndexNSGSQ(_IndexNSGCodes):
    """An NSG graph over scalar-quantizer codes (FAISS's ``IndexNSGSQ``).

    ``storage`` is an :class:`IndexScalarQuantizer` of ``qtype`` (QT_8bit by default;
    every FAISS type works, 8-bit ones are walked in place); metric L2 or inner
    product; out-degree ``R``. Needs ``train`` before ``add`` (except QT_8bit_direct).
    Factory: ``"NSG{R},SQ8"`` (also SQ4, SQ6, SQfp16, SQbf16, SQ8_direct...).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((2000, 16), dtype="float32")
        >>> index = voisin.index_factory(16, "NSG32,SQ8")
        >>> index.train(xb); index.add(xb)
        >>> index.search(xb[:3], 1)[1].ravel().tolist()
        [0, 1, 2]
    """

    def __init__(self, d: int, qtype: int = 0, R: int = 32, metric: int = METRIC_L2):
        super().__init__(d, R, check_metric(metric))
        self.storage = IndexScalarQuantizer(self.d, check_int(qtype, "qtype"), self.metric_type)
        self.is_trained = bool(self.storage.is_trained)
        self._on_trained()

    @property
    def sq(self):
        """The storage's ScalarQuantizer."""
        return self.storage.sq

    def _on_trained(self) -> None:
        self._sqp = sq8_params(self.storage.sq, self.d) if self.storage.is_trained else None

    def _walk_fields(self, codes):
        from ..codecs.sq import QT_8bit, QT_8bit_direct, QT_8bit_uniform
        if self.storage.sq.qtype not in (QT_8bit, QT_8bit_uniform, QT_8bit_direct):
            return None
        if self._sqp is None:
            self._on_trained()
        return (KC.nsg_search_sq8, (codes, self._sqp))

    def set_storage(self, storage: IndexScalarQuantizer) -> None:
        """Install a storage read from a file (the graph must be empty)."""
        if self.ntotal:
            raise RuntimeError("set_storage: the index already holds vectors")
        if not isinstance(storage, IndexScalarQuantizer) or storage.d != self.d \
                or storage.metric_type != self.metric_type:
            raise ValueError(f"storage: expected an IndexScalarQuantizer of d={self.d} and "
                             f"this metric, got {storage!r}")
        self.storage = storage
        self.is_trained = bool(storage.is_trained)
        self._on_trained()
