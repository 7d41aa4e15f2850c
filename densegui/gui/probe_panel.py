"""Timing-probe panel (``probePanel``): what the current network costs on a device.

Settings (device, mode, batch, input size, precision, channels-last,
memory-efficient) → Run measures one configuration, Sweep walks batch sizes
up to a memory limit. The measurement runs in the probe's background process
(jobs ``probe`` and ``sweep``); Cancel reaches the core's cancel check, made
before and after building the model, before every unit of its plan (and as
each layer's gradient arrives in training), so it lands within a second. A newer run makes older results stale: they never reach the screen.
Results fill the cards and the per-kind breakdown, and are appended to a
history table that keeps every configuration measured for comparison.

It fits a small window (issue #26; widgets in :mod:`densegui.gui.fitting`): the settings scroll,
the cards reflow from four in a row to two by two, and below about 1100×640 the breakdown, sweep
and history become tabs.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from densegui.core.arch import registry as arch
from densegui.core.arch.family import MEMORY_EFFICIENT
from densegui.core.devices import PRECISIONS, cpu_available_memory
from densegui.core.errors import DenseguiError
from densegui.core.probe.types import MAX_BATCH, MODES, ProbeSettings, effective_config
from densegui.core.units import human_bytes
from densegui.gui.fitting import (
    AspectSplitter,
    FitProgressBar,
    ReflowGrid,
    ScrollColumn,
    WrapLabel,
    fit_combo,
    plot_minimum,
)
from densegui.gui.jobs import PROBE
from densegui.gui.panel import WhenShown
from densegui.gui.tasks import TaskRunner
from densegui.gui.widgets import Card, DeviceCombo, FitLabel

HISTORY_COLUMNS = ("configuration", "device", "mode", "batch", "input", "precision", "ch-last", "mem-eff",
                   "median ms", "p10 ms", "p90 ms", "images/s", "peak memory", "TFLOP/s", "% of peak")


def _ms(ms: float) -> str:
    return f"{ms:.3g}" if ms < 1000 else f"{ms:,.0f}"  # (never 1.93e+03)


def _flops(tflops: float) -> str:
    """Achieved compute in the unit that reads best: 66.9 GFLOP/s rather than 0.0669 TFLOP/s."""
    for scale, unit in ((1.0, "TFLOP/s"), (1e-3, "GFLOP/s")):
        if tflops >= scale:
            return f"{tflops / scale:.3g} {unit}"
    return f"{tflops * 1e6:.3g} MFLOP/s"


def breakdown_note(r) -> str:
    """How the breakdown's total relates to the median: it comes from its own profiled run
    (core.probe.profiling.breakdown, after the timed runs), so it is not the median."""
    total = sum(v["ms"] for v in r.breakdown.values())
    ratio = total / r.median_ms if r.median_ms > 0 else float("nan")
    head = (f"The kinds add up to {total:.1f} ms per profiled iteration, {ratio:.2f}× the {r.median_ms:.1f} ms "
            "median. ")
    if r.device.startswith("cuda"):
        why = ("They count CUDA kernel time only, in a separate profiled run; the GPU's idle time between "
               "kernels is not in them. ")
    else:
        wall = (f" (a profiled iteration took {r.breakdown_iteration_ms:.1f} ms)"
                if r.breakdown_iteration_ms is not None else "")
        why = f"They come from a separate run under the profiler, which adds overhead to every op{wall}. "
    return head + why + "Shares are of the profiled total."


class ProbePanel(QWidget):
    """Timing probe: Run / Sweep / Cancel, result cards, breakdown, history, sweep plot."""

    runFinished = Signal(bool)  # True: a result is shown; False: an error/cancel message is shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("probePanel")
        self.config: arch.Config = arch.default_config()
        self._estimate = WhenShown(self, self._update_estimate)  # the memory estimate's label
        self.result = None  # the latest ProbeResult shown
        self.sweep_result = None
        self.history: list = []
        self.runner = TaskRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.done.connect(self._on_done)
        self.runner.failed.connect(self._on_failed)

        # ---- settings (a column that scrolls, so rows keep their height in a short window)
        self.config_label = QLabel(objectName="probeConfigLabel")
        self.config_label.setWordWrap(True)
        self.device_combo = fit_combo(DeviceCombo("probeDevice", show_memory=True))
        self.mode_combo = QComboBox(objectName="probeMode")
        for m in MODES:
            self.mode_combo.addItem({"inference": "inference (no autograd)",
                                     "training": "training step (fwd + bwd + SGD)"}[m], m)
        fit_combo(self.mode_combo)
        self.batch_spin = QSpinBox(objectName="probeBatch")
        self.batch_spin.setRange(1, MAX_BATCH)
        self.batch_spin.setValue(1)
        self.input_spin = QSpinBox(objectName="probeInputSize")
        self.input_spin.setSuffix(" px")
        self.precision_combo = QComboBox(objectName="probePrecision")
        for p in PRECISIONS:
            self.precision_combo.addItem(p if p == "fp32" else f"{p} (autocast)", p)
        fit_combo(self.precision_combo)
        self.channels_last_check = QCheckBox("channels-last (NHWC)", objectName="probeChannelsLast")
        self.memeff_check = QCheckBox("memory-efficient", objectName="probeMemEff")
        self.memeff_tip = ("Memory-efficient (recompute): recompute each dense layer's concatenation, BN, ReLU "
                           "and 1×1 conv in backward instead of storing them (Pleiss et al.): less memory, some "
                           "extra time.")
        self.memeff_check.setToolTip(self.memeff_tip)
        self.breakdown_check = QCheckBox("per-kind breakdown", objectName="probeBreakdown")
        self.breakdown_check.setToolTip("Profile a few more iterations with torch.profiler to see where the "
                                        "time goes (a separate run: it does not change the timings).")
        self.breakdown_check.setChecked(True)
        self.max_batch_spin = QSpinBox(objectName="probeMaxBatch")
        self.max_batch_spin.setRange(1, MAX_BATCH)
        self.max_batch_spin.setValue(256)
        self.max_batch_spin.setToolTip("Sweep batch sizes runs batch 1, 2, 4, … up to this, or to the memory limit.")
        self.estimate_label = WrapLabel(objectName="probeEstimate")
        self.estimate_label.setStyleSheet("font-size: 11px;")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Device", self.device_combo)
        form.addRow("Mode", self.mode_combo)
        form.addRow("Batch", self.batch_spin)
        form.addRow("Input", self.input_spin)
        form.addRow("Precision", self.precision_combo)
        form.addRow("", self.channels_last_check)
        form.addRow("", self.memeff_check)
        form.addRow("", self.breakdown_check)
        form.addRow("Sweep to", self.max_batch_spin)
        form.addRow(self.estimate_label)

        self.run_button = QPushButton("Run", objectName="probeRun")
        self.sweep_button = QPushButton("Sweep batch sizes", objectName="probeSweep")
        self.cancel_button = QPushButton("Cancel", objectName="probeCancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.start_run)
        self.sweep_button.clicked.connect(self.start_sweep)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QGridLayout()
        buttons.addWidget(self.run_button, 0, 0)
        buttons.addWidget(self.cancel_button, 0, 1)
        buttons.addWidget(self.sweep_button, 1, 0, 1, 2)
        self.progress = FitProgressBar(objectName="probeProgress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.message_label = WrapLabel(objectName="probeMessage")
        self.message_label.setStyleSheet("color: #b00020;")
        self.message_label.hide()

        form_box = QWidget()
        fl = QVBoxLayout(form_box)
        fl.setContentsMargins(0, 0, 4, 0)
        fl.addWidget(self.config_label)
        fl.addLayout(form)
        self._settings = settings_box = QGroupBox("Settings")
        sl = QVBoxLayout(settings_box)
        sl.setContentsMargins(6, 6, 6, 6)
        scroll = ScrollColumn(form_box)
        scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # buttons right under it
        sl.addWidget(scroll)
        sl.addLayout(buttons)
        sl.addWidget(self.progress)
        sl.addWidget(self.message_label)
        sl.addStretch(1)

        # ---- result cards (four in a row when wide, two by two when narrow)
        self.card_latency = Card("Latency (median)", "cardLatency")
        self.card_throughput = Card("Throughput", "cardThroughput")
        self.card_memory = Card("Peak memory", "cardMemory")
        self.card_compute = Card("Achieved compute", "cardCompute")
        self.cards = ReflowGrid((self.card_latency, self.card_throughput, self.card_memory, self.card_compute))

        # ---- breakdown
        self.breakdown_table = QTableWidget(0, 3, objectName="probeBreakdownTable")
        self.breakdown_table.setHorizontalHeaderLabels(["kind", "ms / iteration", "share"])
        self.breakdown_table.verticalHeader().hide()
        self.breakdown_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.breakdown_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.breakdown_table.setWordWrap(False)
        self.breakdown_table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.breakdown_table.setMinimumSize(200, 90)
        self.breakdown_note = WrapLabel("Run to see which kinds of layer take the time.",
                                        objectName="probeBreakdownNote")
        self.breakdown_note.setStyleSheet("font-size: 11px;")
        self.breakdown_page = QWidget(objectName="probeBreakdownPage")
        rl = QVBoxLayout(self.breakdown_page)
        rl.setContentsMargins(0, 0, 0, 0)
        self.breakdown_title = QLabel("Where the time goes")
        rl.addWidget(self.breakdown_title)
        rl.addWidget(self.breakdown_table, 1)
        rl.addWidget(self.breakdown_note)

        # ---- sweep plots (white like the other panels' plots), side by side when the page is wide
        self.throughput_plot = pg.PlotWidget()
        self.throughput_plot.setObjectName("probeSweepThroughput")  # (a keyword: an empty curve)
        self.memory_plot = pg.PlotWidget()
        self.memory_plot.setObjectName("probeSweepMemory")  # (a keyword: an empty curve)
        for plot, title, left in ((self.throughput_plot, "Throughput", "images/s"),
                                  (self.memory_plot, "Peak memory", "MiB")):
            plot.setBackground("w")
            plot.setTitle(title, color="#333", size="10pt")
            plot.setLabel("bottom", "batch size")
            plot.setLabel("left", left)
            plot.setLogMode(x=True, y=False)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot_minimum(plot, 160, 90)
        self.sweep_label = WrapLabel("Sweep batch sizes to see throughput and memory against batch size.",
                                  objectName="probeSweepLabel")
        self.sweep_label.setStyleSheet("font-size: 11px;")
        self.sweep_plots = AspectSplitter(ratio=1.3)
        self.sweep_plots.addWidget(self.throughput_plot)
        self.sweep_plots.addWidget(self.memory_plot)
        self.sweep_page = QWidget(objectName="probeSweepPage")
        pl = QVBoxLayout(self.sweep_page)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.sweep_plots, 1)
        pl.addWidget(self.sweep_label)

        # ---- history
        self.history_table = QTableWidget(0, len(HISTORY_COLUMNS), objectName="probeHistory")
        self.history_table.setHorizontalHeaderLabels(list(HISTORY_COLUMNS))
        self.history_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history_table.setSortingEnabled(False)
        self.history_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.history_table.setMinimumSize(200, 70)
        self.clear_history_button = QPushButton("Clear history", objectName="probeClearHistory")
        self.clear_history_button.clicked.connect(self.clear_history)
        self.history_page = QWidget(objectName="probeHistoryPage")
        hl = QVBoxLayout(self.history_page)
        hl.setContentsMargins(0, 0, 0, 0)
        hh = QHBoxLayout()
        hh.addWidget(FitLabel("History: every run, across configurations"), 1)
        hh.addWidget(self.clear_history_button)
        hl.addLayout(hh)
        hl.addWidget(self.history_table, 1)

        # Wide: [breakdown | sweep] over the history, all in view. Compact (a small window): the
        # three as tabs under the cards (resizeEvent moves them).
        self._pair = QSplitter(Qt.Orientation.Horizontal)
        self._pair.setChildrenCollapsible(False)
        self._wide = QSplitter(Qt.Orientation.Vertical)
        self._wide.setChildrenCollapsible(False)
        self._wide.addWidget(self._pair)
        self._tabs = QTabWidget(objectName="probeResultTabs")
        self._tabs.setDocumentMode(True)
        results = QWidget()
        rv = QVBoxLayout(results)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.cards)
        rv.addWidget(self._wide, 1)
        rv.addWidget(self._tabs, 1)

        self._top = top = QSplitter(Qt.Orientation.Horizontal)
        top.setChildrenCollapsible(False)
        top.addWidget(settings_box)
        top.addWidget(results)
        top.setStretchFactor(0, 1)
        top.setStretchFactor(1, 3)
        top.setSizes([290, 900])
        settings_box.setMaximumWidth(440)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.addWidget(top)
        self.compact: bool | None = None
        self._arrange(compact=True)

        for w in (self.device_combo, self.mode_combo, self.precision_combo):
            w.currentIndexChanged.connect(self._update_estimate)
        for w in (self.batch_spin, self.input_spin):
            w.valueChanged.connect(self._update_estimate)
        self.memeff_check.toggled.connect(self._update_estimate)
        self.set_config(self.config)

    # ------------------------------------------------------------------ layout
    COMPACT_BELOW = (1100, 640)  # narrower or shorter than this: the lower results as tabs

    def _arrange(self, compact: bool) -> None:
        if compact == self.compact:
            return
        self.compact = compact
        pages = ((self.breakdown_page, "Where the time goes"), (self.sweep_page, "Sweep"),
                 (self.history_page, "History"))
        if compact:
            for page, title in pages:
                self._tabs.addTab(page, title)
            self._top.setSizes([self._settings.minimumSizeHint().width(), 10_000])  # the results get the room
        else:
            self._tabs.clear()
            self._pair.addWidget(self.breakdown_page)
            self._pair.addWidget(self.sweep_page)
            self._wide.addWidget(self.history_page)
            self._pair.setSizes([380, 620])
            self._wide.setSizes([700, 220])
            for page, _ in pages:
                page.show()  # (a tab widget hides the pages it does not show)
            self._top.setSizes([380, max(self.width() - 380, 600)])
        self.breakdown_title.setVisible(not compact)  # (the tab says it)
        self._tabs.setVisible(compact)
        self._wide.setVisible(not compact)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        size = event.size()
        self._arrange(size.width() < self.COMPACT_BELOW[0] or size.height() < self.COMPACT_BELOW[1])
        super().resizeEvent(event)

    # ----------------------------------------------------------- panel contract
    def set_config(self, cfg: arch.Config) -> None:
        """The explorer's current configuration: the one the next Run measures (cheap)."""
        self.config = cfg
        family = arch.family_of(cfg)
        self.config_label.setText(f"Configuration: <b>{cfg.label()}</b>")
        with QSignalBlocker(self.input_spin), QSignalBlocker(self.memeff_check):
            size = family.field("input_size")
            self.input_spin.setRange(int(size.lo or 1), int(size.hi or 8192))
            self.input_spin.setValue(cfg.input_size)
            efficient = family.can(MEMORY_EFFICIENT)
            self.memeff_check.setEnabled(efficient)
            self.memeff_check.setChecked(efficient and cfg.memory_efficient)
            self.memeff_check.setToolTip(self.memeff_tip if efficient else
                                         f"{family.title}s have no memory-efficient mode.")
        self._estimate.request()

    def shutdown(self) -> None:
        """Stop the measurement in flight (call before the window closes)."""
        self.device_combo.shutdown()
        self.runner.shutdown()

    # ---------------------------------------------------------------- settings
    def settings(self) -> ProbeSettings:
        return ProbeSettings(
            device=self.device_combo.currentData(), mode=self.mode_combo.currentData(),
            batch_size=self.batch_spin.value(), precision=self.precision_combo.currentData(),
            channels_last=self.channels_last_check.isChecked(), memory_efficient=self.memeff_check.isChecked(),
            input_size=self.input_spin.value(), breakdown=self.breakdown_check.isChecked())

    def _update_estimate(self) -> None:
        s = self.settings()
        try:
            est = arch.estimate_memory(effective_config(self.config, s), s.batch_size, s.mode)
        except DenseguiError as exc:
            self.estimate_label.setText(str(exc))
            return
        avail = cpu_available_memory()
        tail = f" (CPU memory available now: {human_bytes(avail)})" if avail is not None else ""
        self.estimate_label.setText(f"Estimated memory for this run: {human_bytes(est)}{tail}")

    # -------------------------------------------------------------------- runs
    def is_running(self) -> bool:
        return self.runner.is_busy()

    def start_run(self) -> None:
        self._start("probe", self.config.to_dict(), self.settings())

    def start_sweep(self) -> None:
        self._start("sweep", self.config.to_dict(), self.settings(), self.max_batch_spin.value())

    def _start(self, job: str, *args) -> None:
        self.runner.start_job(PROBE, job, *args)  # (a run in flight is cancelled: its results are stale)
        self.message_label.hide()
        self.progress.setValue(0)
        self.progress.setFormat("starting … %p%")
        self._set_running(True)

    def cancel(self) -> None:
        """Stop the current run: the panel is idle at once, the process stops at its next check."""
        if not self.runner.is_busy():
            return
        self.runner.cancel()
        self._set_running(False)
        self.progress.setValue(0)
        self.progress.setFormat("cancelled")
        self._show_message("Cancelled.")
        self.runFinished.emit(False)

    def _set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        self.run_button.setText("Restart" if running else "Run")

    def _on_progress(self, update: tuple[float, str]) -> None:
        fraction, text = update
        self.progress.setValue(int(round(100 * fraction)))
        self.progress.setFormat(f"{text} %p%")

    def _on_failed(self, message: str) -> None:
        self._set_running(False)
        self.progress.setValue(0)
        self.progress.setFormat("failed")
        self._show_message(message[:1].upper() + message[1:])
        self.runFinished.emit(False)

    def _show_message(self, text: str) -> None:
        self.message_label.setText(text)
        self.message_label.show()

    def _on_done(self, result) -> None:
        self._set_running(False)
        self.progress.setValue(100)
        self.progress.setFormat("done")
        if hasattr(result, "points"):
            self._show_sweep(result)
        else:
            self._show_result(result)
        self.runFinished.emit(True)

    # ----------------------------------------------------------------- display
    def _show_result(self, r) -> None:
        self.result = r
        self.card_latency.set(f"{_ms(r.median_ms)} ms", f"p10 {_ms(r.p10_ms)} · p90 {_ms(r.p90_ms)} ms",
                              f"{r.mode}, batch {r.batch_size}, {r.precision}: the median of {r.repeats} timed "
                              f"runs after {r.warmup_iterations} warm-up iterations; p10 {_ms(r.p10_ms)} ms, "
                              f"p90 {_ms(r.p90_ms)} ms")
        self.card_throughput.set(f"{r.throughput:,.1f} img/s", f"batch {r.batch_size} / median latency")
        if r.peak_memory_bytes is None:
            self.card_memory.set("n/a", r.peak_memory_convention, r.peak_memory_convention)
        else:
            short = "allocator peak" if r.device.startswith("cuda") else "RSS rise"
            self.card_memory.set(human_bytes(r.peak_memory_bytes),
                                 f"{short} · est. {human_bytes(r.estimated_memory_bytes)}",
                                 r.peak_memory_convention)
        frac = (f"{100 * r.fraction_of_peak:.1f}% of {r.peak_tflops:g} TFLOP/s peak"
                if r.fraction_of_peak is not None else "device peak unknown")
        basis = f" Peak: {r.peak_basis}." if r.peak_basis else ""
        self.card_compute.set(_flops(r.achieved_tflops), frac, f"{r.flops_convention}{basis}")
        self.breakdown_table.setRowCount(0)
        if r.breakdown:
            rows = sorted(r.breakdown.items(), key=lambda kv: -kv[1]["ms"])
            self.breakdown_table.setRowCount(len(rows))
            for i, (kind, v) in enumerate(rows):
                for j, text in enumerate((kind, f"{v['ms']:.3f}", f"{100 * v['fraction']:.1f}%")):
                    item = QTableWidgetItem(text)
                    if j:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.breakdown_table.setItem(i, j, item)
            self.breakdown_note.setText(breakdown_note(r))
            self.breakdown_note.setToolTip(r.breakdown_convention or "")
        else:
            self.breakdown_note.setText("Breakdown off.")
            self.breakdown_note.setToolTip("")
        self._append_history(r)

    def _append_history(self, r) -> None:
        self.history.append(r)
        cfg = arch.config_from_dict(r.config)
        mem = human_bytes(r.peak_memory_bytes) if r.peak_memory_bytes is not None else "n/a"
        values = (cfg.label(), r.device, r.mode, str(r.batch_size), str(r.input_size), r.precision,
                  "yes" if r.channels_last else "no", "yes" if r.memory_efficient else "no",
                  f"{r.median_ms:.3f}", f"{r.p10_ms:.3f}", f"{r.p90_ms:.3f}", f"{r.throughput:.1f}", mem,
                  f"{r.achieved_tflops:.4g}",
                  f"{100 * r.fraction_of_peak:.1f}" if r.fraction_of_peak is not None else "—")
        row = self.history_table.rowCount()
        self.history_table.insertRow(row)
        for j, text in enumerate(values):
            self.history_table.setItem(row, j, QTableWidgetItem(text))
        self.history_table.scrollToBottom()

    def clear_history(self) -> None:
        self.history.clear()
        self.history_table.setRowCount(0)

    def _show_sweep(self, s) -> None:
        self.sweep_result = s
        self.throughput_plot.clear()
        self.memory_plot.clear()
        xs = [p.batch_size for p in s.points]
        if xs:
            pen = pg.mkPen("#1f77b4", width=2)
            self.throughput_plot.plot(xs, [p.throughput for p in s.points], pen=pen, symbol="o", symbolSize=7,
                                      symbolBrush="#1f77b4")
            mem = [(p.batch_size, p.peak_memory_bytes / 2**20) for p in s.points if p.peak_memory_bytes is not None]
            est = [p.estimated_memory_bytes / 2**20 for p in s.points]
            if mem:
                self.memory_plot.plot([m[0] for m in mem], [m[1] for m in mem], pen=pg.mkPen("#d62728", width=2),
                                      symbol="o", symbolSize=7, symbolBrush="#d62728", name="measured")
            self.memory_plot.plot(xs, est, pen=pg.mkPen("#7f7f7f", width=1, style=Qt.PenStyle.DashLine),
                                  name="estimate")
        ticks = [[(math.log10(b), str(b)) for b in xs]]  # the batch sizes themselves, not 2·10¹
        for plot in (self.throughput_plot, self.memory_plot):
            plot.getAxis("bottom").setTicks(ticks if xs else None)
        limit = s.limit_batch if s.limit_batch is not None else "none"
        self.sweep_label.setText(f"{s.device} — {s.device_name}, {s.mode}: limit batch {limit} "
                                 f"({s.stop_reason.replace('_', ' ')}: {s.message}). Memory: measured (red), "
                                 f"analytic estimate (dashed).")
