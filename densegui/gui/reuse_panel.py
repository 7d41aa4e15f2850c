"""Feature-reuse panel (``reusePanel``): paper Figure 5 for a trained checkpoint.

One heatmap per dense block, side by side: rows are sources (block input,
then layers 1..L, top to bottom), columns are targets (layers 1..L, then,
set apart by a blank column, the transition or the classifier). Cells with
no connection are transparent (NaN); the view itself is gui/heatmap.py.
Loading, architecture inference and the matrices run in the background
process (job ``load_reuse``); a newer load makes an older one stale, so its
result is never shown. Errors show as a one-line message and the previous
heatmap stays.

*Measure* picks what a cell is (core.reuse.MEASURES). The data measures
(activation, ablation) and the pruning curve run in their own background
process (lane ``reuse``) with progress and *Cancel*; every measure comes with
its noise floor, shown as a line per block and as dots on the cells within it.
*Open pretrained* downloads torchvision's ImageNet weights (job
``download_pretrained``) and opens them.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from densegui.core.errors import DenseguiError
from densegui.core.weights.pretrained import pretrained_names
from densegui.core.analysis.reuse import (
    COLORMAPS,
    DATA_MEASURES,
    DEFAULT_CHECKPOINT,
    DEFAULT_MEASURE,
    DEFAULT_NORMALISATIONS,
    MEASURE_LABELS,
    MEASURE_UNITS,
    MEASURES,
    NORMALISATION_LABELS,
    NORMALISATIONS,
    BlockReuse,
    block_layouts,
    column_rank,
    default_checkpoint_path,
    unavailable,
)
from densegui.core.arch import registry
from densegui.gui import export
from densegui.gui.feedback import confirm
from densegui.gui.heatmap import HeatmapView, PruneView, figure_title, render
from densegui.gui.jobs import EXPLORE, REUSE
from densegui.gui.tasks import TaskRunner
from densegui.gui.widgets import FitLabel, FlowLayout, together

CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.pkl *.bin *.ckpt *.tar *.safetensors);;All files (*)"
MAX_RECENT = 8


class ReusePanel(QWidget):
    """Feature-reuse heatmaps of a checkpoint (paper Figure 5)."""

    configRequested = Signal(object)  # the loaded checkpoint's DenseNetConfig ("Send to explorer")
    loadFinished = Signal(bool)  # True: new heatmaps shown; False: error shown, previous kept
    reuseShown = Signal(object)  # what the heatmaps show, for the Architecture tab (reuse_payload)

    def __init__(self, parent: QWidget | None = None, *, load_default: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("reusePanel")
        self.setAcceptDrops(True)
        self.loaded = None  # LoadedCheckpoint of the shown heatmaps
        self.blocks: list[BlockReuse] = []
        self.analysis = None  # ReuseAnalysis of the shown measure
        self.prune = None  # ReuseAnalysis with the pruning curve, once computed for the shown file
        self.measure = DEFAULT_MEASURE
        self._kind = "load"  # what the task in flight is: "load", "download" or "prune"
        self._inflight_measure = DEFAULT_MEASURE
        self._fallback_message = ""  # why a new file opened with weights instead of the chosen data measure
        self.selected: tuple[int, int, int] | None = None
        self._recent_memory: list[str] = []
        self._request: tuple[str, bool, str | None] | None = None  # (path, remember, candidate) in flight
        self.runner = TaskRunner(self, report_cancel=True)
        self.runner.progress.connect(self._on_progress)
        self.runner.done.connect(self._on_done)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)

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
        self.pretrained_button = QToolButton()
        self.pretrained_button.setObjectName("reusePretrained")
        self.pretrained_button.setText("Open pretrained")
        self.pretrained_button.setToolTip("torchvision's published ImageNet weights, downloaded once into torch's "
                                          "hub cache (hash-checked)")
        self.pretrained_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.pretrained_menu = QMenu(self.pretrained_button)
        for name in pretrained_names():
            self.pretrained_menu.addAction(name).triggered.connect(
                lambda _=False, n=name: self.open_pretrained(n))
        self.pretrained_button.setMenu(self.pretrained_menu)
        self.measure_combo = QComboBox()
        self.measure_combo.setObjectName("reuseMeasure")
        for m in MEASURES:
            self.measure_combo.addItem(m, m)
            self.measure_combo.setItemData(self.measure_combo.count() - 1, MEASURE_LABELS[m],
                                           Qt.ItemDataRole.ToolTipRole)
        self.measure_combo.currentIndexChanged.connect(self._measure_chosen)
        self.data_edit = QLineEdit()
        self.data_edit.setObjectName("reuseData")
        self.data_edit.setPlaceholderText("as recorded")
        self.data_edit.setToolTip("Images for activation, ablation and the pruning curve: digits, KIND:FOLDER or "
                                  "imagenet:FOLDER (as densegui train --dataset); empty: the bundled dataset the "
                                  "checkpoint records, its held-out split")
        self.data_edit.setMinimumWidth(110)
        self.data_edit.setMaximumWidth(220)
        self.data_edit.editingFinished.connect(self._data_changed)
        self.prune_button = QPushButton("Pruning curve")
        self.prune_button.setObjectName("reusePrune")
        self.prune_button.setToolTip("All four measures, their rank agreement with ablation, and held-out accuracy "
                                     "with 0–90 % of connections removed weakest-first by each (needs data)")
        self.prune_button.clicked.connect(self.run_prune_curve)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("reuseCancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.noise_check = QCheckBox("Mark noise")
        self.noise_check.setObjectName("reuseMarkNoise")
        self.noise_check.setToolTip("Dot the cells whose difference is within the measure's noise floor")
        self.noise_check.setChecked(True)
        self.noise_check.toggled.connect(lambda on: (self.view.set_show_noise(on), self._emit_shown()))
        self.norm_combo = QComboBox()
        self.norm_combo.setObjectName("reuseNormalisation")
        for mode in NORMALISATIONS:
            self.norm_combo.addItem(NORMALISATION_LABELS[mode], mode)
        self.norm_combo.currentIndexChanged.connect(self._normalisation_changed)
        self.cmap_combo = QComboBox()
        self.cmap_combo.setObjectName("reuseColormap")
        self.cmap_combo.addItems(COLORMAPS)
        self.cmap_combo.currentTextChanged.connect(self._colormap_changed)
        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("reuseExport")
        self.export_button.setToolTip("Save the heatmaps as a PNG image, or as an SVG or PDF vector figure (for papers)")
        self.export_button.clicked.connect(self._export_dialog)
        self._export_format = "png"  # the dialog offers the last format used first
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
        # One flowing bar: at a laptop's width it wraps onto a second row instead of widening the window.
        bar = FlowLayout()
        for item in (together(self.open_button, self.recent_button, self.pretrained_button),
                     together("Measure:", self.measure_combo), together("Data:", self.data_edit),
                     together(self.prune_button), self.candidate_combo,
                     together("Scale:", self.norm_combo), together("Colours:", self.cmap_combo), self.noise_check,
                     together(self.export_button, self.csv_button, self.send_button)):
            bar.addWidget(item)

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
        self.noise_label = QLabel()
        self.noise_label.setObjectName("reuseNoise")
        self.noise_label.setTextFormat(Qt.TextFormat.PlainText)
        self.noise_label.setWordWrap(True)
        self.noise_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.view = HeatmapView()
        self.view.setMinimumHeight(230)  # a small window scrolls the page rather than squash the grids' labels
        self.view.cellHovered.connect(self._hovered)
        self.view.cellClicked.connect(self._clicked)
        self.empty_label = QLabel()
        self.empty_label.setObjectName("reuseEmpty")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.prune_view = PruneView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.view)
        self.stack.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.views = QTabWidget()
        self.views.setObjectName("reuseViews")
        self.views.addTab(self.stack, "Heatmaps")
        self.agreement_label = QLabel()
        self.agreement_label.setObjectName("reuseAgreement")
        self.agreement_label.setTextFormat(Qt.TextFormat.PlainText)
        self.agreement_label.setWordWrap(True)
        self.agreement_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        prune_page = QWidget()
        prune_layout = QVBoxLayout(prune_page)
        prune_layout.setContentsMargins(0, 0, 0, 0)
        prune_layout.addWidget(self.prune_view, 1)
        prune_layout.addWidget(self.agreement_label)
        self.prune_page = prune_page
        self.views.addTab(prune_page, "Pruning curve")

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
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)
        layout.addWidget(self.noise_label)
        layout.addWidget(self.views, 1)
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
    def load_checkpoint(self, path: str, remember: bool = True, candidate: str | None = None,
                        *, _fallback: str = "") -> None:
        """Load ``path`` in the background process; a later call makes this one's result stale.
        ``candidate`` picks one DenseNet of a file that holds several (default: the loader's rule)."""
        self._fallback_message = _fallback
        self._pending_default = None
        self._request = (str(path), remember, candidate)
        self._clear_readouts()  # a read-out of the file being replaced is stale
        self._run("load", f"{Path(path).name}: loading in the background … %p%")

    def _options(self, prune: bool = False) -> dict:
        data = self.data_edit.text().strip() or None
        return {"data": data, "prune": prune}

    def _run(self, kind: str, text: str) -> None:
        path, _remember, candidate = self._request
        measure = self._inflight_measure = self.measure
        self._kind = kind
        data_work = kind == "prune" or measure in DATA_MEASURES
        lane = REUSE if data_work else EXPLORE
        self.runner.start_job(lane, "load_reuse", path, candidate, measure, self._options(kind == "prune"))
        self._show_progress(text, cancellable=data_work)

    def _show_progress(self, text: str, cancellable: bool) -> None:
        self.progress.setValue(0)
        self.progress.setFormat(text)
        self.progress.show()
        self.cancel_button.setVisible(cancellable)

    def _hide_progress(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()

    def open_pretrained(self, name: str) -> None:
        """Download (once) and open torchvision's published ImageNet weights of ``name``."""
        self._pending_default = None
        self._kind = "download"
        self.runner.start_job(REUSE, "download_pretrained", name)
        self._show_progress(f"downloading {name} … %p%", cancellable=True)

    def cancel(self) -> None:
        """Stop the measure, pruning curve or download in flight; what is shown stays."""
        self.runner.cancel()

    def is_loading(self) -> bool:
        return self.runner.is_busy()

    def _on_progress(self, payload) -> None:
        fraction, text = payload if isinstance(payload, tuple) else (payload, None)
        self.progress.setValue(int(round(100 * fraction)))
        if text and (self._kind != "load" or self._inflight_measure in DATA_MEASURES):  # (not a weights load's "done")
            self.progress.setFormat(f"{text} … %p%")

    def _opening_a_new_file(self) -> bool:
        """True while the load in flight is of another file (or candidate) than the one shown."""
        if self._kind != "load" or self._request is None:
            return False
        path, _remember, candidate = self._request
        return (self.loaded is None or Path(path).resolve() != Path(self.loaded.path).resolve()
                or candidate not in (None, self.loaded.candidate))

    def _fall_back_to_weights(self, why: str) -> bool:
        """A new file whose chosen data measure failed or was cancelled opens with the paper's
        measure all the same, and the message says why (once: a second failure is the file's)."""
        if self._fallback_message or self._inflight_measure not in DATA_MEASURES or not self._opening_a_new_file():
            return False
        path, remember, candidate = self._request
        self.measure = DEFAULT_MEASURE
        self._sync_measure_combo()
        self.load_checkpoint(path, remember, candidate,
                             _fallback=f"{self._inflight_measure}: {why} Showing weights instead.")
        return True

    def _sync_measure_combo(self) -> None:
        self.measure_combo.blockSignals(True)
        self.measure_combo.setCurrentIndex(self.measure_combo.findData(self.measure))
        self.measure_combo.blockSignals(False)

    def _on_failed(self, message: str) -> None:
        self._clear_readouts()
        if self._fall_back_to_weights(message):
            return
        self._fallback_message = ""
        if self._kind == "load" and self.measure in DATA_MEASURES:
            self.data_edit.setModified(True)  # (Enter in the Data field tries again)
        self.message_label.setText(message)
        self.message_label.show()
        self._hide_progress()
        self._restore_measure()
        if self.loaded is not None:
            self._show_candidates(self.loaded)
        self.loadFinished.emit(False)

    def _on_cancelled(self) -> None:
        if self._fall_back_to_weights("cancelled."):
            return
        self._fallback_message = ""
        self._hide_progress()
        self._restore_measure()
        if self.loaded is not None:
            self._show_candidates(self.loaded)
        self.hover_label.setText("cancelled.")

    def _restore_measure(self) -> None:
        """After a failed or cancelled measure, the menu shows what the heatmaps show."""
        shown = self.blocks[0].measure if self.blocks else DEFAULT_MEASURE
        if shown != self.measure or self.measure_combo.currentData() != shown:
            self.measure = shown
            self._sync_measure_combo()

    def _on_done(self, result) -> None:
        if self._kind == "download":
            self.load_checkpoint(result)
            return
        path, remember, _candidate = self._request
        loaded, analysis = result
        self._display(loaded, analysis, self._inflight_measure, show_prune=self._kind == "prune")
        if remember:
            self._remember(path)
        self._set_enabled_actions()
        self.loadFinished.emit(True)

    def _display(self, loaded, analysis, measure: str, show_prune: bool = False) -> None:
        """Show ``measure`` of ``analysis`` (the menu follows); ``show_prune``: bring up its pruning curve."""
        new_file = self.loaded is None or loaded.path != self.loaded.path or loaded.candidate != self.loaded.candidate
        self.loaded, self.analysis, self.selected = loaded, analysis, None
        self.measure = measure
        self._sync_measure_combo()
        self.blocks = analysis.measures[self.measure]
        if self._fallback_message:
            self.message_label.setText(self._fallback_message)
            self.message_label.show()
            self._fallback_message = ""
        else:
            self.message_label.hide()
        self._hide_progress()
        self.norm_combo.setCurrentIndex(self.norm_combo.findData(DEFAULT_NORMALISATIONS[self.measure]))
        self.view.set_blocks(self.blocks)
        self.stack.setCurrentWidget(self.view)
        self.info_label.setText(loaded.describe())
        self.noise_label.setText(self.noise_text())
        self._show_candidates(loaded)
        self.hover_label.setText(" ")
        self.detail_label.setText("Click a cell for its details.")
        if analysis.prune is not None:
            self.prune = analysis
            self.prune_view.set_analysis(analysis)
            self.agreement_label.setText(self.prune_view.agreement_text())
            if show_prune:
                self.views.setCurrentWidget(self.prune_page)
        elif new_file:
            self.prune = None
            self.prune_view.set_analysis(None)
            self.agreement_label.setText("")
        self._emit_shown()

    def reuse_payload(self) -> dict | None:
        """The shown measure as the Architecture tab colours its arcs: every cell on the colour
        bar's [0, 1] (the heatmap's normalisation and levels), its noise marks, the colour map as 256
        RGB tuples, and the checkpoint's configuration; None before a checkpoint is shown."""
        if self.loaded is None or not self.blocks:
            return None
        from densegui.gui.heatmap import color_levels, colormap_of

        view = self.view
        lo, hi = color_levels(self.blocks, view.normalisation)
        table = colormap_of(view.cmap_name).getLookupTable(0.0, 1.0, 256, alpha=False)
        blocks = []
        for i, b in enumerate(self.blocks):
            scaled = (view.displayed(i) - lo) / ((hi - lo) or 1.0)
            noise = b.within_noise.tolist() if b.within_noise is not None and view.show_noise else None
            blocks.append((b.block, scaled.tolist(), noise))
        label = (f"{MEASURE_LABELS[self.measure]} of {Path(self.loaded.path).name} "
                 f"({NORMALISATION_LABELS[view.normalisation]} scale)")
        return {"config": self.loaded.config, "label": label, "lut": [tuple(int(c) for c in row[:3]) for row in table],
                "blocks": blocks}

    def _emit_shown(self) -> None:
        shown = self.view.blocks
        if len(shown) == len(self.blocks) and all(a is b for a, b in zip(shown, self.blocks, strict=True)):
            # (not half-way through _display, which changes the scale before the blocks)
            self.reuseShown.emit(self.reuse_payload())

    def noise_text(self) -> str:
        """What the data measures ran on, then one line per block: the measure's spread against its noise floor."""
        from densegui.core.analysis.reuse_run import context_lines, noise_summary

        lines = context_lines(self.analysis) if self.analysis is not None else []
        return "\n".join(lines + [f"Block {b.block}: {noise_summary(b)}." for b in self.blocks])

    def _target(self, candidate: str | None = None) -> bool:
        """Point ``_request`` at the file a measure change applies to: the one being opened while a
        load is in flight, else the one shown (with ``candidate`` if given). False if there is none."""
        if self.runner.is_busy() and self._kind == "load" and self._request is not None:
            path, remember, current = self._request
            self._request = (path, remember, current if candidate is None else candidate)
            return True
        if self.loaded is None:
            return False
        self._request = (self.loaded.path, False, self.loaded.candidate if candidate is None else candidate)
        return True

    def _measure_chosen(self, _index: int) -> None:
        measure = self.measure_combo.currentData()
        if measure == self.measure:
            return
        self.measure = measure
        if self.runner.is_busy() and self._kind == "download":
            return  # the downloaded file opens with the new measure
        if self._say_unavailable(measure):
            return
        cached = self.prune if self.prune is not None and not self.runner.is_busy() else None
        if cached is not None and measure in cached.measures and self.loaded is not None:
            self._display(self.loaded, cached, measure)  # the pruning run computed all four
            return
        if self._target():
            self._run("load", f"{MEASURE_LABELS[measure]} … %p%")

    def _say_unavailable(self, measure: str) -> bool:
        """True, with its one line shown, when ``measure`` does not carry over to the shown network's
        family (bn-weights and the data measures need BatchNorms; core.reuse.unavailable)."""
        if self.loaded is None or self.runner.is_busy() and self._opening_a_new_file():
            return False  # (a file being opened says so from its job)
        why = unavailable(self._layouts(), registry.family_of(self.loaded.config), measure)
        if why is None:
            return False
        self.message_label.setText(why)
        self.message_label.show()
        self._restore_measure()
        return True

    def _layouts(self):
        return block_layouts(registry.plan(self.loaded.config))

    def _data_changed(self) -> None:
        if self.measure in DATA_MEASURES and self.data_edit.isModified() and self._target():
            self.data_edit.setModified(False)
            self.prune = None  # (computed on other data)
            self._run("load", f"{MEASURE_LABELS[self.measure]} … %p%")

    def run_prune_curve(self) -> None:
        """All four measures, their agreement with ablation and the pruning curve (background)."""
        if not self._say_unavailable("the pruning curve") and self._target():
            self._run("prune", "pruning curve … %p%")

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
        # (a file with several DenseNets that is still being opened shows its candidates once loaded)

    def _show_empty(self, text: str) -> None:
        self.empty_label.setText(text)
        self.stack.setCurrentWidget(self.empty_label)

    def _set_enabled_actions(self) -> None:
        has = self.loaded is not None
        for w in (self.export_button, self.csv_button, self.send_button, self.prune_button):
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
        self._emit_shown()

    def _colormap_changed(self, name: str) -> None:
        self.view.set_colormap(name)
        self._emit_shown()

    def _send_config(self) -> None:
        if self.loaded is not None:
            self.configRequested.emit(self.loaded.config)

    def export(self, path: str, fmt: str | None = None) -> Path:
        """Save the shown heatmaps as PNG, SVG or PDF by ``path``'s suffix (``fmt`` forces one): the
        figure gui/heatmap.py draws, in the shown scale, colours and noise dots; vector in SVG and PDF."""
        if not self.blocks:
            raise DenseguiError("there are no heatmaps to export yet.")
        name = Path(self.loaded.path).name if self.loaded is not None else "reuse"
        view = self.view
        title = figure_title(name, self.measure, view.normalisation, view.show_noise)
        return render(self.blocks, path, normalisation=view.normalisation, cmap=view.cmap_name, title=title,
                      show_noise=view.show_noise, fmt=fmt)

    def export_png(self, path: str) -> Path:
        """:meth:`export` as a PNG, whatever the suffix."""
        return self.export(path, "png")

    def export_csv(self, folder: str) -> list[Path]:
        from densegui.core.analysis.reuse import write_csv

        return write_csv(self.blocks, folder)

    def _export_dialog(self) -> None:
        stem = Path(self.loaded.path).stem if self.loaded is not None else "reuse"
        path = export.ask_save_path(self, "Export heatmaps", f"{stem}_{self.measure}", self._export_format)
        if path:
            self.save_export(path)

    def save_export(self, path: str) -> bool:
        """What the Export button does once a file is chosen: save, then say so (or why not)."""
        if not self._report(lambda: self.export(path), f"Saved {path}"):
            return False
        self._export_format = export.format_of(path)
        return True

    def _export_csv_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export one CSV per block into…")
        if folder:
            self._report(lambda: self.export_csv(folder), f"wrote {len(self.blocks)} CSV files to {folder}")

    def _report(self, action, success: str) -> bool:
        try:
            action()
        except DenseguiError as exc:
            self.message_label.setText(str(exc))
            self.message_label.show()
            return False
        self.message_label.hide()
        confirm(self, success, self.hover_label)
        return True

    # ------------------------------------------------------------ hover, click
    def _clear_readouts(self) -> None:
        """Forget the hovered and the clicked cell (their text, outline and tooltip)."""
        self.selected = None
        self.view.clear_selection()
        self.hover_label.setText(" ")
        self.detail_label.setText("Click a cell for its details.")

    def _hovered(self, cell) -> None:
        self.hover_label.setText(self.view.tooltip_text(*cell) if cell is not None else " ")

    def _clicked(self, cell) -> None:
        self.selected = tuple(cell)
        self.detail_label.setText(self.detail_text(*cell))

    def _mixer_words(self, index: int, target: int, name: str) -> str:
        """What the cell's weight is: "layer 3's 1×1 conv1", "transition 2's 2×2 conv" (from the plan)."""
        if name == "classifier":
            return "the classifier's weight matrix"
        if self.loaded is None:
            return f"{name}'s first conv"
        unit = self._layouts()[index].units[target]
        shape = next(t.shape for t in unit.tensors if t.key == f"{unit.mixer}.weight")
        kernel = "×".join(map(str, shape[2:]))
        module = unit.mixer.rpartition(".")[2]
        if unit.index is None:
            return f"{name}'s {kernel} conv"
        return f"{name}'s {kernel} {f'conv ({unit.mixer})' if module.isdigit() else module}"

    def detail_text(self, index: int, row: int, target: int) -> str:
        b = self.blocks[index]
        start, end = b.channels(row, target) or b.source_channels[row]  # (in this target's input)
        value = b.matrix[row, target]
        shown = self.view.displayed(index)[row, target]
        rank, count = column_rank(b.matrix, row, target)
        unit = MEASURE_UNITS[b.measure]
        name = b.targets[target]
        what = self._mixer_words(index, target, name)
        scale = "" if self.view.normalisation == "raw" else \
            f" ({shown:.3f} on the {NORMALISATION_LABELS[self.view.normalisation]} scale)"
        text = (f"Block {b.block}: {b.sources[row]} → {name} — input channels {start}–{end - 1} ({end - start}) "
                f"of {what}; {unit} = {value:.5g}{scale}; rank {rank} of {count} in its column")
        if "stderr" in b.extra:
            text += f"; standard error {b.extra['stderr'][row, target]:.2g}"
        if "delta_accuracy" in b.extra:
            text += f"; Δ accuracy {b.extra['delta_accuracy'][row, target]:+.2%}"
        if b.within_noise is not None:
            text += "; within the noise floor" if b.within_noise[row, target] else "; beyond the noise floor"
        return text + "."
