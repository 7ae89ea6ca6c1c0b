"""Benchmark datasets: the ann-benchmarks HDF5 layout and TEXMEX ``.fvecs``/``.ivecs``/``.bvecs``.

An ann-benchmarks file holds ``train`` (n, d) base vectors, ``test`` (nq, d)
queries, ``neighbors`` (nq, 100) exact neighbour ids, ``distances`` (nq, 100)
their distances and the attribute ``distance`` (``euclidean``: plain, not
squared, L2; ``angular``: cosine distance 1 - cos). :func:`load` reads one from
a path or by name from the data directories; nothing is ever downloaded.

>>> from voisin import datasets
>>> ds = datasets.load("siftsmall-128-euclidean")          # doctest: +SKIP
>>> ds.train.shape, ds.test.shape, ds.metric                # doctest: +SKIP
((10000, 128), (100, 128), 'euclidean')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validate import as_matrix, check_int, check_k

#: dataset metrics, as the ``distance`` attribute of ann-benchmarks files names them
METRICS = ("euclidean", "angular")

#: well-known ann-benchmarks names (n x d), for error messages and ``voisin bench`` help
KNOWN = {
    "siftsmall-128-euclidean": "10,000 x 128, 100 queries (TEXMEX ANN_SIFT10K)",
    "sift-128-euclidean": "1,000,000 x 128, 10,000 queries (TEXMEX ANN_SIFT1M)",
    "gist-960-euclidean": "1,000,000 x 960, 1,000 queries",
    "fashion-mnist-784-euclidean": "60,000 x 784, 10,000 queries",
    "mnist-784-euclidean": "60,000 x 784, 10,000 queries",
    "glove-25-angular": "1,183,514 x 25, 10,000 queries",
    "glove-50-angular": "1,183,514 x 50, 10,000 queries (the shared copy holds 390,000)",
    "glove-100-angular": "1,183,514 x 100, 10,000 queries",
    "nytimes-256-angular": "290,000 x 256, 10,000 queries",
    "deep-image-96-angular": "9,990,000 x 96, 10,000 queries",
}

DOWNLOAD_HINT = ("ann-benchmarks files can be fetched from https://ann-benchmarks.com/{name}.hdf5 "
                 "on a machine with network access; put them in one of these directories "
                 "(or set VOISIN_DATA)")


@dataclass
class Dataset:
    """A benchmark dataset held in memory.

    ``metric`` is ``"euclidean"`` or ``"angular"``; ``distances`` are in that
    metric (plain L2, or 1 - cos), ``neighbors`` are int64 ids into ``train``.

    Example:
        >>> import numpy as np
        >>> from voisin.datasets import synthetic
        >>> ds = synthetic(n=500, nq=5, d=8, k=10)
        >>> ds.neighbors.shape, ds.metric
        ((5, 10), 'euclidean')
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray
    distances: np.ndarray
    metric: str
    path: str | None = None

    @property
    def d(self) -> int:
        return int(self.train.shape[1])

    def search_arrays(self) -> tuple[np.ndarray, np.ndarray, int]:
        """``(xb, xq, voisin_metric)`` ready for an index: angular data is
        L2-normalised (copies) and searched by inner product, euclidean by L2."""
        from .metric import METRIC_INNER_PRODUCT, METRIC_L2
        if self.metric == "angular":
            return normalized(self.train), normalized(self.test), METRIC_INNER_PRODUCT
        return self.train, self.test, METRIC_L2

    def subset(self, queries: int | None, seed: int = 0) -> "Dataset":
        """The same dataset with a seeded random subset of ``queries`` test vectors.

        Never the first N: test sets are often ordered (glove's by word
        frequency), so a prefix is not a fair sample.
        """
        idx = query_subset(self.test.shape[0], queries, seed)
        if idx is None:
            return self
        return Dataset(self.name, self.train, self.test[idx], self.neighbors[idx],
                       self.distances[idx], self.metric, self.path)


def query_subset(nq: int, queries: int | None, seed: int = 0) -> np.ndarray | None:
    """Sorted indices of a seeded random sample of ``queries`` out of ``nq``; None means all."""
    if queries is None or queries >= nq:
        if queries is not None:
            check_int(queries, "queries", lo=1)
        return None
    queries = check_int(queries, "queries", lo=1)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(nq, size=queries, replace=False))


