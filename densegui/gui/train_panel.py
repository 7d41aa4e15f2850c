"""Training panel (``trainPanel``): "Train this configuration" from the window.

The panel trains the explorer's current configuration (``set_config``),
adapted to the chosen dataset's channels, classes and image size (the
adaptation is shown before and during the run). Training runs in its own
background process (job ``train`` → :func:`densegui.core.train.setup.run_training`);
Cancel reaches the core's cancel check, made at every stage (dataset, model,
optimizer) and between batches, so it lands within about a second.
Live curves show the running training loss/accuracy (per batch) and the
held-out loss/accuracy (per epoch). After every epoch the checkpoint is
written atomically and ``checkpointSaved(path)`` is emitted; the main window
connects it to the reuse panel, so the Figure-5 heatmaps refresh while the
network trains.

It fits a small window (issue #26; widgets in :mod:`densegui.gui.fitting`): the dataset and recipe
scroll, the two plots stand side by side only where the room is wide, their legends sit under the
x axis (never on the curves), and in a short window the curves and the log become tabs.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QStandardPaths, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from densegui.core.arch import registry as arch
from densegui.core.arch.family import TRAIN as CAN_TRAIN
from densegui.core.errors import DenseguiError
from densegui.core.train.setup import TrainOptions, TrainRequest, adapt_config, dataset_shape, default_config
from densegui.core.weights.files import remove_stale_temporaries
from densegui.gui.fitting import (
    AspectSplitter,
    FitProgressBar,
    ScrollColumn,
    WrapLabel,
    fit_combo,
    legend_below,
    plot_minimum,
)
from densegui.gui.jobs import TRAIN
from densegui.gui.panel import WhenShown
from densegui.gui.tasks import TaskRunner
from densegui.gui.widgets import DeviceCombo


class TrainPanel(QWidget):
    """Dataset and recipe, Train this configuration / Cancel, live curves, log."""

    checkpointSaved = Signal(str)  # a new epoch's checkpoint landed at this path
    runFinished = Signal(bool)  # True: completed; False: failed or cancelled

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainPanel")
        self.config: arch.Config = default_config()
        self._label = WhenShown(self, self._update_config_label)  # what the configuration becomes on the dataset
        self.runner = TaskRunner(self, report_cancel=True)
        self.runner.progress.connect(self._on_update)
        self.runner.done.connect(self._on_done)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.last_checkpoint = ""
        self.result = None
        self.points: dict[str, tuple[list[float], list[float]]] = {
            k: ([], []) for k in ("loss", "val_loss", "acc", "val_acc")}

        # ---- what is trained
        self.config_label = QLabel(objectName="trainConfigLabel")
        self.config_label.setWordWrap(True)
        self.config_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.config_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.use_default_button = QPushButton("Use the digits default", objectName="trainUseDefault")
        self.use_default_button.setToolTip("The architecture shipped for the digits: basic DenseNet, k=12, θ=1, "
                                           "three blocks of 5 layers, CIFAR stem")
        self.use_default_button.clicked.connect(lambda: self.set_config(default_config()))

        # ---- dataset and recipe
        self.dataset_combo = QComboBox(objectName="trainDataset")
        self.dataset_combo.addItem("digits — 8×8 handwritten digits (shipped with densegui)", "digits")
        fit_combo(self.dataset_combo)
        self.dataset_combo.currentIndexChanged.connect(self._update_config_label)
        self.folder_button = QPushButton("…", objectName="trainDatasetFolder")
        self.folder_button.setFixedWidth(32)
        self.folder_button.setToolTip("Choose a dataset folder: CIFAR-10/100 python batches, MNIST/Fashion-MNIST "
                                      "IDX files, or one sub-folder of images per class")
        self.folder_button.clicked.connect(self._choose_folder)
        ds_row = QHBoxLayout()
        ds_row.addWidget(self.dataset_combo, 1)
        ds_row.addWidget(self.folder_button)
        defaults = TrainOptions()
        self.epochs_spin = QSpinBox(objectName="trainEpochs")
        self.epochs_spin.setRange(1, 10_000)
        self.epochs_spin.setValue(defaults.epochs)
        self.batch_spin = QSpinBox(objectName="trainBatch")
        self.batch_spin.setRange(1, 65_536)
        self.batch_spin.setValue(defaults.batch_size)
        self.lr_spin = QDoubleSpinBox(objectName="trainLr")
        self.lr_spin.setDecimals(4)
        self.lr_spin.setRange(0.0001, 10.0)
        self.lr_spin.setSingleStep(0.01)
        self.lr_spin.setValue(defaults.lr)
        self.seed_spin = QSpinBox(objectName="trainSeed")
        self.seed_spin.setRange(0, 2_000_000_000)
        self.limit_spin = QSpinBox(objectName="trainLimit")
        self.limit_spin.setRange(0, 10_000_000)
        self.limit_spin.setSpecialValueText("all")
        self.limit_spin.setToolTip("train on a seeded subset of this many images (the held-out split stays whole)")
        self.nproc_spin = QSpinBox(objectName="trainProcesses")
        self.nproc_spin.setRange(1, 64)
        self.nproc_spin.setToolTip("processes (one per GPU on CUDA) trained together with PyTorch's "
                                   "DistributedDataParallel, launched through torch.distributed.run; the batch "
                                   "size stays the global batch and must divide by it")
        self.device_combo = fit_combo(DeviceCombo("trainDevice"))
        self.out_edit = QLineEdit(objectName="trainOut")
        self.out_edit.setPlaceholderText("automatic (a new file)")
        self.out_edit.setToolTip("Empty: a new file under " + self._runs_dir())
        self.out_button = QPushButton("…", objectName="trainOutBrowse")
        self.out_button.setFixedWidth(32)
        self.out_button.clicked.connect(self._choose_out)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.out_button)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Dataset", ds_row)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Seed", self.seed_spin)
        form.addRow("Images", self.limit_spin)
        form.addRow("Device", self.device_combo)
        form.addRow("Processes", self.nproc_spin)
        form.addRow("Checkpoint", out_row)
        recipe = WrapLabel("SGD, Nesterov momentum 0.9, weight decay 1e-4, learning rate ÷10 at 50% and 75% of "
                        "the training steps, random shifts (CIFAR: crops + flips). The checkpoint is rewritten after "
                        "every epoch; the Feature reuse tab follows it.")
        recipe.setStyleSheet("font-size: 11px; color: palette(placeholder-text);")
        form.addRow(recipe)

        self.start_button = QPushButton("Train this configuration", objectName="trainStart")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", objectName="trainCancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        self.progress = FitProgressBar(objectName="trainProgress")
        self.progress.setRange(0, 1000)
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.status_label = WrapLabel(objectName="trainStatus")
        self.error_label = WrapLabel(objectName="trainError")
        self.error_label.setStyleSheet("color: #c0392b;")
        self.error_label.hide()

        # left: what is trained and how, in a column that scrolls (rows keep their height in a short
        # window); the buttons and progress always in view under it
        column = QWidget()
        cv = QVBoxLayout(column)
        cv.setContentsMargins(0, 0, 4, 0)
        box = QGroupBox("Configuration (from the explorer)")
        bv = QVBoxLayout(box)
        bv.addWidget(self.config_label)
        bv.addWidget(self.use_default_button, 0, Qt.AlignmentFlag.AlignLeft)
        cv.addWidget(box)
        rbox = QGroupBox("Data and recipe")
        rbox.setLayout(form)
        cv.addWidget(rbox)
        scroll = ScrollColumn(column)
        scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(scroll)
        lv.addLayout(buttons)
        lv.addWidget(self.progress)
        lv.addWidget(self.status_label)
        lv.addWidget(self.error_label)
        lv.addStretch(1)

        # ---- curves and log; legends under the x axis, never over the curves
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setObjectName("trainLossPlot")  # (a keyword: an empty curve)
        self.acc_plot = pg.PlotWidget()
        self.acc_plot.setObjectName("trainAccPlot")  # (a keyword: an empty curve)
        for plot, title in ((self.loss_plot, "Loss (cross-entropy)"), (self.acc_plot, "Accuracy")):
            plot.setBackground("w")
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setTitle(title, color="#333", size="10pt")
            plot.setLabel("bottom", "epoch")
        self.acc_plot.setYRange(0, 100)
        self.acc_plot.setLabel("left", "%")
        train_pen = pg.mkPen("#2c7fb8", width=1.5)
        val_pen = pg.mkPen("#d95f0e", width=2)
        self.curves = {
            "loss": self.loss_plot.plot([], [], pen=train_pen, name="training (running)"),
            "val_loss": self.loss_plot.plot([], [], pen=val_pen, symbol="o", symbolSize=6, symbolBrush="#d95f0e",
                                            name="held-out"),
            "acc": self.acc_plot.plot([], [], pen=train_pen, name="training (running)"),
            "val_acc": self.acc_plot.plot([], [], pen=val_pen, symbol="o", symbolSize=6, symbolBrush="#d95f0e",
                                          name="held-out"),
        }
        self.legends = {"loss": legend_below(self.loss_plot, [self.curves["loss"], self.curves["val_loss"]]),
                        "acc": legend_below(self.acc_plot, [self.curves["acc"], self.curves["val_acc"]])}
        for plot in (self.loss_plot, self.acc_plot):
            plot_minimum(plot, 200, 130)
        self.log = QPlainTextEdit(objectName="trainLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setMinimumHeight(60)
        self.plots = AspectSplitter(ratio=1.8)
        self.plots.addWidget(self.loss_plot)
        self.plots.addWidget(self.acc_plot)
        # Tall enough: the log under the curves. Short (a small window): curves and log as tabs.
        self._below = QSplitter(Qt.Orientation.Vertical)
        self._below.setChildrenCollapsible(False)
        self._tabs = QTabWidget(objectName="trainTabs")
        self._tabs.setDocumentMode(True)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self._below)
        rv.addWidget(self._tabs)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        split.setSizes([300, 780])
        left.setMaximumWidth(460)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(split)
        self.compact: bool | None = None
        self._arrange(compact=True)
        self._update_config_label()

    # ------------------------------------------------------------------ layout
    COMPACT_BELOW = 620  # shorter than this: curves and log as tabs

    def _arrange(self, compact: bool) -> None:
        if compact == self.compact:
            return
        self.compact = compact
        if compact:
            self._tabs.addTab(self.plots, "Curves")
            self._tabs.addTab(self.log, "Log")
        else:
            self._tabs.clear()
            self._below.addWidget(self.plots)
            self._below.addWidget(self.log)
            self._below.setSizes([600, 170])
            self.plots.show()  # (a tab widget hides the pages it does not show)
            self.log.show()
        self._tabs.setVisible(compact)
        self._below.setVisible(not compact)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._arrange(event.size().height() < self.COMPACT_BELOW)
        super().resizeEvent(event)

    # ------------------------------------------------------------ panel contract
    def set_config(self, cfg: arch.Config) -> None:
        """The explorer's current configuration: what the next run trains (a running one is unaffected)."""
        self.config = cfg
        self._label.request()

    def shutdown(self) -> None:
        """Stop the run (its process is killed if it does not stop at once; no checkpoint is
        left half-written: they are written to a temporary file and renamed, and a killed write's
        temporary is removed once its process has exited)."""
        self.device_combo.shutdown()
        self.runner.shutdown()

    # ------------------------------------------------------------------ helpers
    def dataset_spec(self) -> str:
        return str(self.dataset_combo.currentData())

    def is_running(self) -> bool:
        """True from start() until the run's outcome (done, failed, cancelled) has been handled."""
        return self.runner.is_busy()

    def _runs_dir(self) -> str:
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
        return str(Path(base or Path.home() / ".densegui") / "runs")

    def _known_shape(self) -> tuple[int, int, int] | None:
        return dataset_shape(self.dataset_spec())

    def _refusal(self) -> str | None:
        """Why the current configuration cannot be trained here (None: it can)."""
        family = arch.family_of(self.config)
        if family.can(CAN_TRAIN):
            return None
        takes = " or ".join(f.title for f in arch.families().values() if f.can(CAN_TRAIN))
        return f"the trainer takes a {takes}, but {self.config.label()} is a {family.title}."

    def _update_config_label(self) -> None:
        cfg = self.config
        text = f"<b>{cfg.describe()}</b>"
        shape = self._known_shape()
        refusal = self._refusal()
        if refusal is not None:
            text += f"<br><span style='color:#c0392b'>cannot train it: {refusal}</span>"
        elif shape is not None:
            try:
                _adapted, notes = adapt_config(cfg, shape)
            except DenseguiError as exc:
                text += f"<br><span style='color:#c0392b'>cannot train on this dataset: {exc}</span>"
            else:
                if notes:
                    text += f"<br>adapted to {self.dataset_spec().split(':')[0]}: {', '.join(notes)}"
        else:
            text += "<br>in_channels, num_classes and input_size will follow the dataset."
        self.config_label.setText(text)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if folder:
            self.add_dataset(folder)

    def add_dataset(self, spec: str) -> None:
        """Add (if new) and select a dataset spec such as ``mnist:/data/mnist`` or a folder."""
        index = self.dataset_combo.findData(spec)
        if index < 0:
            self.dataset_combo.addItem(spec, spec)
            index = self.dataset_combo.count() - 1
        self.dataset_combo.setCurrentIndex(index)

    def _choose_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Checkpoint file", self.out_edit.text() or self._runs_dir(),
                                              "PyTorch checkpoint (*.pt)")
        if path:
            self.out_edit.setText(path)

    def _out_path(self) -> str:
        text = self.out_edit.text().strip()
        if text:
            return text
        kind = self.dataset_spec().split(":", 1)[0] if ":" in self.dataset_spec() else Path(self.dataset_spec()).name
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return str(Path(self._runs_dir()) / f"{self.config.family}-{kind or 'data'}-{stamp}.pt")

    def _log(self, text: str) -> None:
        self.log.appendPlainText(f"{_dt.datetime.now():%H:%M:%S}  {text}")

    # --------------------------------------------------------------------- run
    def start(self) -> None:
        """Train the current configuration in the background (no-op while a run is going)."""
        if self.is_running():
            return
        self.error_label.hide()
        try:
            if (refusal := self._refusal()) is not None:
                raise DenseguiError(refusal)
            options = TrainOptions(epochs=self.epochs_spin.value(), batch_size=self.batch_spin.value(),
                                   lr=float(self.lr_spin.value()), seed=self.seed_spin.value()).validate()
            shape = self._known_shape()
            if shape is not None:
                adapt_config(self.config, shape)
            out = self._out_path()
            if Path(out).is_dir():
                raise DenseguiError(f"the checkpoint path {out!r} is a folder; give a file name.")
            request = TrainRequest(config=self.config, dataset=self.dataset_spec(), options=options, out=out,
                                   device=str(self.device_combo.currentData()), limit_train=self.limit_spin.value(),
                                   nproc=self.nproc_spin.value()).validate()
        except DenseguiError as exc:
            self._show_error(str(exc))
            return
        for k in self.points:
            self.points[k] = ([], [])
        self._redraw()
        # A run killed mid-write (the window closed, the process died) leaves a temporary next to its
        # checkpoint: once its process has exited, the worker thread removes it (a new name per run
        # means no later run would).
        self.runner.start_job(TRAIN, "train", request, after=functools.partial(remove_stale_temporaries, out))
        self._set_running(True)
        self.progress.setValue(0)
        self.progress.setFormat("starting …")
        self.status_label.setText(f"checkpoint: {out}")
        procs = f", {request.nproc} processes (DDP)" if request.nproc > 1 else ""
        self._log(f"start: {options.epochs} epochs, batch {options.batch_size}, lr {options.lr:g}, "
                  f"seed {options.seed}{procs} → {out}")

    def cancel(self) -> None:
        """Stop the run: the panel is idle at once; the process stops at its next check."""
        self.runner.cancel()

    def _on_update(self, update: tuple) -> None:
        kind, payload = update
        if kind == "log":
            self._log(payload)
        else:
            self._on_progress(payload)

    def _on_progress(self, p) -> None:
        if p.kind == "start":
            return
        x = (p.epoch - 1) + p.batch / max(p.batches, 1)
        total = max(p.epochs, 1)
        self.progress.setValue(int(1000 * x / total))
        if p.kind == "batch":
            self.points["loss"][0].append(x)
            self.points["loss"][1].append(p.loss)
            self.points["acc"][0].append(x)
            self.points["acc"][1].append(100 * p.accuracy)
            self.progress.setFormat(f"epoch {p.epoch}/{p.epochs} · batch {p.batch}/{p.batches}")
            self.status_label.setText(f"loss {p.loss:.4f} · accuracy {100 * p.accuracy:.1f}% · "
                                      f"{p.images_per_s:.0f} images/s · lr {p.lr:g}")
        else:
            self.points["val_loss"][0].append(float(p.epoch))
            self.points["val_loss"][1].append(p.val_loss)
            self.points["val_acc"][0].append(float(p.epoch))
            self.points["val_acc"][1].append(100 * p.val_accuracy)
            self._log(f"epoch {p.epoch}/{p.epochs}: loss {p.loss:.4f}, accuracy {100 * p.accuracy:.1f}% | "
                      f"held-out loss {p.val_loss:.4f}, accuracy {100 * p.val_accuracy:.2f}% | "
                      f"{p.images_per_s:.0f} images/s, {p.seconds:.1f} s")
            if p.checkpoint:
                self.last_checkpoint = p.checkpoint
                self.checkpointSaved.emit(p.checkpoint)
        self._redraw()

    def _redraw(self) -> None:
        for key, curve in self.curves.items():
            xs, ys = self.points[key]
            finite = [(a, b) for a, b in zip(xs, ys) if math.isfinite(b)]
            curve.setData([a for a, _ in finite], [b for _, b in finite])

    def _on_done(self, result) -> None:
        self.result = result
        self.progress.setValue(1000)
        self.progress.setFormat("done")
        self._log(f"done: {result.epochs_done} epochs in {result.seconds:.1f} s, held-out accuracy "
                  f"{100 * result.val_accuracy:.2f}% → {result.checkpoint}")
        self.status_label.setText(f"held-out accuracy {100 * result.val_accuracy:.2f}% · checkpoint "
                                  f"{result.checkpoint}")
        self._set_running(False)
        self.runFinished.emit(True)

    def _on_failed(self, message: str) -> None:
        self.progress.setFormat("failed")
        self._show_error(message)
        self._set_running(False)
        self.runFinished.emit(False)

    def _on_cancelled(self) -> None:
        message = "training cancelled."
        self.progress.setFormat("cancelled")
        self._log(message)
        self.status_label.setText(message)
        self._set_running(False)
        self.runFinished.emit(False)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self._log(f"error: {message}")
