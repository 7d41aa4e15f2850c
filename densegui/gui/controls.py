"""The controls dock: every DenseNetConfig field as a widget.

The widgets edit one :class:`DenseNetConfig`. Each user edit rebuilds it,
validates it and emits either ``configChanged(cfg)`` (valid) or
``configInvalid(message)`` (the one-line reason from
:meth:`DenseNetConfig.validate`); nothing here raises. Any edit turns the
preset selector into "custom (from <preset>)".
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
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from densegui.core.arch import registry as arch
from densegui.core.arch.densenet.config import DEFAULT_PRESET, LIMITS, PRESETS, STEMS, DenseNetConfig
from densegui.core.arch.registry import get_preset
from densegui.core.errors import ConfigError

CUSTOM = "__custom__"

TIPS = {
    "preset": "Start from a published network: the ImageNet DenseNets of the paper's Table 1 "
              "(torchvision's densenet121/161/169/201 and densenet264) or the CIFAR nets of Table 2. "
              "Any edit below turns the selection into “custom (from …)”.",
    "growth_rate": "Growth rate k: the number of feature maps every dense layer adds to the block's "
                   "collective knowledge. Layer ℓ of a block with k0 input channels sees k0 + (ℓ−1)·k "
                   "channels. The paper uses k = 12–40 (CIFAR) and k = 32 or 48 (ImageNet).",
    "compression": "Compression θ (0 < θ ≤ 1): a transition layer maps m channels to ⌊θ·m⌋. "
                   "θ = 1 is the basic DenseNet; θ = 0.5 gives DenseNet-C (with bottlenecks, DenseNet-BC).",
    "bottleneck": "Bottleneck (the “B” in DenseNet-BC): a 1×1 convolution to bn_size·k channels "
                  "before each 3×3 convolution, which cuts the parameters and compute of wide concatenations.",
    "bn_size": "bn_size: width of the bottleneck 1×1 convolution as a multiple of k (the paper uses 4, "
               "i.e. 4k feature maps). Only used when the bottleneck is on.",
    "num_blocks": "Number of dense blocks. The ImageNet nets use 4, the CIFAR nets 3; blocks are "
                  "separated by transition layers (BN, 1×1 conv, 2×2 average pool) that halve the resolution.",
    "block_depth": "Dense layers in block {i}. Inside a block every layer receives the feature maps "
                   "of all preceding layers, so its input channels grow linearly with depth.",
    "init_features": "Channels produced by the stem convolution. “2k (auto)” follows the paper "
                     "(2k for the ImageNet nets and DenseNet-BC); the basic CIFAR nets use 16.",
    "stem": "imagenet: 7×7 convolution, stride 2, then BN, ReLU and 3×3 max pooling, stride 2 (÷4 resolution). "
            "cifar: a single 3×3 convolution at full resolution.",
    "input_size": "Side of the square input image in pixels (224 for ImageNet, 32 for CIFAR). "
                  "Every transition halves the resolution, so too small an input leaves nothing for the last block.",
    "in_channels": "Channels of the input image (3 for RGB, 1 for grey-scale).",
    "num_classes": "Outputs of the final fully connected classifier (1000 for ImageNet, 10 for CIFAR-10).",
    "drop_rate": "Dropout rate after each dense layer's 3×3 convolution (the paper uses 0.2 "
                 "without data augmentation, 0 otherwise).",
    "memory_efficient": "Memory-efficient implementation (Pleiss et al. 2017): recompute the concatenation, "
                        "BN, ReLU and 1×1 conv in the backward pass, so training activation memory grows "
                        "linearly instead of quadratically with depth, at ~15–20% more time. "
                        "Does not change parameters or MACs.",
}


def preset_tooltip(name: str) -> str:
    """A preset's description and its published results, one per line."""
    preset = arch.PRESETS[name]
    lines = [preset.description] + [f"{p.dataset}: {p.metric} {p.value:g}% ({p.source})" for p in preset.published]
    return "\n".join(lines)


def _int_limits(name: str) -> tuple[int, int]:
    lo, hi = LIMITS[name]
    return int(lo), int(hi)


