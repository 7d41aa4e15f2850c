"""Feature-reuse panel (``reusePanel``): paper Figure 5 for a trained checkpoint.

One heatmap per dense block, side by side: rows are sources (block input,
then layers 1..L, top to bottom), columns are targets (layers 1..L, then,
set apart by a blank column, the transition or the classifier). Cells with
no connection are transparent (NaN). Loading, inference and the matrices run
in a background QThread; a newer load makes older results stale, so they are
dropped. Errors show as a one-line message and the previous heatmap stays.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEventLoop, QPointF, QRectF, QSettings, Qt, QThread, Signal
from PySide6.QtGui import QColor, QCursor, QPen
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from densegui.core.errors import DenseguiError
from densegui.core.reuse import NORMALISATIONS, BlockReuse, column_rank, normalise
from densegui.gui.summary_process import SummaryCancelled, server
from densegui.gui.widgets import FitLabel

COLORMAPS = ("viridis", "inferno", "magma", "plasma", "cividis", "turbo", "CET-L1")
NORMALISATION_LABELS = {
    "column": "per target column, min–max → [0, 1]",
    "column-max": "per target column, ÷ max",
    "block": "per block, min–max → [0, 1]",
    "raw": "raw mean |w|",
}
DEFAULT_CHECKPOINT = "densenet-digits.pt"
CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.pkl *.bin *.ckpt *.tar *.safetensors);;All files (*)"
MAX_RECENT = 8


def _short_target(name: str, block: int) -> str:
    if name.startswith("transition"):
        return f"T{block}"
    if name == "classifier":
        return "cls"
    return name.split()[-1]


def _short_source(name: str) -> str:
    return "in" if name == "input" else name.split()[-1]


def _ticks(labels: list[tuple[int, str]], limit: int = 14) -> list[tuple[float, str]]:
    """Every label if few, else every n-th (n from 2, 4, 5, 10, 20 …) keeping about ``limit``."""
    if len(labels) <= limit:
        return [(i + 0.5, s) for i, s in labels]
    stride = next(n for n in (2, 4, 5, 8, 10, 16, 20, 25, 50, 100, 10**9) if len(labels) / n <= limit)
    # labels[0] is "in" (rows) or layer 1 (columns): keep it, then multiples of the stride.
    keep = [(i, s) for n, (i, s) in enumerate(labels) if n == 0 or (s.isdigit() and int(s) % stride == 0)]
    return [(i + 0.5, s) for i, s in keep]


def gap_columns(depth: int) -> int:
    """Blank columns between the last layer and the transition/classifier column."""
    return max(1, round(depth / 16))


class HeatmapView(pg.GraphicsLayoutWidget):
    """One ImageItem per block plus a shared ColorBarItem; no computation beyond rescaling."""

    cellHovered = Signal(object)  # (block index, row, target) or None
    cellClicked = Signal(object)  # (block index, row, target)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reuseHeatmaps")
        self.setBackground("w")
        self.blocks: list[BlockReuse] = []
        self.normalisation = "column"
        self.cmap_name = "viridis"
        self.title = ""
        self.plots: list[pg.PlotItem] = []
        self.images: list[pg.ImageItem] = []
        self.colorbar: pg.ColorBarItem | None = None
        self._marker: QGraphicsRectItem | None = None
        self._layout_key: tuple | None = None
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)

    # ------------------------------------------------------------ data → image
    def displayed(self, index: int) -> np.ndarray:
        """The values shown for block ``index`` (rows = sources, columns = targets), after normalisation."""
        return normalise(self.blocks[index].matrix, self.normalisation)

    def image_array(self, index: int) -> np.ndarray:
        """``displayed(index)`` with a NaN gap column before the transition/classifier column."""
        shown = self.displayed(index)
        depth = shown.shape[1] - 1
        out = np.full((shown.shape[0], depth + gap_columns(depth) + 1), np.nan)
        out[:, :depth] = shown[:, :depth]
        out[:, -1] = shown[:, depth]
        return out

    def levels(self) -> tuple[float, float]:
        if self.normalisation != "raw":
            return 0.0, 1.0
        peak = max((float(np.nanmax(b.matrix)) for b in self.blocks), default=1.0)
        return 0.0, peak if peak > 0 else 1.0

    def column_to_target(self, index: int, col: int) -> int | None:
        depth = len(self.blocks[index].targets) - 1
        if 0 <= col < depth:
            return col
        if col == depth + gap_columns(depth):
            return depth
        return None

    def target_to_column(self, index: int, target: int) -> int:
        depth = len(self.blocks[index].targets) - 1
        return target if target < depth else depth + gap_columns(depth)

    # ----------------------------------------------------------------- building
    def set_blocks(self, blocks: list[BlockReuse], title: str = "") -> None:
        self.blocks = list(blocks)
        self.title = title
        self._rebuild()

    def set_normalisation(self, mode: str) -> None:
        if mode not in NORMALISATIONS:
            raise DenseguiError(f"unknown normalisation {mode!r}.")
        self.normalisation = mode
        self._refresh_images()

    def set_colormap(self, name: str) -> None:
        self.cmap_name = name
        if self.colorbar is not None:
            self.colorbar.setColorMap(pg.colormap.get(name))

    def _rebuild(self) -> None:
        """Lay out one plot per block; plots are reused when the block count and title stay the same
        (building pyqtgraph PlotItems is the slow part of showing a new checkpoint)."""
        if not self.blocks:
            self.clear()
            self.plots, self.images, self.colorbar, self._marker, self._layout_key = [], [], None, None, None
            return
        key = (len(self.blocks), self.title)
        if key != getattr(self, "_layout_key", None):
            self.clear()
            self.plots, self.images, self._marker = [], [], None
            row = 0
            if self.title:
                self.addLabel(self.title, row=0, col=0, colspan=len(self.blocks) + 1, color="k", size="11pt")
                row = 1
            for i in range(len(self.blocks)):
                plot = self.addPlot(row=row, col=i)
                plot.setMenuEnabled(False)
                plot.setMouseEnabled(x=False, y=False)
                plot.hideButtons()
                plot.invertY(True)
                plot.setAspectLocked(True)
                image = pg.ImageItem(axisOrder="row-major")
                plot.addItem(image)
                # A dashed line marks the set-apart transition/classifier column.
                plot.separator = pg.InfiniteLine(angle=90, pen=pg.mkPen((120, 120, 120), width=1,
                                                                        style=Qt.PenStyle.DashLine))
                plot.addItem(plot.separator)
                for name in ("bottom", "left"):
                    plot.getAxis(name).setPen("k")
                    plot.getAxis(name).setTextPen("k")
                plot.setLabel("bottom", "target")
                plot.setLabel("left", "source")
                plot.getAxis("left").setWidth(46)  # equal axes → equal plots, aligned side by side
                self.plots.append(plot)
                self.images.append(image)
            self.colorbar = pg.ColorBarItem(colorMap=pg.colormap.get(self.cmap_name), interactive=False,
                                            width=16, pen="k")
            self.colorbar.setImageItem(self.images)
            self.addItem(self.colorbar, row=row, col=len(self.blocks))
            self._layout_key = key
        self._clear_marker()
        for plot, b in zip(self.plots, self.blocks):
            plot.setTitle(f"Block {b.block}", color="k")
            depth = len(b.targets) - 1
            gap = gap_columns(depth)
            plot.separator.setPos(depth + gap / 2)
            xl = [(c, _short_target(t, b.block)) for c, t in enumerate(b.targets[:-1])]
            ticks_x = _ticks(xl, limit=8 if depth > 16 else 14)
            if depth > 16:  # keep the transition/classifier label clear of the last layer labels
                ticks_x = [t for t in ticks_x if t[0] < depth * 0.85]
            ticks_x.append((depth + gap + 0.5, _short_target(b.targets[-1], b.block)))
            ticks_y = _ticks([(r, _short_source(name)) for r, name in enumerate(b.sources)])
            plot.getAxis("bottom").setTicks([ticks_x, []])
            plot.getAxis("left").setTicks([ticks_y, []])
            plot.setRange(xRange=(0, depth + gap + 1), yRange=(0, len(b.sources)), padding=0.02)
        self._refresh_images()

    def _clear_marker(self) -> None:
        if self._marker is not None and self._marker.scene() is not None:
            self._marker.scene().removeItem(self._marker)
        self._marker = None

    def _refresh_images(self) -> None:
        if not self.images:
            return
        lo, hi = self.levels()
        for i, image in enumerate(self.images):
            image.setImage(self.image_array(i), autoLevels=False)
        if self.colorbar is not None:
            self.colorbar.setLevels((lo, hi))
            label = {"raw": "mean |w|", "column-max": "mean |w| ÷ column max",
                     "column": "mean |w|, column min–max", "block": "mean |w|, block min–max"}[self.normalisation]
            self.colorbar.axis.setLabel(label)
            self.colorbar.axis.setPen("k")
            self.colorbar.axis.setTextPen("k")

    # -------------------------------------------------------------- interaction
    def cell_at(self, scene_pos: QPointF) -> tuple[int, int, int] | None:
        for i, plot in enumerate(self.plots):
            if not plot.vb.sceneBoundingRect().contains(scene_pos):
                continue
            p = plot.vb.mapSceneToView(scene_pos)
            row, col = math.floor(p.y()), math.floor(p.x())
            b = self.blocks[i]
            target = self.column_to_target(i, col)
            if target is None or not 0 <= row < len(b.sources) or math.isnan(b.matrix[row, target]):
                return None
            return i, row, target
        return None

    def scene_pos_of(self, index: int, row: int, target: int) -> QPointF:
        """Scene position of a cell's centre (the inverse of :meth:`cell_at`)."""
        col = self.target_to_column(index, target)
        return self.plots[index].vb.mapViewToScene(QPointF(col + 0.5, row + 0.5))

    def tooltip_text(self, index: int, row: int, target: int) -> str:
        b = self.blocks[index]
        return f"{b.sources[row]} → {b.targets[target]}: {b.matrix[row, target]:.4g}"

    def _on_move(self, pos: QPointF) -> None:
        cell = self.cell_at(pos)
        self.cellHovered.emit(cell)
        if cell is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(QCursor.pos(), self.tooltip_text(*cell), self)

    def _on_click(self, event) -> None:
        cell = self.cell_at(event.scenePos())
        if cell is not None:
            self.select(*cell)

    def select(self, index: int, row: int, target: int) -> None:
        """Outline a cell and announce it (click)."""
        col = self.target_to_column(index, target)
        self._clear_marker()
        self._marker = QGraphicsRectItem(QRectF(col, row, 1, 1))
        pen = QPen(QColor(230, 30, 30))
        pen.setCosmetic(True)
        pen.setWidth(2)
        self._marker.setPen(pen)
        self.plots[index].addItem(self._marker)
        self.cellClicked.emit((index, row, target))


