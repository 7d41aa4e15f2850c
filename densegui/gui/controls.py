"""The controls dock: the editable fields of any family as widgets, one widget factory per field kind.

A family states its editable fields (:class:`densegui.core.arch.family.Field`); :data:`FACTORIES`
maps a field's kind to the widget that edits it ("int" a slider or, for wide ranges, a spin box;
"float" a slider; "bool" a check box; "choice" a combo box; "spec" a combo box of its choices and,
for a choice that takes a number ("window:W"), a spin box for it; "depths" one slider per unit, with
the "ints" fields beside them). A family's page of controls (:class:`FamilyControls`) is built the first
time one of its configurations is shown and kept: a preset or file of another family shows that
family's page and hides the others, and an edit never rebuilds a widget.

Each user edit rebuilds the configuration from the shown page, validates it and emits either
``configChanged(cfg)`` (valid) or ``configInvalid(message)`` (the one-line reason from the
configuration's ``validate``); nothing here raises. Any edit turns the preset selector into
"custom (from <origin>)", the origin being the preset it was edited from or the file it was opened from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from densegui.core.arch import registry as arch
from densegui.core.arch.family import EXPLORE, Family, Field
from densegui.core.errors import ConfigError
from densegui.gui.widgets import ClampLabel, FineDrag

CUSTOM = "__custom__"
FINE_TIP = "\n\nShift+drag: one step at a time. Or type a value in the box beside it."
SLIDER_STEPS = 256  # an int field with a wider range gets a spin box (a slider step would be several values)
MAX_UNITS = 16  # the unit-count spin box's top (RDNet's most stages; a family's validation says when it allows fewer)
INT_MAX = 2**31 - 1
SPEC_NUMBER = 4  # the number a "spec" choice that takes one starts at (window:4), within the field's range

# Longer tooltips than a field's one-line help, by field name ("<name>.count" / "<name>.item": the
# unit-count spin box and one unit's slider of a "depths" field; "<name>=<choice>": one line per
# choice, those of the field's choices shown). A field without one shows its help.
TIPS = {
    "preset": "Start from a published network of any family: each entry's tooltip gives its published "
              "results. Any edit below turns the selection into “custom (from …)”.",
    "growth_rate": "Growth rate k: the number of feature maps every dense layer adds to the block's "
                   "collective knowledge. Layer ℓ of a block with k0 input channels sees k0 + (ℓ−1)·k "
                   "channels. The paper uses k = 12–40 (CIFAR) and k = 32 or 48 (ImageNet).",
    "compression": "Compression θ (0 < θ ≤ 1): a transition layer maps m channels to ⌊θ·m⌋. "
                   "θ = 1 is the basic DenseNet; θ = 0.5 gives DenseNet-C (with bottlenecks, DenseNet-BC).",
    "bottleneck": "Bottleneck (the “B” in DenseNet-BC): a 1×1 convolution to bn_size·k channels "
                  "before each 3×3 convolution, which cuts the parameters and compute of wide concatenations.",
    "bn_size": "bn_size: width of the bottleneck 1×1 convolution as a multiple of k (the paper uses 4, "
               "i.e. 4k feature maps). Only used when the bottleneck is on.",
    "block_depths.count": "Number of dense blocks. The ImageNet nets use 4, the CIFAR nets 3; blocks are "
                          "separated by transition layers (BN, 1×1 conv, 2×2 average pool) that halve the "
                          "resolution.",
    "block_depths.item": "Dense layers in block {i}. Inside a block every layer receives the feature maps "
                         "of all preceding layers, so its input channels grow linearly with depth.",
    "init_features": "Channels produced by the stem convolution. “2k (auto)” follows the paper "
                     "(2k for the ImageNet nets and DenseNet-BC); the basic CIFAR nets use 16.",
    "stem=imagenet": "imagenet: 7×7 convolution, stride 2, then BN, ReLU and 3×3 max pooling, stride 2 "
                     "(÷4 resolution).",
    "stem=cifar": "cifar: a single 3×3 convolution at full resolution.",
    "stem=deep": "deep (timm's densenet264d): three 3×3 convolutions, the first with stride 2, each with BN "
                 "and ReLU, then the 3×3 max pooling (÷4 resolution).",
    "input_size": "Side of the square input image in pixels (224 for ImageNet, 32 for CIFAR). The stem and "
                  "every downsampling after it shrink the resolution, so too small an input leaves nothing "
                  "for the last {unit}.",
    "in_channels": "Channels of the input image (3 for RGB, 1 for grey-scale).",
    "num_classes": "Outputs of the final fully connected classifier (1000 for ImageNet, 10 for CIFAR-10).",
    "drop_rate": "Dropout rate after each dense layer's 3×3 convolution (the paper uses 0.2 "
                 "without data augmentation, 0 otherwise).",
    "memory_efficient": "Memory-efficient implementation (Pleiss et al. 2017): recompute the concatenation, "
                        "BN, ReLU and 1×1 conv in the backward pass, so training activation memory grows "
                        "linearly instead of quadratically with depth, at ~15–20% more time. "
                        "Does not change parameters or MACs.",
}
# A control greyed out while the "bool" field it depends on is off (field name → that field's name).
REQUIRES = {"bn_size": "bottleneck"}


def default_preset() -> str:
    """The preset the explorer starts from (the default family's)."""
    return arch.default_family().default_preset


def preset_tooltip(name: str) -> str:
    """A preset's description and its published results, one per line."""
    preset = arch.presets()[name]
    lines = [preset.description] + [f"{p.dataset}: {p.metric} {p.value:g}% ({p.source})" for p in preset.published]
    return "\n".join(lines)


def _camel(text: str) -> str:
    """"growth_rate" → "growthRate", "dense block" → "denseBlock" (object names)."""
    head, *rest = re.split(r"[_\W]+", text.strip())
    return head.lower() + "".join(w[:1].upper() + w[1:] for w in rest)


def _words(text: str) -> str:
    return text[:1].upper() + text[1:]


def _tip(field: Field, family: Family, key: str = "", default: str = "", **fmt: Any) -> str:
    tip = TIPS.get(field.name + key)
    if tip is None and not key and field.choices:
        lines = [TIPS[f"{field.name}={c}"] for c in field.choices if f"{field.name}={c}" in TIPS]
        tip = " ".join(lines) if len(lines) == len(field.choices) else None
    if tip is None:
        return default or field.help or field.label
    return tip.format(unit=family.unit, **fmt)


def _limits(field: Field) -> tuple[int, int]:
    return (int(field.lo) if field.lo is not None else 0, int(field.hi) if field.hi is not None else INT_MAX)


def _slider(name: str, lo: int, hi: int, tip: str) -> QLabeledSlider:
    s = QLabeledSlider(Qt.Orientation.Horizontal)
    s.setObjectName(name)
    s.setRange(lo, hi)
    s.setToolTip(tip + FINE_TIP if hi - lo > 16 else tip)
    if hi - lo > 16:
        FineDrag(s._slider)  # (superqt's inner QSlider: the one the mouse presses)
    return s


def _spin(name: str, lo: int, hi: int, tip: str) -> QSpinBox:
    s = QSpinBox()
    s.setObjectName(name)
    s.setRange(lo, hi)
    s.setToolTip(tip)
    s.setKeyboardTracking(False)  # typing "224" must not pass through the invalid "2" and "22"
    s.setAccelerated(True)
    return s


# ----------------------------------------------------------------------------- one widget per field kind
@dataclass
class Control:
    """One field's widget: ``get()`` reads its value, ``set(value)`` shows one, ``changed`` is its edit
    signal. ``labelled``: the widget carries its own text (a check box), so its form row has no label."""

    field: Field
    widget: QWidget
    get: Callable[[], Any]
    set: Callable[[Any], None]
    changed: Any
    labelled: bool = False


def _int_control(field: Field, family: Family, tip: str = "", index: str = "") -> Control:
    """A slider, or a spin box for a range too wide to drag or an optional value, or a check box for
    a per-unit 0/1 flag (a stage that downsamples); ``index``: the unit of a per-unit field (its
    object name ends with it)."""
    lo, hi = _limits(field)
    name, tip = _camel(field.name), tip or _tip(field, family)
    if index and (lo, hi) == (0, 1) and not field.optional:
        check = QCheckBox()
        check.setObjectName(f"{name}Toggle{index}")
        check.setToolTip(tip)
        return Control(field, check, lambda: int(check.isChecked()), lambda v: check.setChecked(bool(v)),
                       check.toggled)
    if field.optional or hi - lo > SLIDER_STEPS:
        none = lo - 1  # the spin box's "auto" value: None, a derived default
        spin = _spin(f"{name}Spin{index}", none if field.optional else lo, hi, tip)
        if field.optional:
            auto = re.search(r"\(default ([^)]+)\)", field.help)
            spin.setSpecialValueText(f"{auto.group(1)} (auto)" if auto else "auto")
        if "in pixels" in field.help:
            spin.setSuffix(" px")
        return Control(field, spin, lambda: None if field.optional and spin.value() == none else spin.value(),
                       lambda v: spin.setValue(none if v is None else int(v)), spin.valueChanged)
    slider = _slider(f"{name}Slider{index}", lo, hi, tip)
    return Control(field, slider, lambda: int(slider.value()), lambda v: slider.setValue(int(v)), slider.valueChanged)


def _float_control(field: Field, family: Family) -> Control:
    name, tip = _camel(field.name), _tip(field, family)
    if field.lo is None or field.hi is None or field.optional:
        spin = QDoubleSpinBox()
        spin.setObjectName(name + "Spin")
        spin.setDecimals(2)
        spin.setSingleStep(0.01)
        lo = float(field.lo) if field.lo is not None else -1e9
        none = lo - 0.01
        spin.setRange(none if field.optional else lo, float(field.hi) if field.hi is not None else 1e9)
        if field.optional:
            spin.setSpecialValueText("auto")
        spin.setKeyboardTracking(False)
        spin.setToolTip(tip)
        return Control(field, spin, lambda: None if field.optional and spin.value() == none else round(spin.value(), 2),
                       lambda v: spin.setValue(none if v is None else float(v)), spin.valueChanged)
    slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
    slider.setObjectName(name + "Slider")
    slider.setRange(float(field.lo), float(field.hi))
    slider.setSingleStep(0.01)
    slider.setDecimals(2)
    slider.setToolTip(tip + FINE_TIP)
    FineDrag(slider._slider)
    return Control(field, slider, lambda: round(float(slider.value()), 2), lambda v: slider.setValue(round(v, 2)),
                   slider.valueChanged)


def _bool_control(field: Field, family: Family) -> Control:
    check = QCheckBox(_words(field.label))
    check.setObjectName(_camel(field.name) + "Toggle")
    check.setToolTip(_tip(field, family))
    return Control(field, check, check.isChecked, lambda v: check.setChecked(bool(v)), check.toggled, labelled=True)


def _choice_control(field: Field, family: Family) -> Control:
    combo = QComboBox()
    combo.setObjectName(_camel(field.name) + "Combo")
    combo.addItems([str(c) for c in field.choices])
    combo.setToolTip(_tip(field, family))
    choices = {str(c): c for c in field.choices}
    return Control(field, combo, lambda: choices.get(combo.currentText(), combo.currentText()),
                   lambda v: combo.setCurrentText(str(v)), combo.currentIndexChanged)


class SpecEditor(QWidget):
    """A "spec" field: a combo box of its choices ("window:W" shown as "window") and a spin box for
    the number of a choice that takes one, shown only while such a choice is picked. ``edited``: the
    user changed the value (never while :meth:`set_value` shows one)."""

    edited = Signal()

    def __init__(self, field: Field, family: Family) -> None:
        super().__init__()
        name, tip = _camel(field.name), _tip(field, family)
        self.setObjectName(name + "Editor")
        self.setToolTip(tip)
        self._loading = False
        self.combo = QComboBox()
        self.combo.setObjectName(name + "Combo")
        self.combo.setToolTip(tip)
        for choice in field.choices:
            self.combo.addItem(choice.partition(":")[0], choice)
        lo, hi = _limits(field)
        numbered = [c for c in field.choices if ":" in c]
        letter = numbered[0].partition(":")[2] if numbered else "N"
        spin_tip = f"{letter} of {' or '.join(numbered) or 'a choice'}: a whole number from {lo} to {hi}. {tip}"
        self.spin = _spin(name + "Spin", lo, hi, spin_tip)
        self.spin.setPrefix(f"{letter} = ")
        self.spin.setValue(min(max(SPEC_NUMBER, lo), hi))
        h = QHBoxLayout(self)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self.combo, 1)
        h.addWidget(self.spin)
        self._show_spin()
        self.combo.currentIndexChanged.connect(self._combo_changed)
        self.spin.valueChanged.connect(self._spin_changed)

    def value(self) -> str:
        choice = self.combo.currentData()
        return f"{choice.partition(':')[0]}:{self.spin.value()}" if ":" in choice else choice

    def set_value(self, value: Any) -> None:
        """Show ``value`` ("window:8": "window" and 8); one no choice matches leaves the widgets."""
        word, _, number = str(value).partition(":")
        index = next((i for i in range(self.combo.count())
                      if self.combo.itemData(i).partition(":")[0].lower() == word.strip().lower()), -1)
        self._loading = True
        try:
            if index >= 0:
                self.combo.setCurrentIndex(index)
            if number.strip().isdecimal():
                self.spin.setValue(int(number))
            self._show_spin()
        finally:
            self._loading = False

    def _takes_number(self) -> bool:
        return ":" in (self.combo.currentData() or "")

    def _show_spin(self) -> None:
        self.spin.setVisible(self._takes_number())

    def _combo_changed(self, _index: int) -> None:
        self._show_spin()
        if not self._loading:
            self.edited.emit()

    def _spin_changed(self, _value: int) -> None:
        if not self._loading and self._takes_number():
            self.edited.emit()


