"""Design space tab (``designPanel``): the families against each other, and what one field costs.

Left, the frontier (the paper's Figures 3-4): every preset of every family
with a published error for the chosen dataset, error against parameters, MACs
or latency measured on the user's device (log axis); the current configuration
is a vertical line at its x. Clicking a point loads it into the explorer, or
pins it as the baseline where its family cannot be explored. Right, a sweep:
one field over a range, with parameters, MACs and activation memory against
it, computed analytically on a worker thread, and optionally the latency of
every point measured in the probe's background process, with progress and
cancel. A "spec" field (connectivity) takes a list of values instead of a
range, and its plots stand each value at the fraction of the connections it
keeps.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from densegui.core.analysis.design import (
    FIELDS,
    Vary,
    current_value,
    default_values,
    fields_for,
    format_value,
    sweep_rows,
    sweep_x,
)
from densegui.core.arch import registry as arch
from densegui.core.arch.family import EXPLORE
from densegui.core.arch.published import DATASETS, published_error
from densegui.core.probe.types import ProbeSettings
from densegui.gui.design_plots import FrontierPlot, SweepPlots
from densegui.gui.jobs import PROBE
from densegui.gui.panel import WhenShown
from densegui.gui.tasks import TaskRunner
from densegui.gui.widgets import DeviceCombo, FitLabel

X_AXES = {"params": "parameters", "macs": "MACs (batch 1)", "latency": "measured latency (ms, batch 1)"}
X_CHOICES = {"params": "parameters", "macs": "MACs", "latency": "latency (measured)"}
MAX_SWEEP_POINTS = 200

# (start, stop, step) offered when a field is picked; None: derived from the current value.
DEFAULT_RANGES = {"growth_rate": (4, 64, 4), "compression": (0.1, 1.0, 0.1), "bn_size": (1, 8, 1),
                  "drop_rate": (0.0, 0.5, 0.1), "input_size": (32, 512, 32), "num_classes": (10, 1000, 110),
                  "width": (16, 128, 16), "blocks": (2, 48, 2), "stages": (1, 12, 1),
                  "growth": (16, 128, 8), "width_ratio": (1.0, 8.0, 0.5)}


def _sweep(cfg, vary: Vary, *, cancel, progress) -> tuple[list[dict], str, float | None]:
    return sweep_rows(cfg, vary), vary.field, sweep_x(cfg, vary.field)


class DesignPanel(QWidget):
    """The frontier of every family and one-field sweeps."""

    presetRequested = Signal(str)  # a preset of an explorable family, to load into the explorer
    baselineRequested = Signal(str)  # a preset of another family, to pin as the baseline
    sweepFinished = Signal(bool)
    frontierUpdated = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("designPanel")
        self.config = arch.default_config()
        self._marks = WhenShown(self, self._mark_current)  # the current configuration's markers
        self.latency_ms: dict[str, float] = {}  # preset → measured latency on the chosen device
        self.sweep_rows: list[dict] = []

        # ---- frontier
        self.dataset_combo = QComboBox(objectName="designDataset")
        for name in DATASETS:
            self.dataset_combo.addItem(name, name)
        self.x_combo = QComboBox(objectName="designXAxis")
        for key, text in X_CHOICES.items():
            self.x_combo.addItem(text, key)
        self.device_combo = DeviceCombo("designDevice")
        for combo in (self.x_combo, self.device_combo):  # long item texts must not widen the window
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        self.measure_presets_button = QPushButton("Measure presets", objectName="designMeasurePresets")
        self.measure_presets_button.setToolTip("Time every preset shown (inference, batch 1, at its own input size) "
                                               "on the chosen device, round-robin, in the background")
        self.frontier = FrontierPlot()
        self.frontier_note = FitLabel(" ")
        self.frontier_note.setObjectName("designFrontierNote")
        bar = QHBoxLayout()
        for label, w in (("Dataset", self.dataset_combo), ("x", self.x_combo), ("Device", self.device_combo)):
            bar.addWidget(QLabel(label))
            bar.addWidget(w)
        bar.addWidget(self.measure_presets_button)
        bar.addStretch(1)
        left = QGroupBox("Frontier: published error against cost (click a point)")
        lv = QVBoxLayout(left)
        lv.addLayout(bar)
        lv.addWidget(self.frontier, 1)
        lv.addWidget(self.frontier_note)

        # ---- sweep
        self.field_combo = QComboBox(objectName="designField")
        self.field_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.field_combo.setMinimumContentsLength(16)
        self.start_spin = QDoubleSpinBox(objectName="designStart")
        self.stop_spin = QDoubleSpinBox(objectName="designStop")
        self.step_spin = QDoubleSpinBox(objectName="designStep")
        for spin in (self.start_spin, self.stop_spin, self.step_spin):
            spin.setRange(0, 100_000)
            spin.setDecimals(2)
        self.values_edit = QLineEdit(objectName="designValues")  # a "spec" field's values, by commas
        self.values_edit.setToolTip("The values to sweep, separated by commas (each one of the field's choices)")
        self.measure_check = QCheckBox("measure latency of every point", objectName="designMeasure")
        self.measure_check.setToolTip("Time every point with the timing probe (inference, batch 1, on the chosen "
                                      "device) in the probe's background process, with progress and cancel")
        self.sweep_button = QPushButton("Sweep", objectName="designSweep")
        self.cancel_button = QPushButton("Cancel", objectName="designCancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(objectName="designProgress")
        self.progress.setRange(0, 100)
        self.progress.setFormat("idle")
        self.status = FitLabel(" ")
        self.status.setObjectName("designStatus")
        self.sweep_plots = SweepPlots()
        form = QFormLayout()
        form.addRow("Field", self.field_combo)
        rng = QHBoxLayout()
        for label, spin in (("from", self.start_spin), ("to", self.stop_spin), ("step", self.step_spin)):
            rng.addWidget(QLabel(label))
            rng.addWidget(spin)
        form.addRow("Range", rng)
        form.addRow("Values", self.values_edit)
        self._form = form
        form.addRow("", self.measure_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.sweep_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        right = QGroupBox("Sweep one field of the current configuration")
        rv = QVBoxLayout(right)
        rv.addLayout(form)
        rv.addLayout(buttons)
        rv.addWidget(self.status)
        rv.addStretch(1)

        # frontier | sweep settings on top, the sweep's four plots in a row below
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(left)
        top.addWidget(right)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(self.sweep_plots)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(main)

        # ---- work
        self.sweep_runner = TaskRunner(self)  # analytic rows, on a worker thread
        self.sweep_runner.done.connect(self._sweep_done)
        self.sweep_runner.failed.connect(self._failed)
        self.measure_runner = TaskRunner(self, report_cancel=True)  # probe lane
        self.measure_runner.progress.connect(self._measure_progress)
        self.measure_runner.done.connect(self._measured)
        self.measure_runner.failed.connect(self._failed)
        self.measure_runner.cancelled.connect(self._measure_cancelled)
        self._measuring: str | None = None  # "sweep" or "presets"

        self.dataset_combo.currentIndexChanged.connect(self.update_frontier)
        self.x_combo.currentIndexChanged.connect(self.update_frontier)
        self.frontier.pointClicked.connect(self._point_clicked)
        self.measure_presets_button.clicked.connect(self.measure_presets)
        self.field_combo.currentIndexChanged.connect(self._field_changed)
        self.sweep_button.clicked.connect(self.start_sweep)
        self.cancel_button.clicked.connect(self.cancel)
        self._fill_fields()
        self.update_frontier()

    # ----------------------------------------------------------- panel contract
    def set_config(self, cfg) -> None:
        family_or_blocks_changed = [f.name for f in fields_for(cfg)] != [f.name for f in fields_for(self.config)]
        self.config = cfg
        if family_or_blocks_changed:
            self._fill_fields()
        self._marks.request()

    def shutdown(self) -> None:
        self.device_combo.shutdown()
        self.sweep_runner.shutdown()
        self.measure_runner.shutdown()

    # ---------------------------------------------------------------- frontier
    def frontier_points(self) -> list[tuple[str, str, float, float]]:
        """(preset, family, x, published error %) for the chosen dataset and x axis."""
        dataset, axis = self.dataset_combo.currentData(), self.x_combo.currentData()
        points = []
        for name, preset in arch.PRESETS.items():
            err = published_error(name, dataset)
            if err is None:
                continue
            if axis == "latency":
                x = self.latency_ms.get(name)
                if x is None:
                    continue
            else:
                table = arch.layer_table(preset.config)
                x = table.params if axis == "params" else table.macs
            points.append((name, preset.family, float(x), float(err.value)))
        return points

    def update_frontier(self) -> None:
        points = self.frontier_points()
        dataset, axis = self.dataset_combo.currentData(), self.x_combo.currentData()
        metric = published_error(points[0][0], dataset).metric if points else "error"
        self.frontier.set_points(points, X_AXES[axis], f"{dataset} {metric} (%, published)", self._current_x(),
                                 si=axis != "latency")
        if axis == "latency" and not points:
            self.frontier_note.setText("No measured latencies yet: press “Measure presets”.")
        else:
            fams = {p[1] for p in points}
            # (a family that publishes top-1 accuracy is plotted at 100 − accuracy: say which)
            converted = sorted({p[1] for p in points if published_error(p[0], dataset).source.startswith("100 − ")})
            also = f" ({', '.join(converted)}: 100 − top-1 accuracy)" if converted else ""
            self.frontier_note.setText(f"{len(points)} presets of {len(fams)} families with a published {dataset} "
                                       f"result{also}; lower-left is better. A point's tooltip gives its source.")
        self.frontier.tips = {n: f"{n}: {e.metric} {e.value:g}% ({e.source}); {X_CHOICES[axis]} {x:,.4g}"
                              for n, _f, x, _y in points if (e := published_error(n, dataset)) is not None}
        self.frontierUpdated.emit()

    def _current_x(self) -> float | None:
        axis = self.x_combo.currentData()
        if axis == "latency":
            return None
        table = arch.layer_table(self.config)
        return float(table.params if axis == "params" else table.macs)

    def _mark_current(self) -> None:
        self.frontier.set_current_x(self._current_x())
        value = sweep_x(self.config, self.field_combo.currentData() or "")
        for marker in self.sweep_plots.markers.values():
            if value is None:
                marker.hide()
            else:
                marker.setValue(float(value))
                marker.show()

    def _point_clicked(self, name: str) -> None:
        if arch.family_of(arch.get_preset(name)).can(EXPLORE):
            self.presetRequested.emit(name)
        else:
            self.baselineRequested.emit(name)

    def measure_presets(self) -> None:
        names = [n for n in arch.PRESETS if published_error(n, self.dataset_combo.currentData()) is not None]
        settings = ProbeSettings(device=self.device_combo.currentData(), repeats=10, min_repeats=3, max_time_s=3.0,
                                 breakdown=False)
        self._measuring = "presets"
        self._measure_names = names
        self.measure_runner.start_job(PROBE, "measure", [arch.get_preset(n).to_dict() for n in names], settings, 2)
        self._set_running(True)

    # ------------------------------------------------------------------ sweeps
    def _fill_fields(self) -> None:
        current = self.field_combo.currentData()
        self.field_combo.blockSignals(True)
        self.field_combo.clear()
        for f in fields_for(self.config):
            self.field_combo.addItem(f"{f.name} — {f.description}", f.name)
        index = self.field_combo.findData(current)
        if index < 0:  # (another family: its first sweep axis, RDNet's growth rather than θ)
            axes = [self.field_combo.findData(name) for name, _ in arch.family_of(self.config).sweep_axes]
            index = next((i for i in axes if i >= 0), 0)
        self.field_combo.setCurrentIndex(index)
        self.field_combo.blockSignals(False)
        self._field_changed()

    def _field_changed(self) -> None:
        name = self.field_combo.currentData()
        if name is None:
            return
        field = FIELDS[name]
        spec = field.spec is not None
        self._form.setRowVisible(1, not spec)  # (the range row)
        self._form.setRowVisible(self.values_edit, spec)
        if spec:
            self.values_edit.setText(",".join(default_values(field)))
            self._mark_current()
            return
        value = current_value(self.config, name)
        start, stop, step = DEFAULT_RANGES.get(name) or (1, max(2 * int(value or 8), 4), 1)
        decimals = 0 if field.integer else 2
        for spin, v in ((self.start_spin, start), (self.stop_spin, stop), (self.step_spin, step)):
            spin.setDecimals(decimals)
            spin.setValue(v)
        self._mark_current()

    def vary(self) -> Vary:
        from densegui.core.analysis.design import parse_vary

        name = self.field_combo.currentData()
        if FIELDS[name].spec is not None:
            return parse_vary(f"{name}={self.values_edit.text()}")
        fmt = (lambda v: str(int(round(v)))) if FIELDS[name].integer else (lambda v: f"{v:g}")
        return parse_vary(f"{name}={fmt(self.start_spin.value())}:{fmt(self.stop_spin.value())}:"
                          f"{fmt(self.step_spin.value())}")

    def start_sweep(self) -> None:
        try:
            vary = self.vary()
        except Exception as exc:  # noqa: BLE001 - a ConfigError from the range: shown, nothing starts
            self.status.setText(str(exc))
            self.sweepFinished.emit(False)
            return
        if len(vary.values) > MAX_SWEEP_POINTS:
            self.status.setText(f"{len(vary.values)} points; at most {MAX_SWEEP_POINTS} in the window.")
            self.sweepFinished.emit(False)
            return
        self.measure_runner.cancel()
        self.sweep_runner.start(_sweep, self.config, vary)
        self._set_running(True)

    def cancel(self) -> None:
        self.sweep_runner.cancel()
        self.measure_runner.cancel()
        self._set_running(False)

    def _sweep_done(self, result) -> None:
        rows, field, current = result
        self.sweep_rows = rows
        self.sweep_plots.set_rows(rows, field, current)
        bad = [r for r in rows if r.get("error")]
        note = f"; {len(bad)} invalid (e.g. {format_value(bad[0]['value'])}: {bad[0]['error']})" if bad else ""
        self.status.setText(f"{len(rows) - len(bad)} points of {field}, analytic{note}")
        if self.measure_check.isChecked() and len(rows) > len(bad):
            valid = [r for r in rows if r.get("config")]
            settings = ProbeSettings(device=self.device_combo.currentData(), repeats=10, min_repeats=3,
                                     max_time_s=3.0, breakdown=False)
            self._measuring = "sweep"
            self.measure_runner.start_job(PROBE, "measure", [r["config"] for r in valid], settings, 1)
            return
        self._set_running(False)
        self.sweepFinished.emit(True)

    def _measure_progress(self, update: tuple[float, str]) -> None:
        fraction, text = update
        self.progress.setValue(int(round(100 * fraction)))
        self.progress.setFormat(f"{text} %p%")

    def _measured(self, results: list[dict]) -> None:
        if self._measuring == "presets":
            for name, m in zip(self._measure_names, results, strict=True):
                self.latency_ms[name] = m["latency_ms"]
            self.status.setText(f"measured {len(results)} presets on {results[0]['device']}" if results else "")
            self._set_running(False)
            self.update_frontier()
            return
        valid = [r for r in self.sweep_rows if r.get("config")]
        for r, m in zip(valid, results, strict=True):
            r["measured"] = m
        field = self.field_combo.currentData()
        self.sweep_plots.set_rows(self.sweep_rows, field, sweep_x(self.config, field))
        self.status.setText(f"{len(valid)} points measured on {results[0]['device']}" if results else "")
        self._set_running(False)
        self.sweepFinished.emit(True)

    def _measure_cancelled(self) -> None:
        self.status.setText("measurement cancelled (the analytic curves stay).")
        self._set_running(False)
        self.sweepFinished.emit(False)

    def _failed(self, message: str) -> None:
        self.status.setText(message)
        self._set_running(False)
        self.sweepFinished.emit(False)

    def _set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        self.sweep_button.setEnabled(not running)
        self.measure_presets_button.setEnabled(not running)
        self.progress.setValue(0 if running else self.progress.value())
        self.progress.setFormat("working … %p%" if running else "idle")
