"""Feature-reuse panel (``reusePanel``): paper Figure 5 for a trained checkpoint.

One heatmap per dense block, side by side: rows are sources (block input,
then layers 1..L, top to bottom), columns are targets (layers 1..L, then,
set apart by a blank column, the transition or the classifier). Cells with
no connection are transparent (NaN); the view itself is gui/heatmap.py.
Loading, architecture inference and the matrices run in the background
process (job ``load_reuse``); a newer load makes an older one stale, so its
result is never shown. Errors show as a one-line message and the previous
heatmap stays.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from densegui.core.errors import DenseguiError
from densegui.core.reuse import (
    COLORMAPS,
    DEFAULT_CHECKPOINT,
    NORMALISATION_LABELS,
    NORMALISATIONS,
    BlockReuse,
    column_rank,
    default_checkpoint_path,
)
from densegui.gui.heatmap import HeatmapView
from densegui.gui.jobs import EXPLORE
from densegui.gui.tasks import TaskRunner
from densegui.gui.widgets import FitLabel

CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.pkl *.bin *.ckpt *.tar *.safetensors);;All files (*)"
MAX_RECENT = 8


class ReusePanel(QWidget):
    """Feature-reuse heatmaps of a checkpoint (paper Figure 5)."""

    configRequested = Signal(object)  # the loaded checkpoint's DenseNetConfig ("Send to explorer")
    loadFinished = Signal(bool)  # True: new heatmaps shown; False: error shown, previous kept

    def __init__(self, parent: QWidget | None = None, *, load_default: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("reusePanel")
        self.setAcceptDrops(True)
        self.loaded = None  # LoadedCheckpoint of the shown heatmaps
        self.blocks: list[BlockReuse] = []
        self.selected: tuple[int, int, int] | None = None
        self._recent_memory: list[str] = []
        self._request: tuple[str, bool] | None = None  # (path, remember) of the load in flight
        self.runner = TaskRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.done.connect(self._on_loaded)
        self.runner.failed.connect(self._on_failed)

        # Toolbar.
        self.open_button = QPushButton("Open checkpoint…")
        self.open_button.setObjectName("reuseOpen")
        self.open_button.clicked.connect(self.open_dialog)
        self.recent_button = QToolButton()
        self.recent_button.setObjectName("reuseRecent")
        self.recent_button.setText("Recent")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_menu = QMenu(self.recent_button)
        self.recent_button.setMenu(self.recent_menu)
        self.norm_combo = QComboBox()
        self.norm_combo.setObjectName("reuseNormalisation")
        for mode in NORMALISATIONS:
            self.norm_combo.addItem(NORMALISATION_LABELS[mode], mode)
        self.norm_combo.currentIndexChanged.connect(self._normalisation_changed)
        self.cmap_combo = QComboBox()
        self.cmap_combo.setObjectName("reuseColormap")
        self.cmap_combo.addItems(COLORMAPS)
        self.cmap_combo.currentTextChanged.connect(self._colormap_changed)
        self.png_button = QPushButton("Export PNG…")
        self.png_button.clicked.connect(self._export_png_dialog)
        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.clicked.connect(self._export_csv_dialog)
        self.send_button = QPushButton("Send to explorer")
        self.send_button.setObjectName("reuseSendConfig")
        self.send_button.setToolTip("Set the explorer's controls to this checkpoint's configuration")
        self.send_button.clicked.connect(self._send_config)
        # A file with several DenseNets (a model and its EMA copy): which one is shown.
        self.candidate_combo = QComboBox()
        self.candidate_combo.setObjectName("reuseCandidate")
        self.candidate_combo.setToolTip("This file holds several DenseNets (e.g. the model and its EMA copy); "
                                        "pick the one to show")
        self.candidate_combo.hide()
        self.candidate_combo.activated.connect(self._candidate_chosen)
        bar = QHBoxLayout()
        bar.addWidget(self.open_button)
        bar.addWidget(self.recent_button)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Scale:"))
        bar.addWidget(self.norm_combo)
        bar.addWidget(QLabel("Colours:"))
        bar.addWidget(self.cmap_combo)
        bar.addWidget(self.candidate_combo)
        bar.addStretch(1)
        bar.addWidget(self.png_button)
        bar.addWidget(self.csv_button)
        bar.addWidget(self.send_button)

        self.info_label = QLabel()
        self.info_label.setTextFormat(Qt.TextFormat.PlainText)  # (file names may hold "<")
        self.info_label.setObjectName("reuseInfo")
        self.info_label.setWordWrap(True)
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = QLabel()
        self.message_label.setObjectName("reuseMessage")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #b00020;")
        self.message_label.hide()
        self.progress = QProgressBar()
        self.progress.setObjectName("reuseProgress")
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        # Its space stays when hidden: showing and hiding it around every load resized the heatmaps
        # (a full pyqtgraph re-layout) twice per load.
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress.setSizePolicy(policy)
        self.progress.hide()

        self.view = HeatmapView()
        self.view.cellHovered.connect(self._hovered)
        self.view.cellClicked.connect(self._clicked)
        self.empty_label = QLabel()
        self.empty_label.setObjectName("reuseEmpty")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.view)
        self.stack.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        self.hover_label = FitLabel(" ")  # a read-out per mouse move must not re-lay out the panel
        self.hover_label.setObjectName("reuseHover")
        self.detail_label = QLabel("Click a cell for its details.")
        self.detail_label.setObjectName("reuseDetail")
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.info_label)
        layout.addWidget(self.message_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.hover_label)
        layout.addWidget(self.detail_label)

        self._update_recent_menu()
        self._set_enabled_actions()
        default = self.default_checkpoint()
        self._pending_default: str | None = None
        if load_default and default.exists():
            # Loaded when the panel is first shown: constructing a panel stays cheap.
            self._show_empty(f"Loading the shipped checkpoint {default.name} …")
            self._pending_default = str(default)
        elif default.exists():
            self._show_empty("No checkpoint opened. Open one (menu, Recent, or drop a file here).")
        else:
            self._show_empty(
                "No checkpoint opened, and the shipped example (resources/"
                f"{DEFAULT_CHECKPOINT}) is not available.\n"
                "Open a DenseNet checkpoint (densegui, torchvision state_dict or .safetensors) "
                "with “Open checkpoint…” or drop a file here.")

    # ----------------------------------------------------------- panel contract
    def set_config(self, cfg) -> None:  # noqa: ARG002 - the heatmaps come from a checkpoint, not the controls
        """Part of the panel contract; the reuse panel ignores the explorer's config."""

    def shutdown(self) -> None:
        """Stop the load in flight (call before the window closes)."""
        self.runner.shutdown()

    @staticmethod
    def default_checkpoint() -> Path:
        return default_checkpoint_path()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._pending_default is not None:
            self.load_checkpoint(self._pending_default, remember=False)

    # ------------------------------------------------------------------ loading
    def load_checkpoint(self, path: str, remember: bool = True, candidate: str | None = None) -> None:
        """Load ``path`` in the background process; a later call makes this one's result stale.
        ``candidate`` picks one DenseNet of a file that holds several (default: the loader's rule)."""
        self._pending_default = None
        self._request = (str(path), remember)
        self.runner.start_job(EXPLORE, "load_reuse", str(path), candidate)
        self.progress.setValue(0)
        self.progress.setFormat(f"{Path(path).name}: loading in the background … %p%")
        self.progress.show()

    def is_loading(self) -> bool:
        return self.runner.is_busy()

    def _on_progress(self, fraction: float) -> None:
        self.progress.setValue(int(round(100 * fraction)))

    def _on_failed(self, message: str) -> None:
        self.message_label.setText(message)
        self.message_label.show()
        self.progress.hide()
        self.loadFinished.emit(False)

    def _on_loaded(self, result) -> None:
        path, remember = self._request
        loaded, blocks = result
        self.loaded, self.blocks, self.selected = loaded, blocks, None
        self.message_label.hide()
        self.progress.hide()
        self.view.set_blocks(blocks)
        self.stack.setCurrentWidget(self.view)
        self.info_label.setText(loaded.describe())
        self._show_candidates(loaded)
        self.detail_label.setText("Click a cell for its details.")
        if remember:
            self._remember(path)
        self._set_enabled_actions()
        self.loadFinished.emit(True)

    def _show_candidates(self, loaded) -> None:
        candidates = tuple(getattr(loaded, "candidates", ()))
        self.candidate_combo.clear()
        if len(candidates) < 2:
            self.candidate_combo.hide()
            return
        for name in candidates:
            self.candidate_combo.addItem(f"weights: {name}", name)
        self.candidate_combo.setCurrentIndex(max(self.candidate_combo.findData(loaded.candidate), 0))
        self.candidate_combo.show()

    def _candidate_chosen(self, _index: int) -> None:
        if self.loaded is not None and self.candidate_combo.currentData() != self.loaded.candidate:
            self.load_checkpoint(self.loaded.path, remember=False, candidate=self.candidate_combo.currentData())

    def _show_empty(self, text: str) -> None:
        self.empty_label.setText(text)
        self.stack.setCurrentWidget(self.empty_label)

    def _set_enabled_actions(self) -> None:
        has = self.loaded is not None
        for w in (self.png_button, self.csv_button, self.send_button):
            w.setEnabled(has)

    # ------------------------------------------------------------ recent files
    def _settings(self) -> QSettings | None:
        if os.environ.get("DENSEGUI_NO_SETTINGS"):
            return None
        return QSettings("densegui", "densegui")

    def recent_files(self) -> list[str]:
        s = self._settings()
        if s is None:
            return list(self._recent_memory)
        value = s.value("reuse/recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: str) -> None:
        full = str(Path(path).resolve())
        items = [full] + [p for p in self.recent_files() if p != full]
        items = items[:MAX_RECENT]
        s = self._settings()
        if s is None:
            self._recent_memory = items
        else:
            s.setValue("reuse/recent", items)
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for path in files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda _=False, p=path: self.load_checkpoint(p))
        if not files:
            self.recent_menu.addAction("(no recent checkpoints)").setEnabled(False)
        self.recent_button.setEnabled(True)

    # -------------------------------------------------------------- drag & drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.load_checkpoint(files[0])

    # ------------------------------------------------------------ user actions
    def open_dialog(self) -> None:
        """Ask for a checkpoint file and load it (for the window's File menu too)."""
        start = str(Path(self.recent_files()[0]).parent) if self.recent_files() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open DenseNet checkpoint", start, CHECKPOINT_FILTER)
        if path:
            self.load_checkpoint(path)

    def _normalisation_changed(self) -> None:
        self.view.set_normalisation(self.norm_combo.currentData())
        if self.selected is not None:
            self._clicked(self.selected)

    def _colormap_changed(self, name: str) -> None:
        self.view.set_colormap(name)

    def _send_config(self) -> None:
        if self.loaded is not None:
            self.configRequested.emit(self.loaded.config)

    def export_png(self, path: str) -> None:
        if not self.view.grab().save(str(path), "PNG"):
            raise DenseguiError(f"cannot write {str(path)!r}.")

    def export_csv(self, folder: str) -> list[Path]:
        from densegui.core.reuse import write_csv

        return write_csv(self.blocks, folder)

    def _export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export heatmaps as PNG", "reuse.png", "PNG image (*.png)")
        if path:
            self._report(lambda: self.export_png(path), f"wrote {path}")

    def _export_csv_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export one CSV per block into…")
        if folder:
            self._report(lambda: self.export_csv(folder), f"wrote {len(self.blocks)} CSV files to {folder}")

    def _report(self, action, success: str) -> None:
        try:
            action()
        except DenseguiError as exc:
            self.message_label.setText(str(exc))
            self.message_label.show()
            return
        self.message_label.hide()
        self.hover_label.setText(success)

    # ------------------------------------------------------------ hover, click
    def _hovered(self, cell) -> None:
        self.hover_label.setText(self.view.tooltip_text(*cell) if cell is not None else " ")

    def _clicked(self, cell) -> None:
        self.selected = tuple(cell)
        self.detail_label.setText(self.detail_text(*cell))

    def detail_text(self, index: int, row: int, target: int) -> str:
        b = self.blocks[index]
        start, end = b.source_channels[row]
        value = b.matrix[row, target]
        shown = self.view.displayed(index)[row, target]
        rank, count = column_rank(b.matrix, row, target)
        name = b.targets[target]
        if name == "classifier":
            what = "the classifier's weight matrix"
        elif name.startswith("transition"):
            what = f"{name}'s 1×1 conv"
        else:
            bottleneck = self.loaded is not None and self.loaded.config.bottleneck
            what = f"{name}'s {'1×1' if bottleneck else '3×3'} conv1"
        scale = "" if self.view.normalisation == "raw" else \
            f" ({shown:.3f} on the {NORMALISATION_LABELS[self.view.normalisation]} scale)"
        return (f"Block {b.block}: {b.sources[row]} → {name} — input channels {start}–{end - 1} ({end - start}) "
                f"of {what}; mean |w| = {value:.5g}{scale}; rank {rank} of {count} in its column.")
