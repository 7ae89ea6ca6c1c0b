"""Benchmark datasets behind one interface (``faiss.contrib.datasets``).

:class:`SyntheticDataset` generates FAISS's synthetic data, value for value
(the same numpy recipe and seed), so results can be compared with faiss
runs. The file-backed classes read the standard files (TEXMEX ``.fvecs`` /
``.bvecs``, ann-benchmarks HDF5) from ``dataset_basedir``; a missing file
raises FileNotFoundError naming it. :class:`DatasetANNBenchmarks` (voisin's)
reads any ann-benchmarks file voisin can find, e.g. the shared
``siftsmall-128-euclidean``.

Example:
    >>> from voisin.contrib.datasets import SyntheticDataset
    >>> ds = SyntheticDataset(32, 1000, 2000, 10)
    >>> ds.get_database().shape, ds.get_groundtruth(5).shape
    ((2000, 32), (10, 5))
"""

from __future__ import annotations

import getpass
import os
from typing import Any, Iterator

import numpy as np

from .._validate import check_int
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2
from ..utils import normalize_L2
from .exhaustive_search import knn
from .vecs_io import bvecs_mmap, fvecs_mmap, fvecs_read, ivecs_read


class Dataset:
    """A test dataset: ``d``, ``metric`` ("L2" or "IP"), sizes ``nq``, ``nb``, ``nt``."""

    def __init__(self) -> None:
        self.d = -1
        self.metric = "L2"
        self.nq = -1
        self.nb = -1
        self.nt = -1

    def get_queries(self) -> np.ndarray:
        """The queries, (nq, d)."""
        raise NotImplementedError(f"{type(self).__name__} has no queries")

    def get_train(self, maxtrain: int | None = None) -> np.ndarray:
        """The first ``maxtrain`` (default all) training vectors."""
        raise NotImplementedError(f"{type(self).__name__} has no training set")

    def get_database(self) -> np.ndarray:
        """The database vectors, (nb, d)."""
        raise NotImplementedError(f"{type(self).__name__} has no database")

    def database_iterator(self, bs: int = 128, split: tuple[int, int] = (1, 0)
                          ) -> Iterator[np.ndarray]:
        """Blocks of ``bs`` database vectors of shard ``rank`` out of ``nsplit``
        (``split = (nsplit, rank)``)."""
        bs = check_int(bs, "bs", lo=1)
        nsplit, rank = split
        nsplit = check_int(nsplit, "split[0]", lo=1)
        rank = check_int(rank, "split[1]", lo=0, hi=nsplit - 1)
        xb = self._database_rows()
        i0, i1 = self.nb * rank // nsplit, self.nb * (rank + 1) // nsplit
        for j0 in range(i0, i1, bs):
            yield _sanitize(xb[j0:min(j0 + bs, i1)])

    def _database_rows(self) -> Any:
        return self.get_database()

    def _first(self, x: Any, maxtrain: int | None) -> Any:
        return x[:self.nt if maxtrain is None else check_int(maxtrain, "maxtrain", lo=0)]

    def get_groundtruth(self, k: int | None = None) -> np.ndarray:
        """Ids of the exact nearest neighbours of each query, (nq, k)."""
        raise NotImplementedError(f"{type(self).__name__} has no ground truth")

    def get_groundtruth_range(self, thresh: float | None = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no range ground truth")

    def __str__(self) -> str:
        return (f"dataset in dimension {self.d}, with metric {self.metric}, "
                f"size: Q {self.nq} B {self.nb} T {self.nt}")

    def check_sizes(self) -> None:
        """Load everything once and check the shapes against the declared sizes."""
        def expect(what: str, got: tuple, want: tuple) -> None:
            if got != want:
                raise ValueError(f"{type(self).__name__}: {what} has shape {got}, expected {want}")
        expect("queries", self.get_queries().shape, (self.nq, self.d))
        if self.nt > 0:
            expect("get_train(maxtrain=123)", self.get_train(maxtrain=123).shape, (123, self.d))
        expect("database", self.get_database().shape, (self.nb, self.d))
        expect("get_groundtruth(k=13)", self.get_groundtruth(k=13).shape, (self.nq, 13))


def _sanitize(x: Any) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _faiss_metric(metric: str) -> int:
    if metric not in ("L2", "IP"):
        raise ValueError(f"metric: expected 'L2' or 'IP', got {metric!r}")
    return METRIC_L2 if metric == "L2" else METRIC_INNER_PRODUCT


class SyntheticDataset(Dataset):
    """Data on a noisy 10-dimensional manifold in d dimensions: not random,
    still hard to index. The vectors are FAISS's own for the same arguments.
    """

    def __init__(self, d: int, nt: int, nb: int, nq: int, metric: str = "L2", seed: int = 1338):
        super().__init__()
        self.d = check_int(d, "d", lo=1)
        self.nt = check_int(nt, "nt", lo=0)
        self.nb = check_int(nb, "nb", lo=0)
        self.nq = check_int(nq, "nq", lo=0)
        _faiss_metric(metric)
        self.metric = metric
        d1 = 10  # the intrinsic dimension
        rs = np.random.RandomState(check_int(seed, "seed", lo=0))
        # a Gaussian cloud in d1 dimensions, mapped linearly into d, each
        # coordinate scaled by its own frequency and wrapped by a sine: the
        # draws happen in this order, which fixes the data for a seed
        z = rs.normal(size=(nt + nb + nq, d1))
        z = z @ rs.rand(d1, self.d)
        z = np.sin(z * (rs.rand(self.d) * 4 + 0.1)).astype(np.float32)
        self.xt = z[:nt]
        self.xb = z[nt:nt + nb]
        self.xq = z[nt + nb:]

    def get_queries(self) -> np.ndarray:
        return self.xq

    def get_train(self, maxtrain: int | None = None) -> np.ndarray:
        return self._first(self.xt, maxtrain)

    def get_database(self) -> np.ndarray:
        return self.xb

    def get_groundtruth(self, k: int | None = 100) -> np.ndarray:
        return knn(self.xq, self.xb, 100 if k is None else k, _faiss_metric(self.metric))[1]


# --------------------------------------------------------------------------
# standard datasets in a data directory
# --------------------------------------------------------------------------

def _guess_basedir() -> str:
    env = os.environ.get("VOISIN_DATA")
    candidates = ([env] if env else []) + [
        "/datasets01/simsearch/041218/",
        "/mnt/vol/gfsai-flash3-east/ai-group/datasets/simsearch/",
        f"/home/{getpass.getuser()}/simsearch/data/",
    ]
    for c in candidates:
        if os.path.isdir(c):
            return os.path.join(c, "")
    return "data/"  # users can link their data directory to ./data


#: where the file-backed datasets look (FAISS's guesses, after $VOISIN_DATA)
dataset_basedir = _guess_basedir()


def set_dataset_basedir(path: str | os.PathLike) -> None:
    global dataset_basedir
    dataset_basedir = os.path.join(os.fspath(path), "")


class _FileDataset(Dataset):
    """A dataset whose files live in ``dataset_basedir/<subdir>``."""

    subdir = ""

    def __init__(self) -> None:
        super().__init__()
        self.basedir = os.path.join(dataset_basedir, self.subdir, "")

    def _path(self, name: str) -> str:
        path = os.path.join(self.basedir, name)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{type(self).__name__}: {path} not found (dataset directory {self.basedir}; "
                "point voisin.contrib.datasets.set_dataset_basedir() or $VOISIN_DATA at the "
                "folder that holds it)")
        return path

    def _gt(self, name: str, k: int | None) -> np.ndarray:
        gt = ivecs_read(self._path(name))
        if k is not None:
            if k > gt.shape[1]:
                raise ValueError(f"k: the ground truth holds {gt.shape[1]} neighbours, asked {k}")
            gt = gt[:, :k]
        return gt


class _Texmex1M(_FileDataset):
    """A TEXMEX 1M set: ``<prefix>_{base,learn,query}.fvecs`` and
    ``<prefix>_groundtruth.ivecs`` in ``<subdir>/``."""

    prefix = ""
    dim = 0

    def __init__(self) -> None:
        super().__init__()
        self.d, self.nt, self.nb, self.nq = self.dim, 100000, 1000000, 10000

    def get_queries(self) -> np.ndarray:
        return fvecs_read(self._path(f"{self.prefix}_query.fvecs"))

    def get_train(self, maxtrain: int | None = None) -> np.ndarray:
        return self._first(fvecs_read(self._path(f"{self.prefix}_learn.fvecs")), maxtrain)

    def get_database(self) -> np.ndarray:
        return fvecs_read(self._path(f"{self.prefix}_base.fvecs"))

    def get_groundtruth(self, k: int | None = None) -> np.ndarray:
        return self._gt(f"{self.prefix}_groundtruth.ivecs", k)


class DatasetSIFT1M(_Texmex1M):
    """TEXMEX ANN_SIFT1M (``sift1M/sift_{base,learn,query}.fvecs``)."""

    subdir, prefix, dim = "sift1M", "sift", 128


class DatasetGIST1M(_Texmex1M):
    """TEXMEX ANN_GIST1M (``gist1M/gist_*.fvecs``)."""

    subdir, prefix, dim = "gist1M", "gist", 960


class DatasetBigANN(_FileDataset):
    """TEXMEX ANN_SIFT1B, ``nb_M`` million database vectors (``bigann/``)."""

    subdir = "bigann"
    _SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

    def __init__(self, nb_M: int = 1000):
        super().__init__()
        if nb_M not in self._SIZES:
            raise ValueError(f"nb_M: expected one of {self._SIZES}, got {nb_M!r}")
        self.nb_M = nb_M
        self.d, self.nt, self.nb, self.nq = 128, 10 ** 8, nb_M * 10 ** 6, 10000

    def get_queries(self) -> np.ndarray:
        return _sanitize(bvecs_mmap(self._path("bigann_query.bvecs")))

    def get_train(self, maxtrain: int | None = None) -> np.ndarray:
        return _sanitize(self._first(bvecs_mmap(self._path("bigann_learn.bvecs")), maxtrain))

    def get_groundtruth(self, k: int | None = None) -> np.ndarray:
        return self._gt(f"gnd/idx_{self.nb_M}M.ivecs", k)

    def _database_rows(self) -> Any:
        return bvecs_mmap(self._path("bigann_base.bvecs"))

    def get_database(self) -> np.ndarray:
        if self.nb_M >= 100:
            raise MemoryError(f"{type(self).__name__}: {self.nb_M}M vectors do not fit in "
                              "memory, use database_iterator()")
        return _sanitize(self._database_rows()[:self.nb])


class DatasetDeep1B(_FileDataset):
    """Deep1B, ``nb`` database vectors out of 10^9 (``deep1b/``)."""

    subdir = "deep1b"
    _NAMES = {10 ** 5: "100k", 10 ** 6: "1M", 10 ** 7: "10M", 10 ** 8: "100M", 10 ** 9: "1B"}

    def __init__(self, nb: int = 10 ** 9):
        super().__init__()
        if nb not in self._NAMES:
            raise ValueError(f"nb: expected one of {sorted(self._NAMES)}, got {nb!r}")
        self.d, self.nt, self.nb, self.nq = 96, 358480000, nb, 10000
        self.gt_fname = os.path.join(self.basedir, f"deep{self._NAMES[nb]}_groundtruth.ivecs")

    def get_queries(self) -> np.ndarray:
        return _sanitize(fvecs_read(self._path("deep1B_queries.fvecs")))

    def get_train(self, maxtrain: int | None = None) -> np.ndarray:
        return _sanitize(self._first(fvecs_mmap(self._path("learn.fvecs")), maxtrain))

    def get_groundtruth(self, k: int | None = None) -> np.ndarray:
        return self._gt(os.path.basename(self.gt_fname), k)

    def _database_rows(self) -> Any:
        return fvecs_mmap(self._path("base.fvecs"))

    def get_database(self) -> np.ndarray:
        if self.nb > 10 ** 8:
            raise MemoryError(f"{type(self).__name__}: {self.nb} vectors do not fit in memory, "
                              "use database_iterator()")
        return _sanitize(self._database_rows()[:self.nb])


class DatasetMusic100(_FileDataset):
    """Music-100 (inner product), ``music-100/*.bin`` and ``gt.npy``."""

    subdir = "music-100"

    def __init__(self) -> None:
        super().__init__()
        self.d, self.nt, self.nb, self.nq = 100, 0, 10 ** 6, 10000
        self.metric = "IP"

    def get_queries(self) -> np.ndarray:
        return np.fromfile(self._path("query_music100.bin"), dtype=np.float32).reshape(-1, 100)

    def get_database(self) -> np.ndarray:
        return np.fromfile(self._path("database_music100.bin"), dtype=np.float32).reshape(-1, 100)

    def get_groundtruth(self, k: int | None = None) -> np.ndarray:
        gt = np.load(self._path("gt.npy"))
        return gt if k is None else gt[:, :k]


class _HDF5Dataset(Dataset):
    """An ann-benchmarks HDF5 file: angular data normalised and searched by IP."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        import h5py
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"{type(self).__name__}: {self.path} not found")
        self.h5 = h5py.File(self.path, "r")
        distance = self.h5.attrs.get("distance", "euclidean")
        distance = distance.decode() if isinstance(distance, bytes) else str(distance)
        self.metric = "IP" if distance == "angular" else "L2"
        self.d = int(self.h5["train"].shape[1])
        self.nt = 0
        self.nb = int(self.h5["train"].shape[0])
        self.nq = int(self.h5["test"].shape[0])

    def _vectors(self, key: str) -> np.ndarray:
        x = _sanitize(self.h5[key][:])
        if self.metric == "IP":
            normalize_L2(x)
        return x

    def get_queries(self) -> np.ndarray:
        return self._vectors("test")

    def get_database(self) -> np.ndarray:
        return self._vectors("train")

    def get_groundtruth(self, k: int | None = None) -> np.ndarray:
        gt = self.h5["neighbors"]
        if k is not None and k > gt.shape[1]:
            raise ValueError(f"k: the ground truth holds {gt.shape[1]} neighbours, asked {k}")
        return np.asarray(gt[:, :k] if k is not None else gt[:])


class DatasetGlove(_HDF5Dataset):
    """GloVe from ann-benchmarks (``glove/glove-100-angular.hdf5`` by default), IP."""

    def __init__(self, loc: str | os.PathLike | None = None, download: bool = False):
        if download:
            raise NotImplementedError("download: voisin never downloads data; fetch "
                                      "https://ann-benchmarks.com/glove-100-angular.hdf5 yourself")
        super().__init__(loc or os.path.join(dataset_basedir, "glove", "glove-100-angular.hdf5"))


class DatasetANNBenchmarks(_HDF5Dataset):
    """Any ann-benchmarks file by name or path, found as :func:`voisin.datasets.find`
    finds it (``$VOISIN_DATA``, the cache, ``../shared/datasets``). voisin's
    addition: the files have no training set, so ``get_train`` returns
    database vectors (the usual practice with them) and ``nt`` is ``nb``.
    """

    def __init__(self, name: str | os.PathLike):
        from ..datasets import find
        super().__init__(find(os.fspath(name)))
        self.nt = self.nb

    def get_train(self, maxtrain: int | None = None) -> np.ndarray:
        n = self.nb if maxtrain is None else min(check_int(maxtrain, "maxtrain", lo=0), self.nb)
        x = _sanitize(self.h5["train"][:n])
        if self.metric == "IP":
            normalize_L2(x)
        return x


def dataset_from_name(dataset: str = "deep1M", download: bool = False) -> Dataset:
    """A dataset from its name: sift1M, gist1M, bigann1M..bigann1B, deep100k..deep1B,
    music-100, glove, or (voisin) any ann-benchmarks file name such as
    ``siftsmall-128-euclidean``."""
    if not isinstance(dataset, str):
        raise TypeError(f"dataset: expected a name, got {dataset!r}")
    if dataset == "sift1M":
        return DatasetSIFT1M()
    if dataset == "gist1M":
        return DatasetGIST1M()
    if dataset.startswith("bigann") and dataset[6:-1].isdigit() or dataset == "bigann1B":
        return DatasetBigANN(nb_M=1000 if dataset == "bigann1B" else int(dataset[6:-1]))
    if dataset.startswith("deep") and dataset[4:-1].isdigit():
        scale = {"k": 10 ** 3, "M": 10 ** 6, "B": 10 ** 9}.get(dataset[-1])
        if scale is None:
            raise ValueError(f"dataset: did not recognise the size suffix of {dataset!r}")
        return DatasetDeep1B(nb=int(dataset[4:-1]) * scale)
    if dataset == "music-100":
        return DatasetMusic100()
    if dataset == "glove":
        return DatasetGlove(download=download)
    from ..datasets import find
    try:
        find(dataset)
    except FileNotFoundError:
        raise ValueError(f"dataset: unknown dataset {dataset!r} (sift1M, gist1M, bigann<N>M, "
                         "deep<N>M, music-100, glove, or an ann-benchmarks file name)") from None
    return DatasetANNBenchmarks(dataset)
