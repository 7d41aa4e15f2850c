"""The contract every tab of the main window follows.

``MainWindow`` adds each panel as a tab and talks to it through three
methods only:

* ``Panel(parent=None)`` -- construct cheaply (no heavy work; background
  work only through a TaskRunner);
* ``set_config(cfg)`` -- called with every new *valid*
  configuration (of any family, :mod:`densegui.core.arch.registry`) the user makes (possibly
  many per second while a slider is dragged): store it, schedule work through
  the panel's :class:`~densegui.gui.tasks.TaskRunner` if needed, but never
  compute heavily here;
* ``shutdown()`` -- called once before the window closes: ``runner.shutdown()``,
  so no task outlives the QApplication.

The headline and the channel plots render the analytic layer table instead
(``set_table(table)`` / ``set_baseline(table)``). docs/architecture.md says how
to add a panel.

Panels may inherit :class:`PanelMixin` (no-op defaults) or just provide the
methods; :class:`Panel` is the structural ``Protocol`` the window checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:  # pragma: no cover
    from densegui.core.arch.registry import Config


@runtime_checkable
class Panel(Protocol):
    """What the main window requires of a tab."""

    def set_config(self, cfg: Config) -> None: ...

    def shutdown(self) -> None: ...


class PanelMixin:
    """Default no-op implementations of the :class:`Panel` methods.

    Use as ``class MyPanel(PanelMixin, QWidget)``.
    """

    def set_config(self, cfg: Config) -> None:  # noqa: ARG002
        return None

    def shutdown(self) -> None:
        return None


class WhenShown(QObject):
    """Display work of a tab that can wait until the tab is seen.

    ``request()`` runs ``refresh`` at once if ``widget`` is visible, else once at its next show.
    Panels keep their data current on every ``set_config`` and defer only what draws it: while a
    slider is dragged, hidden tabs then cost almost nothing (the design tab's markers, the probe's
    memory estimate and the train tab's label would otherwise run on every change).
    """

    def __init__(self, widget: QWidget, refresh: Callable[[], None]) -> None:
        super().__init__(widget)
        self._widget, self._refresh = widget, refresh
        self.pending = False
        widget.installEventFilter(self)

    def request(self) -> None:
        if self._widget.isVisible():
            self.pending = False
            self._refresh()
        else:
            self.pending = True

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Show and self.pending:
            self.pending = False
            self._refresh()
        return False
