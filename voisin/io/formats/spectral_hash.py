"""IndexIVFSpectralHash ``IwSh``: the IVF common part, the transform ``vt``,
``int32 nbit | float32 period | int32 threshold_type | vector<float32>
trained``, then the inverted lists (code size ``(nbit + 7) / 8``).

FAISS's median training resizes ``trained`` to (training points x nbit) and
fills the first nlist x nbit values; voisin keeps those when reading and
writes exactly nlist x nbit (FAISS reads only them).
"""

from __future__ import annotations

import numpy as np

from ...indexes.ivf_spectral_hash import IndexIVFSpectralHash
from ..faiss_format import register_reader, register_writer
from .ivf import IVFCommon, install_ivf, read_invlists, write_invlists, write_ivf_header
from .transforms import read_transform, write_transform


@register_writer(IndexIVFSpectralHash)
def write_ivf_spectral_hash(w, index: IndexIVFSpectralHash) -> None:
    w.tag(b"IwSh")
    write_ivf_header(w, index)
    write_transform(w, index.vt)
    w.i32(index.nbit)
    w.f32(index.period)
    w.i32(index.threshold_type)
    w.vector(index.trained, np.float32)
    write_invlists(w, index)


@register_reader(b"IwSh")
def read_ivf_spectral_hash(r, ctx, tag: bytes) -> IndexIVFSpectralHash:
    what = "IndexIVFSpectralHash"
    c = IVFCommon(r, ctx, what)
    vt_at = r.pos
    vt = read_transform(r, f"{what} transform")
    nbit = r.int_in("i32", 1, 1 << 20, f"{what} nbit")
    period = r.f32(f"{what} period")
    tt_at = r.pos
    threshold_type = r.int_in("i32", 0, 3, f"{what} threshold_type")
    trained = r.vector(np.float32, f"{what} trained thresholds")
    if (vt.d_in, vt.d_out) != (c.h.d, nbit):
        raise r.fail(f"{what}: the transform maps {vt.d_in} -> {vt.d_out}, expected "
                     f"{c.h.d} -> {nbit}", vt_at)
    need = c.nlist * nbit
    if threshold_type != IndexIVFSpectralHash.Thresh_global and c.h.is_trained \
            and trained.size < need:
        raise r.fail(f"{what}: {trained.size} thresholds for nlist={c.nlist} x nbit={nbit}", tt_at)
    il = read_invlists(r, c.nlist, (nbit + 7) // 8, c.h.ntotal, what)
    index = IndexIVFSpectralHash(c.quantizer, c.h.d, c.nlist, nbit, float(period))
    index.replace_vt(vt)
    index.threshold_type = threshold_type
    index.trained = np.ascontiguousarray(trained[:need] if trained.size >= need else trained,
                                         dtype=np.float32)
    index._codec_trained = bool(c.h.is_trained)
    return install_ivf(index, c, il)
