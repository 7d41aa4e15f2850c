"""Design space tab (``designPanel``): the families against each other, and what one field costs.

Left, the frontier (the paper's Figures 3-4): every preset of every family
with a published error for the chosen dataset, error against parameters, MACs
or latency measured on the user's device (log axis); the current configuration
is a vertical line at its x. Clicking a point loads it into the explorer, or
pins it as the baseline where its family cannot be explored. *Measure presets*
times them in the probe's background process, with its progress, its Cancel
and its outcome beside the frontier. Right, a sweep: one field over a range,
with parameters, MACs and activation memory against it, computed analytically
on a worker thread as soon as the tab is shown and again after every change
(of the configuration, the field or its range) while it is; *Sweep* with
"measure latency" also times every point, with progress and cancel. A "spec"
field (connectivity) takes a list of values instead of a range, and its plots
stand each value at the fraction of the connections it keeps.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from PySide6.QtCore import Qt, QTimer, Signal
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
from densegui.gui.background import JobCancelled
from densegui.gui.design_plots import FrontierPlot, SweepPlots
from densegui.gui.fitting import ScrollColumn, fit_combo
from densegui.gui.jobs import PROBE
from densegui.gui.panel import WhenShown
from densegui.gui.tasks import TaskRunner
from densegui.gui.widgets import DeviceCombo, FitLabel

X_AXES = {"params": "parameters", "macs": "MACs (batch 1)", "latency": "measured latency (ms, batch 1)"}
X_CHOICES = {"params": "parameters", "macs": "MACs", "latency": "latency (measured)"}
MAX_SWEEP_POINTS = 200
PRESET_ROUNDS = 2  # Measure presets: every preset twice, round-robin
# The analytic sweep follows a change once changes pause this long: while a slider is dragged its
# worker thread would take the GIL from the window's drawing (a 264-layer net's 16 points: 35 ms).
CHANGE_DELAY_MS = 150

# (start, stop, step) offered when a field is picked; None: derived from the current value.
DEFAULT_RANGES = {"growth_rate": (4, 64, 4), "compression": (0.1, 1.0, 0.1), "bn_size": (1, 8, 1),
                  "drop_rate": (0.0, 0.5, 0.1), "input_size": (32, 512, 32), "num_classes": (10, 1000, 110),
                  "width": (16, 128, 16), "blocks": (2, 48, 2), "stages": (1, 12, 1),
                  "growth": (16, 128, 8), "width_ratio": (1.0, 8.0, 0.5)}


def _sweep(cfg, vary: Vary, *, cancel, progress) -> tuple[list[dict], str, float | None]:
    rows = []
    for value in vary.values:  # (one point at a time: a superseded sweep stops at the next)
        if cancel():
            raise JobCancelled("cancelled.")
        rows += sweep_rows(cfg, replace(vary, values=(value,)))
    return rows, vary.field, sweep_x(cfg, vary.field)


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


class DesignPanel(QWidget):
    """The frontier of every family and one-field sweeps."""

    presetRequested = Signal(str)  # a preset of an explorable family, to load into the explorer
    baselineRequested = Signal(str)  # a preset of another family, to pin as the baseline
    sweepFinished = Signal(bool)  # a sweep started by *Sweep* ended (True: its rows are shown)
    sweepShown = Signal()  # new sweep rows are drawn (pressed or automatic)
    presetsMeasured = Signal(bool)  # *Measure presets* ended (True: its latencies are on the frontier)
    frontierUpdated = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("designPanel")
        self.config = arch.default_config()
        self._marks = WhenShown(self, self._mark_current)  # the current configuration's markers
        self._sweeps = WhenShown(self, self._auto_sweep)  # the analytic sweep of what is current
        self.latency_ms: dict[str, float] = {}  # preset → measured latency on the chosen device
        self.sweep_rows: list[dict] = []
        self._field: str | None = None  # the field of sweep_rows
        self._measured: dict[tuple[str, str], dict] = {}  # (device, configuration) → a sweep point's timing

        # ---- the frontier, left
        self.frontier = FrontierPlot()
        self.frontier.setMinimumSize(220, 170)  # (its shortest y label fits a 100 px tall plot)
        self.frontier_note = FitLabel(" ")
        self.frontier_note.setObjectName("designFrontierNote")
        left = QGroupBox("Frontier: published error against cost")
        left.setObjectName("designFrontierBox")
        lv = QVBoxLayout(left)
        lv.setContentsMargins(6, 4, 6, 4)
        lv.addWidget(self.frontier, 1)
        lv.addWidget(self.frontier_note)

        # ---- the settings, right (a column that scrolls vertically where the window is short)
        # (long item texts never widen the window: elided, the whole text in the tooltip)
        self.device_combo = fit_combo(DeviceCombo("designDevice"), 8)
        self.device_combo.setWhatsThis("Where Measure presets and measured sweeps run")
        self.device_combo.currentIndexChanged.connect(self._device_changed)
        self.dataset_combo = fit_combo(QComboBox(objectName="designDataset"), 8)
        for name in DATASETS:
            self.dataset_combo.addItem(name, name)
        self.x_combo = fit_combo(QComboBox(objectName="designXAxis"), 8)
        for key, text in X_CHOICES.items():
            self.x_combo.addItem(text, key)
        self.measure_presets_button = QPushButton("Measure presets", objectName="designMeasurePresets")
        self.measure_presets_button.setToolTip("Time every preset shown (inference, batch 1, at its own input size) "
                                               f"on the chosen device, {PRESET_ROUNDS} rounds, round-robin, in the "
                                               "probe's background process (about a minute)")
        self.presets_cancel = QPushButton("Cancel", objectName="designPresetsCancel")
        self.presets_cancel.setToolTip("Stop measuring the presets (the latencies measured before stay)")
        self.presets_cancel.setEnabled(False)
        self.presets_progress = QProgressBar(objectName="designPresetsProgress")
        self.presets_label = FitLabel(" ")
        self.presets_label.setObjectName("designPresetsText")

        self.field_combo = fit_combo(QComboBox(objectName="designField"), 10)
        self.start_spin = QDoubleSpinBox(objectName="designStart")
        self.stop_spin = QDoubleSpinBox(objectName="designStop")
        self.step_spin = QDoubleSpinBox(objectName="designStep")
        self._edits = QTimer(self, singleShot=True, interval=CHANGE_DELAY_MS)
        self._edits.timeout.connect(self._sweeps.request)
        for spin in (self.start_spin, self.stop_spin, self.step_spin):
            spin.setRange(0, 100_000)
            spin.setDecimals(2)
            spin.valueChanged.connect(lambda _v: self._edits.start())
        self.values_edit = QLineEdit(objectName="designValues")  # a "spec" field's values, by commas
        self.values_edit.setToolTip("The values to sweep, separated by commas (each one of the field's choices)")
        self.values_edit.editingFinished.connect(self._sweeps.request)
        self.measure_check = QCheckBox("measure latency", objectName="designMeasure")
        self.measure_check.setToolTip("With Sweep: time every point with the timing probe (inference, batch 1, on "
                                      "the chosen device) in the probe's background process, with progress and "
                                      "cancel")
        self.measure_check.toggled.connect(lambda _on: self._show_latency_state())
        self.sweep_button = QPushButton("Sweep", objectName="designSweep")
        self.sweep_button.setToolTip("Sweep the range now (the analytic curves follow every change by themselves; "
                                     "with “measure latency”, also time every point)")
        self.cancel_button = QPushButton("Cancel", objectName="designCancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(objectName="designProgress")
        self.progress_label = FitLabel(" ")  # (the words beside a bar, which would clip them)
        self.progress_label.setObjectName("designProgressText")
        for bar in (self.presets_progress, self.progress):
            bar.setRange(0, 100)
            bar.setFixedWidth(64)
            self._bar_running(bar, False)
        self.status = QLabel(" ", objectName="designStatus")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setMinimumWidth(1)  # (wrapped: its text never widens the panel)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

        def row(*widgets) -> QHBoxLayout:
            h = QHBoxLayout()
            for w in widgets:
                h.addWidget(w)
            h.addStretch(1)
            return h

        shown = QGroupBox("Frontier", objectName="designFrontierSettings")
        f1 = QFormLayout(shown)
        f1.addRow("Dataset", self.dataset_combo)
        f1.addRow("x axis", self.x_combo)
        f1.addRow(row(self.measure_presets_button, self.presets_cancel))
        f1.addRow(self._beside(self.presets_progress, self.presets_label))
        swept = QGroupBox("Sweep one field", objectName="designSweepSettings")
        swept.setToolTip("One field of the current configuration over a range; the analytic curves below follow "
                         "every change")
        form = QFormLayout(swept)
        form.addRow("Field", self.field_combo)
        form.addRow("From", self.start_spin)
        form.addRow("To", self.stop_spin)
        form.addRow("Step", self.step_spin)
        form.addRow("Values", self.values_edit)
        self._form = form
        form.addRow(self.measure_check)
        form.addRow(row(self.sweep_button, self.cancel_button))
        form.addRow(self._beside(self.progress, self.progress_label))
        form.addRow(self.status)
        for f in (f1, form):
            f.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        column = QWidget(objectName="designSettings")
        cv = QVBoxLayout(column)
        cv.setContentsMargins(2, 0, 2, 2)
        device = QFormLayout()
        device.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        device.addRow("Device", self.device_combo)
        cv.addLayout(device)
        cv.addWidget(shown)
        cv.addWidget(swept)
        cv.addStretch(1)
        self.settings_scroll = ScrollColumn(column)  # (vertically only: never narrower than its rows)
        self.settings_scroll.setObjectName("designSettingsScroll")
        self.sweep_plots = SweepPlots()
        self.sweep_plots.setMinimumSize(600, 140)  # (the plots' shortest titles fit)

        # frontier | settings on top, the sweep's four plots in a row below
        self.top = QSplitter(Qt.Orientation.Horizontal)
        self.top.addWidget(left)
        self.top.addWidget(self.settings_scroll)
        self.top.setStretchFactor(0, 1)
        self.top.setStretchFactor(1, 0)
        self.top.setChildrenCollapsible(False)
        self.main = QSplitter(Qt.Orientation.Vertical)
        self.main.addWidget(self.top)
        self.main.addWidget(self.sweep_plots)
        self.main.setChildrenCollapsible(False)
        self._sized_by_user = False  # until a handle is dragged, the splitters follow the panel's size
        for splitter in (self.top, self.main):
            splitter.splitterMoved.connect(self._splitter_moved)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.main)

        # ---- work
        self.sweep_runner = TaskRunner(self)  # analytic rows, on a worker thread
        self.sweep_runner.done.connect(self._sweep_done)
        self.sweep_runner.failed.connect(self._sweep_failed)
        self.measure_runner = TaskRunner(self, report_cancel=True)  # the sweep's latencies (probe lane)
        self.measure_runner.progress.connect(self._measure_progress)
        self.measure_runner.done.connect(self._measure_done)
        self.measure_runner.failed.connect(self._measure_failed)
        self.measure_runner.cancelled.connect(self._measure_cancelled)
        self.presets_runner = TaskRunner(self, report_cancel=True)  # Measure presets (probe lane)
        self.presets_runner.progress.connect(self._presets_progress)
        self.presets_runner.done.connect(self._presets_done)
        self.presets_runner.failed.connect(lambda message: self._presets_ended(f"Measure presets failed: {message}"))
        self.presets_runner.cancelled.connect(
            lambda: self._presets_ended("Measure presets cancelled; the latencies measured before stay."))
        self._user_sweep = False  # a sweep started by *Sweep* is on its way
        self._want_measure = False  # … and its points are to be timed
        self._again = False  # a change came while an automatic sweep ran: sweep again when it ends
        self._measure_keys: list[tuple[str, str]] = []
        self._measure_values: list = []
        self._measure_text = ""
        self._presets_text = ""  # Measure presets: its progress while it runs, then its outcome
        self._presets_names: list[str] = []
        self._presets_started = 0.0

        self.dataset_combo.currentIndexChanged.connect(self.update_frontier)
        self.x_combo.currentIndexChanged.connect(self.update_frontier)
        self.frontier.pointClicked.connect(self._point_clicked)
        self.measure_presets_button.clicked.connect(self.measure_presets)
        self.presets_cancel.clicked.connect(self.presets_runner.cancel)
        self.field_combo.currentIndexChanged.connect(self._field_changed)
        self.sweep_button.clicked.connect(self.start_sweep)
        self.cancel_button.clicked.connect(self.cancel)
        self._fill_fields()
        self.update_frontier()
        self._show_latency_state()

    @staticmethod
    def _beside(bar: QProgressBar, label: QLabel) -> QHBoxLayout:
        """A progress bar with its words beside it, in a label (a bar's own text wraps and clips)."""
        h = QHBoxLayout()
        h.addWidget(bar)
        h.addWidget(label, 1)
        return h

    @staticmethod
    def _bar_running(bar: QProgressBar, running: bool) -> None:
        """A bar's percentage while its job runs; greyed and blank while idle."""
        bar.setValue(0)
        bar.setEnabled(running)
        bar.setFormat("%p%" if running else "")

    # ----------------------------------------------------------- panel contract
    def set_config(self, cfg) -> None:
        family_or_blocks_changed = [f.name for f in fields_for(cfg)] != [f.name for f in fields_for(self.config)]
        self.config = cfg
        if family_or_blocks_changed:
            self._fill_fields()
        self._marks.request()
        if self.isVisible():
            self._edits.start()  # (the sweep once the changes pause)
        else:
            self._sweeps.request()  # (at the next show)

    def shutdown(self) -> None:
        self._edits.stop()
        self.device_combo.shutdown()
        for runner in (self.sweep_runner, self.measure_runner, self.presets_runner):
            runner.shutdown()

    # ------------------------------------------------------------------ layout
    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if not self._sized_by_user:
            self._share_space()

    def _share_space(self) -> None:
        """The sweep's settings take about a third of the width (at most 420 px), the plots below
        two fifths of the height; the frontier the rest."""
        width, height = self.main.width(), self.main.height()
        side = max(min(int(0.32 * width), 400), self.settings_scroll.minimumSizeHint().width())
        self.top.setSizes([max(width - side, 1), side])
        below = max(int(0.4 * height), self.sweep_plots.minimumHeight())
        self.main.setSizes([max(height - below, 1), below])

    def _splitter_moved(self, *_args) -> None:
        self._sized_by_user = True

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
        y_labels = (f"{dataset} {metric} (%, published)", f"{metric} (%, published)", f"{metric} (%)")
        self.frontier.set_points(points, X_AXES[axis], y_labels, self._current_x(), si=axis != "latency")
        running = self.presets_runner.is_busy()
        if axis == "latency" and not points:
            note = "No measured latencies yet: press “Measure presets”."
            self.frontier.message.set(f"Waiting for Measure presets: {self._presets_text}" if running else
                                      "No latency measured yet. “Measure presets” times every preset on the chosen "
                                      "device (about a minute).")
        else:
            self.frontier.message.set("")
            fams = {p[1] for p in points}
            # (a family that publishes top-1 accuracy is plotted at 100 − accuracy: say which)
            converted = sorted({p[1] for p in points if published_error(p[0], dataset).source.startswith("100 − ")})
            also = f" ({', '.join(converted)}: 100 − top-1 accuracy)" if converted else ""
            note = (f"{len(points)} presets of {len(fams)} families with a published {dataset} result{also}; "
                    "lower-left is better. Click a point to load it; its tooltip gives its source.")
        self.frontier_note.setText(f"Measure presets: {self._presets_text}" if running else
                                   f"{self._presets_text} {note}" if self._presets_text else note)
        self.presets_label.setText(self._presets_text or " ")
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

    def _waiting_text(self, other: TaskRunner, other_name: str) -> str:
        """What a probe job waits for before its first progress: another job in the lane, or the
        background process starting (it imports torch)."""
        if other.is_busy():
            return f"waiting for {other_name} to finish (the probe's process runs one job at a time)…"
        return "waiting for the probe's background process (starting, or finishing another job)…"

    def measure_presets(self) -> None:
        dataset = self.dataset_combo.currentData()
        names = [n for n in arch.PRESETS if published_error(n, dataset) is not None]
        if not names:
            self._presets_ended(f"No preset has a published {dataset} result to measure.")
            return
        settings = ProbeSettings(device=self.device_combo.currentData(), repeats=10, min_repeats=3, max_time_s=3.0,
                                 breakdown=False)
        self._presets_names = names
        self._presets_started = time.monotonic()
        self._presets_text = self._waiting_text(self.measure_runner, "the sweep's measurement")
        self.presets_runner.start_job(PROBE, "measure", [arch.get_preset(n).to_dict() for n in names], settings,
                                      PRESET_ROUNDS)
        self._set_presets_running(True)
        self.update_frontier()

    def _presets_progress(self, update: tuple[float, str]) -> None:
        fraction, _text = update
        names, n = self._presets_names, len(self._presets_names)
        done = min(int(round(fraction * PRESET_ROUNDS * n)), PRESET_ROUNDS * n)
        if done >= PRESET_ROUNDS * n:
            self._presets_text = f"{n} of {n} presets measured, {PRESET_ROUNDS} rounds; collecting…"
        else:
            rnd, i = divmod(done, n)
            self._presets_text = f"{i} of {n} presets measured (round {rnd + 1} of {PRESET_ROUNDS}); now {names[i]}"
        self.presets_progress.setValue(int(round(100 * fraction)))
        self.update_frontier()

    def _presets_done(self, results: list[dict]) -> None:
        for name, m in zip(self._presets_names, results, strict=True):
            self.latency_ms[name] = m["latency_ms"]
        device = results[0]["device"] if results else "?"
        seconds = time.monotonic() - self._presets_started
        self._presets_ended(f"Measured {len(results)} presets on {device} in {seconds:.0f} s.", ok=True)

    def _presets_ended(self, message: str, ok: bool = False) -> None:
        self._presets_text = message
        self._set_presets_running(False)
        self.update_frontier()
        self.presetsMeasured.emit(ok)

    def _set_presets_running(self, running: bool) -> None:
        self.measure_presets_button.setEnabled(not running)
        self.presets_cancel.setEnabled(running)
        self._bar_running(self.presets_progress, running)
        self._show_latency_state()  # (a sweep's measurement may now wait behind it)

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
        for spin in (self.start_spin, self.stop_spin, self.step_spin):
            self._form.setRowVisible(spin, not spec)
        self._form.setRowVisible(self.values_edit, spec)
        if spec:
            self.values_edit.setText(",".join(default_values(field)))
        else:
            value = current_value(self.config, name)
            start, stop, step = DEFAULT_RANGES.get(name) or (1, max(2 * int(value or 8), 4), 1)
            decimals = 0 if field.integer else 2
            for spin, v in ((self.start_spin, start), (self.stop_spin, stop), (self.step_spin, step)):
                spin.blockSignals(True)  # (one sweep for the new field, not one per spin box)
                spin.setDecimals(decimals)
                spin.setValue(v)
                spin.blockSignals(False)
        self._mark_current()
        self._edits.stop()
        self._sweeps.request()

    def vary(self) -> Vary:
        from densegui.core.analysis.design import parse_vary

        name = self.field_combo.currentData()
        if FIELDS[name].spec is not None:
            return parse_vary(f"{name}={self.values_edit.text()}")
        fmt = (lambda v: str(int(round(v)))) if FIELDS[name].integer else (lambda v: f"{v:g}")
        return parse_vary(f"{name}={fmt(self.start_spin.value())}:{fmt(self.stop_spin.value())}:"
                          f"{fmt(self.step_spin.value())}")

    def _checked_vary(self) -> Vary | None:
        """The range to sweep, or None with its reason in the status line."""
        try:
            vary = self.vary()
        except Exception as exc:  # noqa: BLE001 - a ConfigError from the range: shown, nothing starts
            self.status.setText(str(exc))
            return None
        if len(vary.values) > MAX_SWEEP_POINTS:
            self.status.setText(f"{len(vary.values)} points; at most {MAX_SWEEP_POINTS} in the window.")
            return None
        return vary

    def _auto_sweep(self) -> None:
        """The analytic sweep of the current configuration, field and range (no measuring), on the
        worker thread; while one runs, a change only asks for one more once it ends."""
        if self.sweep_runner.is_busy():
            self._again = True
            return
        vary = self._checked_vary()
        if vary is not None:
            self.sweep_runner.start(_sweep, self.config, vary)

    def start_sweep(self) -> None:
        """*Sweep*: the analytic rows now and, with "measure latency", the timing of every point."""
        vary = self._checked_vary()
        if vary is None:
            self.sweepFinished.emit(False)
            return
        self._user_sweep = True
        self._want_measure = self.measure_check.isChecked()
        self._edits.stop()
        self.sweep_runner.start(_sweep, self.config, vary)
        self._set_sweep_running(True)

    def cancel(self) -> None:
        if self.measure_runner.is_busy():
            self.measure_runner.cancel()  # (→ _measure_cancelled)
            return
        self.sweep_runner.cancel()
        if self._user_sweep:
            self._user_sweep = False
            self._set_sweep_running(False)
            self.sweepFinished.emit(False)

    def _sweep_done(self, result) -> None:
        rows, field, _current = result
        self.sweep_rows, self._field = rows, field
        self._draw_rows()
        bad = [r for r in rows if r.get("error")]
        note = f"; {len(bad)} invalid (e.g. {format_value(bad[0]['value'])}: {bad[0]['error']})" if bad else ""
        self.status.setText(f"{len(rows) - len(bad)} points of {field}, analytic{note}")
        self.sweepShown.emit()
        if self._user_sweep:
            self._user_sweep = False
            valid = [r for r in rows if r.get("config")]
            if self._want_measure and valid:
                self._start_measuring(valid, field)
            else:
                self._set_sweep_running(False)
                self.sweepFinished.emit(True)
        if self._again:
            self._again = False
            self._sweeps.request()

    def _sweep_failed(self, message: str) -> None:
        self.status.setText(message)
        if self._user_sweep:
            self._user_sweep = False
            self._set_sweep_running(False)
            self.sweepFinished.emit(False)
        if self._again:
            self._again = False
            self._sweeps.request()

    def _start_measuring(self, valid: list[dict], field: str) -> None:
        device = self.device_combo.currentData()
        settings = ProbeSettings(device=device, repeats=10, min_repeats=3, max_time_s=3.0, breakdown=False)
        self._measure_keys = [(device, _key(r["config"])) for r in valid]
        self._measure_values = [(field, r["value"]) for r in valid]
        self._measure_text = self._waiting_text(self.presets_runner, "Measure presets")
        self.measure_runner.start_job(PROBE, "measure", [r["config"] for r in valid], settings, 1)
        self.progress.setValue(0)
        self._show_latency_state()

    def _measure_progress(self, update: tuple[float, str]) -> None:
        fraction, _text = update
        n = len(self._measure_values)
        done = min(int(round(fraction * n)), n)
        if done >= n:
            self._measure_text = f"{n} of {n} points measured; collecting…"
        else:
            field, value = self._measure_values[done]
            self._measure_text = f"{done} of {n} points measured; now {field} = {format_value(value)}"
        self.progress.setValue(int(round(100 * fraction)))
        self._show_latency_state()

    def _measure_done(self, results: list[dict]) -> None:
        for key, m in zip(self._measure_keys, results, strict=True):
            self._measured[key] = m
        self._draw_rows()
        device = results[0]["device"] if results else "?"
        current = {(self.device_combo.currentData(), _key(r["config"])) for r in self.sweep_rows if r.get("config")}
        if current <= set(self._measure_keys):
            self.status.setText(f"{len(results)} points measured on {device}")
        else:  # (the configuration or range changed while it measured)
            self.status.setText(f"{len(results)} points measured on {device}, of the sweep before the last change: "
                                "press Sweep to measure this one.")
        self._set_sweep_running(False)
        self.sweepFinished.emit(True)

    def _measure_failed(self, message: str) -> None:
        self.status.setText(message)
        self._set_sweep_running(False)
        self.sweepFinished.emit(False)

    def _measure_cancelled(self) -> None:
        self.status.setText("measurement cancelled (the analytic curves stay).")
        self._set_sweep_running(False)
        self.sweepFinished.emit(False)

    def _device_changed(self) -> None:
        """Latencies are per device: the sweep shows those measured on the chosen one."""
        if self.sweep_rows:
            self._draw_rows()

    def _draw_rows(self) -> None:
        """The sweep's rows, each with its latency where it was measured on the chosen device."""
        device = self.device_combo.currentData()
        for r in self.sweep_rows:
            m = self._measured.get((device, _key(r["config"]))) if r.get("config") else None
            if m is None:
                r.pop("measured", None)
            else:
                r["measured"] = m
        field = self._field or self.field_combo.currentData()
        self.sweep_plots.set_rows(self.sweep_rows, field, sweep_x(self.config, field))
        self._show_latency_state()

    def _show_latency_state(self) -> None:
        """The latency plot and the progress line say what the sweep's latency waits for."""
        if self.measure_runner.is_busy():
            text = self._measure_text
            self.sweep_plots.latency_message.set(f"Measuring: {text}")
        elif self.sweep_plots.measured():
            text = ""
            self.sweep_plots.latency_message.set("")
        else:
            text = ""
            how = "press Sweep to time every point" if self.measure_check.isChecked() else \
                "tick “measure latency” and press Sweep"
            self.sweep_plots.latency_message.set(f"Not measured: {how}.")
        self.progress_label.setText(text or " ")

    def _set_sweep_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        self.sweep_button.setEnabled(not running)
        self._bar_running(self.progress, running)
        if not running:
            self._show_latency_state()


if __name__ == "__main__":  # a look at the tab alone: python -m densegui.gui.design_panel OUT_PREFIX
    import os
    import sys

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from densegui.gui import guard_refcounts

    guard_refcounts()
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from densegui.gui.tasks import close_shared_pool

    app = QApplication.instance() or QApplication([])
    panel = DesignPanel()
    prefix = sys.argv[1] if len(sys.argv) > 1 else "design"
    for w, h in ((660, 440), (1280, 800), (1900, 1000)):
        panel.resize(w, h)
        panel.show()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            QEventLoop().processEvents()
            time.sleep(0.01)
        panel.grab().save(f"{prefix}_{w}x{h}.png")
        print(f"{prefix}_{w}x{h}.png", panel.size().toTuple(), "minimum", panel.minimumSizeHint().toTuple())
    panel.shutdown()
    panel.close()
    close_shared_pool()
