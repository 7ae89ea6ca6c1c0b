"""The BERT forward pass on one padded batch: numpy matmuls (BLAS) plus the fused kernels.

Shapes: a batch holds ``nb`` sentences padded to ``L`` tokens, so the hidden
state is ``(nb * L, d)``. Attention runs a few sentences at a time, so that the
``(heads, L, L)`` score blocks stay in cache (32 long sentences at once would
be 100 MB of scores).
"""

from __future__ import annotations

import numpy as np

from ..kernels.transformer import add_layer_norm, bias_gelu, masked_softmax, mean_pool
from .weights import BertWeights, Layer

#: bytes of attention scores computed per chunk of sentences
SCORE_BLOCK_BYTES = 2 << 20


def _attention(qkv: np.ndarray, nb: int, L: int, heads: int, lengths: np.ndarray) -> np.ndarray:
    d = qkv.shape[1] // 3
    hd = d // heads
    # (nb, L, 3, heads, hd) -> q, k, v as (nb, heads, L, hd) strided views: matmul hands
    # each (L, hd) slice to BLAS with its leading dimension, no copy
    x = qkv.reshape(nb, L, 3, heads, hd)
    q = x[:, :, 0].transpose(0, 2, 1, 3)
    k = x[:, :, 1].transpose(0, 2, 3, 1)
    v = x[:, :, 2].transpose(0, 2, 1, 3)
    ctx = np.empty((nb, L, heads, hd), dtype=np.float32)
    scale = np.float32(1.0 / np.sqrt(hd))
    step = max(1, SCORE_BLOCK_BYTES // (heads * L * L * 4))
    for s in range(0, nb, step):
        e = min(nb, s + step)
        scores = np.matmul(q[s:e], k[s:e])
        masked_softmax(scores, lengths[s:e], scale)
        ctx[s:e] = np.matmul(scores, v[s:e]).transpose(0, 2, 1, 3)
    return ctx.reshape(nb * L, d)


def _layer(h: np.ndarray, w: Layer, nb: int, L: int, heads: int, eps: float, lengths: np.ndarray) -> np.ndarray:
    qkv = h @ w.w_qkv
    qkv += w.b_qkv
    ctx = _attention(qkv, nb, L, heads, lengths)
    a = ctx @ w.w_out
    add_layer_norm(a, h, w.b_out, w.ln1_g, w.ln1_b, eps)
    up = a @ w.w_up
    bias_gelu(up, w.b_up)
    out = up @ w.w_down
    add_layer_norm(out, a, w.b_down, w.ln2_g, w.ln2_b, eps)
    return out


def encode_batch(weights: BertWeights, tokens: np.ndarray, lengths: np.ndarray, normalize: bool,
                 out: np.ndarray) -> None:
    """Mean-pooled sentence vectors of ``tokens`` (nb, L) into ``out`` (nb, d).

    Row b holds ``lengths[b]`` real token ids followed by padding (any id).
    """
    nb, L = tokens.shape
    d = weights.dim
    eps = np.float32(weights.eps)
    h = weights.word[tokens.reshape(-1)]
    pos = np.ascontiguousarray(np.broadcast_to(weights.position_type[:L], (nb, L, d))).reshape(nb * L, d)
    add_layer_norm(h, pos, np.zeros(d, np.float32), weights.emb_ln_g, weights.emb_ln_b, eps)
    for layer in weights.layers:
        h = _layer(h, layer, nb, L, weights.heads, eps, lengths)
    mean_pool(h.reshape(nb, L, d), lengths, normalize, out)