def _spec_control(field: Field, family: Family) -> Control:
    editor = SpecEditor(field, family)
    return Control(field, editor, editor.value, editor.set_value, editor.edited)


FACTORIES: dict[str, Callable[[Field, Family], Control]] = {
    "int": _int_control, "float": _float_control, "bool": _bool_control, "choice": _choice_control,
    "spec": _spec_control,
}
UNIT_KINDS = ("depths", "ints")  # one value per unit: the rows of :class:`UnitRows`


class UnitRows(QWidget):
    """A family's per-unit fields: a unit-count spin box, then one row per unit with its depth slider
    (the "depths" field) and its value of every "ints" field (a stage's width)."""

    edited = Signal()

    def __init__(self, family: Family, depths: Field, ints: list[Field]) -> None:
        super().__init__()
        self.family, self.depths, self.ints = family, depths, ints
        self._loading = False
        unit = _camel(family.unit)
        self.count_spin = _spin(unit + "CountSpin", 1, MAX_UNITS,
                                _tip(depths, family, ".count", f"Number of {family.words(True)}."))
        self.count_spin.setKeyboardTracking(True)
        self.rows: list[tuple[QLabel, list[Control]]] = []
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        count_label = QLabel(_words(family.words(True)))
        count_label.setToolTip(self.count_spin.toolTip())
        form.addRow(count_label, self.count_spin)
        self.grid = QGridLayout()
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(2)
        self.grid.setColumnStretch(1, 1)
        if ints:  # column heads: what the slider and the boxes beside it are
            for col, f in enumerate([depths, *ints], 1):
                head = QLabel(_words(f.label))
                head.setToolTip(f.help)
                head.setStyleSheet("color: palette(mid); font-size: 11px;")
                self.grid.addWidget(head, 0, col)
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(4)
        v.addLayout(form)
        v.addLayout(self.grid)
        self.count_spin.valueChanged.connect(self._count_changed)

    def values(self) -> dict[str, tuple]:
        out = {self.depths.name: tuple(controls[0].get() for _, controls in self.rows)}
        for j, f in enumerate(self.ints, 1):
            out[f.name] = tuple(controls[j].get() for _, controls in self.rows)
        return out

    def load(self, cfg: Any) -> None:
        depths = tuple(getattr(cfg, self.depths.name))
        self._loading = True
        try:
            self.count_spin.setValue(len(depths))
            self._ensure_rows(len(depths))
            for i, (_, controls) in enumerate(self.rows):
                controls[0].set(depths[i])
                for j, f in enumerate(self.ints, 1):
                    values = tuple(getattr(cfg, f.name))
                    if i < len(values):
                        controls[j].set(values[i])
        finally:
            self._loading = False

    def depth_sliders(self) -> list[QWidget]:
        return [controls[0].widget for _, controls in self.rows]

    def _count_changed(self, count: int) -> None:
        if self._loading:
            return
        self._loading = True
        try:
            self._ensure_rows(count)
        finally:
            self._loading = False
        self.edited.emit()

    def _changed(self, *_args) -> None:
        if not self._loading:
            self.edited.emit()

    def _ensure_rows(self, count: int) -> None:
        unit, words = _camel(self.family.unit), _words(self.family.unit)
        while len(self.rows) < count:
            i = len(self.rows) + 1
            tip = _tip(self.depths, self.family, ".item", f"{words} {i}: {self.depths.help}", i=i)
            label = QLabel(f"{words} {i}")
            label.setToolTip(tip)
            label.setMinimumWidth(label.fontMetrics().horizontalAdvance(f"{words} {MAX_UNITS}") + 2)
            lo, hi = _limits(self.depths)
            depth = _slider(f"{unit}DepthSlider{i}", lo, hi, tip)
            controls = [Control(self.depths, depth, lambda s=depth: int(s.value()), lambda v, s=depth: s.setValue(int(v)),
                                depth.valueChanged)]
            for f in self.ints:
                controls.append(_int_control(f, self.family, f"{words} {i}: {f.help}", str(i)))
                if not isinstance(controls[-1].widget, QCheckBox):
                    controls[-1].widget.setMinimumWidth(64)
            if self.rows:  # a new unit starts as a copy of the last one
                for new, old in zip(controls, self.rows[-1][1]):
                    new.set(old.get())
            else:
                controls[0].set(lo)
            row = len(self.rows) + 1
            self.grid.addWidget(label, row, 0)
            for col, c in enumerate(controls, 1):
                if isinstance(c.widget, QCheckBox):  # (a box under its column head, not stretched)
                    self.grid.addWidget(c.widget, row, col, Qt.AlignmentFlag.AlignHCenter)
                else:
                    self.grid.addWidget(c.widget, row, col)
                c.changed.connect(self._changed)
            self.rows.append((label, controls))
        while len(self.rows) > count:
            label, controls = self.rows.pop()
            for w in (label, *(c.widget for c in controls)):
                self.grid.removeWidget(w)
                w.hide()
                w.setParent(None)
                w.deleteLater()


