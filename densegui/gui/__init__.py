"""densegui's Qt layer (PySide6 + pyqtgraph + superqt).

Importing this package applies one process-wide workaround, see
:func:`_guard_none_refcount`.
"""

from __future__ import annotations

import sys


def _guard_none_refcount() -> None:
    """Keep PySide6's over-released ``None``/``True``/``False`` from being deallocated.

    PySide6 6.12 on CPython ≤ 3.11 drops one reference to ``None`` each time
    a void C++ method (``processEvents``, ``setText``, ``repaint``, …) returns,
    and one to ``True`` each time ``Signal.emit`` returns (measured:
    ``sys.getrefcount`` falls by exactly one per call). A GUI
    makes millions of such calls, so the count reaches zero and the process
    aborts with "Fatal Python error: none_dealloc" (or bool_dealloc) -- mid-session
    or at exit.
    CPython 3.12+ makes ``None`` immortal (PEP 683), which hides the bug; here
    we do the same by adding 2**40 references once (the refcount is the first
    field of every CPython object).
    """
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return
    import ctypes

    for singleton in (None, True, False):
        refcnt = ctypes.c_ssize_t.from_address(id(singleton))
        if refcnt.value < 1 << 39:
            refcnt.value += 1 << 40


_guard_none_refcount()
