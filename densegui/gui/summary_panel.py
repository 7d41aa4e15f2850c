"""Summary tab: the torchinfo table of the current model, computed in the background process.

``set_config`` records the configuration, stops a summary still running for
an older one (it stops at its next layer, so the newest never waits behind
it) and (re)starts a short debounce timer; then the job ``summary`` runs on
the meta device (no activation is allocated). The task runner shows only the
newest request's result: while a slider is dragged, the panel ends on the
last configuration.

Linked selection: a click on a layer's line emits ``layerSelected`` with the plan unit it belongs
to; ``select_path`` highlights a unit's line (the worker maps lines to modules and units:
``SummaryResult.line_paths``/``line_units``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFontDatabase, QGuiApplication, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from densegui.core.arch.registry import Config
from densegui.gui.feedback import confirm
from densegui.gui.jobs import EXPLORE
from densegui.gui.panel import PanelMixin
from densegui.gui.tasks import TaskRunner
from densegui.gui.widgets import FitLabel

DEBOUNCE_MS = 60  # a 60 Hz drag (16 ms per change) never fires it; a pause does, at once
MAX_DEPTH = 4  # torchinfo depth: 1 = features/classifier … 4 = every conv/BN inside a dense layer


HIGHLIGHT = QColor("#ffe08a")  # the selected layer's line (amber, as the channel plots' selection)


def filter_lines(text: str, needle: str) -> tuple[list[str], list[int | None]]:
    """The lines :func:`filter_summary` keeps, and the index in ``text.splitlines()`` of each
    (None for the "no layer matches" line)."""
    lines = text.splitlines()
    needle = needle.strip().lower()
    if not needle:
        return lines, list(range(len(lines)))
    rules = [i for i, line in enumerate(lines) if line.startswith("=")]
    if len(rules) < 3:  # not a torchinfo table: plain line filter
        kept = [i for i, line in enumerate(lines) if needle in line.lower()]
        return [lines[i] for i in kept], kept
    start, end = rules[1] + 1, rules[2]  # the layer rows lie between the 2nd and 3rd rule
    rows: list[int | None] = [i for i in range(start, end) if needle in lines[i].lower()]
    index = list(range(start)) + (rows or [None]) + list(range(end, len(lines)))
    return [f"(no layer matches {needle!r})" if i is None else lines[i] for i in index], index


def filter_summary(text: str, needle: str) -> str:
    """Keep the header and totals of a torchinfo table, and only the layer
    rows that contain ``needle`` (case-insensitive)."""
    if not needle.strip():
        return text
    return "\n".join(filter_lines(text, needle)[0])


class SummaryPanel(PanelMixin, QWidget):
    """torchinfo table in a monospace view with depth, filter, copy and save."""

    summaryUpdated = Signal(object)  # SummaryResult now on screen (for the latest configuration)
    summaryFailed = Signal(str)
    layerSelected = Signal(str)  # a plan unit's path: the user clicked one of its lines

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("summaryPanel")
        self._config: Config | None = None
        self._requested: Config | None = None  # what the task in flight computes
        self._settled: Config | None = None  # the configuration whose table (or error) is shown
        self.result = None  # SummaryResult on screen
        self.last_seconds: float | None = None
        self.selected_path: str | None = None  # the plan unit shown selected (set_config keeps it)
        self._shown: list[int | None] = []  # per line on screen: its index in result.text's lines
        self._scroll_pending = False  # select_path came before a table that shows its line

        self.runner = TaskRunner(self)
        self.runner.done.connect(self._finished)
        self.runner.failed.connect(self._failed)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._submit)

        self.depth_spin = QSpinBox()
        self.depth_spin.setObjectName("summaryDepthSpin")
        self.depth_spin.setRange(1, MAX_DEPTH)
        self.depth_spin.setValue(3)
        self.depth_spin.setToolTip(
            "How deep torchinfo descends into the module tree: 1 = stem/blocks/classifier, "
            "2 = dense blocks and transitions, 3 = each dense layer, 4 = every BN/ReLU/conv.")
        self.depth_spin.valueChanged.connect(self._depth_changed)
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("summaryFilter")
        self.filter_edit.setPlaceholderText("Filter layers (e.g. transition, denseblock3, Conv2d)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._render)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setObjectName("summaryCopy")
        self.copy_button.setToolTip("Copy the (filtered) table to the clipboard")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        self.save_button = QPushButton("Save as text…")
        self.save_button.setObjectName("summarySave")
        self.save_button.clicked.connect(self._save_dialog)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Depth:"))
        bar.addWidget(self.depth_spin)
        bar.addSpacing(8)
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.copy_button)
        bar.addWidget(self.save_button)

        self.status_label = FitLabel("Waiting for a configuration…")
        self.status_label.setObjectName("summaryStatus")
        self.status_label.setStyleSheet("color: palette(mid);")
        self.text_view = QPlainTextEdit()
        self.text_view.setObjectName("summaryText")
        self.text_view.setReadOnly(True)
        self.text_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSize(max(font.pointSize(), 9))
        self.text_view.setFont(font)
        self.text_view.viewport().installEventFilter(self)  # clicks select a layer

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.text_view, 1)

    # ----------------------------------------------------------- panel contract
    def set_config(self, cfg: Config) -> None:
        """Record ``cfg`` and schedule its summary (debounced, in the background process)."""
        self._config = cfg
        self._settled = None
        self.status_label.setText("Updating the torchinfo summary…")
        self.runner.cancel()  # the older job is stale: refused if not sent yet, stopped at its next layer if running
        self._debounce.start()

    def shutdown(self) -> None:
        self._debounce.stop()
        self.runner.shutdown()

    # ------------------------------------------------------------------ state
    def is_up_to_date(self) -> bool:
        """True when the table on screen belongs to the newest configuration."""
        return self._config is not None and self._settled is self._config

    def text(self) -> str:
        return self.text_view.toPlainText()

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
        confirm(self, "Summary table copied", self.status_label)

    def save_text(self, path: str | Path) -> None:
        Path(path).write_text(self.text() + "\n", encoding="utf-8")

    # ------------------------------------------------------------ selection
    def select_path(self, path: str | None) -> None:
        """Highlight the line of ``path`` (a plan unit's, or any module's) and scroll it into view,
        without emitting ``layerSelected``; None, "" or a path the network lacks: none. Kept for
        the next summaries while their configuration has that module."""
        known = self.result is None or path in self.result.units or path in self.result.line_paths
        self.selected_path = path if path and known else None  # (checked again when a summary arrives)
        self._scroll_pending = self.selected_path is not None
        self._highlight()

    def line_of(self, path: str | None) -> int | None:
        """The line on screen (block number) that shows ``path``: its own row, else (a depth too
        shallow to show it) its deepest ancestor's row; None where there is none or the filter
        hides it."""
        lines = self.result.line_paths if self.result is not None else ()
        if not path or not lines:
            return None
        where = {p: i for i, p in enumerate(lines) if p}
        probe = path
        while probe and probe not in where:
            probe = probe.rpartition(".")[0]
        if not probe:
            return None
        try:
            return self._shown.index(where[probe])
        except ValueError:  # filtered out
            return None

    def unit_at_line(self, block: int) -> str:
        """The plan unit line ``block`` on screen belongs to ("" for none)."""
        units = self.result.line_units if self.result is not None else ()
        index = self._shown[block] if 0 <= block < len(self._shown) else None
        return units[index] if index is not None and index < len(units) else ""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if (obj is self.text_view.viewport() and event.type() == QEvent.Type.MouseButtonPress
                and event.button() == Qt.MouseButton.LeftButton):
            unit = self.unit_at_line(self.text_view.cursorForPosition(event.position().toPoint()).blockNumber())
            if unit:  # (a header, total or container line selects nothing)
                self.selected_path = unit
                self._scroll_pending = False
                self._highlight()
                self.layerSelected.emit(unit)
        return False  # the view still places its cursor and selects text

    def _highlight(self) -> None:
        block = self.line_of(self.selected_path)
        if block is None:
            self.text_view.setExtraSelections([])
            return
        selection = QTextEdit.ExtraSelection()
        selection.format.setBackground(HIGHLIGHT)
        selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        selection.cursor = QTextCursor(self.text_view.document().findBlockByNumber(block))
        self.text_view.setExtraSelections([selection])
        if self._scroll_pending:
            self._scroll_pending = False
            self._scroll_to(block)

    def _scroll_to(self, block: int) -> None:
        """Centre line ``block`` unless it is already in view (the vertical scroll bar counts lines)."""
        view = self.text_view
        first = view.firstVisibleBlock().blockNumber()
        visible = max(1, view.viewport().height() // max(1, view.fontMetrics().lineSpacing()))
        if not first <= block < first + visible - 1:
            view.verticalScrollBar().setValue(max(0, block - visible // 2))

    # --------------------------------------------------------------- internals
    def _depth_changed(self, _depth: int) -> None:
        if self._config is not None:
            self.set_config(self._config)

    def _submit(self) -> None:
        if self._config is not None:
            self._requested = self._config
            self.runner.start_job(EXPLORE, "summary", self._config.to_dict(), self.depth_spin.value())

    def _finished(self, result) -> None:
        seconds = self.runner.last_seconds or 0.0
        self.result = result
        self.last_seconds = seconds
        self._settled = self._requested
        if self.selected_path and self.selected_path not in result.units + result.line_paths:
            self.selected_path = None  # the new configuration has no such unit
        self._render()
        self.status_label.setText(
            f"torchinfo (background process), meta device, batch 1, depth {result.depth} · computed in {seconds:.2f} s · "
            "Mult-Adds = conv + linear multiply-accumulates")
        self.summaryUpdated.emit(result)

    def _failed(self, message: str) -> None:
        self._settled = self._requested
        self.status_label.setText(f"Summary failed: {message} (the last table is kept)")
        self.summaryFailed.emit(message)

    def _render(self) -> None:
        if self.result is None:
            return
        bar = self.text_view.verticalScrollBar()
        pos = bar.value()
        needle = self.filter_edit.text()
        lines, self._shown = filter_lines(self.result.text, needle)
        self.text_view.setPlainText("\n".join(lines) if needle.strip() else self.result.text)
        bar.setValue(pos)
        self._highlight()

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save summary", f"{self._config.family if self._config else 'network'}_summary.txt", "Text (*.txt)")
        if path:
            try:
                self.save_text(path)
            except OSError as exc:
                self.status_label.setText(f"Could not save {path}: {exc.strerror or exc}")
            else:
                confirm(self, f"Saved {path}", self.status_label)
