"""Vector transforms inside ``IxPT`` (IndexPreTransform).

LinearTransform body: ``uint8 have_bias | vector<float32> A (d_out x d_in) |
vector<float32> b | int32 d_in | int32 d_out | uint8 is_trained``.

* ``LTra`` LinearTransform (FAISS writes OPQ rotations this way too, so an
  OPQMatrix comes back as a LinearTransform with the same matrix);
* ``rrot`` RandomRotationMatrix: the LinearTransform body;
* ``Pcam`` PCAMatrix: ``float32 eigen_power | float32 epsilon | uint8
  random_rotation | int32 balanced_bins | vector mean | vector eigenvalues |
  vector PCAMat`` then the LinearTransform body;
* ``VNrm`` NormalizationTransform: ``float32 norm`` then ``int32 d_in | int32
  d_out | uint8 is_trained``;
* ``RmDT`` RemapDimensionsTransform: ``vector<int32> map`` (d_out entries, -1 = zero)
  then ``int32 d_in | int32 d_out | uint8 is_trained``;
* ``VCnt`` CenteringTransform: ``vector<float32> mean`` (d entries, empty when
  untrained) then ``int32 d_in | int32 d_out | uint8 is_trained``;
* ``Viqm`` ITQMatrix: ``int32 max_iter | int32 seed`` then the LinearTransform body;
* ``Viqt`` ITQTransform: ``vector<float32> mean | uint8 do_pca``, its ITQMatrix
  (``Viqm``), its ``pca_then_itq`` map (``LTra``), then ``int32 d_in | int32
  d_out | uint8 is_trained``.
"""

from __future__ import annotations

import numpy as np

from ...transforms import (CenteringTransform, LinearTransform, NormalizationTransform, PCAMatrix,
                           RandomRotationMatrix, RemapDimensionsTransform)
from ...transforms_itq import ITQMatrix, ITQTransform
from ...transforms_opq import OPQMatrix
from ..faiss_format import MAX_DIMENSION


def _write_linear_body(w, t) -> None:
    w.bool(t.have_bias)
    # an untrained transform has no matrix yet: FAISS writes it empty
    w.vector(t.A if t.is_trained else np.empty(0, np.float32), np.float32)
    w.vector(t.b if t.have_bias else np.empty(0, np.float32), np.float32)
    w.i32(t.d_in)
    w.i32(t.d_out)
    w.bool(t.is_trained)


def write_transform(w, t) -> None:
    if isinstance(t, PCAMatrix):
        w.tag(b"Pcam")
        w.f32(t.eigen_power)
        w.f32(getattr(t, "epsilon", 0.0))
        w.bool(t.random_rotation)
        w.i32(t.balanced_bins)
        w.vector(t.mean, np.float32)
        w.vector(t.eigenvalues, np.float32)
        w.vector(t.PCAMat, np.float32)
        _write_linear_body(w, t)
    elif isinstance(t, RandomRotationMatrix):
        w.tag(b"rrot")
        _write_linear_body(w, t)
    elif isinstance(t, ITQMatrix):
        w.tag(b"Viqm")
        w.i32(t.max_iter)
        w.i32(t.seed)
        _write_linear_body(w, t)
    elif isinstance(t, ITQTransform):
        w.tag(b"Viqt")
        w.vector(t.mean, np.float32)
        w.bool(t.do_pca)
        write_transform(w, t.itq)
        write_transform(w, t.pca_then_itq)
        w.i32(t.d_in)
        w.i32(t.d_out)
        w.bool(t.is_trained)
    elif isinstance(t, (LinearTransform, OPQMatrix)):
        w.tag(b"LTra")
        _write_linear_body(w, t)
    elif isinstance(t, RemapDimensionsTransform):
        w.tag(b"RmDT")
        w.vector(t.map, np.int32)
        w.i32(t.d_in)
        w.i32(t.d_out)
        w.bool(t.is_trained)
    elif isinstance(t, CenteringTransform):
        w.tag(b"VCnt")
        w.vector(t.mean if t.is_trained else np.empty(0, np.float32), np.float32)
        w.i32(t.d_in)
        w.i32(t.d_out)
        w.bool(t.is_trained)
    elif isinstance(t, NormalizationTransform):
        w.tag(b"VNrm")
        w.f32(t.norm)
        w.i32(t.d_in)
        w.i32(t.d_out)
        w.bool(t.is_trained)
    else:
        raise TypeError(f"write_index: no file format for the transform {type(t).__name__}")


