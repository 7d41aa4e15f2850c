"""What a window at a given size hides from its user: text cut off without a tooltip holding it,
widgets squashed below their minimum size, siblings drawn over each other.

Plain functions over a widget tree, used by the tests at 1024×700 and by
``docs/make_size_screenshots.py`` to report what it saw with the pictures.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QAbstractButton, QComboBox, QLabel, QWidget


def _plain(text: str) -> str:
    if Qt.mightBeRichText(text):
        doc = QTextDocument()
        doc.setHtml(text)
        return doc.toPlainText()
    return text


def _tooltip_holds(widget: QWidget, text: str) -> bool:
    tip = " ".join(_plain(widget.toolTip()).split())
    return bool(text) and " ".join(text.split()) in tip


def shown(widget: QWidget, within: QWidget) -> bool:
    """Visible and inside ``within``'s visible area (a scrolled-away row is not a clipped one)."""
    if not widget.isVisible() or widget.width() <= 0 or widget.height() <= 0:
        return False
    return not widget.visibleRegion().isEmpty() or within is widget


def clipped_text(root: QWidget) -> list[str]:
    """Labels, buttons and combo boxes under ``root`` whose text does not fit and whose tooltip does
    not hold it: one line per offender ("objectName: 'text'")."""
    problems = []
    for w in root.findChildren(QWidget):
        if not shown(w, root):
            continue
        if isinstance(w, QLabel):
            full = w.text()  # (a FitLabel's is its whole text, not the elided one)
            if not full.strip() or w.pixmap() is not None and not w.pixmap().isNull():
                continue
            if hasattr(w, "full_text_fits"):  # FitLabel / ClampLabel: elided, or the whole text
                if not w.full_text_fits() and not _tooltip_holds(w, full):
                    problems.append(f"{w.objectName() or type(w).__name__}: elided without tooltip: {full!r}")
                continue
            text = _plain(full)
            rect = w.contentsRect()
            if w.wordWrap():
                need = w.heightForWidth(w.width())
                if need > w.height() + 1 and not _tooltip_holds(w, text):
                    problems.append(f"{w.objectName() or 'QLabel'}: wrapped text needs {need} px, has "
                                    f"{w.height()}: {text[:80]!r}")
            else:
                lines = text.split("\n")
                width = max(w.fontMetrics().horizontalAdvance(line) for line in lines)
                height = w.fontMetrics().lineSpacing() * len(lines)
                if (width > rect.width() + 1 or height > rect.height() + 2) and not _tooltip_holds(w, text):
                    problems.append(f"{w.objectName() or 'QLabel'}: text needs {width}×{height} px, has "
                                    f"{rect.width()}×{rect.height()}: {text[:80]!r}")
        elif isinstance(w, QAbstractButton) and w.text():
            text = w.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
            if w.inherits("QCheckBox") or w.inherits("QRadioButton"):
                need = w.sizeHint().width()  # (the box or dot and the whole text, exactly)
            else:  # (a push button's hint has a minimum width its text may not need)
                need = (w.fontMetrics().horizontalAdvance(text) + 8
                        + (w.iconSize().width() + 4 if not w.icon().isNull() else 0))
            if need > w.width() + 1 and not _tooltip_holds(w, w.text().replace("&", "")):
                problems.append(f"{w.objectName() or type(w).__name__}: needs {need} px, has {w.width()}: "
                                f"{w.text()!r}")
        elif isinstance(w, QComboBox) and w.currentText():
            text_room = w.width() - (w.sizeHint().width() - w.fontMetrics().horizontalAdvance(w.currentText()))
            if w.fontMetrics().horizontalAdvance(w.currentText()) > text_room + 2 \
                    and not _tooltip_holds(w, w.currentText()):
                problems.append(f"{w.objectName() or 'QComboBox'}: shows part of {w.currentText()!r} "
                                "and its tooltip does not hold it")
    return problems


def squashed(root: QWidget) -> list[str]:
    """Visible widgets under ``root`` smaller than their minimum size hint (a layout given less room
    than it needs draws its rows over each other)."""
    problems = []
    for w in root.findChildren(QWidget):
        if not shown(w, root) or w.layout() is None:
            continue
        need = w.minimumSizeHint().expandedTo(w.minimumSize())
        policy = w.sizePolicy()
        tall_enough = (w.height() + 1 >= need.height()
                       or policy.verticalPolicy() == policy.Policy.Ignored)
        wide_enough = (w.width() + 1 >= need.width()
                       or policy.horizontalPolicy() == policy.Policy.Ignored)
        if not (tall_enough and wide_enough):
            problems.append(f"{w.objectName() or type(w).__name__} (in {w.parentWidget().objectName() or type(w.parentWidget()).__name__}) is {w.width()}×{w.height()}, "
                            f"needs {need.width()}×{need.height()}")
    return problems


def _laid_out(layout) -> list[QWidget]:
    """The widgets a layout places, its nested layouts' included."""
    out = []
    for i in range(layout.count()):
        item = layout.itemAt(i)
        if item.widget() is not None:
            out.append(item.widget())
        elif item.layout() is not None:
            out.extend(_laid_out(item.layout()))
    return out


def overlapping(root: QWidget) -> list[str]:
    """Visible widgets placed by one layout under ``root`` that are drawn over each other."""
    problems = []
    for parent in [root, *root.findChildren(QWidget)]:
        if parent.layout() is None or not shown(parent, root):
            continue
        kids = [k for k in _laid_out(parent.layout()) if k.isVisible() and k.width() > 0 and k.height() > 0]
        for i, a in enumerate(kids):
            for b in kids[i + 1:]:
                overlap: QRect = a.geometry().intersected(b.geometry())
                if overlap.width() > 1 and overlap.height() > 1:
                    problems.append(f"{a.objectName() or type(a).__name__} overlaps "
                                    f"{b.objectName() or type(b).__name__} in "
                                    f"{parent.objectName() or type(parent).__name__}")
    return problems
