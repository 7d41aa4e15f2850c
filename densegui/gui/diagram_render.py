"""The Architecture tab's diagram of a configuration, written to a file without a window
(``densegui graph --svg/--pdf/--png``): the same layout and paint code as the tab, through
:func:`densegui.gui.export.save_painting` (SVG and PDF are vector drawings)."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from densegui.core.errors import DenseguiError

EXPAND = ("auto", "all", "none")  # auto: blocks of over diagram_layout.COLLAPSE_OVER layers collapsed

_APP = None  # the QApplication made here (kept alive: fonts need one while painting)


def _application() -> None:
    """A QApplication to draw with when there is none (the CLI), offscreen without a display."""
    global _APP
    from densegui.gui import guard_refcounts

    guard_refcounts()  # (before Qt makes its first calls; see densegui/gui/__init__.py)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        _APP = QApplication([])


def expanded_blocks(plan: Any, expand: str) -> dict[int, bool]:
    """The ``expanded`` argument of :func:`diagram_layout.layout` for ``expand``: every block open
    ("all"), every block closed ("none"), or the layout's own rule ("auto")."""
    if expand not in EXPAND:
        raise DenseguiError(f"--expand must be one of {', '.join(EXPAND)}, not {expand!r}.")
    if expand == "auto":
        return {}
    return {u.block: expand == "all" for u in plan.units if u.block is not None}


def render(cfg: Any, path: str | os.PathLike, *, expand: str = "auto", fmt: str | None = None) -> Path:
    """Draw ``cfg``'s network to ``path`` as PNG, SVG or PDF, by its suffix (``fmt`` forces one);
    DenseguiError (one line) for a bad suffix or path, with nothing written. Returns the path."""
    from densegui.core.arch import registry

    plan = registry.plan(cfg)
    expanded = expanded_blocks(plan, expand)
    _application()
    import shiboken6

    from densegui.gui import diagram_layout as dl
    from densegui.gui import export
    from densegui.gui.diagram import DiagramView

    view = DiagramView()
    try:
        view.set_layout(dl.layout(plan, registry.family_of(cfg), expanded))
        w, h = view.scene_size()
        size = (math.ceil(w), math.ceil(h))  # (up, so the scene is never scaled below 1)
        if fmt is None:
            return export.save_painting(path, *size, view.paint_export, title=cfg.label())
        return export.write_painting(fmt, path, *size, view.paint_export, title=cfg.label())
    finally:
        shiboken6.delete(view)  # now: no widget may outlive the QApplication
