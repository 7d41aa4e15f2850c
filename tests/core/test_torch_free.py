"""Modules the GUI window process imports must not load torch (torch work runs in a background process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

TORCH_FREE = [
    "densegui.core.probe.types",
    "densegui.core.devices",
    "densegui.core.arch.densenet.table",
    "densegui.core.arch.table",
    "densegui.core.arch.resnet.config",
    "densegui.core.arch.published",
    "densegui.core.arch.registry",
    "densegui.core.analysis.summary",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module):
    code = f"import sys; import {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr


def test_probe_data_the_gui_needs_works_without_torch():
    code = """
import pickle, sys
from densegui.core.arch.registry import get_preset
from densegui.core.devices import PRECISIONS, DeviceInfo, cpu_available_memory
from densegui.core.probe.types import MAX_BATCH, MODES, ProbeCancelled, ProbeSettings, SweepPoint, SweepResult
from densegui.core.arch.registry import estimate_memory
s = ProbeSettings(device="cpu", mode=MODES[1], batch_size=MAX_BATCH, precision=PRECISIONS[0]).validate()
assert estimate_memory(get_preset("densenet121").validate(), s.batch_size, s.mode) > 0
assert cpu_available_memory() is None or cpu_available_memory() > 0
r = SweepResult("cpu", "CPU", "training", [SweepPoint(1, 1.0, 1000.0, None, 1)], 1, "cancelled", "x", None)
assert pickle.loads(pickle.dumps(r)) == r
d = DeviceInfo("cpu", "cpu", "CPU", None)
assert pickle.loads(pickle.dumps(d)) == d
assert str(pickle.loads(pickle.dumps(ProbeCancelled("probe cancelled.")))) == "probe cancelled."
assert 'torch' not in sys.modules, 'torch was imported'
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr


def test_both_families_plain_data_works_without_torch():
    code = """
import pickle, sys
from densegui.core.arch import registry as arch
from densegui.core.arch.published import published_error
from densegui.core.analysis.summary import SummaryResult, SummaryRow
for name in arch.preset_names():
    cfg = arch.get_preset(name)
    table = arch.layer_table(cfg)
    assert table.params > 0 and len(table.depth_fraction()) == len(table.rows)
    assert arch.estimate_memory(cfg, 4, "training") > arch.estimate_memory(cfg, 4, "inference") > 0
    assert pickle.loads(pickle.dumps(table)) == table
    assert arch.config_from_dict(cfg.to_dict()) == cfg
assert published_error("resnet50", "ImageNet").value == 24.01
r = SummaryResult(arch.get_preset("resnet20"), 1, "text", (SummaryRow("", "ResNet", 0, (1,), (1,), 1, 1),), 1, 1)
assert pickle.loads(pickle.dumps(r)) == r
assert 'torch' not in sys.modules, 'torch was imported'
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