class _LoadThread(QThread):
    """Waits for the background process to load + infer + compute the matrices of one file.

    The work itself runs in the shared child process (densegui/gui/summary_process.py): loaded
    in a thread of this process, ``torch.load`` held the GIL for up to a few hundred
    milliseconds and froze the window; this thread only waits on a pipe."""

    progress = Signal(int, str)
    loaded = Signal(object)
    failed = Signal(str)

    def __init__(self, path: str, tag: tuple[object, int], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.tag = tag

    def run(self) -> None:
        name = Path(self.path).name
        try:
            self.progress.emit(10, f"loading {name} in the background …")
            loaded, blocks = server().load_reuse(self.path, self.tag)
            if self.isInterruptionRequested():
                return
            self.progress.emit(100, "done")
            self.loaded.emit((loaded, blocks))
        except SummaryCancelled:
            return  # a newer load was requested: this one is stale
        except DenseguiError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - the GUI must keep working whatever happens
            self.failed.emit(f"could not load {name!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


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
        self._generation = 0
        self._owner = object()  # this panel's jobs in the shared background process
        self._threads: list[_LoadThread] = []
        self._recent_memory: list[str] = []

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
        bar = QHBoxLayout()
        bar.addWidget(self.open_button)
        bar.addWidget(self.recent_button)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Scale:"))
        bar.addWidget(self.norm_combo)
        bar.addWidget(QLabel("Colours:"))
        bar.addWidget(self.cmap_combo)
        bar.addStretch(1)
        bar.addWidget(self.png_button)
        bar.addWidget(self.csv_button)
        bar.addWidget(self.send_button)

        self.info_label = QLabel()
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
        """Stop and await every loading thread (call before the window closes)."""
        self._generation += 1
        for thread in list(self._threads):
            thread.requestInterruption()
        if self._threads:
            server().cancel(self._owner, self._generation)
        for thread in list(self._threads):
            thread.wait()
        self._threads.clear()
        server().forget(self._owner)

    @staticmethod
    def default_checkpoint() -> Path:
        from densegui.core.resources import resource_path

        return resource_path(DEFAULT_CHECKPOINT)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._pending_default is not None:
            self.load_checkpoint(self._pending_default, remember=False)

    # ------------------------------------------------------------------ loading
    def load_checkpoint(self, path: str, remember: bool = True) -> None:
        """Load ``path`` in a background thread; a later call makes this one's result stale."""
        self._pending_default = None
        self._generation += 1
        gen = self._generation
        for old in self._threads:
            old.requestInterruption()
        server().cancel(self._owner, gen)  # an older load still waiting or running is stale now
        thread = _LoadThread(str(path), (self._owner, gen))
        thread.progress.connect(lambda pct, text, g=gen: self._on_progress(g, pct, text))
        thread.loaded.connect(lambda result, g=gen, p=str(path), r=remember: self._on_loaded(g, result, p, r))
        thread.failed.connect(lambda msg, g=gen: self._on_failed(g, msg))
        thread.finished.connect(lambda t=thread: self._on_thread_finished(t))
        self._threads.append(thread)
        self.progress.setValue(0)
        self.progress.setFormat(f"{Path(path).name}: %p%")
        self.progress.show()
        thread.start()

    def is_loading(self) -> bool:
        return any(t.isRunning() for t in self._threads)

    def _on_thread_finished(self, thread: _LoadThread) -> None:
        if thread in self._threads:
            self._threads.remove(thread)
        thread.deleteLater()
        if not self._threads:
            self.progress.hide()

    def _on_progress(self, gen: int, pct: int, text: str) -> None:
        if gen != self._generation:
            return
        self.progress.setValue(pct)
        self.progress.setFormat(f"{text} %p%")

    def _on_failed(self, gen: int, message: str) -> None:
        if gen != self._generation:
            return
        self.message_label.setText(message)
        self.message_label.show()
        self.progress.hide()
        self.loadFinished.emit(False)

    def _on_loaded(self, gen: int, result, path: str, remember: bool) -> None:
        if gen != self._generation:
            return
        loaded, blocks = result
        self.loaded, self.blocks, self.selected = loaded, blocks, None
        self.message_label.hide()
        self.progress.hide()
        self.view.set_blocks(blocks)
        self.stack.setCurrentWidget(self.view)
        self.info_label.setText(self._describe(loaded))
        self.detail_label.setText("Click a cell for its details.")
        if remember:
            self._remember(path)
        self._set_enabled_actions()
        self.loadFinished.emit(True)

    @staticmethod
    def _describe(loaded) -> str:
        cfg = loaded.config
        origin = "inferred from the weights" if loaded.inferred else "stored in the file"
        parts = [
            f"<b>{Path(loaded.path).name}</b> ({loaded.source_format}) — configuration {origin}: ",
            f"k={cfg.growth_rate}, blocks {'-'.join(map(str, cfg.block_depths))}, ",
            f"{'bottleneck (bn_size ' + str(cfg.bn_size) + ')' if cfg.bottleneck else 'basic layers'}, ",
            f"θ={cfg.compression:g}, {cfg.stem} stem with {cfg.num_init_features} features, ",
            f"{cfg.in_channels} input channels, {cfg.num_classes} classes, input {cfg.input_size}×{cfg.input_size}.",
        ]
        meta = loaded.metadata or {}
        shown = []
        dataset = meta.get("dataset")
        if isinstance(dataset, dict):
            dataset = dataset.get("name")
        if isinstance(dataset, str):
            shown.append(f"trained on {dataset}")
        for key in ("heldout_accuracy", "test_accuracy", "val_accuracy", "accuracy"):
            value = meta.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                label = {"heldout_accuracy": "held-out accuracy"}.get(key, key.replace("_", " "))
                shown.append(f"{label} {value:.2%}" if value <= 1 else f"{label} {value:g}")
                break
        if isinstance(meta.get("epochs"), int):
            shown.append(f"{meta['epochs']} epochs")
        if shown:
            text = ", ".join(shown)
            parts.append(" " + text[0].upper() + text[1:] + ".")
        return "".join(parts)

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


def render_png(blocks: list[BlockReuse], path: str, *, normalisation: str = "column", cmap: str = "viridis",
               title: str = "", width: int | None = None, height: int = 460) -> None:
    """Render the heatmaps to a PNG without showing a window (needs a Qt platform; offscreen is fine)."""
    app = QApplication.instance() or QApplication([])  # noqa: F841 - must exist while the view lives
    view = HeatmapView()
    try:
        view.normalisation = normalisation
        try:
            pg.colormap.get(cmap)
        except Exception:  # noqa: BLE001 - pyqtgraph raises various errors for unknown names
            raise DenseguiError(f"unknown colour map {cmap!r}; try one of {', '.join(COLORMAPS)}.") from None
        view.cmap_name = cmap
        view.set_blocks(blocks, title=title)
        total = sum(len(b.targets) + 1 for b in blocks)
        view.resize(width or max(520, min(2400, 160 + 240 * len(blocks) + 6 * total)), height)
        view.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)  # lay out and paint, never flash a window
        view.show()
        QEventLoop().processEvents()  # not app.processEvents(): PySide6 6.12 leaks a None reference there
        if not view.grab().save(str(path), "PNG"):
            raise DenseguiError(f"cannot write {str(path)!r}.")
    finally:
        view.close()
        view.deleteLater()
        QEventLoop().processEvents()
