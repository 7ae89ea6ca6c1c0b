"""FAISS's ``faiss.contrib`` modules on voisin: ``datasets``, ``evaluation``,
``exhaustive_search``, ``inspect_tools``, ``ivf_tools``, ``big_batch_search``,
``vecs_io`` and ``ondisk``, with faiss's function names and semantics
(docs/faiss-python.md lists every name and each difference).

With :func:`voisin.install_as_faiss`, ``from faiss.contrib.datasets import
SyntheticDataset`` loads :mod:`voisin.contrib.datasets`.
"""
