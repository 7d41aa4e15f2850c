"""Shared Qt fixtures for GUI tests (offscreen; see the root conftest).

``widget_leak_check``: fails a test that leaves a parentless top-level
widget alive after it finished (close + deleteLater your widgets; call
``shutdown()`` on panels). Panel tests of other modules can use it too:
``def test_x(qtbot, widget_leak_check): ...``.

``make_panel``: ``make_panel(factory, size=(w, h), show=True)`` builds ``factory()``, resizes,
shows it and waits until it is exposed; after the test each panel it made is shut down (if it
has ``shutdown()``), closed and deleted, with the leak check applied.

``explorer``: a fully built :class:`MainWindow` (no user settings), shown,
closed and deleted after the test, with the leak check applied.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QApplication, QWidget

from densegui.gui import guard_refcounts

guard_refcounts()  # as run_app does, before pytest-qt makes the QApplication (densegui/gui/__init__.py)

# Transient top-level helpers Qt keeps around on purpose.
_IGNORED = {"QTipLabel", "QComboBoxPrivateContainer", "QMenu", "QToolTip"}


def flush_deletes() -> None:
    """Run pending deleteLater() calls now."""
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QApplication.processEvents()


def live_toplevels() -> list[QWidget]:
    # Menus are popups, not windows; pyqtgraph's ViewBox keeps a parentless
    # context menu that lives as long as the Python ViewBox object.
    return [w for w in QApplication.topLevelWidgets()
            if w.parent() is None and not w.inherits("QMenu") and w.metaObject().className() not in _IGNORED]


@pytest.fixture(scope="session")
def _frozen_heap():
    """What is alive when the first GUI test starts (imports, what earlier tests kept) is moved
    out of the collector's reach once, as the app does after start-up (``gc.freeze``): the full
    collection that ends each GUI test then walks only what the GUI tests made. After the core
    tests that heap is large, and each of those collections took ≈ 0.1 s."""
    import gc

    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def collect_on_the_gui_thread(qapp, _frozen_heap):
    """As the app does (densegui/gui/collector.py): no automatic garbage collection in the task
    runners' worker threads while a GUI test runs."""
    from densegui.gui.collector import MainThreadCollector

    collector = MainThreadCollector(qapp)
    collector.start()
    yield
    collector.stop()
    collector.deleteLater()


@pytest.fixture
def qt_flush():
    """The :func:`flush_deletes` helper, for tests that delete widgets themselves."""
    return flush_deletes


@pytest.fixture
def widget_leak_check(qapp):
    before = {id(w) for w in live_toplevels()}
    yield
    flush_deletes()
    leaked = [w for w in live_toplevels() if id(w) not in before]
    names = [f"{w.metaObject().className()}({w.objectName()!r})" for w in leaked]
    for w in leaked:  # do not let one leak cascade into the next tests
        w.close()
        w.deleteLater()
    flush_deletes()
    assert not leaked, f"widgets leaked by the test: {names}"


@pytest.fixture
def make_panel(qtbot, widget_leak_check):
    made = []

    def make(factory, size=None, show=True):
        panel = factory()
        made.append(panel)
        if size is not None:
            panel.resize(*size)
        if show:
            panel.show()
            qtbot.waitExposed(panel)
        return panel

    yield make
    for panel in made:
        if hasattr(panel, "shutdown"):
            panel.shutdown()
        panel.close()
        panel.deleteLater()
    flush_deletes()


@pytest.fixture
def explorer(qtbot, widget_leak_check):
    from densegui.gui.main_window import MainWindow

    window = MainWindow(settings=None)
    window.show()
    qtbot.waitExposed(window)
    yield window
    runners = [getattr(p, "runner", None) for p in window.panels.values()]
    window.close()
    alive = [t for r in runners if r is not None for t in r._tasks if t.is_alive()]
    assert not alive, "a task outlived close()"
    window.deleteLater()
    flush_deletes()
