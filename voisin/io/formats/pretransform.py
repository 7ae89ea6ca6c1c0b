"""IndexPreTransform ``IxPT``: header, ``int32`` number of transforms, the
transforms (see ``transforms``), then the wrapped index."""

from __future__ import annotations

from ...indexes.pretransform import IndexPreTransform
from ..faiss_format import read_header, register_reader, register_writer, write_header, write_object
from .transforms import read_transform, write_transform

MAX_TRANSFORMS = 64


@register_writer(IndexPreTransform)
def write_pretransform(w, index: IndexPreTransform) -> None:
    w.tag(b"IxPT")
    write_header(w, index)
    w.i32(len(index.chain))
    for t in index.chain:
        write_transform(w, t)
    write_object(w, index.index)


@register_reader(b"IxPT")
def read_pretransform(r, ctx, tag: bytes) -> IndexPreTransform:
    at = r.pos
    h = read_header(r, "IndexPreTransform", extra_metrics=True)  # the wrapped index checks its own
    nt = r.int_in("i32", 0, MAX_TRANSFORMS, "IndexPreTransform number of transforms")
    chain = [read_transform(r, f"IndexPreTransform transform {i}") for i in range(nt)]
    sub = ctx.read_nested(r, "IndexPreTransform wrapped index")
    d_in = chain[0].d_in if chain else sub.d
    if d_in != h.d or sub.ntotal != h.ntotal:
        raise r.fail(f"IndexPreTransform: header says d={h.d}, ntotal={h.ntotal}; the chain "
                     f"takes d={d_in} and the wrapped index holds {sub.ntotal}", at)
    # the constructor checks that the chain's dimensions fit together and the index
    return IndexPreTransform(chain, sub)
