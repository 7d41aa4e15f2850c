"""The contract every tab of the main window follows.

``MainWindow`` adds each panel as a tab and talks to it through three
methods only:

* ``Panel(parent=None)`` -- construct cheaply (no heavy work; background
  work only through a TaskRunner);
* ``set_config(cfg)`` -- called with every new *valid*
  :class:`~densegui.core.config.DenseNetConfig` the user makes (possibly
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

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from densegui.core.config import DenseNetConfig


@runtime_checkable
class Panel(Protocol):
    """What the main window requires of a tab."""

    def set_config(self, cfg: DenseNetConfig) -> None: ...

    def shutdown(self) -> None: ...


class PanelMixin:
    """Default no-op implementations of the :class:`Panel` methods.

    Use as ``class MyPanel(PanelMixin, QWidget)``.
    """

    def set_config(self, cfg: DenseNetConfig) -> None:  # noqa: ARG002
        return None

    def shutdown(self) -> None:
        return None
