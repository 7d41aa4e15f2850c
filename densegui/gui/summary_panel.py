"""Summary tab: the torchinfo table of the current model, computed in the background process.

``set_config`` records the configuration, stops a summary still running for
an older one (it stops at its next layer, so the newest never waits behind
it) and (re)starts a short debounce timer; then the job ``summary`` runs on
the meta device (no activation is allocated). The task runner shows only the
newest request's result: while a slider is dragged, the panel ends on the
last configuration.
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

from densegui.core.arch.registry import Config
from densegui.gui.feedback import confirm
from densegui.gui.jobs import EXPLORE
from densegui.gui.panel import PanelMixin
from densegui.gui.tasks import TaskRunner
from densegui.gui.widgets import FitLabel

DEBOUNCE_MS = 60  # a 60 Hz drag (16 ms per change) never fires it; a pause does, at once
MAX_DEPTH = 4  # torchinfo depth: 1 = features/classifier … 4 = every conv/BN inside a dense layer


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
        self._config: Config | None = None
        self._requested: Config | None = None  # what the task in flight computes
        self._settled: Config | None = None  # the configuration whose table (or error) is shown
        self.result = None  # SummaryResult on screen
        self.last_seconds: float | None = None

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
        self.text_view.setPlainText(filter_summary(self.result.text, self.filter_edit.text()))
        bar.setValue(pos)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save summary", f"{self._config.family if self._config else 'network'}_summary.txt", "Text (*.txt)")
        if path:
            try:
                self.save_text(path)
            except OSError as exc:
                self.status_label.setText(f"Could not save {path}: {exc.strerror or exc}")
            else:
                confirm(self, f"Saved {path}", self.status_label)