# ----------------------------------------------------------------------------- one page per family
class FamilyControls(QWidget):
    """The controls of one family's fields, in three groups: its units (depths and per-unit values),
    the other architectural fields, and the run settings (input size, …), each in field order."""

    edited = Signal()

    def __init__(self, family: Family, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.family = family
        self.setObjectName(_camel(family.name) + "Controls")
        self._loading = False
        self.base: Any = None  # the configuration last shown: what the fields do not cover comes from it
        self.controls: dict[str, Control] = {}
        self.units: UnitRows | None = None

        depths = next((f for f in family.fields if f.name == family.depths and f.kind == "depths"), None)
        ints = [f for f in family.fields if f.kind == "ints"] if depths is not None else []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if depths is not None:
            self.units = UnitRows(family, depths, ints)
            self.units.edited.connect(self._changed)
            box, form = _group(f"{family.title} {family.words(True)}")
            form.addRow(self.units)
            layout.addWidget(box)
        scalar = [f for f in family.fields if f.kind in FACTORIES]
        for title, fields in (("Hyperparameters", [f for f in scalar if not f.run_setting]),
                              ("Run settings", [f for f in scalar if f.run_setting])):
            if not fields:
                continue
            box, form = _group(title)
            for f in fields:
                c = FACTORIES[f.kind](f, family)
                self.controls[f.name] = c
                c.changed.connect(self._changed)
                if c.labelled:
                    form.addRow(c.widget)
                else:
                    label = QLabel(_words(f.label))
                    label.setToolTip(c.widget.toolTip())
                    form.addRow(label, c.widget)
            layout.addWidget(box)
        # Fields of a kind no factory knows stay as the shown configuration has them.

    def control(self, name: str) -> QWidget:
        """The widget of field ``name`` (a per-unit field: its unit-count spin box)."""
        if self.units is not None and name in (self.units.depths.name, *(f.name for f in self.units.ints)):
            return self.units.count_spin
        return self.controls[name].widget

    def depth_sliders(self) -> list[QWidget]:
        return self.units.depth_sliders() if self.units is not None else []

    def load(self, cfg: Any) -> None:
        """Show ``cfg`` (no signal)."""
        self.base = cfg
        self._loading = True
        try:
            if self.units is not None:
                self.units.load(cfg)
            for name, c in self.controls.items():
                c.set(getattr(cfg, name))
            self._update_enabled()
        finally:
            self._loading = False

    def current_config(self) -> Any:
        """The configuration the widgets show (not validated)."""
        values = {name: c.get() for name, c in self.controls.items()}
        if self.units is not None:
            values.update(self.units.values())
        return self.base.replace(**values)

    def _changed(self, *_args) -> None:
        if self._loading:
            return
        self._update_enabled()
        self.edited.emit()

    def _update_enabled(self) -> None:
        for name, needed in REQUIRES.items():
            if name in self.controls and needed in self.controls:
                self.controls[name].widget.setEnabled(bool(self.controls[needed].get()))


def _group(title: str) -> tuple[QGroupBox, QFormLayout]:
    box = QGroupBox(title)
    f = QFormLayout(box)
    f.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    f.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    f.setContentsMargins(8, 6, 8, 6)
    return box, f


# ----------------------------------------------------------------------------- the dock's widget
class ControlsWidget(QWidget):
    """The preset selector and the shown family's controls, with stable objectNames."""

    configChanged = Signal(object)  # a validated configuration of any family
    configInvalid = Signal(str)  # why the edited combination cannot be built

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("controls")
        self._loading = False
        self._base_preset = default_preset()
        self._origin: str | None = self._base_preset  # a preset's name, a file's name, or None (unknown)
        self.pages: dict[str, FamilyControls] = {}  # family name → its controls, built on first use
        self.page: FamilyControls | None = None  # the shown one

        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.setToolTip(TIPS["preset"])
        last = None
        for name, preset in arch.presets().items():
            family = arch.family_of(preset.config)
            if not family.can(EXPLORE):  # (its presets can still be pinned as the baseline)
                continue
            if last is not None and family is not last:
                self.preset_combo.insertSeparator(self.preset_combo.count())
            last = family
            self.preset_combo.addItem(name, name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, preset_tooltip(name),
                                          Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.insertSeparator(self.preset_combo.count())
        self.preset_combo.addItem(self._custom_text(), CUSTOM)
        self.preset_combo.currentIndexChanged.connect(self._preset_selected)
        self.preset_desc = ClampLabel(lines=2)  # always two lines: an edit must not move the sliders
        self.preset_desc.setObjectName("presetDescription")
        self.preset_desc.setStyleSheet("color: palette(mid); font-size: 11px;")

        preset_box, f = _group("Preset")
        f.addRow(self.preset_combo)
        f.addRow(self.preset_desc)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self._layout.addWidget(preset_box)
        self._layout.addStretch(1)

    # ------------------------------------------------------------------ public
    def preset_name(self) -> str | None:
        """The selected preset, or None for a custom configuration."""
        data = self.preset_combo.currentData()
        return None if data == CUSTOM else data

    def base_preset(self) -> str:
        return self._base_preset

    def origin(self) -> str | None:
        """What the shown configuration came from: a preset's or a file's name (None: unknown)."""
        return self._origin

    def family(self) -> Family | None:
        """The family of the shown controls."""
        return self.page.family if self.page is not None else None

    def control(self, name: str) -> QWidget:
        """The shown family's widget for field ``name``."""
        assert self.page is not None
        return self.page.control(name)

    @property
    def depth_sliders(self) -> list[QWidget]:
        """The shown family's per-unit depth sliders."""
        return self.page.depth_sliders() if self.page is not None else []

    def set_config(self, cfg: Any, preset: str | None = None, origin: str | None = None) -> None:
        """Show ``cfg`` (of any family) in its family's widgets (no signal). ``preset`` names it if it
        is a preset; otherwise the selector shows "custom (from <origin>)", ``origin`` naming the
        preset it was edited from or the file it was opened from (None: plain "custom")."""
        family = arch.family_of(cfg)
        self._loading = True
        try:
            presets = arch.presets()
            if preset is not None and preset in presets:
                self._base_preset = self._origin = preset
                self.preset_combo.setCurrentIndex(self.preset_combo.findData(preset))
            else:
                self._origin = origin
                if origin in presets:
                    self._base_preset = origin
                elif (self._base_preset not in presets
                      or arch.family_of(presets[self._base_preset].config) is not family):
                    self._base_preset = family.default_preset
                self._show_custom()
            self._update_description()
            self._show_page(family).load(cfg)
        finally:
            self._loading = False

    def current_config(self) -> Any:
        """The configuration the widgets show (not validated)."""
        assert self.page is not None
        return self.page.current_config()

    def emit_current(self) -> None:
        """Validate the widgets' configuration and emit the outcome."""
        cfg = self.current_config()
        try:
            cfg.validate()
        except ConfigError as exc:
            self.configInvalid.emit(str(exc))
            return
        self.configChanged.emit(cfg)

    # --------------------------------------------------------------- internals
    def _show_page(self, family: Family) -> FamilyControls:
        page = self.pages.get(family.name)
        if page is None or page.family is not family:  # (a family registered again is a new family)
            if page is not None:
                page.deleteLater()
            page = self.pages[family.name] = FamilyControls(family, self)
            page.edited.connect(self._edited)
            self._layout.insertWidget(self._layout.count() - 1, page)
        if page is not self.page:
            for other in self.pages.values():
                other.setVisible(other is page)
            self.page = page
        return page

    def _show_custom(self) -> None:
        index = self.preset_combo.findData(CUSTOM)
        self.preset_combo.setItemText(index, self._custom_text())
        self.preset_combo.setCurrentIndex(index)

    def _custom_text(self) -> str:
        return "custom" if self._origin is None else f"custom (from {self._origin})"

    def _update_description(self) -> None:
        name = self.preset_name()
        presets = arch.presets()
        if name is None and self._origin in presets:
            self.preset_desc.setText(f"Edited from {presets[self._origin].description}.")
        elif name is None:
            self.preset_desc.setText("A custom configuration." if self._origin is None
                                     else f"Loaded from {self._origin}.")
        else:
            p = presets[name]
            self.preset_desc.setText(f"{p.description}; published parameters {p.params:,} ({p.source}).")

    def _preset_selected(self, _index: int) -> None:
        if self._loading:
            return
        name = self.preset_name()
        if name is None:  # "custom" picked by hand: keep the widgets as they are
            self._update_description()
            return
        self.set_config(arch.get_preset(name), name)
        self.emit_current()

    def _edited(self) -> None:
        if self._loading:
            return
        if self.preset_name() is not None:
            self._loading = True
            try:
                self._show_custom()
                self._update_description()
            finally:
                self._loading = False
        self.emit_current()
