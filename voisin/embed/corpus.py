"""A text corpus that every Python ships: the docstrings of the standard library.

It serves three purposes, none of which needs a download:

- a labelled retrieval set (:func:`docstring_qa`): the query is a docstring's
  summary line as its author wrote it, the one relevant document is the rest
  of that docstring. Known-item retrieval with real, human-written labels;
  recall@10 is the share of queries whose document is among the 10 nearest;
- texts of a chosen word count for benchmarks (:func:`word_windows`);
- the documents of a semantic-search demo.

What it holds depends on the Python version (docstrings change between
releases), so tests compare two searches over the same set, never a stored score.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
import warnings
from typing import NamedTuple

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
