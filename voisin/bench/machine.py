"""What a benchmark ran on: kept as the harness's name for :mod:`voisin.machine`, where the facts live."""

from ..machine import (PACKAGES, available_cores, blas_info, cpu_flags, cpu_model, describe,  # noqa: F401
                       git_commit, numba_layer, peak_rss_bytes, rss_bytes, total_memory_bytes, versions)
