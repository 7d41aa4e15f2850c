"""Qt-free core of densegui: configuration, model, statistics, summary,
probe, checkpoints, reuse metric, training.

Nothing below this package may import PySide6, pyqtgraph or superqt
(enforced by ``tests/core/test_core_no_qt.py``).
"""

from densegui.core.arch.densenet.config import PRESETS, DenseNetConfig

from densegui.core.arch.registry import get_preset, preset_names
from densegui.core.errors import ConfigError, DenseguiError

__all__ = [
    "PRESETS",
    "ConfigError",
    "DenseNetConfig",
    "DenseguiError",
    "get_preset",
    "preset_names",
]
