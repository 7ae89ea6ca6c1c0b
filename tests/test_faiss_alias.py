"""``import voisin as faiss`` with FAISS's contrib imports, and FAISS's own
tutorial scripts and test idioms run on voisin, next to faiss-cpu.

``install_as_faiss`` makes ``from faiss.contrib.datasets import ...`` load
voisin. The fixture restores the real faiss modules afterwards (the same
objects, so the rest of the suite keeps using them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import voisin
from test_faiss_tutorial import SETUP  # FAISS's tutorial data, as the tutorials build it

real_faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.usefixtures("faiss_single_thread")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def as_faiss():
    saved = {k: v for k, v in sys.modules.items() if k == "faiss" or k.startswith("faiss.")}
    voisin.install_as_faiss(replace=True)
    try:
        yield
    finally:
        voisin.uninstall_as_faiss()
        sys.modules.update(saved)


def _run(code: str) -> dict:
    """Run a script whose ``import faiss`` lines resolve however sys.modules says."""
    scope: dict = {}
    exec(compile(textwrap.dedent(code), "<faiss script>", "exec"), scope)
    return scope


def test_install_as_faiss_aliases_contrib(as_faiss):
    import faiss
    from faiss.contrib.datasets import SyntheticDataset
    import faiss.contrib.evaluation as ev
    assert faiss is voisin
    assert SyntheticDataset is voisin.contrib.datasets.SyntheticDataset
    assert ev is voisin.contrib.evaluation
    assert voisin.contrib.__spec__.name == "voisin.contrib"  # voisin keeps its own name
    with pytest.raises(ModuleNotFoundError, match="faiss.loader"):
        import faiss.loader  # noqa: F401  (FAISS's SWIG internals have no voisin counterpart)


def test_install_refuses_to_shadow_a_loaded_faiss_silently():
    saved = {k: v for k, v in sys.modules.items() if k == "faiss" or k.startswith("faiss.")}
    try:
        with pytest.raises(RuntimeError, match="the real faiss is already imported"):
            voisin.install_as_faiss()
    finally:
        voisin.uninstall_as_faiss()
        sys.modules.update(saved)
    import faiss
    assert faiss is real_faiss


def test_shim_package_makes_import_faiss_load_voisin():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "shims" / "faiss"), str(REPO)]))
    code = ("import faiss, voisin; assert faiss is voisin\n"
            "from faiss.contrib.datasets import SyntheticDataset\n"
            "from faiss.contrib.exhaustive_search import knn_ground_truth\n"
            "ds = SyntheticDataset(8, 0, 300, 4)\n"
            "D, I = knn_ground_truth(ds.get_queries(), ds.database_iterator(bs=100), 3)\n"
            "print(I.shape, type(faiss.IndexFlatL2(8)).__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(4, 3) voisin.indexes.flat"


# --------------------------------------------------------------------------
# FAISS's tutorials 8 and 9 (the two that stopped at IndexRefineSearchParameters)
# and idioms from FAISS's python tests, unchanged but for smaller sizes
# --------------------------------------------------------------------------

TUTORIAL_8 = SETUP + """
import faiss

m = 8
k = 4
n_bit = 4
index = faiss.IndexPQFastScan(d, m, n_bit, faiss.METRIC_L2)
index_refine = faiss.IndexRefineFlat(index)
assert not index_refine.is_trained
index_refine.train(xb)
assert index_refine.is_trained
index_refine.add(xb)
params = faiss.IndexRefineSearchParameters(k_factor=3)
D, I = index_refine.search(xq[:5], 10, params=params)
# (the tutorial then sets index.nprobe = 10, which faiss-cpu 1.15 itself
# refuses on an IndexPQFastScan: left out)
D2, I2 = index.search(xq[:5], k)
"""

TUTORIAL_9 = """
import faiss
from faiss.contrib.evaluation import knn_intersection_measure
from faiss.contrib import datasets

