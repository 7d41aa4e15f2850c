"""The headline above the tabs: parameters, MACs, final channels, training activations.

Four cards with the current configuration's figures and, when a baseline is
pinned, their deltas. Like the channel plots it only renders a
:class:`~densegui.core.arch.table.LayerTable` of any family (``set_table`` / ``set_baseline``);
nothing is computed here beyond formatting.
"""

from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from densegui.core.arch import registry as arch
from densegui.core.arch.family import MEMORY_EFFICIENT
from densegui.core.arch.table import LayerTable
from densegui.core.units import human_bytes
from densegui.gui.widgets import Card, FitLabel


def _signed(n: float, fmt: str) -> str:
    return ("+" if n > 0 else "") + format(n, fmt) if n != 0 else "±0"


def _pct(new: float, old: float) -> str:
    if old == 0:
        return ""
    return f" ({_signed(100.0 * (new - old) / old, '.1f')}%)"


class HeadlineCard(Card):
    """One headline figure, with a line for its delta against the baseline."""

    def __init__(self, title: str, value_name: str, tip: str) -> None:
        super().__init__(title, value_name + "Card", tip)
        self.value.setObjectName(value_name)
        self.detail.setObjectName(value_name.replace("Label", "Detail"))
        self.delta = FitLabel("")
        self.delta.setObjectName(value_name.replace("Label", "Delta"))
        self.delta.setStyleSheet("font-size: 11px;")
        # The delta takes the detail's line while a baseline is pinned: pinning moves nothing.
        self.slot = QStackedWidget()
        self.layout_.replaceWidget(self.detail, self.slot)
        self.slot.addWidget(self.detail)
        self.slot.addWidget(self.delta)
        self.slot.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.slot.setFixedHeight(max(self.detail.sizeHint().height(), self.delta.sizeHint().height()))

    def set_delta(self, text: str | None, better: bool | None = None) -> None:
        if text is None:
            self.slot.setCurrentWidget(self.detail)
            return
        color = "#5b6b7b" if better is None else ("#1b7f3b" if better else "#b3261e")
        self.delta.setStyleSheet(f"font-size: 11px; color: {color};")
        self.delta.setText(text)
        self.slot.setCurrentWidget(self.delta)


