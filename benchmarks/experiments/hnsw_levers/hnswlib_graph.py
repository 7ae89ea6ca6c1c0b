"""Read an hnswlib (0.8) index file into voisin's graph arrays, to run voisin's kernel on hnswlib's graph.

Separates "hnswlib builds a better graph" from "hnswlib searches a graph faster":
the reference prototype kernel searches this graph exactly as it searches
voisin's, and the node -> label map turns results back into dataset ids.

File layout (hnswlib/hnswalg.h, saveIndex): a 96-byte header, then
``cur_element_count`` level-0 records of ``size_data_per_element`` bytes
``[uint32 count (low 16 bits) | maxM0 uint32 links | vector | size_t label]``,
then per element a uint32 byte size followed by its upper-level records
``[uint32 count | maxM uint32 links]`` for levels 1..level.
"""

from __future__ import annotations

import struct

import numpy as np

_HDR = "<QQQQQQiIQQQdQ"


def read_hnswlib(path: str, d: int, dtype=np.float32) -> dict:
    raw = np.fromfile(path, dtype=np.uint8)
    hsize = struct.calcsize(_HDR)
    (off0, _maxel, n, size_el, label_off, data_off, maxlevel, entry, maxM, maxM0, _M, _mult,
     _efc) = struct.unpack(_HDR, raw[:hsize].tobytes())
    assert off0 == 0 and data_off == 4 + 4 * maxM0, "unexpected hnswlib level-0 layout"
    lvl0 = raw[hsize:hsize + n * size_el].reshape(n, size_el)
    cnt0 = lvl0[:, :4].copy().view(np.uint32)[:, 0] & 0xFFFF
    links0 = lvl0[:, 4:4 + 4 * maxM0].copy().view(np.int32)
    nb0 = np.where(np.arange(maxM0)[None, :] < cnt0[:, None], links0, -1).astype(np.int32)
    X = np.ascontiguousarray(lvl0[:, data_off:data_off + 4 * d].copy().view(dtype))
    labels = lvl0[:, label_off:label_off + 8].copy().view(np.uint64)[:, 0].astype(np.int64)
    pos = hsize + n * size_el
    rec = 4 + 4 * maxM
    levels = np.ones(n, dtype=np.int32)
    up_rows = []
    upper_off = np.zeros(n, dtype=np.int64)
    nrows = 0
    for i in range(n):
        sz = int(raw[pos:pos + 4].view(np.uint32)[0])
        pos += 4
        upper_off[i] = nrows
        if sz:
            nl = sz // rec
            block = raw[pos:pos + nl * rec].copy().view(np.uint32).reshape(nl, 1 + maxM)
            c = block[:, 0] & 0xFFFF
            lk = block[:, 1:].view(np.int32)
            up_rows.append(np.where(np.arange(maxM)[None, :] < c[:, None], lk, -1))
            levels[i] = 1 + nl
            nrows += nl
            pos += sz
    upper = (np.concatenate(up_rows).astype(np.int32) if up_rows
             else np.empty((0, maxM), np.int32))
    assert pos == raw.size, "trailing bytes: not an hnswlib 0.8 file?"
    return {"nb0": np.ascontiguousarray(nb0), "upper": np.ascontiguousarray(upper),
            "upper_off": upper_off, "levels": levels, "entry": int(entry),
            "max_level": int(maxlevel), "X": X, "labels": labels}
