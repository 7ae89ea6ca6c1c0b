"""A text corpus that every Python ships: the docstrings of the standard library.

It serves three purposes, none of which needs a download:

- a labelled retrieval set (:func:`docstring_qa`): the query is a docstring's
  summary line as its author wrote it, the one relevant document is the rest
  of that docstring. Known-item retrieval with real, human-written labels;
  recall@10 is the share of queries whose document is among the 10 nearest;
- texts of a chosen word count for benchmarks (:func:`word_windows`);
- the documents of a semantic-search demo (:func:`stdlib_documents`: the first
  docstring paragraph of every public function, class and method, walked over
  the whole standard library with pkgutil in sorted order, named module.qualname).

What it holds depends on the Python version (docstrings change between
releases), so tests compare two searches over the same set, never a stored score.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import random
import re
import warnings
from typing import NamedTuple, Sequence

#: pure-Python standard-library modules (any that a build lacks are skipped)
MODULES = (
    "abc", "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "cmd", "codecs", "collections",
    "concurrent.futures", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "dis", "email.message", "email.utils", "enum", "filecmp", "fnmatch", "fractions", "ftplib",
    "functools", "getopt", "gettext", "glob", "gzip", "heapq", "hmac", "html", "html.parser", "http.client",
    "http.cookies", "http.server", "imaplib", "inspect", "io", "ipaddress", "itertools", "json", "locale",
    "logging", "logging.handlers", "mailbox", "mimetypes", "netrc", "numbers", "operator", "optparse", "os",
    "os.path", "pathlib", "pdb", "pickle", "pickletools", "platform", "plistlib", "poplib", "pprint",
    "profile", "pstats", "queue", "quopri", "random", "re", "reprlib", "sched", "secrets", "selectors",
    "shelve", "shlex", "shutil", "smtplib", "socket", "socketserver", "statistics", "string", "struct",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace",
    "traceback", "types", "typing", "unittest", "urllib.parse", "urllib.request", "uuid",
    "warnings", "wave", "weakref", "webbrowser", "xml.dom.minidom", "xml.etree.ElementTree", "zipfile",
)


class QASet(NamedTuple):
    """Queries and documents; ``relevant[i]`` is the index of query i's document."""

    queries: list[str]
    documents: list[str]
    relevant: list[int]
    names: list[str]  # the qualified name each pair comes from


def _objects():
    for modname in MODULES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(modname)
        except Exception:  # noqa: BLE001 - a build may lack any module, or fail to import one
            continue
        for name in sorted(getattr(mod, "__all__", None) or dir(mod)):
            if name.startswith("_"):
                continue
            obj = getattr(mod, name, None)
            if getattr(obj, "__module__", None) not in (modname, mod.__name__):
                continue  # re-exported from elsewhere: counted where it is defined
            yield f"{modname}.{name}", obj
            if inspect.isclass(obj):
                for mname, member in sorted(vars(obj).items()):
                    if not mname.startswith("_") and callable(member):
                        yield f"{modname}.{name}.{mname}", member


def docstrings() -> list[tuple[str, str]]:
    """(qualified name, cleaned docstring) of public stdlib functions, classes and methods."""
    out, seen = [], set()
    for qual, obj in _objects():
        doc = getattr(obj, "__doc__", None)
        if not isinstance(doc, str):
            continue
        doc = inspect.cleandoc(doc).strip()
        if doc and doc not in seen:  # a docstring shared (inherited, aliased) counts once, first name wins
            seen.add(doc)
            out.append((qual, doc))
    return out


_SPACE = re.compile(r"\s+")


def _words(text: str) -> list[str]:
    return _SPACE.sub(" ", text).strip().split(" ")


def docstring_qa(n: int | None = None, seed: int = 0, min_body_words: int = 15,
                 max_body_words: int | None = None) -> QASet:
    """Summary line -> rest-of-docstring pairs, ``n`` of them (all when None) picked with ``seed``.

    Kept: summaries of 4 to 40 words that are not signatures, bodies of at least
    ``min_body_words`` words (at most ``max_body_words``, when given) that do
    not repeat the summary; a body shared by two objects is kept once.
    """
    pairs, bodies = [], set()
    for qual, doc in docstrings():
        summary, _, body = doc.partition("\n\n")
        summary, body = _SPACE.sub(" ", summary).strip(), body.strip()
        sw, bw = len(_words(summary)), len(_words(body)) if body else 0
        if not 4 <= sw <= 40 or "(" in summary.split(" ", 1)[0] or bw < min_body_words:
            continue
        if max_body_words is not None and bw > max_body_words:
            continue
        if body in bodies or summary in body:
            continue
        bodies.add(body)
        pairs.append((qual, summary, body))
    if n is not None:
        if n > len(pairs):
            raise ValueError(f"n: expected at most {len(pairs)} pairs on this Python, got {n}")
        pairs = random.Random(seed).sample(pairs, n)
    return QASet(queries=[p[1] for p in pairs], documents=[p[2] for p in pairs],
                 relevant=list(range(len(pairs))), names=[p[0] for p in pairs])


def word_windows(count: int, words: int, seed: int = 0) -> list[str]:
    """``count`` texts of exactly ``words`` words: consecutive words of the docstrings, seeded."""
    stream = _words(" ".join(doc for _, doc in docstrings()))
    if words > len(stream):
        raise ValueError(f"words: expected at most {len(stream)}, got {words}")
    rng = random.Random(seed)
    starts = [rng.randrange(len(stream) - words + 1) for _ in range(count)]
    return [" ".join(stream[s:s + words]) for s in starts]


