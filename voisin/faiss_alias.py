"""Make ``import faiss`` (and ``faiss.contrib...``) load voisin.

``import voisin as faiss`` renames voisin in one module only: a line such as
``from faiss.contrib.datasets import SyntheticDataset`` still asks the import
system for a package called ``faiss``. :func:`install_as_faiss` answers that
question with voisin: ``faiss`` becomes ``voisin`` and ``faiss.X.Y`` becomes
``voisin.X.Y``, the same module objects, so code written for faiss runs on
voisin unchanged. The ``faiss`` shim distribution (``shims/faiss`` in the
repository) calls it from its ``__init__``, for code that cannot be edited.

Example:
    >>> import voisin
    >>> voisin.install_as_faiss(replace=True)   # doctest: +SKIP
    >>> import faiss                            # doctest: +SKIP
    >>> faiss is voisin                         # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

_PREFIX = "faiss"


def _target(fullname: str) -> str | None:
    if fullname == _PREFIX:
        return "voisin"
    if fullname.startswith(_PREFIX + "."):
        return "voisin" + fullname[len(_PREFIX):]
    return None


class _AliasLoader(importlib.abc.Loader):
    """Hands out the already imported voisin module under the faiss name."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: Any) -> ModuleType:
        module = importlib.import_module(self.target)
        # the import system overwrites __spec__ with the alias's spec;
        # keep voisin's so that the module still knows its real name
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        real = _target(fullname)
        if real is None:
            return None
        try:
            if importlib.util.find_spec(real) is None:
                return None  # Python then reports "No module named 'faiss....'"
        except ModuleNotFoundError:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(real))


def _installed() -> bool:
    return any(isinstance(f, _AliasFinder) for f in sys.meta_path)


def install_as_faiss(replace: bool = False) -> ModuleType:
    """Let ``import faiss`` / ``from faiss.contrib... import ...`` load voisin.

    When the real faiss is already imported, its modules stay unless
    ``replace=True``, which drops them from ``sys.modules`` first (objects
    already created from them keep working, new imports get voisin).
    Returns the voisin module. Call it once, before the code that imports faiss.
    """
    import voisin
    loaded = [name for name in sys.modules if _target(name) is not None]
    real = [name for name in loaded if sys.modules[name] is not sys.modules.get(_target(name) or "")]
    if real and not replace:
        raise RuntimeError("install_as_faiss: the real faiss is already imported; call "
                           "install_as_faiss(replace=True) to replace it, or call it before "
                           "anything imports faiss")
    for name in real:
        del sys.modules[name]
    if not _installed():
        sys.meta_path.insert(0, _AliasFinder())
    sys.modules[_PREFIX] = voisin
    return voisin


def uninstall_as_faiss() -> None:
    """Undo :func:`install_as_faiss`: ``import faiss`` finds the real faiss again."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AliasFinder)]
    for name in [n for n in sys.modules if _target(n) is not None]:
        if sys.modules[name] is sys.modules.get(_target(name) or ""):
            del sys.modules[name]