ds = datasets.SyntheticDataset(64, 5000, 10000, 200)
d = 64
index_fp16 = faiss.index_factory(d, 'PQ32x4fs,Refine(SQfp16)')
index_fp16.train(ds.get_train())
index_fp16.add(ds.get_database())
index_sq8 = faiss.index_factory(d, 'PQ32x4fs,Refine(SQ8)')
index_sq8.train(ds.get_train())
index_sq8.add(ds.get_database())
k_factor = 3.0
params = faiss.IndexRefineSearchParameters(k_factor=k_factor)
D_fp16, I_fp16 = index_fp16.search(ds.get_queries(), 100, params=params)
D_sq8, I_sq8 = index_sq8.search(ds.get_queries(), 100, params=params)
KIM_fp16 = knn_intersection_measure(I_fp16, ds.get_groundtruth())
KIM_sq8 = knn_intersection_measure(I_sq8, ds.get_groundtruth())
assert (KIM_fp16 > KIM_sq8)
"""

IDIOMS = """
import numpy as np
import faiss
from faiss.contrib.datasets import SyntheticDataset
from faiss.contrib.evaluation import knn_intersection_measure, check_ref_knn_with_draws
from faiss.contrib.inspect_tools import get_invlist_sizes
from faiss.contrib import ivf_tools

ds = SyntheticDataset(32, 3000, 6000, 100)
xt, xb, xq = ds.get_train(), ds.get_database(), ds.get_queries()
Dref, Iref = faiss.knn(xq, xb, 10)
gt = ds.get_groundtruth(10)

# extract_index_ivf(...).nprobe, clone_index, downcast_index
index = faiss.index_factory(ds.d, "PCA16,IVF32,Flat")
index.train(xt)
index.add(xb)
faiss.extract_index_ivf(index).nprobe = 16
D, I = index.search(xq, 10)
recall = knn_intersection_measure(I, gt)
index2 = faiss.clone_index(index)
D2, I2 = index2.search(xq, 10)
check_ref_knn_with_draws(D, I, D2, I2)
quantizer = faiss.downcast_index(faiss.extract_index_ivf(index2).quantizer)
nlist_sizes = get_invlist_sizes(faiss.extract_index_ivf(index).invlists)

# serialize through the SWIG-style stream objects
writer = faiss.VectorIOWriter()
faiss.write_index(index, writer)
data = faiss.vector_to_array(writer.data)
reader = faiss.VectorIOReader()
faiss.copy_array_to_vector(data, reader.data)
index3 = faiss.read_index(reader)
D3, I3 = index3.search(xq, 10)
same_after_io = bool((I3 == I).all())

# search_and_reconstruct on a flat index
flat = faiss.IndexFlatL2(ds.d)
flat.add(xb)
Df, If, Rf = flat.search_and_reconstruct(xq[:5], 3)
recons_ok = bool(np.allclose(Rf, xb[If]))

# Clustering with an index for the assignment
clus = faiss.Clustering(ds.d, 20)
clus.niter = 10
clus.seed = 123
cindex = faiss.IndexFlatL2(ds.d)
clus.train(xt, cindex)
centroids = faiss.vector_float_to_array(clus.centroids).reshape(20, ds.d)
stats = clus.iteration_stats
objs = np.array([stats.at(i).obj for i in range(stats.size())])

# the random generators and top-k helpers
xr = faiss.randn((50, 8), 1234)
ur = faiss.rand(10, 5)
ir = faiss.randint(10, 5, vmax=100)
kd, ki = faiss.kmin(xr, 3)
bxq = (xq[:, :8] > 0).astype('uint8')
bxb = (xb[:, :8] > 0).astype('uint8')
hD, hI = faiss.knn_hamming(bxq, bxb, 4)

