"""Cyclic garbage collection on the GUI thread only.

Python runs an automatic collection in whichever thread allocates when a threshold is crossed.
In a worker thread (a task runner unpickling a result from a background process, an import) such
a collection can free Qt objects the window dropped, and their C++ destructors then run off the
GUI thread: they need Qt locks the GUI thread may hold while it waits for the GIL to call back
into Python. The test suite hung that way (a worker collecting inside ``Connection.recv`` while
the GUI thread set a style sheet). So, while a :class:`MainThreadCollector` runs, automatic
collection is off and a timer on the GUI thread runs the collections Python would have run.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 100  # how long new cyclic garbage can wait (a gen-0 pass takes well under 1 ms)


def collect_due() -> int | None:
    """Run the collection Python's thresholds call for now, if any; returns its generation."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    for generation in (2, 1, 0):
        if thresholds[generation] and counts[generation] > thresholds[generation]:
            gc.collect(generation)
            return generation
    return None


class MainThreadCollector(QObject):
    """Switches automatic collection off while started and collects on this (the GUI) thread."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(collect_due)
        self._was_enabled = False

    def start(self) -> None:
        if not self._timer.isActive():
            self._was_enabled = gc.isenabled()
            gc.disable()
            self._timer.start()

    def stop(self) -> None:
        """Automatic collection as before :meth:`start`; a full pass now, on this thread."""
        if self._timer.isActive():
            self._timer.stop()
            gc.collect()
            if self._was_enabled:
                gc.enable()

    def is_active(self) -> bool:
        return self._timer.isActive()
