"""Channels tab: the analytic layer table drawn layer by layer.

Four plots over the whole network sharing one x axis (x = row of ``layer_table``:
stem, every dense layer, transitions, head): input/output channels,
parameters, MACs, and the activation bytes a training step keeps per sample
(naive vs memory-efficient). Dense blocks are shaded and named on the x axis,
transitions are dashed lines, hovering shows the layer's name and values, a click
selects a layer (``layerSelected``; ``select_path`` marks one without emitting), a check
box switches to log scale and each plot exports to PNG, or to SVG or PDF as a vector
figure (gui/export.py). A pinned baseline is drawn as grey dashed curves.

The drawing is :class:`~densegui.gui.layer_plots.LayerPlots` (QPainter): a slider
drag redraws all four plots up to 60 times a second, on the main thread.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from densegui.core.arch import registry as arch
from densegui.core.arch.family import MEMORY_EFFICIENT
from densegui.core.arch.table import LayerTable
from densegui.core.errors import user_message
from densegui.core.units import human_bytes
from densegui.gui import export
from densegui.gui.feedback import confirm
from densegui.gui.layer_plots import LayerPlots, PlotSpec, Series
from densegui.gui.panel import PanelMixin
from densegui.gui.widgets import FitLabel

PLOTS = {
    "channels": "Channels (input of each layer, output)",
    "params": "Parameters per layer",
    "macs": "MACs per layer (conv + linear, batch 1)",
    "activations": "Saved activations per sample (training, float32)",
}
BLUE, ORANGE, GREEN, PURPLE, RED = "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728"
SPECS = (
    PlotSpec("channels", PLOTS["channels"], (Series("in", "input channels", BLUE),
                                             Series("out", "output channels", ORANGE, 1.5)),
             baseline=("in",), legend=True, legend_baseline=True),
    PlotSpec("params", PLOTS["params"], (Series("params", "parameters", GREEN),), baseline=("params",)),
    PlotSpec("macs", PLOTS["macs"], (Series("macs", "MACs", PURPLE),), baseline=("macs",)),
    PlotSpec("activations", PLOTS["activations"], (Series("naive", "naive", RED),
                                                   Series("efficient", "memory-efficient", BLUE)),
             baseline=("naive",), binary=True, legend=True),
)
CURVES = tuple(s.key for spec in SPECS for s in spec.series)  # the table's curves, by table_arrays key
BASELINE_CURVES = tuple(key for spec in SPECS for key in spec.baseline)


X_MODES = {"layer": "layer (row of the table)", "depth": "fraction of depth"}


def table_arrays(table: LayerTable, x_mode: str = "layer") -> dict[str, np.ndarray]:
    """The per-row series the plots show (float arrays, one entry per row). ``x_mode`` "depth"
    puts each row at its fraction of the network's depth, so networks of different depth and
    family overlay."""
    rows = table.rows
    xs = np.array(table.depth_fraction(), dtype=float) if x_mode == "depth" else np.arange(len(rows), dtype=float)
    efficient = arch.family_of(table.config).can(MEMORY_EFFICIENT)  # else no efficient curve (NaN)
    return {
        "x": xs,
        "in": np.array([r.in_channels for r in rows], dtype=float),
        "out": np.array([r.out_channels if r.kind != "head" else np.nan for r in rows], dtype=float),
        "params": np.array([r.params for r in rows], dtype=float),
        "macs": np.array([r.macs for r in rows], dtype=float),
        "naive": np.array([r.saved_naive + r.fixed_naive for r in rows], dtype=float),
        "efficient": np.array([r.saved_efficient + r.fixed_efficient if efficient else np.nan for r in rows],
                              dtype=float),
    }


def block_spans(table: LayerTable) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """(block, first row, last row) of every block or stage (its rows with an index), and (block,
    row) of every row between blocks that belongs to one (a DenseNet's transitions)."""
    blocks: dict[int, list[int]] = {}
    transitions: list[tuple[int, int]] = []
    for i, r in enumerate(table.rows):
        if r.block is None:
            continue
        if r.index is not None:
            blocks.setdefault(r.block, []).append(i)
        else:
            transitions.append((r.block, i))
    spans = [(b, rows[0], rows[-1]) for b, rows in sorted(blocks.items())]
    return spans, transitions


def span_edges(xs: np.ndarray, first: int, last: int) -> tuple[float, float]:
    """x extent of rows ``first..last``: halfway to the neighbouring rows (half a step at the ends)."""
    n = len(xs)
    step = (xs[-1] - xs[0]) / max(n - 1, 1)
    lo = (xs[first - 1] + xs[first]) / 2 if first > 0 else xs[first] - step / 2
    hi = (xs[last] + xs[last + 1]) / 2 if last + 1 < n else xs[last] + step / 2
    return float(lo), float(hi)


class ChannelPanel(PanelMixin, QWidget):
    """Layer-by-layer plots of the analytic table, with a baseline overlay."""

    layerSelected = Signal(str)  # a row's module path clicked in a plot ("" for a click beside them)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("channelPanel")
        self.table: LayerTable | None = None
        self.baseline: LayerTable | None = None
        self._arrays: dict[str, np.ndarray] | None = None
        self._base_arrays: dict[str, np.ndarray] | None = None
        self._hover_index: int | None = None
        self.selected_path: str | None = None  # the row marked selected (its module path)
        self._row_index: dict[str, int] = {}  # module path → row
        self.x_mode = "layer"

        self.graphics = LayerPlots(SPECS)
        self.graphics.setObjectName("channelGraphics")
        self.graphics.hovered.connect(self._hovered)
        self.graphics.clicked.connect(self._clicked)

        # ---- toolbar
        self.log_check = QCheckBox("Log scale")
        self.log_check.setObjectName("channelLogToggle")
        self.log_check.setToolTip("Logarithmic y axes (parameters and MACs span orders of magnitude)")
        self.log_check.toggled.connect(self.set_log_scale)
        self.x_combo = QComboBox()
        self.x_combo.setObjectName("channelXAxis")
        self.x_combo.setToolTip("x axis: each layer in turn, or its fraction of the network's depth (to overlay "
                                "a baseline of another depth or family, e.g. a ResNet)")
        for key, text in X_MODES.items():
            self.x_combo.addItem(text, key)
        self.x_combo.currentIndexChanged.connect(lambda _i: self.set_x_mode(self.x_combo.currentData()))
        self.export_combo = QComboBox()
        self.export_combo.setObjectName("channelExportCombo")
        for key, title in PLOTS.items():
            self.export_combo.addItem(title.split(" (")[0], key)
        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("channelExport")
        self.export_button.setToolTip("Save the chosen plot as a PNG image, or as an SVG or PDF vector figure "
                                      "(for papers)")
        self.export_button.clicked.connect(self._export_dialog)
        self._export_format = "png"  # the dialog offers the last format used first
        # A FitLabel: a new read-out on every mouse move must not re-lay out the window.
        self.hover_label = FitLabel("Hover over a plot to read a layer's values.")
        self.hover_label.setObjectName("channelHover")
        self.hover_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hover_label.setMinimumHeight(22)

        bar = QHBoxLayout()
        bar.addWidget(self.log_check)
        bar.addSpacing(12)
        bar.addWidget(QLabel("x:"))
        bar.addWidget(self.x_combo)
        bar.addStretch(1)
        bar.addWidget(QLabel("Plot:"))
        bar.addWidget(self.export_combo)
        bar.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.hover_label)

    # ----------------------------------------------------------------- updates
    def set_table(self, table: LayerTable) -> None:
        """Draw ``table`` (the current configuration's analytic table). A change into another family
        than the pinned baseline's switches the x axis to the fraction of depth, as pinning does."""
        before, self.table = self.table, table
        if (self.baseline is not None and self.x_mode == "layer" and table.family != self.baseline.family
                and (before is None or before.family == self.baseline.family)):
            self.x_combo.setCurrentIndex(self.x_combo.findData("depth"))  # (redraws through set_x_mode)
            return
        self._row_index = {r.name: i for i, r in enumerate(table.rows)}
        a = self._arrays = table_arrays(table, self.x_mode)
        xs = a["x"]
        spans, transitions = block_spans(table)
        word = arch.family_of(table.config).unit
        edges = [span_edges(xs, lo, hi) for _b, lo, hi in spans]
        # Block names as x tick labels, the number alone where the name does not fit (transitions
        # are the dashed lines between them: their names would collide with a short block's).
        ticks = [((e0 + e1) / 2, f"{word} {blk}", str(blk)) for (blk, _lo, _hi), (e0, e1) in zip(spans, edges)]
        lines = [float(xs[i]) for _b, i in transitions]
        lo, hi = span_edges(xs, 0, len(xs) - 1) if len(xs) else (0.0, 1.0)
        pad = 0.01 * (hi - lo)
        self.graphics.set_data(xs, {key: a[key] for key in CURVES}, x_range=(lo - pad, hi + pad),
                               ticks=ticks, minor=lines, spans=edges, lines=lines)
        self.select_path(self.selected_path)  # kept where the new table has that row, else cleared
        if self._hover_index is not None:
            self.hover_index(self._hover_index)

    def set_baseline(self, table: LayerTable | None) -> None:
        """Overlay ``table`` as grey dashed curves (None removes it). A baseline of another family
        switches the x axis to the fraction of depth, where the two line up."""
        self.baseline = table
        if table is not None and self.table is not None and table.family != self.table.family:
            self.x_combo.setCurrentIndex(self.x_combo.findData("depth"))  # (redraws through set_x_mode)
        self._base_arrays = table_arrays(table, self.x_mode) if table is not None else None
        self._draw_baseline()

    def set_log_scale(self, on: bool) -> None:
        if self.log_check.isChecked() != on:
            self.log_check.setChecked(on)  # re-enters through toggled
            return
        self.graphics.set_log(on)

    def is_log_scale(self) -> bool:
        return self.log_check.isChecked()

    def set_x_mode(self, mode: str) -> None:
        """"layer" or "depth" (fraction of the network's depth)."""
        if mode not in X_MODES:
            raise ValueError(f"unknown x mode {mode!r}")
        if self.x_combo.currentData() != mode:
            self.x_combo.setCurrentIndex(self.x_combo.findData(mode))  # re-enters through the combo
            return
        if mode == self.x_mode:
            return
        self.x_mode = mode
        self.graphics.set_x_label("fraction of depth" if mode == "depth" else "")
        if self.baseline is not None:
            self._base_arrays = table_arrays(self.baseline, mode)
        if self.table is not None:
            self.set_table(self.table)
        self._draw_baseline()

    def hover_index(self, index: int | None) -> str:
        """Show the read-out of row ``index`` (None clears it: the selected row's, if any, is
        shown instead); returns the hovered row's text ("" for none)."""
        if self.table is None or index is None or not 0 <= index < len(self.table.rows):
            self._hover_index = None
            self.graphics.set_cursor(None)
            selected = self._row_index.get(self.selected_path) if self.selected_path else None
            self.hover_label.setText(f"Selected: {self._readout(selected)}" if selected is not None
                                     else "Hover over a plot to read a layer's values.")
            return ""
        self._hover_index = index
        self.graphics.set_cursor(self._x_of(index))
        text = self._readout(index)
        self.hover_label.setText(text)
        return text

    def select_path(self, path: str | None) -> None:
        """Mark the row of module ``path`` in every plot (None, "" or a path the table lacks: no
        mark). Never emits ``layerSelected``; cheap (the plots' cached frame is kept)."""
        index = self._row_index.get(path) if path else None
        before, self.selected_path = self.selected_path, path if index is not None else None
        if index is None:
            self.graphics.set_selection(None)
        else:
            self.graphics.set_selection(self._x_of(index), span_edges(self._arrays["x"], index, index))
        if self._hover_index is None and (before or self.selected_path):
            self.hover_index(None)  # the selected row's read-out (or, once cleared, the hint)

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of curve ``key`` (one of CURVES) as plotted (y NaN where a log scale cannot show it)."""
        return self.graphics.x, self.graphics.values(key)

    def baseline_series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the baseline's curve ``key``; empty arrays without a baseline."""
        if self.graphics.base_x is None:
            return np.zeros(0), np.zeros(0)
        return self.graphics.base_x, self.graphics.baseline_values(key)

    def y_range(self, key: str) -> tuple[float, float]:
        """The y range plot ``key`` shows now (for tests and exports)."""
        return self.graphics.y_range(key)

    def export(self, key: str, path: str | Path, width: int = 1200) -> Path:
        """Save plot ``key`` (one of PLOTS) as PNG, SVG or PDF, by ``path``'s suffix: its on-screen
        proportions; a PNG ``width`` pixels wide, the vector files as large in points as the plot is
        on screen in pixels. DenseguiError (one line) for a bad path or suffix."""
        return self._export(export.format_of(path), key, path, width)

    def export_png(self, key: str, path: str | Path, width: int = 1200) -> Path:
        """Save plot ``key`` as a PNG file, whatever the suffix."""
        return self._export("png", key, path, width)

    # ----------------------------------------------------------- panel contract
    def set_config(self, cfg) -> None:  # noqa: ARG002 - the window passes the table
        """The window calls :meth:`set_table` with the already computed table."""

    # --------------------------------------------------------------- internals
    def _draw_baseline(self) -> None:
        b = self._base_arrays
        if b is None:
            self.graphics.set_baseline(None)
        else:
            self.graphics.set_baseline(b["x"], {key: b[key] for key in BASELINE_CURVES})

    def _row_at(self, x: float | None) -> int | None:
        """The row nearest x (data units): the one the hover read-out and a click take."""
        if x is not None and math.isfinite(x) and self._arrays is not None and len(self._arrays["x"]):
            return int(np.argmin(np.abs(self._arrays["x"] - x)))
        return None

    def _x_of(self, index: int) -> float:
        return float(self._arrays["x"][index]) if self._arrays is not None else float(index)

    def _readout(self, index: int) -> str:
        r = self.table.rows[index]
        text = (f"{r.name}  ·  {r.in_channels:,} → {r.out_channels:,} channels at {r.out_size}×{r.out_size}"
                f"  ·  params {r.params:,}  ·  MACs {r.macs:,}"
                f"  ·  saved {human_bytes(r.saved_naive + r.fixed_naive)}")
        if arch.family_of(self.table.config).can(MEMORY_EFFICIENT):
            text = f"{text} naive, {human_bytes(r.saved_efficient + r.fixed_efficient)} efficient"
        return text

    def _hovered(self, x: float | None) -> None:
        index = self._row_at(x)
        if index is not None:
            self.hover_index(index)
        elif self._hover_index is not None:
            self.hover_index(None)

    def _clicked(self, x: float | None) -> None:
        index = self._row_at(x)
        path = self.table.rows[index].name if index is not None and self.table is not None else ""
        self.select_path(path)
        self.layerSelected.emit(path)

    def _export(self, fmt: str, key: str, path: str | Path, width: int) -> Path:
        if key not in PLOTS:
            raise ValueError(f"unknown plot {key!r}; choose one of {', '.join(PLOTS)}")
        w, h = self.graphics.plot_size(key)
        return export.write_painting(fmt, path, w, h, lambda painter, rect: self.graphics.paint_plot(painter, key, rect),
                                     title=PLOTS[key], scale=width / w)

    def _export_dialog(self) -> None:
        key = self.export_combo.currentData()
        name = f"{self.table.family if self.table else 'network'}_{key}"  # the chosen filter adds the suffix
        path = export.ask_save_path(self, "Export plot", name, self._export_format)
        if path:
            self.save_export(key, path)

    def save_export(self, key: str, path: str) -> bool:
        """What the Export button does once a file is chosen: save, then say so (or why not)."""
        try:
            self.export(key, path)
        except Exception as exc:  # noqa: BLE001 - show, never crash
            self.hover_label.setText(f"Could not export {path}: {user_message(exc)}")
            return False
        self._export_format = export.format_of(path)
        confirm(self, f"Saved {path}", self.hover_label)
        return True