# merge_into two shards trained alike
q = faiss.IndexFlatL2(ds.d)
ivf0 = faiss.IndexIVFFlat(q, ds.d, 16)
ivf0.train(xt)
ivf1 = faiss.clone_index(ivf0)
ivf0.add(xb[:3000])
ivf1.add(xb[3000:])
faiss.merge_into(ivf0, ivf1, True)
merged_ntotal = (ivf0.ntotal, ivf1.ntotal)

# selectors: translated through an IDMap, and a Python callback
idmap = faiss.IndexIDMap(faiss.IndexFlatL2(ds.d))
idmap.add_with_ids(xb, np.arange(xb.shape[0]) + 100000)
sel = faiss.IDSelectorTranslated(idmap.id_map, faiss.IDSelectorRange(100000, 100500))
Ds, Is = idmap.index.search(xq[:4], 5, params=faiss.SearchParameters(sel=sel))
cb = faiss.PyCallbackIDSelector(lambda i: i % 3 == 0)
Dc, Ic = flat.search(xq[:4], 5, params=faiss.SearchParameters(sel=cb))

# preassigned search with the caller's lists
ivf0.nprobe = 4
_, lists = ivf0.quantizer.search(xq, 4)
Dp, Ip = ivf_tools.search_preassigned(ivf0, xq, 10, lists)
"""


def _both(code: str) -> tuple[dict, dict]:
    theirs = _run(code)
    voisin.install_as_faiss(replace=True)
    try:
        ours = _run(code)
    finally:
        voisin.uninstall_as_faiss()
    return ours, theirs


@pytest.fixture
def restore_faiss():
    saved = {k: v for k, v in sys.modules.items() if k == "faiss" or k.startswith("faiss.")}
    yield
    voisin.uninstall_as_faiss()
    sys.modules.update(saved)


def test_tutorial_8_pq_fastscan_refine(restore_faiss):
    ours, theirs = _both(TUTORIAL_8)
    assert ours["I"].shape == theirs["I"].shape == (5, 10)
    xb, xq = ours["xb"], ours["xq"][:5]
    dist = ((xq[:, None, :].astype(np.float64) - xb[None]) ** 2).sum(-1)
    # the refine step re-ranks with exact distances, in both libraries
    np.testing.assert_allclose(ours["D"], np.take_along_axis(dist, ours["I"], 1), rtol=1e-4)
    gt = np.argsort(dist, axis=1)[:, :10]
    assert knn_recall(ours["I"], gt) >= knn_recall(theirs["I"], gt) - 0.1


def test_tutorial_9_refine_comparison(restore_faiss):
    ours, theirs = _both(TUTORIAL_9)  # the script asserts fp16 refinement beats SQ8
    assert ours["KIM_fp16"] == pytest.approx(theirs["KIM_fp16"], abs=0.05)
    assert ours["KIM_sq8"] == pytest.approx(theirs["KIM_sq8"], abs=0.05)


def test_faiss_test_idioms(restore_faiss):
    ours, theirs = _both(IDIOMS)
    np.testing.assert_array_equal(ours["xb"], theirs["xb"])     # same synthetic data
    np.testing.assert_array_equal(ours["Iref"], theirs["Iref"])  # exact search agrees
    assert ours["recall"] == pytest.approx(theirs["recall"], abs=0.05)
    assert ours["same_after_io"] and theirs["same_after_io"]
    assert ours["recons_ok"] and theirs["recons_ok"]
    assert ours["objs"].shape == theirs["objs"].shape == (10,)
    assert ours["objs"][-1] <= 1.05 * theirs["objs"][-1]
    for name in ("xr", "ur", "ir", "kd", "ki", "hD", "hI", "Is", "Ic"):
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    assert ours["merged_ntotal"] == theirs["merged_ntotal"] == (6000, 0)
    assert int(ours["nlist_sizes"].sum()) == 6000
    assert knn_recall(ours["Ip"], ours["gt"]) == pytest.approx(knn_recall(theirs["Ip"], theirs["gt"]),
                                                                abs=0.05)


def knn_recall(I, gt):
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(I, gt)]))