class Headline(QWidget):
    """The four headline cards and the baseline line under them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("headline")
        self.table: LayerTable | None = None
        self.baseline: LayerTable | None = None
        self.params_card = HeadlineCard("Parameters", "paramsLabel", "Trainable parameters plus BatchNorm affine "
                                        "weights (running statistics are buffers, not parameters).")
        self.macs_card = HeadlineCard("MACs", "macsLabel", "Multiply-accumulates of the convolutions and the "
                                      "classifier for one image (BatchNorm, ReLU, pooling not counted). "
                                      "FLOPs ≈ 2 × MACs.")
        self.channels_card = HeadlineCard("Final channels", "channelsLabel", "Feature maps entering the "
                                          "classifier: the last block's input plus depth·k.")
        self.memory_card = HeadlineCard("Training activations", "memoryLabel", "Bytes autograd keeps from the "
                                        "forward pass for the backward pass, per image, float32: naive (every "
                                        "layer stores its own concatenation) vs memory-efficient (shared storage "
                                        "+ recomputation).")
        self.cards = (self.params_card, self.macs_card, self.channels_card, self.memory_card)
        self.baseline_label = FitLabel("")
        self.baseline_label.setObjectName("baselineLabel")
        self.baseline_label.setStyleSheet("color: #5b6b7b; font-size: 11px;")
        self.baseline_label.hide()
        # Always shown (blank for a configuration that is no preset): showing and hiding it on
        # every change would re-lay out the whole window.
        self.published_label = FitLabel(" ")
        self.published_label.setObjectName("publishedLabel")
        self.published_label.setStyleSheet("color: #5b6b7b; font-size: 11px;")
        grid = QGridLayout()
        grid.setSpacing(8)
        for i, card in enumerate(self.cards):
            grid.addWidget(card, 0, i)
            grid.setColumnStretch(i, 1)
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.addLayout(grid)
        self._line = line = QHBoxLayout()  # one line for both: pinning a baseline moves nothing below
        line.setSpacing(12)
        line.addWidget(self.published_label, 1)
        line.addWidget(self.baseline_label, 1)
        v.addLayout(line)

    def set_table(self, table: LayerTable | None) -> None:
        self.table = table
        self._update()

    def set_baseline(self, table: LayerTable | None) -> None:
        self.baseline = table
        self._update()

    def _update(self) -> None:
        t, b = self.table, self.baseline
        if t is None:
            return
        cfg = t.config
        self._show_published(cfg)
        naive, eff = t.naive_bytes, t.efficient_bytes
        self.params_card.value.setText(f"{t.params:,}")
        self.params_card.detail.setText(f"{t.params / 1e6:.2f} M · {t.params * 4 / 2**20:.1f} MiB fp32")
        self.macs_card.value.setText(f"{t.macs / 1e9:.3f} G")
        self.macs_card.detail.setText(f"{2 * t.macs / 1e9:.2f} GFLOPs at {cfg.input_size}² · {t.macs:,}")
        self.channels_card.value.setText(f"{final_channels(t):,}")
        self.channels_card.detail.setText(f"→ {cfg.num_classes:,} classes · {unit_layers(t)}")
        family = arch.family_of(cfg)
        if family.can(MEMORY_EFFICIENT):
            self.memory_card.value.setText(f"{human_bytes(naive)} → {human_bytes(eff)}")
            used = "efficient on" if cfg.memory_efficient else "efficient off"
            self.memory_card.detail.setText(f"per image · {eff / naive:.0%} of naive · {used}")
            self.memory_card.detail.setToolTip("")
        else:
            self.memory_card.value.setText(human_bytes(naive))
            self.memory_card.detail.setText("per image · no memory-efficient mode")
            self.memory_card.detail.setToolTip(f"{family.title}s have no memory-efficient mode: the figure is what "
                                               "autograd keeps for backward in a training step.")
        if b is None:
            for card in (self.params_card, self.macs_card, self.channels_card, self.memory_card):
                card.set_delta(None)
            self.baseline_label.hide()
            return
        bc = b.config
        self.params_card.set_delta(f"{_signed(t.params - b.params, ',')}{_pct(t.params, b.params)} vs baseline",
                                   None if t.params == b.params else t.params < b.params)
        self.macs_card.set_delta(f"{_signed((t.macs - b.macs) / 1e9, '.3f')} G{_pct(t.macs, b.macs)} vs baseline",
                                 None if t.macs == b.macs else t.macs < b.macs)
        fc, bfc = final_channels(t), final_channels(b)
        self.channels_card.set_delta(f"{_signed(fc - bfc, ',')}{_pct(fc, bfc)} vs baseline")
        bn = b.naive_bytes
        self.memory_card.set_delta(f"naive {_signed((naive - bn) / 2**20, '.1f')} MiB{_pct(naive, bn)} vs baseline",
                                   None if naive == bn else naive < bn)
        name = arch.preset_of(bc)
        self.baseline_label.setText(f"Baseline (grey dashed): {name + ' — ' if name else ''}{b.params:,} parameters · "
                                    f"{bc.describe()}")
        self.baseline_label.show()
        self._share_line()

    def _share_line(self) -> None:
        """The baseline's line takes all the width a blank published line leaves."""
        blank = not self.published_label.text().strip()
        self._line.setStretchFactor(self.published_label, 0 if blank else 1)

    def _show_published(self, cfg) -> None:
        name = arch.preset_of(cfg)
        results = arch.PRESETS[name].published if name else ()
        if not results:
            self.published_label.setText(" ")
            return
        shown = " · ".join(f"{p.dataset} {p.metric} {p.value:g}% ({p.source})" for p in results[:3])
        more = f" · +{len(results) - 3} more in the preset's tooltip" if len(results) > 3 else ""
        self.published_label.setText(f"Published for {name}: {shown}{more}")


def final_channels(table: LayerTable) -> int:
    """Feature maps entering the classifier (the head row's input), for any family."""
    return table.rows[-1].in_channels


def unit_layers(table: LayerTable) -> str:
    """How many layers the blocks or stages hold, in the family's words: "58 dense layers",
    "16 residual blocks"."""
    rows = [r for r in table.rows if r.index is not None]
    layer = arch.family_of(table.config).layer
    kinds = {r.kind for r in rows}
    kind = f"{kinds.pop()} " if len(kinds) == 1 and layer not in kinds else ""
    return f"{len(rows)} {kind}{layer}s"
