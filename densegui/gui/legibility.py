"""Whether a shown widget tree is legible: no text cut off without a tooltip holding it, no
widget squeezed below its minimum size, no two visible siblings overlapping (Qt, offscreen).
Each check returns a list of problems, empty when fine.

Used by the panel tests at 660×440, the window's at 1024×700 (issue #26) and
docs/make_size_screenshots.py, which reports what they find with its pictures."""

from __future__ import annotations

import html
import re
from itertools import combinations

from PySide6.QtCore import QPoint, QRect, QSize
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QCheckBox,
    QComboBox,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSplitterHandle,
    QWidget,
)

from densegui.gui.fitting import FitProgressBar, combo_text_fits
from densegui.gui.widgets import FitLabel


def plain(tip: str) -> str:
    """A tooltip's text without its HTML (FitLabel's are Qt.convertFromPlainText)."""
    return html.unescape(re.sub(r"<[^>]+>", "", tip)).replace("\xa0", " ")


def _name(w: QWidget) -> str:
    text = w.text() if hasattr(w, "text") and callable(w.text) else ""
    return f"{type(w).__name__}({w.objectName() or text[:40]!r})"


def _in_root(w: QWidget, root: QWidget) -> QRect:
    return QRect(w.mapTo(root, QPoint(0, 0)), w.size())


def _clipped_by_ancestor(w: QWidget, root: QWidget) -> str | None:
    """Which ancestor cuts ``w`` off: a scroll area's viewport may cut it vertically (the user
    scrolls), never sideways."""
    rect = _in_root(w, root)
    p = w.parentWidget()
    while p is not None and p is not root.parentWidget():
        prect = _in_root(p, root)
        scrolls = isinstance(p.parentWidget(), QScrollArea) and p is p.parentWidget().viewport()
        if scrolls:
            if rect.left() < prect.left() or rect.right() > prect.right():
                return f"cut sideways by the scroll area {_name(p.parentWidget())}"
            return None  # vertically: scrolled into view by the user
        if not prect.contains(rect):
            return f"cut by {_name(p)} ({prect.getRect()} does not hold {rect.getRect()})"
        if p is root:
            return None
        p = p.parentWidget()
    return None


def _visible(root: QWidget, kind):
    return [w for w in root.findChildren(kind) if w.isVisibleTo(root) and w.window() is root.window()]


def clipped_texts(root: QWidget) -> list[str]:
    """Every visible label, button, check box, combo box and progress bar under ``root`` shows its
    whole text, or elides it with a tooltip holding the whole text."""
    problems: list[str] = []
    for label in _visible(root, QLabel):
        text = label.text()
        if not text.strip():
            continue
        if isinstance(label, FitLabel):
            if not label.full_text_fits() and plain(label.toolTip()) != text:
                problems.append(f"{_name(label)} elided without the whole text as tooltip")
        elif label.wordWrap():
            if label.height() < label.heightForWidth(label.width()) - 1:
                problems.append(f"{_name(label)} wrapped text cut: {label.height()} px < "
                                f"{label.heightForWidth(label.width())} px")
            if label.width() < label.minimumSizeHint().width() - 1:
                problems.append(f"{_name(label)} narrower than its longest word")
        else:
            hint = label.sizeHint()
            if label.width() < hint.width() - 1 or label.height() < hint.height() - 1:
                problems.append(f"{_name(label)} cut: {label.size().toTuple()} < {hint.toTuple()}")
        if (why := _clipped_by_ancestor(label, root)) is not None:
            problems.append(f"{_name(label)} {why}")
    for button in _visible(root, QAbstractButton):
        if not button.text() or isinstance(button, QSplitterHandle):
            continue
        # a check box draws its text after the box; a push button centres it within a few px of padding
        need = (button.sizeHint().width() if isinstance(button, QCheckBox)
                else button.fontMetrics().horizontalAdvance(button.text()) + 8)
        if button.width() < need - 1:
            problems.append(f"{_name(button)} text cut: {button.width()} px < {need} px")
        if (why := _clipped_by_ancestor(button, root)) is not None:
            problems.append(f"{_name(button)} {why}")
    for combo in _visible(root, QComboBox):
        if not combo_text_fits(combo) and combo.toolTip() != combo.currentText():
            problems.append(f"{_name(combo)} {combo.currentText()!r} cut without it as tooltip")
    for bar in _visible(root, FitProgressBar):
        if bar.text() != bar.full_text() and bar.toolTip() != bar.full_text():
            problems.append(f"{_name(bar)} {bar.full_text()!r} elided without it as tooltip")
    return problems


def squashed(root: QWidget) -> list[str]:
    """Visible widgets under ``root`` smaller than their minimum size (a layout squeezed them:
    rows cut in half), other than those whose size policy ignores their hint."""
    problems: list[str] = []
    for w in _visible(root, QWidget):
        if (w.window() is not root.window() or isinstance(w, QSplitterHandle)
                or isinstance(w.parentWidget(), QAbstractScrollArea)  # (a scroll area sizes its parts,
                or w.objectName().startswith("qt_")):  # and a spin box its line edit)
            continue
        policy = w.sizePolicy()
        hint = w.minimumSizeHint()  # an explicit minimum overrides it, as in Qt's layouts
        need = QSize(w.minimumWidth() or hint.width(), w.minimumHeight() or hint.height())
        short_w = policy.horizontalPolicy() != QSizePolicy.Policy.Ignored and w.width() < need.width() - 1
        short_h = policy.verticalPolicy() != QSizePolicy.Policy.Ignored and w.height() < need.height() - 1
        if (short_w or short_h) and need.isValid():
            problems.append(f"{_name(w)} squashed to {w.size().toTuple()} < {need.toTuple()}")
    return problems


def overlapping_siblings(root: QWidget) -> list[str]:
    """Pairs of visible child widgets of one parent whose rectangles intersect (a scroll area's
    own parts are left out: its viewport and scroll bars are Qt's)."""
    problems: list[str] = []
    for parent in [root, *_visible(root, QWidget)]:
        if isinstance(parent, QAbstractScrollArea):
            continue
        kids = [w for w in parent.children() if isinstance(w, QWidget) and w.isVisibleTo(root) and not w.isWindow()]
        for a, b in combinations(kids, 2):
            if a.geometry().intersects(b.geometry()):
                problems.append(f"in {_name(parent)}: {_name(a)} {a.geometry().getRect()} overlaps "
                                f"{_name(b)} {b.geometry().getRect()}")
    return problems
