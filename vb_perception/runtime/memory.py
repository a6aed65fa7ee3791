"""Keep freed memory in the process (glibc): per-frame buffers of a few MB then stop page-faulting on every frame.

By default glibc hands large freed blocks back to the kernel, so each 640x480 float image the node builds (3.7 MB
for normals) is faulted in page by page again, frame after frame: ~10 ms per image here (bench/node.py). Raising
the mmap and trim thresholds keeps those blocks in the heap for reuse: 0.7 ms. The cost is that the process keeps
its peak heap, which for a long-running perception node is what it needs anyway. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory(mmap_threshold_mb: int = 64, trim_threshold_mb: int = 512) -> bool:
    """Tune glibc's allocator once per process; returns whether it applied (glibc found)."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = (
        mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb << 20) == 1
        and mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb << 20) == 1
    )
    _done = ok
    return ok