# --------------------------------------------------------------------------- the demo corpus
#: standard-library modules never imported by the walk: they act when imported (open a browser,
#: print, write grammar caches, touch the terminal), start a GUI, or hold the test suites
WALK_SKIP = frozenset({
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "lib2to3", "distutils",
    "ensurepip", "readline", "rlcompleter", "test", "tests", "idle_test", "encodings", "pydoc_data",
})
#: modules known by another name than the one they are defined under: os.path.join, not posixpath.join
ALIASES = ("os.path",)
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*-+>.*)?$", re.S)


class Document(NamedTuple):
    """One entry of the demo corpus: ``name`` is module.qualname, ``text`` its docstring's first paragraph."""

    name: str
    text: str


def stdlib_module_names() -> list[str]:
    """Public standard-library modules and their public submodules, sorted (packages before their children)."""
    import pkgutil
    import sys
    names = []

    def walk(modname: str) -> None:
        # pkgutil.walk_packages would import every subpackage, test suites included, before
        # any filter could say no: recurse by hand, filtering names before importing
        names.append(modname)
        path = getattr(_import(modname), "__path__", None)
        if path is None:
            return
        for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
            if not info.name.startswith("_") and info.name not in WALK_SKIP:
                walk(f"{modname}.{info.name}")

    for top in sorted(sys.stdlib_module_names):
        if not top.startswith("_") and top not in WALK_SKIP:
            walk(top)
    # the aliases first, so that their functions are named as people call them
    return list(ALIASES) + sorted(set(names) - set(ALIASES), key=lambda n: n.split("."))


def _import(name: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - a platform module (winreg) or an optional C library may be absent
        return None


def _public(modname: str, mod) -> list[tuple[str, object]]:
    """(name, object) of the functions and classes a module offers: its ``__all__`` when it
    declares one (re-exports included: ``os.listdir`` lives in posix), else what it defines."""
    declared = getattr(mod, "__all__", None)
    if isinstance(declared, (list, tuple)):
        names = sorted({n for n in declared if isinstance(n, str) and not n.startswith("_")})
        objs = [(n, getattr(mod, n, None)) for n in names]
    else:
        objs = [(n, getattr(mod, n, None)) for n in sorted(dir(mod)) if not n.startswith("_")]
        # defined here, or in the module's C accelerator (bisect.insort is _bisect.insort)
        homes = (modname, "_" + modname.rsplit(".", 1)[-1])
        objs = [(n, o) for n, o in objs if getattr(o, "__module__", None) in homes]
    objs = [(n, o) for n, o in objs if inspect.isclass(o) or inspect.isroutine(o)]
    # an object under two names (array.ArrayType is array.array) is met first under its own
    objs.sort(key=lambda item: (getattr(item[1], "__name__", None) != item[0], item[0]))
    return objs


def first_paragraph(doc: object) -> str | None:
    """The first paragraph of a docstring, one line; a leading call signature is passed over."""
    if not isinstance(doc, str):
        return None
    for para in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        para = _SPACE.sub(" ", para).strip()
        if para and not _SIGNATURE.match(para):
            return para
    return None


def stdlib_documents(min_words: int = 3) -> list[Document]:
    """The demo corpus: the first docstring paragraph of every public function, class and
    method of the standard library, walked in sorted module order.

    A paragraph of fewer than ``min_words`` words is left out; one met twice (an
    alias, a re-export, a shared base docstring) counts once, under the first
    name the walk meets. About 4,600 documents on CPython 3.11; the set
    depends on the Python version and on which optional C modules the build has.
    """
    return list(_walk(min_words))


@functools.lru_cache(maxsize=4)
def _walk(min_words: int) -> tuple[Document, ...]:
    out, seen_text, seen_obj = [], set(), set()

    def take(name: str, obj: object) -> None:
        text = first_paragraph(getattr(obj, "__doc__", None))
        if text is None or len(text.split(" ")) < min_words or text in seen_text or id(obj) in seen_obj:
            return
        seen_text.add(text)
        seen_obj.add(id(obj))
        out.append(Document(name, text))

    for modname in stdlib_module_names():
        mod = _import(modname)
        if mod is None:
            continue
        for name, obj in _public(modname, mod):
            take(f"{modname}.{name}", obj)
            if inspect.isclass(obj):
                for mname, member in sorted(vars(obj).items()):
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__  # the wrapper's docstring is staticmethod's own
                    if not mname.startswith("_") and (inspect.isroutine(member) or isinstance(member, property)):
                        take(f"{modname}.{name}.{mname}", member)
    return tuple(out)


def spread(documents: list[Document], n: int, keep: Sequence[str] = ()) -> list[Document]:
    """``n`` documents spread evenly over the corpus order (so every part of the library
    is represented), always including those named in ``keep``; corpus order is kept."""
    n = int(n)
    if n >= len(documents):
        return list(documents)
    wanted = set(keep)
    kept = [i for i, d in enumerate(documents) if d.name in wanted]
    missing = wanted - {documents[i].name for i in kept}
    if missing:
        raise ValueError(f"keep: not in the corpus: {sorted(missing)[:5]}")
    rest = [i for i in range(len(documents)) if documents[i].name not in wanted]
    room = max(n - len(kept), 0)
    step = len(rest) / room if room else 0
    picked = {rest[int(j * step)] for j in range(room)}
    return [documents[i] for i in sorted(picked | set(kept))]