def normalized(x: np.ndarray) -> np.ndarray:
    """A float32 copy of ``x`` with unit-norm rows (zero rows stay zero)."""
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    norms[norms == 0] = 1.0
    x /= norms[:, None].astype(np.float32)
    return x


# --- locating and reading ann-benchmarks files ------------------------------------

def data_dirs() -> list[Path]:
    """Directories searched by :func:`load`, in order.

    ``$VOISIN_DATA``; the user cache (``$XDG_CACHE_HOME/voisin`` or
    ``~/.cache/voisin``); ``$VOISIN_SHARED_DATASETS``; and, for working in a
    checkout, ``../shared/datasets`` next to the repository and the current directory.
    """
    dirs: list[Path] = []
    env = os.environ.get("VOISIN_DATA")
    if env:
        dirs.append(Path(env).expanduser())
    cache = os.environ.get("XDG_CACHE_HOME")
    dirs.append((Path(cache).expanduser() if cache else Path.home() / ".cache") / "voisin")
    shared = os.environ.get("VOISIN_SHARED_DATASETS")
    if shared:
        dirs.append(Path(shared).expanduser())
    repo_root = Path(__file__).resolve().parents[1]
    dirs.append(repo_root.parent / "shared" / "datasets")
    dirs.append(Path.cwd().resolve().parent / "shared" / "datasets")
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def find(name: str) -> Path:
    """Path of the dataset ``name`` (a file path, or a name looked up in :func:`data_dirs`)."""
    p = Path(name).expanduser()
    if p.is_file():
        return p
    looked: list[str] = []
    if p.suffix in (".hdf5", ".h5") or os.sep in name:
        looked.append(str(p))
    stem = p.name if p.suffix in (".hdf5", ".h5") else p.name + ".hdf5"
    for d in data_dirs():
        cand = d / stem
        looked.append(str(cand))
        if cand.is_file():
            return cand
    hint = DOWNLOAD_HINT.format(name=Path(stem).stem)
    raise FileNotFoundError(f"dataset {name!r} not found; looked at: {', '.join(looked)}. {hint}")


def available() -> dict[str, Path]:
    """Datasets present in the data directories: name -> path (first found wins)."""
    out: dict[str, Path] = {}
    for d in data_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.hdf5")):
                out.setdefault(f.stem, f)
    return out


def load(name_or_path: str | os.PathLike) -> Dataset:
    """Read an ann-benchmarks HDF5 dataset into memory (needs ``h5py``).

    Raises FileNotFoundError (listing where it looked) when the file is
    missing and ValueError when the file does not have the expected layout.
    """
    path = find(os.fspath(name_or_path))
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is in the bench/test extras
        raise ImportError("reading ann-benchmarks HDF5 files needs h5py: pip install 'voisin[bench]'") from None
    with h5py.File(path, "r") as f:
        missing = [key for key in ("train", "test", "neighbors", "distances") if key not in f]
        if missing:
            raise ValueError(f"{path}: not an ann-benchmarks file, missing dataset(s) {missing}")
        metric = f.attrs.get("distance", None)
        if isinstance(metric, bytes):
            metric = metric.decode()
        if metric not in METRICS:
            raise ValueError(f"{path}: attribute 'distance' must be one of {METRICS}, got {metric!r}")
        train = np.ascontiguousarray(f["train"][:], dtype=np.float32)
        test = np.ascontiguousarray(f["test"][:], dtype=np.float32)
        neighbors = np.ascontiguousarray(f["neighbors"][:], dtype=np.int64)
        distances = np.ascontiguousarray(f["distances"][:], dtype=np.float32)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"{path}: train {train.shape} and test {test.shape} must be 2-D with the same d")
    if neighbors.shape[0] != test.shape[0] or distances.shape != neighbors.shape:
        raise ValueError(f"{path}: neighbors {neighbors.shape} and distances {distances.shape} "
                         f"must have one row per test vector ({test.shape[0]})")
    return Dataset(path.stem, train, test, neighbors, distances, metric, str(path))


def save(path: str | os.PathLike, ds: Dataset) -> None:
    """Write ``ds`` in the ann-benchmarks HDF5 layout (gzip-compressed, as the originals)."""
    import h5py
    with h5py.File(os.fspath(path), "w") as f:
        f.attrs["distance"] = ds.metric
        f.attrs["dimension"] = ds.d
        f.attrs["point_type"] = "float"
        f.create_dataset("train", data=ds.train, compression="gzip")
        f.create_dataset("test", data=ds.test, compression="gzip")
        f.create_dataset("neighbors", data=ds.neighbors.astype(np.int32), compression="gzip")
        f.create_dataset("distances", data=ds.distances.astype(np.float32), compression="gzip")


