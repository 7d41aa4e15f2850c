"""densegui's Qt layer (PySide6 + pyqtgraph + superqt).

This module itself imports no Qt, so that the CLI can read it and the app can start its background
process before Qt loads. It holds the window's tab keys, what the explorer can edit
(:func:`cannot_explore`) and :func:`guard_refcounts`, which every program must call before it makes
a QApplication (``run_app`` does).
"""

from __future__ import annotations

import sys
from typing import Any

# The window's tabs, in order: their keys (``--tab``, ``MainWindow.select_tab``) and titles.
TABS = ("architecture", "channels", "summary", "reuse", "probe", "train", "design")
TITLES = ("Architecture", "Channels", "Summary", "Feature reuse", "Timing probe", "Train", "Design space")


def cannot_explore(cfg: Any) -> str | None:
    """Why the explorer cannot edit ``cfg`` (its family lacks the EXPLORE capability), or None."""
    from densegui.core.arch import registry
    from densegui.core.arch.family import EXPLORE

    family = registry.family_of(cfg)
    if family.can(EXPLORE):
        return None
    can = " or ".join(f.title for f in registry.families().values() if f.can(EXPLORE))
    return (f"{cfg.label()} is a {family.title}; the explorer edits a {can}. Pin it as the baseline from the "
            "Compare menu, or see it with 'densegui summary' or 'densegui compare'.")

_guarded = False


def guard_refcounts() -> None:
    """Keep PySide6's over-released ``None``/``True``/``False`` from being deallocated (idempotent).

    PySide6 6.12 on CPython ≤ 3.11 drops one reference to ``None`` each time a void C++ method
    (``processEvents``, ``setText``, ``repaint``, …) returns, and one to ``True`` each time
    ``Signal.emit`` returns (measured: ``sys.getrefcount`` falls by exactly one per call). A GUI
    makes millions of such calls, so the count reaches zero and the process aborts with "Fatal
    Python error: none_dealloc" (or bool_dealloc), mid-session or at exit. CPython 3.12+ makes
    them immortal (PEP 683), which hides the bug; here we do the same by adding 2**40 references
    once (the refcount is the first field of every CPython object). A process-wide change, so it
    is made by the programs that run Qt (``run_app``, the renderers, the tests' conftest), not by
    an import.
    """
    global _guarded
    if _guarded or sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return
    import ctypes

    for singleton in (None, True, False):
        refcnt = ctypes.c_ssize_t.from_address(id(singleton))
        if refcnt.value < 1 << 39:
            refcnt.value += 1 << 40
    _guarded = True
