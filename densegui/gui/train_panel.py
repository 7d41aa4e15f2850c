"""Training panel (``trainPanel``): "Train this configuration" from the window.

The panel trains the explorer's current configuration (``set_config``),
adapted to the chosen dataset's channels, classes and image size (the
adaptation is shown before and during the run). Training runs on a
background ``QThread`` through :func:`densegui.core.train.train`; Cancel sets
a flag the core polls between batches, so it lands within about a second.
Live curves show the running training loss/accuracy (per batch) and the
held-out loss/accuracy (per epoch). After every epoch the checkpoint is
written atomically and ``checkpointSaved(path)`` is emitted; the main window
connects it to the reuse panel, so the Figure-5 heatmaps refresh while the
network trains.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QStandardPaths, Qt, QThread, Signal
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
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from densegui.core.config import DenseNetConfig
from densegui.core.errors import DenseguiError
from densegui.core.train import TrainCancelled, TrainOptions, adapt_config, default_config

# Shapes known without reading any file: (channels, classes, size).
KNOWN_SHAPES = {"digits": (1, 10, 8), "cifar10": (3, 10, 32), "cifar100": (3, 100, 32), "mnist": (1, 10, 28),
                "fashion-mnist": (1, 10, 28)}
BATCH_SIGNAL_INTERVAL = 0.1  # seconds between two batch updates sent to the GUI (each one repaints the curves)


def describe(cfg: DenseNetConfig) -> str:
    kind = ("DenseNet-BC" if cfg.bottleneck and cfg.compression < 1 else "DenseNet-B" if cfg.bottleneck
            else "DenseNet-C" if cfg.compression < 1 else "basic DenseNet")
    return (f"{kind}, k={cfg.growth_rate}, blocks {','.join(map(str, cfg.block_depths))}, θ={cfg.compression:g}, "
            f"{cfg.stem} stem, {cfg.in_channels}×{cfg.input_size}×{cfg.input_size} in, {cfg.num_classes} classes")


class _TrainThread(QThread):
    """Loads the data and trains; never touches a widget."""

    progress = Signal(object)  # core.train.Progress
    message = Signal(str)  # a log line
    saved = Signal(str)  # checkpoint path, after each epoch
    done = Signal(object)  # TrainResult
    failed = Signal(str)  # one line; "cancelled …" for a cancel

    def __init__(self, cfg: DenseNetConfig, spec: str, options: TrainOptions, out: str, device: str,
                 limit_train: int, parent=None) -> None:
        super().__init__(parent)
        self.cfg, self.spec, self.options, self.out, self.device = cfg, spec, options, out, device
        self.limit_train = limit_train
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:  # noqa: D401 - QThread API
        from densegui.core.data import load_dataset
        from densegui.core.train import train

        last = [0.0]

        def progress(p) -> None:
            if p.kind == "batch":
                now = time.perf_counter()
                if now - last[0] < BATCH_SIGNAL_INTERVAL and p.batch != p.batches:
                    return
                last[0] = now
            self.progress.emit(p)
            if p.kind == "epoch":
                self.saved.emit(p.checkpoint)

        try:
            self.message.emit(f"loading {self.spec} …")
            data = load_dataset(self.spec)
            if self.limit_train and self.limit_train < len(data.train):
                data = data.subset(self.limit_train, None, seed=self.options.seed)
            cfg, notes = adapt_config(self.cfg, data)
            if notes:
                self.message.emit(f"adapted to {data.name}: {', '.join(notes)}")
            self.message.emit(f"training {describe(cfg)} on {data.describe()}")
            result = train(cfg, data, self.options, self.out, device=self.device, progress=progress,
                           cancel=self.cancel_event.is_set)
            self.done.emit(result)
        except TrainCancelled as exc:
            self.failed.emit(str(exc))
        except DenseguiError as exc:
            self.failed.emit(str(exc))
        except MemoryError:
            self.failed.emit("out of memory; use a smaller batch size or model.")
        except Exception as exc:  # noqa: BLE001 - the window must keep working
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if "out of memory" in first.lower():
                self.failed.emit("out of memory; use a smaller batch size or model.")
            else:
                self.failed.emit(f"training failed: {type(exc).__name__}: {first[:200]}")


class TrainPanel(QWidget):
    """Dataset and recipe, Train this configuration / Cancel, live curves, log."""

    checkpointSaved = Signal(str)  # a new epoch's checkpoint landed at this path
    runFinished = Signal(bool)  # True: completed; False: failed or cancelled

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainPanel")
        self.config: DenseNetConfig = default_config()
        self._thread: _TrainThread | None = None
        self._threads: list[_TrainThread] = []
        self.last_checkpoint = ""
        self.result = None
        self.points: dict[str, tuple[list[float], list[float]]] = {
            k: ([], []) for k in ("loss", "val_loss", "acc", "val_acc")}

        # ---- what is trained
        self.config_label = QLabel(objectName="trainConfigLabel")
        self.config_label.setWordWrap(True)
        self.config_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.use_default_button = QPushButton("Use the shipped digits architecture", objectName="trainUseDefault")
        self.use_default_button.setToolTip("basic DenseNet, k=12, θ=1, three blocks of 5 layers, CIFAR stem")
        self.use_default_button.clicked.connect(lambda: self.set_config(default_config()))

        # ---- dataset and recipe
        self.dataset_combo = QComboBox(objectName="trainDataset")
        self.dataset_combo.addItem("digits — scikit-learn's 8×8 handwritten digits (bundled)", "digits")
        self.dataset_combo.currentIndexChanged.connect(self._update_config_label)
        self.folder_button = QPushButton("Folder…", objectName="trainDatasetFolder")
        self.folder_button.setToolTip("CIFAR-10/100 python batches, MNIST/Fashion-MNIST IDX files, or one "
                                      "sub-folder of images per class")
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
        self.device_combo = QComboBox(objectName="trainDevice")
        self.device_combo.addItem("auto — CUDA, then MPS, then CPU", "auto")
        try:
            from densegui.core.devices import list_devices

            for d in list_devices():
                self.device_combo.addItem(d.label, d.id)
        except Exception:  # noqa: BLE001 - "auto" is always there
            pass
        self.out_edit = QLineEdit(objectName="trainOut")
        self.out_edit.setPlaceholderText("automatic: a new file under " + self._runs_dir())
        self.out_button = QPushButton("…", objectName="trainOutBrowse")
        self.out_button.setFixedWidth(32)
        self.out_button.clicked.connect(self._choose_out)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.out_button)

        form = QFormLayout()
        form.addRow("Dataset", ds_row)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Seed", self.seed_spin)
        form.addRow("Training images", self.limit_spin)
        form.addRow("Device", self.device_combo)
        form.addRow("Checkpoint", out_row)
        recipe = QLabel("SGD, Nesterov momentum 0.9, weight decay 1e-4, learning rate ÷10 at 50% and 75% of "
                        "the epochs, random shifts (CIFAR: crops + flips). The checkpoint is rewritten after "
                        "every epoch; the Feature reuse tab follows it.")
        recipe.setWordWrap(True)
        recipe.setStyleSheet("font-size: 11px; color: palette(placeholder-text);")
        form.addRow("", recipe)

        self.start_button = QPushButton("Train this configuration", objectName="trainStart")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", objectName="trainCancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar(objectName="trainProgress")
        self.progress.setRange(0, 1000)
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.status_label = QLabel(objectName="trainStatus")
        self.status_label.setWordWrap(True)
        self.error_label = QLabel(objectName="trainError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b;")
        self.error_label.hide()

        left = QWidget()
        lv = QVBoxLayout(left)
        box = QGroupBox("Configuration (from the explorer)")
        bv = QVBoxLayout(box)
        bv.addWidget(self.config_label)
        bv.addWidget(self.use_default_button, 0, Qt.AlignmentFlag.AlignLeft)
        lv.addWidget(box)
        rbox = QGroupBox("Data and recipe")
        rbox.setLayout(form)
        lv.addWidget(rbox)
        lv.addLayout(buttons)
        lv.addWidget(self.progress)
        lv.addWidget(self.status_label)
        lv.addWidget(self.error_label)
        lv.addStretch(1)

        # ---- curves and log
        self.loss_plot = pg.PlotWidget(objectName="trainLossPlot")
        self.acc_plot = pg.PlotWidget(objectName="trainAccPlot")
        for plot, title, unit in ((self.loss_plot, "Loss (cross-entropy)", ""), (self.acc_plot, "Accuracy", "%")):
            plot.setBackground("w")
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setTitle(title, color="#333")
            plot.setLabel("bottom", "epoch")
            plot.addLegend(offset=(-10, 10))
        self.acc_plot.setYRange(0, 100)
        self.acc_plot.setLabel("left", "%")
        train_pen = pg.mkPen("#2c7fb8", width=1.5)
        val_pen = pg.mkPen("#d95f0e", width=2)
        self.curves = {
            "loss": self.loss_plot.plot([], [], pen=train_pen, name="training (running mean)"),
            "val_loss": self.loss_plot.plot([], [], pen=val_pen, symbol="o", symbolSize=6, symbolBrush="#d95f0e",
                                            name="held-out"),
            "acc": self.acc_plot.plot([], [], pen=train_pen, name="training (running)"),
            "val_acc": self.acc_plot.plot([], [], pen=val_pen, symbol="o", symbolSize=6, symbolBrush="#d95f0e",
                                          name="held-out"),
        }
        self.log = QPlainTextEdit(objectName="trainLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.loss_plot)
        right.addWidget(self.acc_plot)
        right.addWidget(self.log)
        right.setSizes([300, 300, 160])

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([380, 700])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(split)
        self._update_config_label()

    # ------------------------------------------------------------ panel contract
    def set_config(self, cfg: DenseNetConfig) -> None:
        """The explorer's current configuration: what the next run trains (a running one is unaffected)."""
        self.config = cfg
        self._update_config_label()

    def shutdown(self) -> None:
        """Cancel the run and wait for its thread."""
        for t in list(self._threads):
            t.cancel()
        for t in list(self._threads):
            t.wait()
        self._threads.clear()
        self._thread = None

    # ------------------------------------------------------------------ helpers
    def dataset_spec(self) -> str:
        return str(self.dataset_combo.currentData())

    def is_running(self) -> bool:
        """True from start() until the run's thread has finished *and* the panel has handled it.

        (QThread.isRunning() turns False before the queued ``finished`` reaches this thread, so
        it alone would report idle while Start is still disabled.)"""
        return self._thread is not None

    def _runs_dir(self) -> str:
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
        return str(Path(base or Path.home() / ".densegui") / "runs")

    def _known_shape(self) -> tuple[int, int, int] | None:
        spec = self.dataset_spec()
        kind = spec.split(":", 1)[0] if ":" in spec else spec
        return KNOWN_SHAPES.get(kind)

    def _update_config_label(self) -> None:
        cfg = self.config
        text = f"<b>{describe(cfg)}</b>"
        shape = self._known_shape()
        if shape is not None:
            c, n, s = shape
            changes = [f"{name} {have} → {want}" for name, have, want in
                       (("in_channels", cfg.in_channels, c), ("num_classes", cfg.num_classes, n),
                        ("input_size", cfg.input_size, s)) if have != want]
            if changes:
                text += f"<br>adapted to {self.dataset_spec().split(':')[0]}: {', '.join(changes)}"
            try:
                cfg.replace(in_channels=c, num_classes=n, input_size=s).validate()
            except DenseguiError as exc:
                text += f"<br><span style='color:#c0392b'>cannot train on this dataset: {exc}</span>"
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
        return str(Path(self._runs_dir()) / f"densenet-{kind or 'data'}-{stamp}.pt")

    def _log(self, text: str) -> None:
        self.log.appendPlainText(f"{_dt.datetime.now():%H:%M:%S}  {text}")

    # --------------------------------------------------------------------- run
    def start(self) -> None:
        """Train the current configuration in the background (no-op while a run is going)."""
        if self.is_running():
            return
        self.error_label.hide()
        try:
            options = TrainOptions(epochs=self.epochs_spin.value(), batch_size=self.batch_spin.value(),
                                   lr=float(self.lr_spin.value()), seed=self.seed_spin.value()).validate()
            shape = self._known_shape()
            if shape is not None:
                c, n, s = shape
                self.config.replace(in_channels=c, num_classes=n, input_size=s).validate()
            out = self._out_path()
            if Path(out).is_dir():
                raise DenseguiError(f"the checkpoint path {out!r} is a folder; give a file name.")
        except DenseguiError as exc:
            self._show_error(str(exc))
            return
        for k in self.points:
            self.points[k] = ([], [])
        self._redraw()
        thread = _TrainThread(self.config, self.dataset_spec(), options, out, str(self.device_combo.currentData()),
                              self.limit_spin.value())
        thread.progress.connect(lambda p, t=thread: self._on_progress(t, p))
        thread.message.connect(lambda m, t=thread: self._on_message(t, m))
        thread.saved.connect(lambda path, t=thread: self._on_saved(t, path))
        thread.done.connect(lambda r, t=thread: self._on_done(t, r))
        thread.failed.connect(lambda m, t=thread: self._on_failed(t, m))
        thread.finished.connect(lambda t=thread: self._on_finished(t))
        self._thread = thread
        self._threads.append(thread)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.progress.setFormat("starting …")
        self.status_label.setText(f"checkpoint: {out}")
        self._log(f"start: {options.epochs} epochs, batch {options.batch_size}, lr {options.lr:g}, "
                  f"seed {options.seed} → {out}")
        thread.start()

    def cancel(self) -> None:
        if self._thread is not None:
            self._thread.cancel()
            self.cancel_button.setEnabled(False)
            self.progress.setFormat("cancelling …")

    def _current(self, thread: _TrainThread) -> bool:
        return thread is self._thread

    def _on_message(self, thread: _TrainThread, text: str) -> None:
        if self._current(thread):
            self._log(text)

    def _on_progress(self, thread: _TrainThread, p) -> None:
        if not self._current(thread) or p.kind == "start":
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
        self._redraw()

    def _redraw(self) -> None:
        for key, curve in self.curves.items():
            xs, ys = self.points[key]
            finite = [(a, b) for a, b in zip(xs, ys) if math.isfinite(b)]
            curve.setData([a for a, _ in finite], [b for _, b in finite])

    def _on_saved(self, thread: _TrainThread, path: str) -> None:
        if self._current(thread):
            self.last_checkpoint = path
            self.checkpointSaved.emit(path)

    def _on_done(self, thread: _TrainThread, result) -> None:
        if not self._current(thread):
            return
        self.result = result
        self.progress.setValue(1000)
        self.progress.setFormat("done")
        self._log(f"done: {result.epochs_done} epochs in {result.seconds:.1f} s, held-out accuracy "
                  f"{100 * result.val_accuracy:.2f}% → {result.checkpoint}")
        self.status_label.setText(f"held-out accuracy {100 * result.val_accuracy:.2f}% · checkpoint "
                                  f"{result.checkpoint}")
        self.runFinished.emit(True)

    def _on_failed(self, thread: _TrainThread, message: str) -> None:
        if not self._current(thread):
            return
        if message.startswith("training cancelled"):
            self.progress.setFormat("cancelled")
            self._log(message)
            self.status_label.setText(message)
        else:
            self.progress.setFormat("failed")
            self._show_error(message)
        self.runFinished.emit(False)

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self._log(f"error: {message}")

    def _on_finished(self, thread: _TrainThread) -> None:
        if thread in self._threads:
            self._threads.remove(thread)
        if self._current(thread):
            self._thread = None
            self.start_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
        thread.deleteLater()
