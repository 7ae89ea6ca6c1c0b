"""Vector transforms inside ``IxPT`` (IndexPreTransform).

FAISS writes an OPQ rotation as a plain LinearTransform ``LTra``:
``uint8 have_bias | vector<float32> A (d_out x d_in) | vector<float32> b |
int32 d_in | int32 d_out | uint8 is_trained``. voisin reads it back as an
:class:`~voisin.transforms_opq.OPQMatrix` (a rotation without bias).
"""

from __future__ import annotations

import numpy as np

from ...transforms_opq import OPQMatrix
from ..faiss_format import MAX_DIMENSION


def write_transform(w, t) -> None:
    if not isinstance(t, OPQMatrix):
        raise TypeError(f"write_index: no file format for the transform {type(t).__name__}")
    w.tag(b"LTra")
    w.bool(t.have_bias)
    w.vector(t.A, np.float32)
    w.vector(t.b if t.have_bias else np.empty(0, np.float32), np.float32)
    w.i32(t.d_in)
    w.i32(t.d_out)
    w.bool(t.is_trained)


def read_transform(r, what: str = "transform") -> OPQMatrix:
    at = r.pos
    tag = r.tag(f"{what} tag")
    if tag != b"LTra":
        names = {b"Pcam": "PCAMatrix", b"rrot": "RandomRotationMatrix", b"Viqm": "ITQMatrix",
                 b"VNrm": "NormalizationTransform", b"VCnt": "CenteringTransform",
                 b"VRDr": "RemapDimensionsTransform"}
        name = names.get(tag, repr(tag))
        raise r.fail(f"{what}: transform {name} is not supported by voisin", at)
    have_bias = r.bool(f"{what} have_bias")
    A = r.vector(np.float32, f"{what} matrix A")
    b = r.vector(np.float32, f"{what} bias b")
    d_in = r.int_in("i32", 1, MAX_DIMENSION, f"{what} d_in")
    d_out = r.int_in("i32", 1, MAX_DIMENSION, f"{what} d_out")
    is_trained = r.bool(f"{what} is_trained")
    if A.size != d_in * d_out or (have_bias and b.size != d_out):
        raise r.fail(f"{what}: matrix of {A.size} values for d_in={d_in}, d_out={d_out}", at)
    if have_bias and np.any(b != 0):
        raise r.fail(f"{what}: linear transforms with a bias are not supported by voisin", at)
    t = OPQMatrix(d_in, 1, d_out)
    t.A = np.ascontiguousarray(A.reshape(d_out, d_in))
    t.is_trained = is_trained
    return t