def _read_linear_body(r, what: str, t=None):
    at = r.pos
    have_bias = r.bool(f"{what} have_bias")
    A = r.vector(np.float32, f"{what} matrix A")
    b = r.vector(np.float32, f"{what} bias b")
    d_in = r.int_in("i32", 1, MAX_DIMENSION, f"{what} d_in")
    d_out = r.int_in("i32", 1, MAX_DIMENSION, f"{what} d_out")
    is_trained = r.bool(f"{what} is_trained")
    if (A.size not in (0, d_in * d_out)) or (is_trained and A.size == 0) \
            or (have_bias and b.size != d_out):
        raise r.fail(f"{what}: matrix of {A.size} values / bias of {b.size} for d_in={d_in}, "
                     f"d_out={d_out}", at)
    if t is None:
        t = LinearTransform(d_in, d_out, have_bias)
    elif (t.d_in, t.d_out) != (d_in, d_out):
        raise r.fail(f"{what}: dimensions {d_in} -> {d_out} disagree with {t.d_in} -> {t.d_out}", at)
    t.have_bias = have_bias
    if A.size:
        t.A = np.ascontiguousarray(A.reshape(d_out, d_in))
    t.b = np.ascontiguousarray(b) if have_bias else np.zeros(d_out, dtype=np.float32)
    t.is_trained = is_trained
    if A.size:
        t.check_orthonormal()
    return t


