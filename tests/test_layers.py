"""The layer picture of docs/architecture.md, checked against the imports.

Kernels (numba, arrays only) import nothing of voisin but other kernels and the
metric constants; codecs never reach up into indexes or anything above; indexes
never import the database, server, cluster, CLI or benchmarks; the database and
the server sit on Index and never reach into kernels. Every import counts,
the lazy ones inside functions too: each exception below says why it is one.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "voisin"

# (layer, may not import) -- layers are the first package level under voisin
FORBIDDEN = {
    "codecs": {"indexes", "io", "db", "server", "distributed", "cli", "embed", "bench"},
    "indexes": {"db", "server", "distributed", "cli", "bench", "embed"},
    "io": {"db", "server", "distributed", "cli", "bench"},
    "db": {"kernels", "server", "cli", "bench"},
    "server": {"kernels", "cli", "bench"},
}
KERNEL_MAY_IMPORT = {"voisin.kernels", "voisin.metric"}
KERNEL_EXTERNAL = {"numpy", "numba", "llvmlite", "math", "os", "typing", "collections", "__future__"}
EXCEPTIONS = {
    # a residual quantizer trains each stage with k-means over an IndexFlatL2,
    # as FAISS's ResidualQuantizer does (the assignment index is its parameter)
    ("voisin.codecs.rq", "voisin.indexes.flat"),
    # voisin.connect("http://...") opens a remote database: the front door of both
    ("voisin.db.database", "voisin.server.client"),
}


def _imports(path: pathlib.Path, module: str, package: str):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                yield ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.module


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            module = package = ".".join(parts[:-1])
        else:
            module = ".".join(parts)
            package = ".".join(parts[:-1])
        yield path, module, package


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_tree_is_read():
    found = {m for _, m, _ in _modules()}
    assert {"voisin.kernels.flat", "voisin.indexes.hnsw", "voisin.db.database"} <= found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN) + ["kernels"])
def test_layer_imports(layer):
    bad = []
    for path, module, package in _modules():
        if _layer(module) != layer:
            continue
        for target in _imports(path, module, package):
            if (module, target) in EXCEPTIONS:
                continue
            if layer == "kernels":
                if target.startswith("voisin"):
                    ok = any(target == k or target.startswith(k + ".") for k in KERNEL_MAY_IMPORT)
                else:
                    ok = target.split(".")[0] in KERNEL_EXTERNAL
            else:
                ok = not (target.startswith("voisin.") and _layer(target) in FORBIDDEN[layer])
            if not ok:
                bad.append(f"{module} imports {target}")
    assert not bad, "layer rule broken (see docs/architecture.md):\n" + "\n".join(bad)


def test_exceptions_are_still_needed():
    """An exception whose import is gone must leave the list."""
    seen = set()
    for path, module, package in _modules():
        for target in _imports(path, module, package):
            seen.add((module, target))
    assert EXCEPTIONS <= seen, EXCEPTIONS - seen


def test_every_file_format_module_imports():
    """A format module that fails to import would turn its index types into
    'not supported' errors; each one must load."""
    from voisin.io import faiss_format
    faiss_format._load_formats()
    assert faiss_format._FORMAT_ERRORS == {}
    unreadable = [t for t in faiss_format._FAISS_TAG_NAMES if t in faiss_format._READERS]
    assert not unreadable, f"tags named as unsupported but read: {unreadable}"
