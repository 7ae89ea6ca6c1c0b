"""voisin.contrib against faiss.contrib: the same functions on the same inputs
give the same outputs (indexes loaded from one faiss file where an index is
involved)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import voisin
from conftest import assert_same_results, dataset_path, faiss_twins, tolerance
from voisin.contrib import (big_batch_search, datasets, evaluation, exhaustive_search,
                            inspect_tools, ivf_tools, ondisk, vecs_io)

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.usefixtures("faiss_single_thread")
from faiss.contrib import big_batch_search as f_bbs  # noqa: E402
from faiss.contrib import datasets as f_datasets  # noqa: E402
from faiss.contrib import evaluation as f_evaluation  # noqa: E402
from faiss.contrib import exhaustive_search as f_exhaustive  # noqa: E402
from faiss.contrib import inspect_tools as f_inspect  # noqa: E402
from faiss.contrib import ivf_tools as f_ivf_tools  # noqa: E402
from faiss.contrib import ondisk as f_ondisk  # noqa: E402
from faiss.contrib import vecs_io as f_vecs_io  # noqa: E402


@pytest.fixture(scope="module")
def ds():
    return datasets.SyntheticDataset(24, 2000, 4000, 60)


# --------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_synthetic_dataset_is_faiss_data(metric):
    ours = datasets.SyntheticDataset(32, 500, 1500, 40, metric=metric, seed=7)
    theirs = f_datasets.SyntheticDataset(32, 500, 1500, 40, metric=metric, seed=7)
    np.testing.assert_array_equal(ours.get_train(), theirs.get_train())
    np.testing.assert_array_equal(ours.get_database(), theirs.get_database())
    np.testing.assert_array_equal(ours.get_queries(), theirs.get_queries())
    np.testing.assert_array_equal(ours.get_train(100), theirs.get_train(100))
    np.testing.assert_array_equal(ours.get_groundtruth(10), theirs.get_groundtruth(10))
    assert str(ours) == str(theirs)
    ours.check_sizes()
    ours_blocks = list(ours.database_iterator(bs=400, split=(2, 1)))
    theirs_blocks = list(theirs.database_iterator(bs=400, split=(2, 1)))
    assert [b.shape for b in ours_blocks] == [b.shape for b in theirs_blocks]
    np.testing.assert_array_equal(np.vstack(ours_blocks), np.vstack(theirs_blocks))


def test_file_datasets_name_missing_files(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "dataset_basedir", str(tmp_path) + "/")
    for make in (datasets.DatasetSIFT1M, datasets.DatasetGIST1M, lambda: datasets.DatasetBigANN(1),
                 lambda: datasets.DatasetDeep1B(10 ** 6), datasets.DatasetMusic100):
        d = make()
        with pytest.raises(FileNotFoundError, match=f"{type(d).__name__}: .* not found"):
            d.get_queries()
    with pytest.raises(FileNotFoundError, match="glove-100-angular.hdf5 not found"):
        datasets.DatasetGlove()
    with pytest.raises(ValueError, match="nb_M: expected one of"):
        datasets.DatasetBigANN(3)
    with pytest.raises(ValueError, match="dataset: unknown dataset 'nope'"):
        datasets.dataset_from_name("nope")
    assert isinstance(datasets.dataset_from_name("deep1M"), datasets.DatasetDeep1B)
    assert datasets.dataset_from_name("bigann10M").nb == 10 ** 7


def test_sift1m_layout_reads_texmex_files(tmp_path, monkeypatch):
    rs = np.random.RandomState(0)
    root = tmp_path / "sift1M"
    root.mkdir()
    xq, xb = rs.rand(5, 128).astype(np.float32), rs.rand(50, 128).astype(np.float32)
    f_vecs_io.fvecs_write(str(root / "sift_query.fvecs"), xq)
    f_vecs_io.fvecs_write(str(root / "sift_base.fvecs"), xb)
    f_vecs_io.fvecs_write(str(root / "sift_learn.fvecs"), xb[:20])
    f_vecs_io.ivecs_write(str(root / "sift_groundtruth.ivecs"), rs.randint(0, 50, (5, 100)))
    datasets.set_dataset_basedir(str(tmp_path))
    try:
        d = datasets.DatasetSIFT1M()
        np.testing.assert_array_equal(d.get_queries(), xq)
        np.testing.assert_array_equal(d.get_train(7), xb[:7])
        assert d.get_groundtruth(10).shape == (5, 10)
        with pytest.raises(ValueError, match="k: the ground truth holds 100"):
            d.get_groundtruth(101)
    finally:
        monkeypatch.setattr(datasets, "dataset_basedir", "data/")


def test_ann_benchmarks_dataset_from_shared_files():
    path = dataset_path("siftsmall-128-euclidean")
    d = datasets.dataset_from_name("siftsmall-128-euclidean")
    assert (d.d, d.nb, d.nq, d.metric) == (128, 10000, 100, "L2")
    d.check_sizes()
    glove = datasets.DatasetGlove(loc=path)  # FAISS's class reads any ann-benchmarks file
    gt = glove.get_groundtruth(5)
    D, I = voisin.knn(d.get_queries(), d.get_database(), 5)
    assert (I[:, 0] == gt[:, 0]).mean() > 0.95


# --------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------

def _range(index, xq, r):
    lims, D, I = index.range_search(xq, r)
    return lims, D, I


def test_evaluation_functions_equal_faiss(ds):
    xq, xb = ds.get_queries(), ds.get_database()
    exact = voisin.IndexFlatL2(24)
    exact.add(xb)
    D, I = exact.search(xq, 20)
    approx = voisin.index_factory(24, "PQ6x4")
    approx.train(ds.get_train())
    approx.add(xb)
    Da, Ia = approx.search(xq, 20)
    assert evaluation.knn_intersection_measure(I, Ia) == f_evaluation.knn_intersection_measure(I, Ia)
    r = float(np.median(D[:, 10]))
    Lr, Dr, Ir = _range(exact, xq, r)
    Ln, Dn, In = _range(approx, xq, r)
    for mode in ("overall", "average"):
        assert evaluation.range_PR(Lr, Ir, Ln, In, mode) == pytest.approx(
            f_evaluation.range_PR(Lr, Ir, Ln, In, mode))
        thresholds = np.linspace(0, r, 6)
        ours = evaluation.range_PR_multiple_thresholds(Lr, Ir, Ln, Dn, In, thresholds, mode)
        theirs = f_evaluation.range_PR_multiple_thresholds(Lr, Ir, Ln, Dn, In, thresholds, mode)
        np.testing.assert_allclose(ours, theirs)
    for a, b in zip(evaluation.filter_range_results(Lr, Dr, Ir, r / 2),
                    f_evaluation.filter_range_results(Lr, Dr, Ir, r / 2)):
        np.testing.assert_array_equal(a, b)
    I2, D2 = evaluation.sort_range_res_2(Ln, Dn, In)
    I2f, D2f = f_evaluation.sort_range_res_2(Ln, Dn, In)
    np.testing.assert_array_equal(D2, D2f)
    np.testing.assert_array_equal(evaluation.sort_range_res_1(Lr, Ir),
                                  f_evaluation.sort_range_res_1(Lr, Ir))
    ngt, nres = np.array([0, 3, 5, 0]), np.array([0, 2, 5, 1])
    ninter = np.array([0, 1, 4, 0])
    for mode in ("overall", "average"):
        assert evaluation.counts_to_PR(ngt, nres, ninter, mode) == pytest.approx(
            f_evaluation.counts_to_PR(ngt.copy(), nres.copy(), ninter.copy(), mode))
    with pytest.raises(ValueError, match="mode: expected 'overall' or 'average'"):
        evaluation.counts_to_PR(ngt, nres, ninter, "median")


def test_reference_checks_accept_ties_and_catch_errors(ds):
    D = np.array([[0.0, 1.0, 1.0, 2.0]], dtype=np.float32)
    I = np.array([[5, 7, 8, 9]])
    evaluation.check_ref_knn_with_draws(D, I, D, np.array([[5, 8, 7, 9]]))
    f_evaluation.check_ref_knn_with_draws(D, I, D, np.array([[5, 8, 7, 9]]))
    with pytest.raises(AssertionError):
        evaluation.check_ref_knn_with_draws(D, I, D, np.array([[5, 7, 3, 9]]))
    L = np.array([0, 2, 3], dtype=np.uint64)
    evaluation.check_ref_range_results(L, np.array([1.0, 2.0, 3.0]), np.array([4, 5, 6]),
                                       L, np.array([2.0, 1.0, 3.0]), np.array([5, 4, 6]))
    with pytest.raises(AssertionError):
        evaluation.check_ref_range_results(L, np.ones(3), np.array([4, 5, 6]),
                                           L, np.ones(3), np.array([4, 5, 7]))


def test_operating_points_equal_faiss():
    ours, theirs = evaluation.OperatingPointsWithRanges(), f_evaluation.OperatingPointsWithRanges()
    for op in (ours, theirs):
        op.add_range("nprobe", [1, 2, 4, 8, 16])
        op.add_range("k_factor", [1, 2, 4])
    assert ours.num_experiments() == theirs.num_experiments() == 15
    assert ours.sample_experiments(0) == theirs.sample_experiments(0)
    assert ours.sample_experiments(6) == theirs.sample_experiments(6)
    rs = np.random.RandomState(0)
    for cno in ours.sample_experiments(0):
        key = ours.cno_to_key(cno)
        np.testing.assert_array_equal(key, theirs.cno_to_key(cno))
        assert ours.get_parameters(key) == theirs.get_parameters(key)
        assert ours.should_run_experiment(key) == theirs.should_run_experiment(key)
        perf, t = float(key.sum() / 6 + rs.rand() * 0.1), float(key.sum() + rs.rand())
        assert ours.add_operating_point(key, perf, t) == theirs.add_operating_point(key, perf, t)
    assert [p[1:] for p in ours.operating_points] == [p[1:] for p in theirs.operating_points]
    ours.restrict_range("nprobe", 8)
    assert ours.ranges[0][1] == [1, 2, 4]
    timer = evaluation.RepeatTimer(warmup=1, runs=4, nt=1)
    for _ in timer:
        sum(range(1000))
    assert timer.nruns() == 3 and timer.ms() >= 0 and timer.ms_std() >= 0


# --------------------------------------------------------------------------
# exhaustive_search
# --------------------------------------------------------------------------

@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_ground_truth_over_blocks_equals_faiss(ds, metric):
    xq, xb = ds.get_queries(), ds.get_database()
    D, I = exhaustive_search.knn_ground_truth(xq, ds.database_iterator(bs=700), 10, metric)
    Df, If = f_exhaustive.knn_ground_truth(xq, ds.database_iterator(bs=700), 10, metric)
    assert_same_results(D, I, Df, If, tolerance(xq, xb, metric))
    r = float(np.median(D[:, 5]))
    L, Dr, Ir = exhaustive_search.range_ground_truth(xq, ds.database_iterator(bs=700), r, metric)
    Lf, Drf, Irf = f_exhaustive.range_ground_truth(xq, ds.database_iterator(bs=700), r, metric)
    evaluation.check_ref_range_results(Lf, Drf, Irf, L, Dr, Ir)


def test_range_search_max_results_and_thresholds_equal_faiss(ds):
    xq, xb = ds.get_queries(), ds.get_database()
    ours, theirs = voisin.IndexFlatL2(24), faiss.IndexFlatL2(24)
    ours.add(xb)
    theirs.add(xb)
    D, _ = ours.search(xq, 50)
    radius = float(D[:, 40].max())
    res = exhaustive_search.range_search_max_results(
        ours, exhaustive_search.exponential_query_iterator(xq, 8, 20), radius, max_results=1000)
    resf = f_exhaustive.range_search_max_results(
        theirs, f_exhaustive.exponential_query_iterator(xq, 8, 20), radius, max_results=1000)
    assert res[0] == pytest.approx(resf[0], rel=1e-5)
    evaluation.check_ref_range_results(resf[1], resf[2], resf[3], res[1], res[2], res[3])
    lims, Dr, Ir = ours.range_search(xq, radius)
    for a, b in zip(exhaustive_search.threshold_radius(lims, Dr, Ir, radius / 2),
                    f_exhaustive.threshold_radius(lims, Dr, Ir, radius / 2)):
        np.testing.assert_array_equal(a, b)
    assert [len(b) for b in exhaustive_search.exponential_query_iterator(np.zeros((100, 2)), 32, 50)] \
        == [len(b) for b in f_exhaustive.exponential_query_iterator(np.zeros((100, 2)), 32, 50)]
    # the knn-then-range emulation gives the range results
    L2, D2, I2 = exhaustive_search.range_search_gpu(xq, radius, ours, xb, gpu_k=20)
    evaluation.check_ref_range_results(lims, Dr, Ir, L2, D2, I2)
    with pytest.raises(ValueError, match="ngpu: voisin runs on CPU only"):
        exhaustive_search.knn_ground_truth(xq, [xb], 5, ngpu=2)


# --------------------------------------------------------------------------
# inspect_tools and ivf_tools
# --------------------------------------------------------------------------

def test_inspect_tools_equal_faiss(ds):
    xb = ds.get_database()
    f, v = faiss_twins("IVF8,Flat", xb)
    np.testing.assert_array_equal(inspect_tools.get_invlist_sizes(v.invlists),
                                  f_inspect.get_invlist_sizes(f.invlists))
    for l in range(8):
        ids, codes = inspect_tools.get_invlist(v.invlists, l)
        fids, fcodes = f_inspect.get_invlist(f.invlists, l)
        np.testing.assert_array_equal(ids, fids)
        np.testing.assert_array_equal(codes, fcodes)
    fpq, vpq = faiss_twins("PQ4x4", xb)
    np.testing.assert_array_equal(inspect_tools.get_pq_centroids(vpq.pq),
                                  f_inspect.get_pq_centroids(fpq.pq))
    np.testing.assert_array_equal(inspect_tools.get_flat_codes(vpq), f_inspect.get_flat_codes(fpq))
    fflat, vflat = faiss_twins("Flat", xb[:100])
    np.testing.assert_array_equal(inspect_tools.get_flat_data(vflat), f_inspect.get_flat_data(fflat))
    np.testing.assert_array_equal(inspect_tools.get_flat_codes(vflat), f_inspect.get_flat_codes(fflat))
    fpca = faiss.PCAMatrix(24, 8)
    fpca.train(xb)
    w = faiss.VectorIOWriter()
    faiss.write_VectorTransform(fpca, w)
    r = voisin.VectorIOReader()
    voisin.copy_array_to_vector(faiss.vector_to_array(w.data), r.data)
    vpca = voisin.read_VectorTransform(r)
    for a, b in zip(inspect_tools.get_LinearTransform_matrix(vpca),
                    f_inspect.get_LinearTransform_matrix(fpca)):
        np.testing.assert_array_equal(a, b)
    A, b = inspect_tools.get_LinearTransform_matrix(vpca)
    lt = inspect_tools.make_LinearTransform_matrix(A, b)
    np.testing.assert_allclose(lt.apply(xb[:5]), vpca.apply(xb[:5]), atol=1e-5)
    with pytest.raises(TypeError, match="index: expected an IndexFlat"):
        inspect_tools.get_flat_data(v)
    with pytest.raises(ValueError, match="l: expected an integer <= 7"):
        inspect_tools.get_invlist(v.invlists, 8)


def test_ivf_tools_equal_faiss(ds):
    xq, xb = ds.get_queries(), ds.get_database()
    f, v = faiss_twins("IVF16,Flat", xb, add=False)
    assign = np.random.RandomState(0).randint(0, 16, size=xb.shape[0])
    f_ivf_tools.add_preassigned(f, xb, assign)
    ivf_tools.add_preassigned(v, xb, assign)
    f.nprobe = v.nprobe = 3
    lists = np.random.RandomState(1).randint(0, 16, size=(xq.shape[0], 3))
    D, I = ivf_tools.search_preassigned(v, xq, 5, lists)
    Df, If = f_ivf_tools.search_preassigned(f, xq, 5, lists)
    assert_same_results(D, I, Df, If, tolerance(xq, xb, voisin.METRIC_L2))
    r = float(np.median(D[:, 2]))
    got = ivf_tools.range_search_preassigned(v, xq, r, lists)
    ref = f_ivf_tools.range_search_preassigned(f, xq, r, lists)
    evaluation.check_ref_range_results(ref[0], ref[1], ref[2], got[0], got[1], got[2])
    perm = np.random.RandomState(2).permutation(16)
    f_ivf_tools.permute_invlists(f, perm)
    ivf_tools.permute_invlists(v, perm)
    np.testing.assert_array_equal(inspect_tools.get_invlist_sizes(v.invlists),
                                  f_inspect.get_invlist_sizes(f.invlists))
    f.nprobe = v.nprobe = 4
    assert_same_results(*v.search(xq, 5), *f.search(xq, 5), tolerance(xq, xb, voisin.METRIC_L2))
    ivf_tools.sort_invlists_by_size(v)
    sizes = inspect_tools.get_invlist_sizes(v.invlists)
    assert (np.diff(sizes) >= 0).all()
    old = ivf_tools.replace_ivf_quantizer(v, voisin.IndexHNSWFlat(24, 8))
    assert isinstance(old, voisin.IndexFlatL2) and v.quantizer.ntotal == 16
    with pytest.raises(ValueError, match="a: list numbers must lie in \\[0, 16\\)"):
        ivf_tools.add_preassigned(v, xb[:2], np.array([0, 16]))
    with pytest.raises(ValueError, match="perm: expected a permutation"):
        ivf_tools.permute_invlists(v, np.zeros(16, dtype=int))


def test_search_preassigned_through_a_pretransform(ds):
    xq, xb = ds.get_queries(), ds.get_database()
    f, v = faiss_twins("PCA16,IVF8,Flat", xb)
    fivf = faiss.extract_index_ivf(f)
    _, lists = fivf.quantizer.search(f.chain.at(0).apply(xq), 2)
    fivf.nprobe = voisin.extract_index_ivf(v).nprobe = 2
    D, I = ivf_tools.search_preassigned(v, xq, 4, lists)
    Df, If = f_ivf_tools.search_preassigned(f, xq, 4, lists)
    assert_same_results(D, I, Df, If, 1e-3)


# --------------------------------------------------------------------------
# big_batch_search and ondisk
# --------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["IVF16,Flat", "IVF16,PQ6x4", "IVF16,SQ8"])
@pytest.mark.parametrize("method", ["knn_function", "pairwise_distances", "index"])
def test_big_batch_search_equals_search(ds, key, method):
    xq, xb = ds.get_queries(), ds.get_database()
    f, v = faiss_twins(key, xb)
    v.nprobe = f.nprobe = 4
    D, I = big_batch_search.big_batch_search(v, xq, 10, method=method)
    Ds, Is = v.search(xq, 10)
    tol = 1e-3 * float(np.abs(Ds).max())
    assert_same_results(D, I, Ds, Is, tol)
    if key == "IVF16,Flat":
        Df, If = f_bbs.big_batch_search(f, xq, 10, method=method)
        assert_same_results(D, I, Df, If, tol)


def test_big_batch_search_threads_and_checkpoint(ds, tmp_path):
    xq, xb = ds.get_queries(), ds.get_database()
    _, v = faiss_twins("IVF16,Flat", xb)
    v.nprobe = 5
    ref = big_batch_search.big_batch_search(v, xq, 8)
    for threaded in (1, 2):
        got = big_batch_search.big_batch_search(v, xq, 8, threaded=threaded, prefetch_threads=2,
                                                computation_threads=2)
        np.testing.assert_array_equal(got[1], ref[1])
    ckp = str(tmp_path / "bbs.ckp")
    with pytest.raises(RuntimeError, match="crash_at: stopping at list 9"):
        big_batch_search.big_batch_search(v, xq, 8, checkpoint=ckp, checkpoint_freq=0, crash_at=9)
    assert os.path.exists(ckp)
    resumed = big_batch_search.big_batch_search(v, xq, 8, checkpoint=ckp, checkpoint_freq=0)
    np.testing.assert_array_equal(resumed[1], ref[1])
    np.testing.assert_array_equal(resumed[0], ref[0])
    with pytest.raises(TypeError, match="index: IndexHNSWFlat is not supported"):
        big_batch_search.big_batch_search(voisin.IndexHNSWFlat(24, 8), xq, 3)
    with pytest.raises(ValueError, match="method: expected"):
        big_batch_search.big_batch_search(v, xq, 3, method="gpu")


def test_merge_ondisk_equals_faiss(ds, tmp_path):
    xq, xb = ds.get_queries(), ds.get_database()
    f_trained, v_trained = faiss_twins("IVF16,Flat", xb, add=False)
    trained_bytes = faiss.serialize_index(f_trained)
    names_f, names_v = [], []
    for i in range(3):
        part = slice(i * 1333, (i + 1) * 1333 if i < 2 else 4000)
        fs = faiss.clone_index(f_trained)
        fs.add_with_ids(xb[part], np.arange(4000)[part])
        names_f.append(str(tmp_path / f"f{i}.index"))
        faiss.write_index(fs, names_f[-1])
        vs = voisin.clone_index(v_trained)
        vs.add_with_ids(xb[part], np.arange(4000)[part])
        names_v.append(str(tmp_path / f"v{i}.index"))
        voisin.write_index(vs, names_v[-1])
    f_ondisk.merge_ondisk(f_trained, names_f, str(tmp_path / "f.ivfdata"))
    ondisk.merge_ondisk(v_trained, names_v, str(tmp_path / "v.ivfdata"))
    assert v_trained.ntotal == f_trained.ntotal == 4000
    f_trained.nprobe = v_trained.nprobe = 4
    assert_same_results(*v_trained.search(xq, 10), *f_trained.search(xq, 10),
                        tolerance(xq, xb, voisin.METRIC_L2))
    for l in range(16):
        np.testing.assert_array_equal(inspect_tools.get_invlist(v_trained.invlists, l)[0],
                                      f_inspect.get_invlist(f_trained.invlists, l)[0])
    # the merged index is an ordinary index: it saves, reloads and takes more vectors
    path = str(tmp_path / "merged.index")
    voisin.write_index(v_trained, path)
    back = voisin.read_index(path)
    np.testing.assert_array_equal(back.search(xq, 5)[1], v_trained.search(xq, 5)[1])
    v_trained.add_with_ids(xb[:2], np.array([5000, 5001]))
    assert v_trained.ntotal == 4002
    # faiss's shard files merge too, with shifted ids
    fresh = voisin.deserialize_index(trained_bytes)
    ondisk.merge_ondisk(fresh, names_f[:2], str(tmp_path / "g.ivfdata"), shift_ids=True)
    assert fresh.ntotal == 2666
    with pytest.raises(ValueError, match="trained_index: must be empty"):
        ondisk.merge_ondisk(fresh, names_f, str(tmp_path / "h.ivfdata"))


# --------------------------------------------------------------------------
# vecs_io
# --------------------------------------------------------------------------

def test_vecs_io_round_trips_with_faiss(tmp_path):
    rs = np.random.RandomState(0)
    x = rs.rand(30, 7).astype(np.float32)
    ids = rs.randint(0, 1000, size=(30, 5))
    codes = rs.randint(0, 256, size=(30, 9)).astype(np.uint8)
    fv, iv, bv = (str(tmp_path / n) for n in ("a.fvecs", "a.ivecs", "a.bvecs"))
    vecs_io.fvecs_write(fv, x)
    vecs_io.ivecs_write(iv, ids)
    vecs_io.bvecs_write(bv, codes)
    np.testing.assert_array_equal(f_vecs_io.fvecs_read(fv), x)
    np.testing.assert_array_equal(f_vecs_io.ivecs_read(iv), ids)
    np.testing.assert_array_equal(f_vecs_io.bvecs_mmap(bv), codes)
    f_vecs_io.fvecs_write(fv, x * 2)
    np.testing.assert_array_equal(vecs_io.fvecs_read(fv), x * 2)
    np.testing.assert_array_equal(vecs_io.fvecs_mmap(fv), f_vecs_io.fvecs_mmap(fv))
    np.testing.assert_array_equal(vecs_io.ivecs_mmap(iv), ids)
    batches = list(vecs_io.bvecs_iter(bv, 8))
    assert [b.shape[0] for b in batches] == [8, 8, 8, 6]
    folder = tmp_path / "chunks"
    folder.mkdir()
    for i, part in enumerate((codes[:7], codes[7:19], codes[19:])):
        vecs_io.bvecs_write(str(folder / f"chunk_{i:04d}.bvecs"), part)
    ours = list(vecs_io.bvecs_iter_chunked(str(folder), 10))
    theirs = list(f_vecs_io.bvecs_iter_chunked(str(folder), 10))
    assert [b.shape for b in ours] == [b.shape for b in theirs]
    np.testing.assert_array_equal(np.vstack(ours), np.vstack(theirs))
    os.remove(folder / "chunk_0001.bvecs")
    with pytest.raises(ValueError, match="missing chunks \\[1\\]"):
        list(vecs_io.bvecs_iter_chunked(str(folder), 10))
    with open(fv, "ab") as fh:
        fh.write(b"\x01\x02")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        vecs_io.fvecs_read(fv)