def read_transform(r, what: str = "transform"):
    at = r.pos
    tag = r.tag(f"{what} tag")
    if tag == b"LTra":
        return _read_linear_body(r, f"{what} (LinearTransform)")
    if tag == b"rrot":
        # the dimensions are only known at the end of the body: peek them first
        t = _read_linear_body(r, f"{what} (RandomRotationMatrix)")
        rr = RandomRotationMatrix(t.d_in, t.d_out)
        rr.A, rr.b, rr.have_bias, rr.is_trained = t.A, t.b, t.have_bias, t.is_trained
        rr.is_orthonormal = t.is_orthonormal
        return rr
    if tag == b"Pcam":
        w = f"{what} (PCAMatrix)"
        eigen_power = r.f32(f"{w} eigen_power")
        epsilon = r.f32(f"{w} epsilon")
        random_rotation = r.bool(f"{w} random_rotation")
        balanced_bins = r.int_in("i32", 0, 1 << 30, f"{w} balanced_bins")
        mean = r.vector(np.float32, f"{w} mean")
        eigenvalues = r.vector(np.float32, f"{w} eigenvalues")
        pcamat = r.vector(np.float32, f"{w} PCAMat")
        if not (np.isfinite(eigen_power) and np.isfinite(epsilon)):
            raise r.fail(f"{w}: eigen_power / epsilon are not finite", at)
        t = _read_linear_body(r, w)
        pca = PCAMatrix(t.d_in, t.d_out, float(eigen_power), random_rotation)
        if mean.size not in (0, t.d_in) or pcamat.size not in (0, t.d_in * t.d_in):
            raise r.fail(f"{w}: mean / PCA matrix sizes do not match d_in={t.d_in}", at)
        pca.epsilon = float(epsilon)
        pca.balanced_bins = balanced_bins
        pca.mean, pca.eigenvalues, pca.PCAMat = mean, eigenvalues, pcamat
        pca.A, pca.b, pca.have_bias, pca.is_trained = t.A, t.b, t.have_bias, t.is_trained
        pca.is_orthonormal = t.is_orthonormal
        return pca
    if tag == b"VNrm":
        w = f"{what} (NormalizationTransform)"
        norm = r.f32(f"{w} norm")
        d_in = r.int_in("i32", 1, MAX_DIMENSION, f"{w} d_in")
        r.int_in("i32", d_in, d_in, f"{w} d_out")
        r.bool(f"{w} is_trained")
        if not (np.isfinite(norm) and norm > 0):
            raise r.fail(f"{w}: norm exponent {norm} must be a positive number", at)
        return NormalizationTransform(d_in, float(norm))
    if tag == b"Viqm":
        w = f"{what} (ITQMatrix)"
        max_iter = r.int_in("i32", 0, 1 << 30, f"{w} max_iter")
        seed = r.i32(f"{w} seed")
        t = _read_linear_body(r, w)
        if t.d_in != t.d_out:
            raise r.fail(f"{w}: a rotation maps d to d, got {t.d_in} -> {t.d_out}", at)
        itq = ITQMatrix(t.d_in)
        itq.max_iter, itq.seed = max_iter, seed
        itq.A, itq.b, itq.have_bias, itq.is_trained = t.A, t.b, t.have_bias, t.is_trained
        itq.is_orthonormal = t.is_orthonormal
        return itq
    if tag == b"Viqt":
        return _read_itq_transform(r, what, at)
    if tag == b"RmDT":
        w = f"{what} (RemapDimensionsTransform)"
        mapping = r.vector(np.int32, f"{w} map")
        d_in = r.int_in("i32", 1, MAX_DIMENSION, f"{w} d_in")
        d_out = r.int_in("i32", 1, MAX_DIMENSION, f"{w} d_out")
        r.bool(f"{w} is_trained")
        t = RemapDimensionsTransform(d_in, d_out, False)
        try:
            t.set_map(mapping)
        except ValueError as exc:
            raise r.fail(f"{w}: {exc}", at) from None
        return t
    if tag == b"VCnt":
        w = f"{what} (CenteringTransform)"
        mean = r.vector(np.float32, f"{w} mean")
        d_in = r.int_in("i32", 1, MAX_DIMENSION, f"{w} d_in")
        r.int_in("i32", d_in, d_in, f"{w} d_out")
        is_trained = r.bool(f"{w} is_trained")
        if mean.size not in (0, d_in) or (is_trained and mean.size != d_in):
            raise r.fail(f"{w}: mean of {mean.size} values for d={d_in} "
                         f"(is_trained={is_trained})", at)
        t = CenteringTransform(d_in)
        if is_trained:
            t.set_mean(mean)
        return t
    raise r.fail(f"{what}: transform {tag!r} is not supported by voisin", at)


def _read_itq_transform(r, what: str, at: int) -> ITQTransform:
    w = f"{what} (ITQTransform)"
    mean = r.vector(np.float32, f"{w} mean")
    do_pca = r.bool(f"{w} do_pca")
    sub_at = r.pos
    itq = read_transform(r, f"{w} rotation")
    lin_at = r.pos
    lin = read_transform(r, f"{w} pca_then_itq")
    d_in = r.int_in("i32", 1, MAX_DIMENSION, f"{w} d_in")
    d_out = r.int_in("i32", 1, MAX_DIMENSION, f"{w} d_out")
    is_trained = r.bool(f"{w} is_trained")
    if not isinstance(itq, ITQMatrix) or itq.d_in != d_out:
        raise r.fail(f"{w}: expected an ITQMatrix of dimension {d_out}, found {itq!r}", sub_at)
    if type(lin) is not LinearTransform or (lin.d_in, lin.d_out) != (d_in, d_out):
        raise r.fail(f"{w}: expected a LinearTransform {d_in} -> {d_out}, found {lin!r}", lin_at)
    if mean.size not in (0, d_in) or (is_trained and (mean.size != d_in or not lin.is_trained)):
        raise r.fail(f"{w}: mean of {mean.size} values / an untrained map for d_in={d_in}", at)
    t = ITQTransform(d_in, d_out, do_pca)
    t.mean = np.ascontiguousarray(mean, dtype=np.float32)
    t.itq = itq
    t.pca_then_itq = lin
    t.is_trained = is_trained
    return t