def _slider(name: str, lo: int, hi: int, tip: str) -> QLabeledSlider:
    s = QLabeledSlider(Qt.Orientation.Horizontal)
    s.setObjectName(name)
    s.setRange(lo, hi)
    s.setToolTip(tip)
    return s


def _spin(name: str, lo: int, hi: int, tip: str) -> QSpinBox:
    s = QSpinBox()
    s.setObjectName(name)
    s.setRange(lo, hi)
    s.setToolTip(tip)
    s.setKeyboardTracking(False)  # typing "224" must not pass through the invalid "2" and "22"
    s.setAccelerated(True)
    return s


class ControlsWidget(QWidget):
    """Widgets for every DenseNetConfig field, with stable objectNames."""

    configChanged = Signal(object)  # a validated DenseNetConfig
    configInvalid = Signal(str)  # why the edited combination cannot be built

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("controls")
        self._loading = False
        self._base_preset = DEFAULT_PRESET
        self.depth_sliders: list[QLabeledSlider] = []
        self._depth_rows: list[QWidget] = []

        # ---- preset
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.setToolTip(TIPS["preset"])
        for name, preset in PRESETS.items():
            self.preset_combo.addItem(name, name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, preset_tooltip(name),
                                          Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.addItem(f"custom (from {DEFAULT_PRESET})", CUSTOM)
        self.preset_combo.currentIndexChanged.connect(self._preset_selected)
        self.preset_desc = QLabel()
        self.preset_desc.setObjectName("presetDescription")
        self.preset_desc.setWordWrap(True)
        self.preset_desc.setStyleSheet("color: palette(mid); font-size: 11px;")

        # ---- growth
        self.growth_slider = _slider("growthRateSlider", *_int_limits("growth_rate"), TIPS["growth_rate"])
        self.compression_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.compression_slider.setObjectName("compressionSlider")
        self.compression_slider.setRange(0.01, 1.0)
        self.compression_slider.setSingleStep(0.01)
        self.compression_slider.setDecimals(2)
        self.compression_slider.setToolTip(TIPS["compression"])
        self.bottleneck_check = QCheckBox("1×1 bottleneck (B)")
        self.bottleneck_check.setObjectName("bottleneckToggle")
        self.bottleneck_check.setToolTip(TIPS["bottleneck"])
        self.bn_size_slider = _slider("bnSizeSlider", *_int_limits("bn_size"), TIPS["bn_size"])

        # ---- blocks
        self.block_count_spin = _spin("blockCountSpin", *_int_limits("num_blocks"), TIPS["num_blocks"])
        self.block_count_spin.setKeyboardTracking(True)
        self.blocks_box = QVBoxLayout()
        self.blocks_box.setContentsMargins(0, 0, 0, 0)
        self.blocks_box.setSpacing(2)

        # ---- stem and input
        self.stem_combo = QComboBox()
        self.stem_combo.setObjectName("stemCombo")
        self.stem_combo.addItems(list(STEMS))
        self.stem_combo.setToolTip(TIPS["stem"])
        lo, hi = _int_limits("init_features")
        self.init_features_spin = _spin("initFeaturesSpin", lo - 1, hi, TIPS["init_features"])
        self.init_features_spin.setSpecialValueText("2k (auto)")
        self.input_size_spin = _spin("inputSizeSpin", *_int_limits("input_size"), TIPS["input_size"])
        self.input_size_spin.setSuffix(" px")
        self.in_channels_spin = _spin("inChannelsSpin", *_int_limits("in_channels"), TIPS["in_channels"])
        self.classes_spin = _spin("classesSpin", *_int_limits("num_classes"), TIPS["num_classes"])
        self.drop_rate_spin = QDoubleSpinBox()
        self.drop_rate_spin.setObjectName("dropRateSpin")
        self.drop_rate_spin.setRange(0.0, 0.95)
        self.drop_rate_spin.setSingleStep(0.05)
        self.drop_rate_spin.setDecimals(2)
        self.drop_rate_spin.setKeyboardTracking(False)
        self.drop_rate_spin.setToolTip(TIPS["drop_rate"])
        self.memeff_check = QCheckBox("Memory-efficient (recompute in backward)")
        self.memeff_check.setObjectName("memoryEfficientToggle")
        self.memeff_check.setToolTip(TIPS["memory_efficient"])

        # ---- layout
        def form(title: str) -> tuple[QGroupBox, QFormLayout]:
            box = QGroupBox(title)
            f = QFormLayout(box)
            f.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            f.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            f.setContentsMargins(8, 6, 8, 6)
            return box, f

        def label(text: str, tip: str) -> QLabel:
            lab = QLabel(text)
            lab.setToolTip(tip)
            return lab

        preset_box, f = form("Preset")
        f.addRow(self.preset_combo)
        f.addRow(self.preset_desc)

        growth_box, f = form("Growth and compression")
        f.addRow(label("Growth rate k", TIPS["growth_rate"]), self.growth_slider)
        f.addRow(label("Compression θ", TIPS["compression"]), self.compression_slider)
        f.addRow(self.bottleneck_check)
        f.addRow(label("bn_size", TIPS["bn_size"]), self.bn_size_slider)

        blocks_box, f = form("Dense blocks")
        f.addRow(label("Blocks", TIPS["num_blocks"]), self.block_count_spin)
        f.addRow(self.blocks_box)

        input_box, f = form("Stem, input and output")
        f.addRow(label("Stem", TIPS["stem"]), self.stem_combo)
        f.addRow(label("Stem channels", TIPS["init_features"]), self.init_features_spin)
        f.addRow(label("Input size", TIPS["input_size"]), self.input_size_spin)
        f.addRow(label("Input channels", TIPS["in_channels"]), self.in_channels_spin)
        f.addRow(label("Classes", TIPS["num_classes"]), self.classes_spin)

        train_box, f = form("Training")
        f.addRow(label("Dropout", TIPS["drop_rate"]), self.drop_rate_spin)
        f.addRow(self.memeff_check)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        for box in (preset_box, growth_box, blocks_box, input_box, train_box):
            layout.addWidget(box)
        layout.addStretch(1)

        # ---- signals (after the first load so that it emits nothing)
        self.set_config(get_preset(DEFAULT_PRESET), DEFAULT_PRESET)
        self.growth_slider.valueChanged.connect(self._edited)
        self.compression_slider.valueChanged.connect(self._edited)
        self.bottleneck_check.toggled.connect(self._edited)
        self.bn_size_slider.valueChanged.connect(self._edited)
        self.block_count_spin.valueChanged.connect(self._block_count_changed)
        self.stem_combo.currentIndexChanged.connect(self._edited)
        self.init_features_spin.valueChanged.connect(self._edited)
        self.input_size_spin.valueChanged.connect(self._edited)
        self.in_channels_spin.valueChanged.connect(self._edited)
        self.classes_spin.valueChanged.connect(self._edited)
        self.drop_rate_spin.valueChanged.connect(self._edited)
        self.memeff_check.toggled.connect(self._edited)

    # ------------------------------------------------------------------ public
    def preset_name(self) -> str | None:
        """The selected preset, or None for a custom configuration."""
        data = self.preset_combo.currentData()
        return None if data == CUSTOM else data

    def base_preset(self) -> str:
        return self._base_preset

    def set_config(self, cfg: DenseNetConfig, preset: str | None = None) -> None:
        """Show ``cfg`` in the widgets (no signal). ``preset`` names it if it is
        a preset; otherwise the selector shows "custom (from <base preset>)"."""
        self._loading = True
        try:
            if preset is not None and preset in PRESETS:
                self._base_preset = preset
                self.preset_combo.setCurrentIndex(self.preset_combo.findData(preset))
            else:
                self._show_custom()
            self._update_description()
            self.growth_slider.setValue(cfg.growth_rate)
            self.compression_slider.setValue(round(cfg.compression, 2))
            self.bottleneck_check.setChecked(cfg.bottleneck)
            self.bn_size_slider.setValue(cfg.bn_size)
            self.bn_size_slider.setEnabled(cfg.bottleneck)
            self.block_count_spin.setValue(cfg.num_blocks)
            self._ensure_depth_sliders(cfg.num_blocks)
            for slider, depth in zip(self.depth_sliders, cfg.block_depths):
                slider.setValue(depth)
            self.stem_combo.setCurrentText(cfg.stem)
            self.init_features_spin.setValue(cfg.init_features or 0)
            self.input_size_spin.setValue(cfg.input_size)
            self.in_channels_spin.setValue(cfg.in_channels)
            self.classes_spin.setValue(cfg.num_classes)
            self.drop_rate_spin.setValue(cfg.drop_rate)
            self.memeff_check.setChecked(cfg.memory_efficient)
        finally:
            self._loading = False

    def current_config(self) -> DenseNetConfig:
        """The configuration the widgets show (not validated)."""
        init = self.init_features_spin.value()
        return DenseNetConfig(
            growth_rate=self.growth_slider.value(),
            block_depths=tuple(int(s.value()) for s in self.depth_sliders),
            compression=round(float(self.compression_slider.value()), 2),
            bottleneck=self.bottleneck_check.isChecked(),
            bn_size=self.bn_size_slider.value(),
            init_features=None if init == 0 else init,
            stem=self.stem_combo.currentText(),
            in_channels=self.in_channels_spin.value(),
            num_classes=self.classes_spin.value(),
            drop_rate=round(float(self.drop_rate_spin.value()), 2),
            input_size=self.input_size_spin.value(),
            memory_efficient=self.memeff_check.isChecked(),
        )

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
    def _show_custom(self) -> None:
        index = self.preset_combo.findData(CUSTOM)
        self.preset_combo.setItemText(index, f"custom (from {self._base_preset})")
        self.preset_combo.setCurrentIndex(index)

    def _update_description(self) -> None:
        name = self.preset_name()
        if name is None:
            self.preset_desc.setText(f"Edited from {PRESETS[self._base_preset].description}.")
        else:
            p = PRESETS[name]
            self.preset_desc.setText(f"{p.description}; published parameters {p.params:,} ({p.source}).")

    def _preset_selected(self, _index: int) -> None:
        if self._loading:
            return
        name = self.preset_name()
        if name is None:  # "custom" picked by hand: keep the widgets as they are
            self._update_description()
            return
        self.set_config(get_preset(name), name)
        self.emit_current()

    def _edited(self, *_args) -> None:
        if self._loading:
            return
        self.bn_size_slider.setEnabled(self.bottleneck_check.isChecked())
        if self.preset_name() is not None:
            self._loading = True
            try:
                self._show_custom()
                self._update_description()
            finally:
                self._loading = False
        self.emit_current()

    def _block_count_changed(self, count: int) -> None:
        if self._loading:
            return
        self._loading = True
        try:
            self._ensure_depth_sliders(count)
        finally:
            self._loading = False
        self._edited()

    def _ensure_depth_sliders(self, count: int) -> None:
        lo, hi = _int_limits("block_depth")
        while len(self.depth_sliders) < count:
            i = len(self.depth_sliders) + 1
            last = self.depth_sliders[-1].value() if self.depth_sliders else 6
            row = QWidget()
            h = QHBoxLayout(row)
            h.setContentsMargins(0, 0, 0, 0)
            tip = TIPS["block_depth"].format(i=i)
            lab = QLabel(f"Block {i}")
            lab.setToolTip(tip)
            lab.setMinimumWidth(48)
            slider = _slider(f"blockDepthSlider{i}", lo, hi, tip)
            slider.setValue(last)
            slider.valueChanged.connect(self._edited)
            h.addWidget(lab)
            h.addWidget(slider, 1)
            self.blocks_box.addWidget(row)
            self.depth_sliders.append(slider)
            self._depth_rows.append(row)
        while len(self.depth_sliders) > count:
            self.depth_sliders.pop()
            row = self._depth_rows.pop()
            self.blocks_box.removeWidget(row)
            row.hide()
            row.setParent(None)
            row.deleteLater()
