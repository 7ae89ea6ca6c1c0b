"""index_factory: every supported description builds the right structure, and
malformed strings fail pointing at the offending token."""

import numpy as np
import pytest

import voisin
from voisin.factory import FactoryError

D = 32


def _x(n=3000, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)).astype("float32")


@pytest.mark.parametrize("desc,check", [
    ("Flat", lambda ix: type(ix) is voisin.IndexFlat),
    ("IDMap,Flat", lambda ix: type(ix) is voisin.IndexIDMap and type(ix.index) is voisin.IndexFlat),
    ("IDMap2,Flat", lambda ix: type(ix) is voisin.IndexIDMap2),
    ("Flat,IDMap", lambda ix: type(ix) is voisin.IndexIDMap),
    ("IVF16,Flat", lambda ix: type(ix) is voisin.IndexIVFFlat and ix.nlist == 16),
    ("IVF16,SQ8", lambda ix: isinstance(ix, voisin.IndexIVFScalarQuantizer) and ix.sq.qtype == 0),
    ("IVF16,SQ4", lambda ix: ix.sq.qtype == voisin.ScalarQuantizer.QT_4bit and ix.code_size == D // 2),
    ("IVF16,SQfp16", lambda ix: ix.sq.qtype == voisin.ScalarQuantizer.QT_fp16 and ix.code_size == 2 * D),
    ("SQ8", lambda ix: type(ix) is voisin.IndexScalarQuantizer and ix.code_size == D),
    ("SQ4", lambda ix: ix.sq.qtype == voisin.ScalarQuantizer.QT_4bit),
    ("SQfp16", lambda ix: ix.sq.qtype == voisin.ScalarQuantizer.QT_fp16),
    ("SQbf16", lambda ix: ix.sq.qtype == voisin.ScalarQuantizer.QT_bf16),
    ("PCA16,Flat", lambda ix: type(ix) is voisin.IndexPreTransform and ix.chain[0].d_out == 16
     and ix.index.d == 16),
    ("PCAW16,Flat", lambda ix: ix.chain[0].eigen_power == -0.5),
    ("PCA16W,Flat", lambda ix: ix.chain[0].eigen_power == -0.5),
    ("PCAR16,Flat", lambda ix: ix.chain[0].random_rotation),
    ("PCA16WR,IVF8,Flat", lambda ix: ix.chain[0].random_rotation and ix.chain[0].eigen_power == -0.5
     and type(ix.index) is voisin.IndexIVFFlat),
    ("L2norm,Flat", lambda ix: type(ix.chain[0]) is voisin.NormalizationTransform),
    ("PCA16,L2norm,Flat", lambda ix: len(ix.chain) == 2),
    ("IVF16,SQ8,RFlat", lambda ix: type(ix) is voisin.IndexRefineFlat
     and isinstance(ix.base_index, voisin.IndexIVFScalarQuantizer)),
    ("IVF16,Flat,Refine(SQfp16)", lambda ix: type(ix) is voisin.IndexRefine
     and type(ix.refine_index) is voisin.IndexScalarQuantizer),
    ("PCA16,IVF8,SQ8,Refine(Flat)", lambda ix: type(ix) is voisin.IndexRefine
     and ix.refine_index.d == D and type(ix.base_index) is voisin.IndexPreTransform),
    ("IDMap2,PCA16,Flat", lambda ix: type(ix.index) is voisin.IndexPreTransform),
])
def test_factory_builds_and_round_trips(desc, check):
    index = voisin.index_factory(D, desc)
    assert check(index), desc
    assert index.d == D
    x = _x()
    index.train(x)
    if isinstance(index, voisin.IndexIDMap):
        index.add_with_ids(x, np.arange(len(x)) + 100)
        first = 100
    else:
        index.add(x)
        first = 0
    if hasattr(index, "nprobe"):
        index.nprobe = 16
    Dd, I = index.search(x[:5], 3)
    assert I.shape == (5, 3)
    if "SQ4" not in desc and "PCA" not in desc:
        assert I[:, 0].tolist() == list(range(first, first + 5))


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_metric_propagates(metric):
    for desc in ("Flat", "IVF8,Flat", "SQ8", "IVF8,SQ8", "PCA16,Flat", "IVF8,Flat,RFlat"):
        ix = voisin.index_factory(D, desc, metric)
        assert ix.metric_type == metric, desc
    ivf = voisin.index_factory(D, "IVF8,Flat", "ip")
    assert ivf.quantizer.metric_type == voisin.METRIC_INNER_PRODUCT


def test_factory_pq_opq_hnsw_tokens_reach_other_modules():
    pq = pytest.importorskip("voisin.indexes.pq")
    assert isinstance(voisin.index_factory(D, "PQ8"), pq.IndexPQ)
    ivfpq = voisin.index_factory(D, "IVF16,PQ8x6")
    assert type(ivfpq).__name__ == "IndexIVFPQ"
    ix = voisin.index_factory(D, "OPQ8_16,IVF4,PQ8")
    assert type(ix.chain[0]).__name__ == "OPQMatrix" and ix.index.d == 16
    assert type(voisin.index_factory(D, "IVF16,PQ8x4fs")).__name__ == "IndexIVFPQFastScan"
    pytest.importorskip("voisin.indexes.hnsw")
    assert type(voisin.index_factory(D, "HNSW16")).__name__ == "IndexHNSWFlat"
    assert type(voisin.index_factory(D, "HNSW16,Flat")).__name__ == "IndexHNSWFlat"
    assert type(voisin.index_factory(D, "HNSW16_SQ8")).__name__ == "IndexHNSWSQ"


@pytest.mark.parametrize("desc,token,why", [
    ("Flat,Foo", "Foo", "unexpected token"),
    ("Fla", "Fla", "unknown token"),
    ("IVF,Flat", "IVF", "malformed IVF"),
    ("IVF16", "IVF16", "needs a codec"),
    ("IVF16,Flatt", "Flatt", "unknown IVF codec"),
    ("IVF0,Flat", "IVF0", "nlist"),
    ("PCA64,Flat", "PCA64", "PCA output dimension"),
    ("PCAx,Flat", "PCAx", "malformed transform"),
    ("PCA16", "PCA16", "followed by an index"),
    ("PQ5", "PQ5", "not a multiple"),
    ("PQ8x4fs2", "PQ8x4fs2", "malformed PQ"),
    ("PQ8x8fs", "PQ8x8fs", "4-bit"),
    ("IDMap", "IDMap", "needs an index"),
    ("RFlat", "RFlat", "refines a base"),
    ("IVF16,SQ8,Refine(Foo)", "Foo", "unknown token"),
    ("Refine(Flat", "(", "unbalanced"),
    ("Flat)", ")", "unbalanced"),
    ("IVF16,,Flat", ",", "empty token"),
    ("OPQ5,Flat", "OPQ5", "not a multiple"),
])
def test_errors_point_at_token(desc, token, why):
    with pytest.raises(FactoryError, match=why) as info:
        voisin.index_factory(D, desc)
    msg = str(info.value)
    assert repr(token) in msg or f"'{token}'" in msg
    # the caret line sits under the token
    lines = msg.splitlines()
    caret = lines[-1]
    start = caret.index("^") - len("  index_factory('")
    assert desc[start:start + len(token)] == token


def test_bad_arguments():
    with pytest.raises(TypeError, match="description"):
        voisin.index_factory(D, 42)
    with pytest.raises(ValueError, match="dimension"):
        voisin.index_factory(0, "Flat")
    with pytest.raises(ValueError, match="metric"):
        voisin.index_factory(D, "Flat", 7)
    with pytest.raises(FactoryError, match="empty"):
        voisin.index_factory(D, "")
    assert issubclass(FactoryError, ValueError)


def test_ivf_list_count_suffixes_and_hnsw_coarse_quantizer_match_faiss():
    faiss = pytest.importorskip("faiss")
    for desc in ("IVF3k,Flat", "IVF1M,SQ8", "IVF64_HNSW16,Flat", "IVF2k_HNSW8,PQ4"):
        for metric in (voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT):
            ours = voisin.index_factory(16, desc, metric)
            theirs = faiss.index_factory(16, desc, metric)
            assert ours.nlist == theirs.nlist, desc
            q = faiss.downcast_index(theirs.quantizer)
            assert type(ours.quantizer).__name__ == type(q).__name__, desc
            assert ours.quantizer.metric_type == q.metric_type
            if hasattr(q, "hnsw"):
                assert ours.quantizer.hnsw.M == q.hnsw.nb_neighbors(1)
    for bad in ("IVF64_HNSW1,Flat", "IVF64_HNSW,Flat", "IVF3g,Flat", "IVF64_HNSW16"):
        with pytest.raises(voisin.FactoryError):
            voisin.index_factory(16, bad)


def test_ivf_with_hnsw_quantizer_searches_and_round_trips_with_faiss():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    xb = rng.random((6000, 16), dtype=np.float32)
    xq = rng.random((40, 16), dtype=np.float32)
    index = voisin.index_factory(16, "IVF128_HNSW16,Flat")
    index.train(xb)
    index.add(xb)
    assert index.quantizer.ntotal == 128
    index.nprobe = 128  # every list: exact
    D, I = index.search(xq, 5)
    exact = voisin.IndexFlatL2(16)
    exact.add(xb)
    De, _ = exact.search(xq, 5)
    np.testing.assert_allclose(D, De, rtol=1e-5, atol=1e-5)
    f = faiss.deserialize_index(voisin.serialize_index(index))
    assert isinstance(faiss.downcast_index(f.quantizer), faiss.IndexHNSWFlat)
    index.nprobe = f.nprobe = 8
    faiss.downcast_index(f.quantizer).hnsw.efSearch = index.quantizer.hnsw.efSearch = 64
    assert (f.search(xq, 5)[1] == index.search(xq, 5)[1]).mean() >= 0.99


@pytest.mark.parametrize("desc", ["IVF256(PQ4),Flat", "IVF16(IVF4,Flat),Flat", "IVF32(HNSW8),SQ8",
                                  "IVF32(SQ8),PQ4", "IVF64_NSG16,Flat"])
def test_nested_coarse_quantizer_builds_trains_and_matches_faiss_types(desc):
    faiss = pytest.importorskip("faiss")
    x = np.random.default_rng(0).normal(size=(4000, 16)).astype("float32")
    index = voisin.index_factory(16, desc)
    ref = faiss.index_factory(16, desc)
    assert type(index).__name__ == type(faiss.downcast_index(ref)).__name__
    assert type(index.quantizer).__name__ == type(faiss.downcast_index(ref.quantizer)).__name__
    index.train(x)
    index.add(x)
    assert index.quantizer.ntotal == index.nlist
    # the quantizer holds the k-means centroids: each vector's list is its nearest one
    # as far as the quantizer can tell
    index.nprobe = index.nlist
    _, I = index.search(x[:50], 1)
    assert (I[:, 0] == np.arange(50)).mean() >= 0.9
    # a FAISS file: faiss reads the nested quantizer and answers the same
    index.nprobe = 4
    back = faiss.deserialize_index(voisin.serialize_index(index))
    back.nprobe = 4
    np.testing.assert_array_equal(back.search(x[:50], 5)[1], index.search(x[:50], 5)[1])


def test_nested_coarse_quantizer_errors_point_at_the_inner_token():
    with pytest.raises(voisin.FactoryError, match="Bogus"):
        voisin.index_factory(16, "IVF32(Bogus),Flat")
    with pytest.raises(voisin.FactoryError, match="needs a codec"):
        voisin.index_factory(16, "IVF32(PQ4)")


@pytest.mark.parametrize("desc", ["IVF16,PQ4x4fs", "IVF16,PQ4x4fsr", "IVF16,PQ4x4fs_64", "PQ4x4fs_64",
                                  "IVF16,PQ4x4fsr_64", "HNSW16_Flat", "IVF16,SQ6", "SQ6"])
def test_suffixes_build_what_faiss_builds(desc):
    faiss = pytest.importorskip("faiss")
    ref = faiss.downcast_index(faiss.index_factory(16, desc))
    index = voisin.index_factory(16, desc)
    assert type(index).__name__ == type(ref).__name__
    for attr in ("by_residual", "M", "code_size"):
        if hasattr(ref, attr) and not callable(getattr(ref, attr)):
            assert getattr(index, attr) == getattr(ref, attr), attr
    if "fs_" in desc:
        assert index.bbs == ref.bbs


@pytest.mark.parametrize("desc,why", [("PQ4x4fsr", "IVF fast-scan only"), ("PQ4x4fs_48", "multiple of 32")])
def test_fastscan_suffix_errors(desc, why):
    with pytest.raises(voisin.FactoryError, match=why):
        voisin.index_factory(16, desc)
