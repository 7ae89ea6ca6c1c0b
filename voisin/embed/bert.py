"""The BERT forward pass on one padded batch: numpy matmuls (BLAS) plus the fused kernels.

Shapes: a batch holds ``nb`` sentences padded to ``L`` tokens, so the hidden
state is ``(nb * L, d)``. Attention runs a few sentences at a time, so that the
``(heads, L, L)`` score blocks stay in cache (32 long sentences at once would
be 100 MB of scores).

Every array is written into a :class:`Workspace` allocated once per pipeline:
a fresh 256 kB result costs a mmap and page faults, which on this kind of
(sandboxed) machine took ten times longer than the product that filled it.
"""

from __future__ import annotations

import numpy as np

from ..kernels.transformer import add_layer_norm, bias_gelu, masked_softmax, mean_pool
from .weights import BertWeights, Layer

#: bytes of attention scores computed per chunk of sentences
SCORE_BLOCK_BYTES = 2 << 20


class Workspace:
    """Scratch arrays for batches of up to ``tokens`` tokens, at most ``longest`` per sentence."""

    def __init__(self, weights: BertWeights, tokens: int, longest: int):
        d, heads = weights.dim, weights.heads
        up = weights.layers[0].w_up.shape[1] if weights.layers else d
        f32 = np.float32
        self.h, self.ctx, self.a = (np.empty((tokens, d), f32) for _ in range(3))
        self.qkv = np.empty((tokens, 3 * d), f32)
        self.up = np.empty((tokens, up), f32)
        self.chunk = max(1, SCORE_BLOCK_BYTES // (heads * longest * longest * 4))
        self.scores = np.empty(self.chunk * heads * longest * longest, f32)
        self.pv = np.empty(self.chunk * longest * d, f32)
        self.zeros = np.zeros(d, f32)

    def view(self, name: str, *shape: int) -> np.ndarray:
        """The first prod(shape) elements of buffer ``name`` as a C-contiguous array."""
        buf = getattr(self, name)
        n = int(np.prod(shape))
        return buf.reshape(-1)[:n].reshape(shape)


def _attention(ws: Workspace, nb: int, L: int, heads: int, lengths: np.ndarray) -> np.ndarray:
    n = nb * L
    d = ws.h.shape[1]
    hd = d // heads
    # (nb, L, 3, heads, hd) -> q, k, v as (nb, heads, L, hd) strided views: matmul hands
    # each (L, hd) slice to BLAS with its leading dimension, no copy
    x = ws.view("qkv", nb, L, 3, heads, hd)
    q = x[:, :, 0].transpose(0, 2, 1, 3)
    k = x[:, :, 1].transpose(0, 2, 3, 1)
    v = x[:, :, 2].transpose(0, 2, 1, 3)
    ctx = ws.view("ctx", nb, L, heads, hd)
    scale = np.float32(1.0 / np.sqrt(hd))
    step = min(ws.chunk, nb)
    for s in range(0, nb, step):
        c = min(nb, s + step) - s
        scores = ws.view("scores", c, heads, L, L)
        np.matmul(q[s:s + c], k[s:s + c], out=scores)
        masked_softmax(scores, lengths[s:s + c], scale)
        pv = ws.view("pv", c, heads, L, hd)
        np.matmul(scores, v[s:s + c], out=pv)
        np.copyto(ctx[s:s + c], pv.transpose(0, 2, 1, 3))
    return ws.view("ctx", n, d)


def _layer(ws: Workspace, w: Layer, nb: int, L: int, heads: int, eps: np.float32, lengths: np.ndarray) -> None:
    n = nb * L
    d = ws.h.shape[1]
    h = ws.view("h", n, d)
    qkv = ws.view("qkv", n, 3 * d)
    np.matmul(h, w.w_qkv, out=qkv)
    qkv += w.b_qkv
    ctx = _attention(ws, nb, L, heads, lengths)
    a = ws.view("a", n, d)
    np.matmul(ctx, w.w_out, out=a)
    add_layer_norm(a, h, w.b_out, w.ln1_g, w.ln1_b, eps)
    up = ws.view("up", n, w.w_up.shape[1])
    np.matmul(a, w.w_up, out=up)
    bias_gelu(up, w.b_up)
    np.matmul(up, w.w_down, out=h)  # h is spent: the second residual is a
    add_layer_norm(h, a, w.b_down, w.ln2_g, w.ln2_b, eps)


def encode_batch(weights: BertWeights, ws: Workspace, tokens: np.ndarray, lengths: np.ndarray,
                 normalize: bool, out: np.ndarray) -> None:
    """Mean-pooled sentence vectors of ``tokens`` (nb, L) into ``out`` (nb, d).

    Row b holds ``lengths[b]`` real token ids followed by padding (any id).
    """
    nb, L = tokens.shape
    d = weights.dim
    eps = np.float32(weights.eps)
    h = ws.view("h", nb * L, d)
    np.take(weights.word, tokens.reshape(-1), axis=0, out=h)
    h3 = h.reshape(nb, L, d)
    h3 += weights.position_type[:L]
    zeros = ws.view("a", nb * L, d)
    zeros.fill(0.0)
    add_layer_norm(h, zeros, ws.zeros, weights.emb_ln_g, weights.emb_ln_b, eps)
    for layer in weights.layers:
        _layer(ws, layer, nb, L, weights.heads, eps, lengths)
    mean_pool(h.reshape(nb, L, d), lengths, normalize, out)
