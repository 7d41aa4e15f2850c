"""The window's summary, probe and sweep jobs take a config dict of either family (in a background
process, as the window runs them). No Qt here."""

from __future__ import annotations

import pytest

from densegui.core.arch import registry as arch
from densegui.core.errors import DenseguiError
from densegui.core.probe.types import ProbeSettings
from densegui.core.arch.resnet.config import ResNetConfig
from densegui.gui import jobs as app_jobs
from densegui.gui.background import BackgroundProcess

TINY_RESNET = ResNetConfig(stage_depths=(1, 1), widths=(4, 8), block="basic", stem="cifar", stem_width=4,
                           num_classes=10, input_size=16)
FAST = dict(device="cpu", repeats=3, min_repeats=2, min_warmup=1, max_warmup=2, breakdown=False)


@pytest.fixture(scope="module")
def proc():
    p = BackgroundProcess("families-test", app_jobs.JOBS)
    yield p
    p.close()


def test_summary_job_of_both_families(proc):
    for cfg in (arch.get_preset("resnet20"), arch.get_preset("densenet-40-k12")):
        result = proc.run("summary", cfg.to_dict(), 1)
        assert result.config == cfg and result.total_params == arch.layer_table(cfg).params


def test_probe_and_sweep_jobs_take_a_resnet(proc):
    r = proc.run("probe", TINY_RESNET.to_dict(), ProbeSettings(batch_size=2, **FAST))
    assert r.config == TINY_RESNET.to_dict() and r.flops_per_iteration == arch.flops_per_iteration(TINY_RESNET, 2,
                                                                                                    "inference")
    s = proc.run("sweep", TINY_RESNET.to_dict(), ProbeSettings(**FAST), 2)
    assert [p.batch_size for p in s.points] == [1, 2]
    with pytest.raises(DenseguiError) as info:
        proc.run("probe", TINY_RESNET.to_dict(), ProbeSettings(memory_efficient=True, **FAST))
    assert "memory_efficient must be false for a ResNet" in str(info.value) and "\n" not in str(info.value)