# --- exact ground truth ------------------------------------------------------------

def check_dataset_metric(metric: str) -> str:
    if not isinstance(metric, str) or metric.lower() not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    return metric.lower()


def ground_truth(xb, xq, k: int, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours with dataset-style distances.

    Returns ``(ids, distances)``, int64 and float32 (nq, k), sorted by
    (distance, id). ``euclidean`` distances are plain (square-rooted) L2,
    ``angular`` are 1 - cos. Candidates come from :func:`voisin.knn` (float32
    BLAS); their distances are then recomputed in float64 so that near-ties
    are ordered by the exact value.

    >>> import numpy as np
    >>> xb = np.array([[0, 0], [3, 4], [1, 0]], dtype="float32")
    >>> ids, dist = ground_truth(xb, xb[:1], 2)
    >>> ids.tolist(), dist.tolist()
    ([[0, 2]], [[0.0, 1.0]])
    """
    from .exact import knn
    from .metric import METRIC_INNER_PRODUCT, METRIC_L2
    metric = check_dataset_metric(metric)
    xb = as_matrix(xb, None, "xb")
    xq = as_matrix(xq, xb.shape[1], "xq")
    k = check_k(k)
    if k > xb.shape[0]:
        raise ValueError(f"k: asked for {k} neighbours but xb holds only {xb.shape[0]} vectors")
    # A few spare candidates absorb float32 rounding at the k-th place.
    kc = min(xb.shape[0], k + 8)
    if metric == "angular":
        _, I = knn(normalized(xq), normalized(xb), kc, METRIC_INNER_PRODUCT)
    else:
        _, I = knn(xq, xb, kc, METRIC_L2)
    from .evaluate import true_distances
    D = true_distances(xq, xb, I, metric)
    order = np.lexsort((I, D), axis=1)[:, :k]
    ids = np.take_along_axis(I, order, axis=1)
    dist = np.take_along_axis(D, order, axis=1).astype(np.float32)
    return ids, dist


def synthetic(n: int = 2000, nq: int = 50, d: int = 16, k: int = 100, metric: str = "euclidean",
              seed: int = 0, name: str | None = None) -> Dataset:
    """A random Gaussian dataset with exact ground truth (tests, smoke runs)."""
    metric = check_dataset_metric(metric)
    rng = np.random.default_rng(seed)
    train = rng.standard_normal((check_int(n, "n", lo=1), check_int(d, "d", lo=1)), dtype=np.float32)
    test = rng.standard_normal((check_int(nq, "nq", lo=1), d), dtype=np.float32)
    ids, dist = ground_truth(train, test, min(k, n), metric)
    return Dataset(name or f"random-{n}x{d}-{metric}", train, test, ids, dist, metric)


# --- TEXMEX .fvecs / .ivecs / .bvecs ------------------------------------------------
# Each row is an int32 dimension followed by that many components (float32,
# int32 or uint8). All rows of a file have the same dimension.

_VECS = {"fvecs": np.float32, "ivecs": np.int32, "bvecs": np.uint8}


def read_vecs(path: str | os.PathLike, dtype, *, mmap: bool = False) -> np.ndarray:
    """Read a TEXMEX vectors file as an (n, d) array of ``dtype``.

    With ``mmap=True`` the result is a read-only strided view of the file
    (large ``bvecs`` files need not fit in memory). Raises ValueError on a
    truncated file or rows of different dimensions.
    """
    path = os.fspath(path)
    dtype = np.dtype(dtype)
    size = os.path.getsize(path)
    if size == 0:
        return np.empty((0, 0), dtype=dtype)
    if size < 4:
        raise ValueError(f"{path}: truncated file ({size} bytes), too short for a dimension header")
    d = int(np.fromfile(path, dtype="<i4", count=1)[0])
    if d <= 0:
        raise ValueError(f"{path}: invalid dimension {d} in the first row header")
    row = 4 + d * dtype.itemsize
    if size % row:
        raise ValueError(f"{path}: truncated or corrupt file: {size} bytes is not a whole number "
                         f"of rows of d={d} ({row} bytes each); the last row is incomplete")
    n = size // row
    rec = np.dtype([("d", "<i4"), ("v", dtype.newbyteorder("<"), (d,))])
    data = np.memmap(path, dtype=rec, mode="r", shape=(n,)) if mmap else np.fromfile(path, dtype=rec)
    dims = data["d"]
    bad = np.flatnonzero(dims != d)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{path}: inconsistent dimensions: row 0 has d={d} but row {i} has d={int(dims[i])}")
    v = data["v"]
    return v if mmap else np.ascontiguousarray(v, dtype=dtype)


def write_vecs(path: str | os.PathLike, x, dtype) -> None:
    """Write an (n, d) array in TEXMEX format with components of ``dtype``."""
    dtype = np.dtype(dtype)
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"x: expected a 2-D (n, d) array with d >= 1, got shape {x.shape}")
    if dtype.kind in "iu" and x.dtype.kind == "f":
        raise TypeError(f"x: refusing to truncate {x.dtype} values to {dtype}; convert explicitly")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x: expected a numeric array, got dtype {x.dtype}")
    if dtype.kind in "iu" and x.size:
        info = np.iinfo(dtype)
        if x.min() < info.min or x.max() > info.max:
            raise ValueError(f"x: values must lie in {info.min}..{info.max} to be stored as {dtype}")
    n, d = x.shape
    rec = np.dtype([("d", "<i4"), ("v", dtype.newbyteorder("<"), (d,))])
    out = np.empty(n, dtype=rec)
    out["d"] = d
    out["v"] = x
    out.tofile(os.fspath(path))


def read_fvecs(path: str | os.PathLike, *, mmap: bool = False) -> np.ndarray:
    """float32 vectors from a ``.fvecs`` file, shape (n, d)."""
    return read_vecs(path, np.float32, mmap=mmap)


def read_ivecs(path: str | os.PathLike, *, mmap: bool = False) -> np.ndarray:
    """int32 vectors (usually ground-truth ids) from a ``.ivecs`` file."""
    return read_vecs(path, np.int32, mmap=mmap)


def read_bvecs(path: str | os.PathLike, *, mmap: bool = False) -> np.ndarray:
    """uint8 vectors from a ``.bvecs`` file (SIFT1B); use ``mmap=True`` for big ones."""
    return read_vecs(path, np.uint8, mmap=mmap)


def write_fvecs(path: str | os.PathLike, x) -> None:
    write_vecs(path, x, np.float32)


def write_ivecs(path: str | os.PathLike, x) -> None:
    write_vecs(path, x, np.int32)


def write_bvecs(path: str | os.PathLike, x) -> None:
    write_vecs(path, x, np.uint8)


# --- any file of vectors (the CLI's --data / --queries) -----------------------------

#: file types :func:`load_vectors` reads
VECTOR_SUFFIXES = (".npy", ".fvecs", ".bvecs", ".ivecs", ".hdf5", ".h5")


def load_vectors(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Vectors from ``.npy``, ``.fvecs``/``.bvecs``/``.ivecs`` or an HDF5 file (dataset ``key``,
    default ``train``), as an (n, d) numeric array.

    ``.npy`` and TEXMEX files are memory-mapped, so a large file is read chunk
    by chunk by whoever consumes it. Raises FileNotFoundError, ValueError (with
    the reason) or ImportError (h5py missing for HDF5).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix not in VECTOR_SUFFIXES:
        raise ValueError(f"{p}: unknown vector file type {suffix!r}; expected one of {', '.join(VECTOR_SUFFIXES)}")
    try:
        if suffix == ".npy":
            x = np.load(p, mmap_mode="r", allow_pickle=False)
        elif suffix in (".hdf5", ".h5"):
            x = _read_hdf5_array(p, key or "train")
        else:
            x = read_vecs(p, _VECS[suffix[1:]], mmap=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: cannot read vectors: {exc}") from None
    if x.ndim != 2 or x.shape[1] == 0 or x.dtype.kind not in "fiu":
        raise ValueError(f"{p}: expected a 2-D numeric array (n, d), got shape {x.shape} and dtype {x.dtype}")
    return x


def _read_hdf5_array(p: Path, key: str) -> np.ndarray:
    try:
        import h5py  # lazy: heavy, and only needed for this format
    except ImportError:
        raise ImportError("reading .hdf5 needs h5py: pip install h5py") from None
    with h5py.File(p, "r") as f:
        if key not in f:
            raise ValueError(f"no dataset {key!r}; it holds {', '.join(sorted(f.keys()))}")
        return f[key][()]
