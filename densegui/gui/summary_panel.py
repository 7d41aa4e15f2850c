"""Summary tab: the torchinfo table of the current model, computed in a worker.

``set_config`` only records the configuration and (re)starts a short
debounce timer; the summary itself runs on a :class:`LatestJobThread`
(meta device, so no activation is allocated). Every request carries a
generation number and a result is shown only if it belongs to the newest
one: while a slider is dragged, intermediate results are dropped and the
panel ends on the last configuration. A computation still running for an
older configuration is cancelled at its next layer as soon as the
configuration changes, so the newest one never waits behind it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from densegui.core.config import DenseNetConfig
from densegui.gui.panel import PanelMixin
from densegui.gui.summary_process import SummaryCancelled, server
from densegui.gui.widgets import FitLabel
from densegui.gui.workers import LatestJobThread

DEBOUNCE_MS = 120
MAX_DEPTH = 4  # torchinfo depth: 1 = features/classifier … 4 = every conv/BN inside a dense layer


CANCELLED = object()  # what the worker reports for a computation that became stale


def _summarize(cfg: DenseNetConfig, depth: int, tag: tuple[object, int]):
    # In a child process: see densegui/gui/summary_process.py for why not in this thread.
    try:
        return server().call(cfg, depth, tag)
    except SummaryCancelled:
        return CANCELLED


def _interrupt() -> None:
    server().interrupt()


def filter_summary(text: str, needle: str) -> str:
    """Keep the header and totals of a torchinfo table, and only the layer
    rows that contain ``needle`` (case-insensitive)."""
    needle = needle.strip().lower()
    if not needle:
        return text
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=")]
    if len(rules) < 3:  # not a torchinfo table: plain line filter
        return "\n".join(line for line in lines if needle in line.lower())
    start, end = rules[1] + 1, rules[2]  # the layer rows lie between the 2nd and 3rd rule
    rows = [line for line in lines[start:end] if needle in line.lower()]
    if not rows:
        rows = [f"(no layer matches {needle!r})"]
    return "\n".join(lines[:start] + rows + lines[end:])


class SummaryPanel(PanelMixin, QWidget):
    """torchinfo table in a monospace view with depth, filter, copy and save."""

    summaryUpdated = Signal(object)  # SummaryResult now on screen (for the latest configuration)
    summaryFailed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("summaryPanel")
        self._config: DenseNetConfig | None = None
        self._generation = 0
        self._shown_generation = -1
        self._owner = object()  # this panel's jobs in the shared summary server
        self.result = None  # SummaryResult on screen
        self.last_seconds: float | None = None

        self.worker = LatestJobThread(_summarize, parent=self, interrupt=_interrupt)
        self.worker.finished_job.connect(self._finished)
        self.worker.failed_job.connect(self._failed)

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

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.text_view, 1)

    # ----------------------------------------------------------- panel contract
    def set_config(self, cfg: DenseNetConfig) -> None:
        """Record ``cfg`` and schedule its summary (debounced, in the worker)."""
        self._config = cfg
        self._generation += 1
        self.status_label.setText("Updating the torchinfo summary…")
        self._debounce.start()
        # Every older job is stale now: refused if not sent yet, stopped at its next layer if running.
        server().cancel(self._owner, self._generation)

    def shutdown(self) -> None:
        self._debounce.stop()
        self._generation += 1
        self.worker.shutdown()
        server().forget(self._owner)

    # ------------------------------------------------------------------ state
    def is_up_to_date(self) -> bool:
        """True when the table on screen belongs to the newest configuration."""
        return self._config is not None and self._shown_generation == self._generation

    def text(self) -> str:
        return self.text_view.toPlainText()

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def save_text(self, path: str | Path) -> None:
        Path(path).write_text(self.text() + "\n", encoding="utf-8")

    # --------------------------------------------------------------- internals
    def _depth_changed(self, _depth: int) -> None:
        if self._config is not None:
            self.set_config(self._config)

    def _submit(self) -> None:
        if self._config is not None:
            self.worker.submit(self._generation, self._config, self.depth_spin.value(), (self._owner, self._generation))

    def _finished(self, generation: int, result, seconds: float) -> None:
        if result is CANCELLED:
            if generation == self._generation:  # (cannot happen: only older generations are cancelled)
                self._submit()
            return
        if generation != self._generation:
            return  # a newer configuration was requested meanwhile: drop the stale table
        self.result = result
        self.last_seconds = seconds
        self._shown_generation = generation
        self._render()
        self.status_label.setText(
            f"torchinfo (background process), meta device, batch 1, depth {result.depth} · computed in {seconds:.2f} s · "
            "Mult-Adds = conv + linear multiply-accumulates")
        self.summaryUpdated.emit(result)

    def _failed(self, generation: int, message: str) -> None:
        if generation != self._generation:
            return
        self._shown_generation = generation
        self.status_label.setText(f"Summary failed: {message} (the last table is kept)")
        self.summaryFailed.emit(message)

    def _render(self) -> None:
        if self.result is None:
            return
        bar = self.text_view.verticalScrollBar()
        pos = bar.value()
        self.text_view.setPlainText(filter_summary(self.result.text, self.filter_edit.text()))
        bar.setValue(pos)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save summary", "densenet_summary.txt", "Text (*.txt)")
        if path:
            try:
                self.save_text(path)
            except OSError as exc:
                self.status_label.setText(f"Could not save {path}: {exc.strerror or exc}")
