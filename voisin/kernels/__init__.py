"""numba kernels: plain arrays in, plain arrays out; no classes, no callbacks.

Every kernel is compiled with ``cache=True`` (on-disk cache, so a second
process does not recompile) and ``nogil=True`` (concurrent Python threads can
search at once). Metrics are chosen with integer flags, never with function
arguments, which would defeat the cache.
"""

# fastmath without 'nnan'/'ninf': the heaps use +inf as the empty sentinel and
# LLVM may otherwise fold comparisons against it away.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
