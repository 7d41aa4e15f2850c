"""The Architecture tab: the current configuration drawn live from its family plan.

Stem → blocks → transitions → head, each dense layer a bar (height ∝ √ input channels, colour =
MACs) with one arc per feature map it concatenates (the paper's Figure 1). Big blocks start
collapsed; a click on a block's header or box expands or collapses it. Hover reads a unit out, a
click selects it in the other tabs (``layerSelected``) and ``select_path`` shows their selection
here. With a checkpoint in the Feature reuse tab of the same network, the arcs can be coloured by
its measure (the heatmap's colour map and noise dots) and the weak ones hidden, with the parameters
and MACs the hidden connections carry. Export writes PNG, SVG or PDF from the same paint code.

Work per change: the layout (≈ 1–2 ms for densenet264, in the event-loop pass after the change,
and only while the tab is shown) and one repaint.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from densegui.core.arch import registry as arch
from densegui.core.arch.graph import edge_cost
from densegui.core.errors import DenseguiError
from densegui.gui import diagram_layout as dl
from densegui.gui.diagram import Colouring, DiagramView
from densegui.gui.panel import PanelMixin, WhenShown
from densegui.gui.widgets import ClampLabel, FitLabel, FlowLayout, together

LEGEND = ("Bar height ∝ √(input channels), colour: MACs (log), number: input channels · arcs: the feature maps "
          "each unit concatenates · click a block's title to collapse or expand it · Ctrl+wheel: zoom, wheel or "
          "drag: pan, double-click: fit")


HINT = "Hover over a layer to read it; click it to select it in the other tabs."


def si(n: float, unit: str = "") -> str:
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()


def mib(n: float) -> str:
    return f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{n / 2**10:.3g} KiB"


def _colouring_of(payload: dict) -> Colouring:
    """The connection values of a Feature reuse payload, keyed (block, source row, target)."""
    values, noise = {}, set()
    for block, matrix, mask in payload["blocks"]:
        for s, row in enumerate(matrix):
            for t, v in enumerate(row):
                if v == v:  # (NaN: no connection)
                    values[(block, s, t)] = float(v)
                    if mask is not None and mask[s][t]:
                        noise.add((block, s, t))
    return Colouring(values, noise, payload["lut"], payload["label"])


class ArchitecturePanel(PanelMixin, QWidget):
    layerSelected = Signal(str)  # a unit's module path clicked here ("" clears)
    diagramUpdated = Signal(object)  # the configuration now laid out (its repaint follows)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("architecturePanel")
        self.config = None
        self.baseline_config = None
        self.expanded: dict[int, bool] = {}  # the user's choices per block, kept across edits
        self._family = None
        self._reuse = None  # the Feature reuse tab's payload (see set_reuse)
        self._reuse_colouring: Colouring | None = None  # its values, read once per payload
        self._table = None
        self.last_layout_ms = 0.0

        self.view = DiagramView()
        self.view.hovered.connect(self._hovered)
        self.view.clicked.connect(self._clicked)
        self.view.toggled.connect(self._toggle)
        self.view.toolTipFor = self.describe  # type: ignore[method-assign]
        self.view.painted.connect(self._painted)

        self.fit_button = QPushButton("Fit")
        self.fit_button.setObjectName("architectureFit")
        self.fit_button.setToolTip("Zoom to fit the width (0 or double-click)")
        self.fit_button.clicked.connect(self.view.fit)
        self.expand_button = QPushButton("Expand all")
        self.expand_button.setObjectName("architectureExpandAll")
        self.expand_button.clicked.connect(lambda: self.set_all_expanded(True))
        self.collapse_button = QPushButton("Collapse all")
        self.collapse_button.setObjectName("architectureCollapseAll")
        self.collapse_button.clicked.connect(lambda: self.set_all_expanded(False))
        self.baseline_check = QCheckBox("Baseline outline")
        self.baseline_check.setObjectName("architectureBaseline")
        self.baseline_check.setToolTip("Draw the pinned baseline as a dashed grey outline under the current network")
        self.baseline_check.setChecked(True)
        self.baseline_check.setEnabled(False)
        self.baseline_check.toggled.connect(lambda _on: self._schedule())
        self.colour_combo = QComboBox()
        self.colour_combo.setObjectName("architectureColour")
        self.colour_combo.addItem("Arcs: structure", "structure")
        self.colour_combo.addItem("Arcs: feature reuse", "reuse")
        self.colour_combo.setToolTip("Colour every connection by the Feature reuse tab's measure (its checkpoint "
                                     "must be this network: Send to explorer there)")
        self.colour_combo.currentIndexChanged.connect(lambda _i: self._apply_colouring())
        self.hide_slider = QSlider(Qt.Orientation.Horizontal)
        self.hide_slider.setObjectName("architectureHideBelow")
        self.hide_slider.setRange(0, 100)
        self.hide_slider.setFixedWidth(140)
        self.hide_slider.setToolTip("Hide the connections whose (normalised) reuse is below this value")
        self.hide_slider.valueChanged.connect(self._threshold_changed)
        self.hide_label = QLabel("hide below 0.00")
        self.hide_label.setObjectName("architectureHideLabel")
        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("architectureExport")
        self.export_button.setToolTip("Save the whole diagram as PNG, SVG or PDF (vector)")
        self.export_button.clicked.connect(self._export_dialog)

        bar = FlowLayout()  # wraps onto a second row in a narrow window
        bar.addWidget(together(self.fit_button, self.expand_button, self.collapse_button))
        bar.addWidget(self.baseline_check)
        bar.addWidget(together(self.colour_combo, self.hide_slider, self.hide_label))
        bar.addWidget(self.export_button)

        self.reuse_label = FitLabel("")
        self.reuse_label.setObjectName("architectureReuse")
        self.reuse_label.setStyleSheet("color: palette(mid);")
        self.readout = FitLabel(HINT)
        self.readout.setObjectName("architectureReadout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setMinimumHeight(22)
        self.legend = ClampLabel(lines=2)
        self.legend.setText(LEGEND)
        self.legend.setObjectName("architectureLegend")
        self.legend.setStyleSheet("color: palette(mid);")

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.reuse_label)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.readout)
        layout.addWidget(self.legend)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._when_shown_request)
        self._when_shown = WhenShown(self, self._relayout)
        self._sync_reuse_controls()

    # ---------------------------------------------------------- panel contract
    def set_config(self, cfg) -> None:
        family = arch.family_of(cfg)
        if self._family is not family:
            self.expanded = {}
            self.view.auto_fit = True
        self._family = family
        self.config = cfg
        self._table = None
        self._schedule()

    def set_baseline(self, cfg) -> None:
        """Outline the pinned baseline (a configuration of any family), or None."""
        self.baseline_config = cfg
        self.baseline_check.setEnabled(cfg is not None)
        self._schedule()

    def select_path(self, path: str | None) -> None:
        """Show another tab's selection here (a layer inside a collapsed block expands it); no signal."""
        path = path or ""
        lay = self.view.layout_
        if path and lay is not None and path in lay.inside:
            self.expanded[lay.rows[lay.inside[path].row].block] = True
            self._relayout()
        self.view.set_selected(path)
        if path:
            self.readout.setText(self.describe_path(path))

    def set_reuse(self, payload) -> None:
        """The Feature reuse tab's shown measure: a dict with ``config``, ``label``, ``lut`` (256 RGB
        tuples), ``blocks``: [(block, values as nested lists, noise mask as nested lists or None)],
        values normalised as its heatmap shows them (NaN: no connection); or None."""
        self._reuse = payload
        self._reuse_colouring = None if payload is None else _colouring_of(payload)
        self._apply_colouring()

    # ------------------------------------------------------------------ layout
    def _schedule(self) -> None:
        self._timer.start()

    def _when_shown_request(self) -> None:
        self._when_shown.request()

    def is_up_to_date(self) -> bool:
        lay = self.view.layout_
        return (self.config is not None and lay is not None and not self._timer.isActive()
                and not self._when_shown.pending and lay.config == self.config)

    def _relayout(self) -> None:
        cfg = self.config
        if cfg is None:
            return
        t0 = time.perf_counter()
        plan = arch.plan(cfg)
        base_plan = None
        if self.baseline_config is not None and self.baseline_check.isChecked():
            base_plan = arch.plan(self.baseline_config)
        scale_in = max((u.in_channels for u in plan.units), default=1)
        scale_macs = max((u.macs for u in plan.units), default=1)
        if base_plan is not None:
            scale_in = max(scale_in, max((u.in_channels for u in base_plan.units), default=1))
            scale_macs = max(scale_macs, max((u.macs for u in base_plan.units), default=1))
        lay = dl.layout(plan, self._family, self.expanded, scale_in=scale_in, scale_macs=scale_macs)
        base = None
        if base_plan is not None:
            base = dl.layout(base_plan, arch.family_of(self.baseline_config), self.expanded, scale_in=scale_in,
                             scale_macs=scale_macs)
        self.view.colouring = self._colouring()  # (before the layout: its arcs' paths are built once)
        self.view.set_layout(lay, base)
        selected = self.view.selected
        if selected and selected not in lay.by_path and selected not in lay.inside:
            self.view.set_selected("")  # (that unit is gone: a shallower block, another family)
            self.readout.setText(HINT)
        elif selected:
            self.readout.setText(self.describe_path(selected))
        self._update_hidden_text()
        self.last_layout_ms = (time.perf_counter() - t0) * 1000
        self.diagramUpdated.emit(cfg)

    def set_all_expanded(self, on: bool) -> None:
        lay = self.view.layout_
        if lay is None:
            return
        for row in lay.rows:
            if row.block is not None and row.depth:
                self.expanded[row.block] = on
        self._relayout()

    def _toggle(self, block: int, expand: bool) -> None:
        self.expanded[block] = expand
        self._relayout()

    def expand_block(self, block: int, on: bool = True) -> float:
        """Expand (or collapse) ``block`` now; the milliseconds it took to lay out and paint."""
        t0 = time.perf_counter()
        self._toggle(block, on)
        self.view.repaint()
        return (time.perf_counter() - t0) * 1000

    # ----------------------------------------------------------------- reuse
    def _reuse_matches(self) -> bool:
        r, cfg = self._reuse, self.config
        if r is None or cfg is None:
            return False
        if r["config"] == cfg:
            return True
        try:
            return arch.plan(r["config"]).state_shapes() == arch.plan(cfg).state_shapes()
        except Exception:  # noqa: BLE001 - a configuration of a family no longer registered
            return False

    def _sync_reuse_controls(self) -> None:
        reuse_on = self.colour_combo.currentData() == "reuse"
        self.hide_slider.setEnabled(reuse_on and self._reuse is not None)
        self.hide_label.setEnabled(self.hide_slider.isEnabled())

    def _apply_colouring(self) -> None:
        self.view.set_colouring(self._colouring())
        self._update_hidden_text()

    def _colouring(self) -> Colouring | None:
        """The arcs' colours for the current configuration (None: by structure), saying in the
        reuse line why there are none where reuse was asked for."""
        self._sync_reuse_controls()
        if self.colour_combo.currentData() != "reuse":
            self.reuse_label.setText("")
            return None
        if self._reuse is None:
            self.reuse_label.setText("No reuse measure yet: open a checkpoint in the Feature reuse tab.")
            return None
        if not self._reuse_matches():
            self.reuse_label.setText(f"The Feature reuse tab's checkpoint is another network "
                                     f"({self._reuse['config'].label()}): use its Send to explorer to colour "
                                     "these connections.")
            return None
        self._reuse_colouring.threshold = self.hide_slider.value() / 100
        return self._reuse_colouring

    def _threshold_changed(self, value: int) -> None:
        self.hide_label.setText(f"hide below {value / 100:.2f}")
        self.view.set_threshold(value / 100)
        self._update_hidden_text()

    def hidden_cost(self) -> tuple[int, int, int, int]:
        """(hidden connections, all coloured connections, params, MACs) of the connections below the
        threshold: what the targets spend on reading those feature maps (densegui.core.arch.graph)."""
        c = self.view.colouring
        if c is None or self.config is None:
            return 0, 0, 0, 0
        hidden = total = params = macs = 0
        blocks = {}
        for u in arch.plan(self.config).units:
            if u.sources and u.block is not None:
                blocks.setdefault(u.block, []).append(u)
            elif u.sources and blocks:  # a head reading the last block
                blocks[max(blocks)].append(u)
        for block, readers in blocks.items():
            row_of = {path: j for j, path in enumerate(readers[-1].sources)}  # (the unit reading the whole block)
            for t, u in enumerate(readers):
                for src, ch in zip(u.sources, u.source_channels, strict=True):
                    v = c.values.get((block, row_of[src], t))
                    if v is None:
                        continue
                    total += 1
                    if v < c.threshold:
                        hidden += 1
                        p, m = edge_cost(u, ch)
                        params += p
                        macs += m
        return hidden, total, params, macs

    def _update_hidden_text(self) -> None:
        c = self.view.colouring
        if c is None:
            return
        hidden, total, params, macs = self.hidden_cost()
        text = f"Arcs coloured by {c.label}; grey dots: within its noise floor."
        if c.threshold > 0:
            cfg_plan = arch.plan(self.config)
            text += (f" Hidden below {c.threshold:.2f}: {hidden:,} of {total:,} connections, carrying "
                     f"{si(params)} of {si(cfg_plan.params)} params and {si(macs)} of {si(cfg_plan.macs)} MACs.")
        self.reuse_label.setText(text)

    def _painted(self, _t_end: float, _ms: float) -> None:
        step = self.view.thinning()
        self.legend.setText(LEGEND if step == 1 else f"At this zoom about 1 in {step} connections of the densest "
                            f"blocks is drawn (each layer's nearest and its block input always; zoom in or export "
                            f"for all) · {LEGEND}")

    # --------------------------------------------------------------- read-out
    def _row_of(self, path: str):
        if self._table is None or self._table.config is not self.config:
            self._table = arch.layer_table(self.config)
        for r in self._table.rows:
            if r.name == path:
                return r
        return None

    def describe_path(self, path: str) -> str:
        lay = self.view.layout_
        if lay is None:
            return path
        item = lay.by_path.get(path) or lay.inside.get(path)
        if item is None:
            return path
        if item.role == "block" and path != item.path:
            return f"{path} (inside a collapsed {self._family.unit}: click it to expand)"
        return self.describe(item)

    def describe(self, item: dl.Item) -> str:
        """The read-out of a drawn unit: shapes, params, MACs, saved activation bytes, sources."""
        if item.role == "block":
            row = self.view.layout_.rows[item.row]
            return f"{row.title} · {row.connections:,} connections (click to expand)"
        u = item.unit
        if item.role == "port":
            return f"input of this {self._family.unit}: the output of {u.path}, {u.out_channels}×{u.out_size}×{u.out_size}"
        text = (f"{u.path} · {u.kind} · in {u.in_channels}×{u.in_size}×{u.in_size} → out "
                f"{u.out_channels}×{u.out_size}×{u.out_size} · {si(u.params)} params · {si(u.macs)} MACs")
        row = self._row_of(u.path)
        if row is not None:
            text += f" · saved for backward {mib(row.saved_naive)}"
            if row.saved_efficient != row.saved_naive:
                text += f" ({mib(row.saved_efficient)} memory-efficient)"
            text += " per sample"
        if u.sources:
            text += f" · concatenates {len(u.sources)} feature maps"
        return text

    def _hovered(self, item) -> None:
        if item is not None:
            self.readout.setText(self.describe(item))
        elif self.view.selected:
            self.readout.setText(self.describe_path(self.view.selected))

    def _clicked(self, path: str) -> None:
        if path:
            self.readout.setText(self.describe_path(path))
        self.layerSelected.emit(path)

    # ------------------------------------------------------------------ export
    def export(self, path: str | Path) -> Path:
        """Write the whole diagram (every row, as expanded now) to PNG, SVG or PDF by suffix."""
        from densegui.gui.export import save_painting

        if self.view.layout_ is None:
            raise DenseguiError("nothing to export yet: no configuration is drawn.")
        w, h = self.view.scene_size()
        title = self.config.label() if self.config is not None else ""
        return save_painting(path, int(w), int(h), self.view.paint_export, title=title)

    def _export_dialog(self) -> None:
        from densegui.gui.export import ask_save_path

        name = f"{self.config.label() if self.config is not None else 'network'}.svg".replace(" ", "_")
        path = ask_save_path(self, "Export the diagram", name, first="svg")
        if path:
            self.save_to(path)

    def save_to(self, path: str) -> bool:
        """Export to ``path`` and say so (or why not) in the read-out line."""
        try:
            out = self.export(path)
        except DenseguiError as exc:
            self.readout.setText(f"Could not export: {exc}")
            return False
        self.readout.setText(f"Saved {out}")
        return True
