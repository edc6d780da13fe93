"""How a torch job's OpenMP threads wait: sleeping, not spinning, so that a busy machine slows it gracefully.

torch runs each parallel operation (a linear layer, an element-wise op on a few thousand values, one step of
the draw) as an OpenMP parallel region: the work is split evenly between the job's threads, and the region
ends when the last thread is done. A decode step of the fast sampling loop is hundreds of such regions, each
a fraction of a millisecond. Between regions, GNU OpenMP (the runtime PyPI's torch ships) keeps an idle
thread spinning for about 300,000 iterations (milliseconds) before it sleeps, so during decoding every
thread of the job looks CPU-bound to the kernel.

When another process keeps one of the job's cores busy, the thread that shares its core with it gets only
its scheduler share of that core, in slices of milliseconds, and every region waits for it while the other
threads spin at the barrier: the loop slows far more than the lost core explains (``bench_sampling.py``'s
contended mode; README: Benchmarks). With ``OMP_WAIT_POLICY=PASSIVE`` a waiting thread sleeps at once: it
leaves its core to the other process, and on wake-up the kernel runs it promptly (a thread that slept is
owed CPU time), so each region waits a wake-up, not a time slice. On an idle machine every region then
pays that wake-up instead of finding its threads spinning, which costs the fast loop part of its idle speed
(README: Benchmarks). The policy changes only how threads wait, never how work is split, so results are
the same.

:func:`passive_openmp` sets it for the sample stage's jobs and the sampling benchmark. The OpenMP runtime
reads its environment once, when torch's library loads: call it before anything imports torch. A wait
policy or spin count the user set (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, Intel OpenMP's
``KMP_BLOCKTIME``) is kept.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

#: variables that already decide how OpenMP threads wait; any of them set: passive_openmp leaves things be
USER_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def passive_openmp(env: MutableMapping[str, str] | None = None) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``env`` (default: this process's environment) unless one of
    :data:`USER_WAIT_SETTINGS` is set; return whether it was set. Raises RuntimeError when torch is
    already imported into this process (the runtime has read its environment then)."""
    if env is None:
        if "torch" in sys.modules:
            raise RuntimeError(
                "passive_openmp() must run before torch is imported: the OpenMP runtime reads "
                "OMP_WAIT_POLICY once, when torch's library loads"
            )
        env = os.environ
    if any(name in env for name in USER_WAIT_SETTINGS):
        return False
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
