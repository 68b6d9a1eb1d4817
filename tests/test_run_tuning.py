"""How `gdpr-daemon run` sets up the interpreter for long work."""

from __future__ import annotations

import subprocess
import sys


def test_run_tunes_the_garbage_collector() -> None:
    """After tune_gc (which `run` calls once the daemon is built) what start-up made is frozen out of the
    collector's sight, the young generation waits for 10,000 allocations, the older ones keep their thresholds,
    and a reference cycle made later is still collected."""
    code = (
        "import gc, weakref\n"
        "from gdpr_daemon.commands.run import tune_gc, GC_YOUNG_THRESHOLD\n"
        "before = gc.get_threshold()\n"
        "tune_gc()\n"
        "after = gc.get_threshold()\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a\n"
        "gone = weakref.ref(a); del a, b\n"
        "kept = [[] for _ in range(GC_YOUNG_THRESHOLD + 1)]\n"  # enough new objects for a young collection
        "print(before[1:] == after[1:], after[0], gc.get_freeze_count() > 1000, gone() is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["True", "10000", "True", "True"]

