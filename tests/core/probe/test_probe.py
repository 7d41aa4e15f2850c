"""Timing probe core: statistics, FLOPs, memory, guard, cancel, OOM, breakdown, devices."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import densegui.core.probe.run as probe_mod
from densegui.core.arch import registry as arch
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.devices import (
    DeviceError,
    check_precision,
    cpu_peak_reset,
    cpu_peak_since,
    list_devices,
    peak_tflops,
    resolve_device,
)
from densegui.core.errors import ConfigError, DenseguiError, is_out_of_memory
from densegui.core.arch.densenet.model import build_model
from densegui.core.probe.run import run_probe, sweep
from densegui.core.probe.types import (
    MemoryGuardError,
    ProbeCancelled,
    ProbeOutOfMemory,
    ProbeSettings,
    kinds_by_family,
    kinds_of,
)
from densegui.core.probe.profiling import breakdown, label_modules, module_kinds
from densegui.core.arch.resnet.config import PRESETS as RESNET_PRESETS
from densegui.core.arch.resnet.config import ResNetConfig
from densegui.core.arch.resnet.model import build_model as build_resnet
from densegui.core.arch.densenet.table import layer_table
from densegui.core.arch.registry import estimate_memory
from densegui.core.units import human_bytes

TINY = DenseNetConfig(growth_rate=4, block_depths=(2, 3), stem="cifar", num_classes=10, input_size=16)
FAST = dict(device="cpu", repeats=5, min_repeats=3, min_warmup=1, max_warmup=3, breakdown=False)


def test_inference_result_is_consistent_with_independent_computations():
    r = run_probe(TINY, ProbeSettings(batch_size=4, **FAST))
    assert r.device == "cpu" and r.mode == "inference" and r.batch_size == 4
    assert r.repeats == 5 and len(r.times_ms) == 5
    # statistics against numpy's percentile of the same samples
    assert r.median_ms == pytest.approx(float(np.median(r.times_ms)))
    assert r.p10_ms == pytest.approx(float(np.percentile(r.times_ms, 10)))
    assert r.p90_ms == pytest.approx(float(np.percentile(r.times_ms, 90)))
    assert r.p10_ms <= r.median_ms <= r.p90_ms
    assert r.throughput == pytest.approx(4 / (r.median_ms / 1e3))
    # FLOPs: torch's own flop counter on a real forward pass of batch 4
    model = build_model(TINY).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(4, 3, 16, 16))
    assert r.flops_per_iteration == counter.get_total_flops()
    assert r.achieved_tflops == pytest.approx(r.flops_per_iteration / (r.median_ms / 1e3) / 1e12)
    assert r.peak_tflops is None and r.fraction_of_peak is None  # CPU: no datasheet peak
    d = r.to_dict()
    for key in ("device", "mode", "batch_size", "median_ms", "p10_ms", "p90_ms", "throughput",
                "peak_memory_bytes", "achieved_tflops"):
        assert key in d


def test_training_step_counts_three_times_the_forward_flops_and_updates_weights(monkeypatch):
    seen = {}
    orig = probe_mod._Step.__init__

    def spy(self, *a, **k):
        orig(self, *a, **k)
        seen["step"] = self
        seen["before"] = self.model.classifier.weight.detach().clone()
        seen["weight"] = self.model.classifier.weight

    monkeypatch.setattr(probe_mod._Step, "__init__", spy)
    r = run_probe(TINY, ProbeSettings(mode="training", batch_size=2, **FAST))
    assert r.flops_per_iteration == 3 * 2 * layer_table(TINY).macs * 2
    assert not torch.equal(seen["before"], seen["weight"].detach())  # the optimizer stepped


def test_cpu_peak_resident_memory_sees_a_known_allocation():
    baseline = cpu_peak_reset()
    if baseline is None:
        pytest.skip("this kernel does not allow resetting VmHWM")  # not the case on the CI Linux image
    n = 200 * 2**20
    t = torch.ones(n // 4)  # touched pages: really resident
    del t
    peak = cpu_peak_since(baseline)
    assert 0.95 * n <= peak < n + 60 * 2**20  # RSS counters lag by a few pages per thread


def test_training_peak_memory_is_measured_and_the_estimate_covers_autograd():
    r = run_probe(TINY, ProbeSettings(mode="training", batch_size=8, **FAST))
    assert r.peak_memory_bytes is not None and r.peak_memory_bytes > 0
    assert "resident" in r.peak_memory_convention
    acts = layer_table(TINY).activation_bytes(8, efficient=False)
    assert r.estimated_memory_bytes >= acts + 4 * layer_table(TINY).params


def test_memory_guard_refuses_with_the_estimate(monkeypatch):
    monkeypatch.setattr(probe_mod, "cpu_available_memory", lambda: 50 * 2**20)
    est = estimate_memory(TINY.validate(), 64, "training")
    with pytest.raises(MemoryGuardError) as info:
        run_probe(TINY, ProbeSettings(mode="training", batch_size=64, **FAST))
    msg = str(info.value)
    assert human_bytes(est) in msg and "50 MiB" in msg and "\n" not in msg


@pytest.mark.parametrize("settings, err", [
    (dict(device="nosuch"), DeviceError),
    (dict(device="cuda:7"), DeviceError),
    (dict(precision="fp8"), DeviceError),
    (dict(batch_size=0), ConfigError),
    (dict(batch_size=10**9), ConfigError),
    (dict(mode="both"), ConfigError),
])
def test_bad_settings_raise_one_line_errors(settings, err):
    if settings.get("device") == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(err) as info:
        run_probe(TINY, ProbeSettings(**{**FAST, **settings}))
    assert isinstance(info.value, DenseguiError) and "\n" not in str(info.value)


def test_cancel_between_and_within_iterations():
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 4  # becomes true inside the first forward pass (hooks check per layer)

    t0 = time.perf_counter()
    with pytest.raises(ProbeCancelled):
        run_probe(TINY, ProbeSettings(mode="training", batch_size=2, **FAST), cancel=cancel)
    assert time.perf_counter() - t0 < 5
    assert calls["n"] == 5  # it stopped at the first check that said "cancel"


def test_cancel_before_the_call_raises_without_building_the_model(monkeypatch):
    built = []
    monkeypatch.setattr(probe_mod, "build_model", lambda *a, **k: built.append(a))
    with pytest.raises(ProbeCancelled):
        run_probe(TINY, ProbeSettings(**FAST), cancel=lambda: True)
    s = sweep(TINY, ProbeSettings(**FAST), max_batch=4, cancel=lambda: True)
    assert s.stop_reason == "cancelled" and s.points == [] and s.limit_batch is None
    assert built == []


def test_cancel_during_the_build_stops_before_the_first_iteration(monkeypatch):
    flag = {"cancel": False}
    orig_build = probe_mod.build_model
    calls = {"step": 0}
    orig_call = probe_mod._Step.__call__

    def build(*a, **k):
        flag["cancel"] = True  # the user pressed Cancel while the model was being built
        return orig_build(*a, **k)

    def call(self):
        calls["step"] += 1
        return orig_call(self)

    monkeypatch.setattr(probe_mod, "build_model", build)
    monkeypatch.setattr(probe_mod._Step, "__call__", call)
    with pytest.raises(ProbeCancelled):
        run_probe(TINY, ProbeSettings(**FAST), cancel=lambda: flag["cancel"])
    assert calls["step"] == 0


def _fake_oom_above(limit):
    orig = probe_mod._Step.__call__

    def call(self):
        if self.x.shape[0] > limit:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")
        return orig(self)

    return call


def test_real_cpu_allocation_failure_is_recognised_as_oom():
    with pytest.raises(RuntimeError) as info:
        torch.empty(10**15, dtype=torch.uint8)
    assert is_out_of_memory(info.value)  # the probe's OOM detector
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate"
                                         " memory"))
    assert is_out_of_memory(RuntimeError("Cannot allocate memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_out_of_memory_is_reported_and_the_device_stays_usable(monkeypatch):
    monkeypatch.setattr(probe_mod._Step, "__call__", _fake_oom_above(4))
    with pytest.raises(ProbeOutOfMemory) as info:
        run_probe(TINY, ProbeSettings(batch_size=8, **FAST))
    assert "out of memory" in str(info.value) and "batch 8" in str(info.value)
    s = sweep(TINY, ProbeSettings(**FAST), max_batch=64)
    assert [p.batch_size for p in s.points] == [1, 2, 4]
    assert s.limit_batch == 4 and s.stop_reason == "out_of_memory"
    assert run_probe(TINY, ProbeSettings(batch_size=4, **FAST)).median_ms > 0  # still usable


def test_sweep_points_and_budget():
    s = sweep(TINY, ProbeSettings(**FAST), max_batch=4)
    assert [p.batch_size for p in s.points] == [1, 2, 4] and s.stop_reason == "max_batch"
    for p in s.points:
        assert p.throughput == pytest.approx(p.batch_size / (p.median_ms / 1e3))
    tiny_budget = sweep(TINY, ProbeSettings(**FAST), max_batch=64, budget_bytes=1)
    assert tiny_budget.stop_reason == "budget" and tiny_budget.limit_batch == 1


def test_breakdown_attributes_every_concatenation_and_sums_to_one():
    step = probe_mod._Step(TINY.validate(), ProbeSettings(mode="training", batch_size=2), torch.device("cpu"))
    step()
    kinds, cats, wall_ms = breakdown(step, 2)
    layers, blocks = sum(TINY.block_depths), TINY.num_blocks
    # one cat per dense layer (its input) and one per block (its output), per iteration
    assert cats["concatenation"] == 2 * (layers + blocks)
    assert sum(cats.values()) == cats["concatenation"]
    assert sum(v["fraction"] for v in kinds.values()) == pytest.approx(1.0)
    assert sum(v["ms"] for v in kinds.values()) <= 1.01 * wall_ms
    assert kinds["other"]["fraction"] < 0.2  # backward ops are attributed to their forward kinds
    for kind in ("stem", "dense convs", "dense BN/ReLU", "concatenation", "transitions", "head", "optimizer"):
        assert kinds[kind]["ms"] > 0, kind
    step.release()


def test_breakdown_in_memory_efficient_mode_counts_recomputed_concatenations():
    cfg = TINY.replace(memory_efficient=True).validate()
    step = probe_mod._Step(cfg, ProbeSettings(mode="training", batch_size=2), torch.device("cpu"))
    step()
    _, cats, _ = breakdown(step, 1)
    layers, blocks = sum(TINY.block_depths), TINY.num_blocks
    assert cats["concatenation"] == (layers + blocks) + layers  # forward + recomputed in backward
    step.release()


def test_run_with_breakdown_reports_time_per_iteration():
    r = run_probe(TINY, ProbeSettings(**{**FAST, "breakdown": True}))
    assert r.breakdown and r.breakdown_convention
    total = sum(v["ms"] for v in r.breakdown.values())
    # CPU self times of one thread add up to (at most) the wall time of the profiled iterations
    assert 0.5 * r.breakdown_iteration_ms < total <= 1.01 * r.breakdown_iteration_ms


def test_devices_and_peaks():
    devs = list_devices()
    assert devs[0].id == "cpu" and devs[0].name
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu" if not torch.backends.mps.is_available()
                         else "mps")
    assert resolve_device("CPU") == torch.device("cpu")
    check_precision(torch.device("cpu"), "bf16")  # torch CPU autocast supports bf16
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == (989.4, "BF16 tensor cores, dense, datasheet")
    assert peak_tflops("NVIDIA H100 PCIe", "fp32")[0] == 51.0
    assert peak_tflops("NVIDIA H100 80GB HBM3", "fp32", tf32=True)[0] == 494.7
    assert peak_tflops("NVIDIA L40S", "bf16")[0] == 366.0  # not mistaken for the L4
    assert peak_tflops("NVIDIA L4", "bf16")[0] == 121.0
    assert peak_tflops("Tesla T4", "bf16") is None  # no bf16 on Turing
    assert peak_tflops("Some Future GPU", "fp32") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA path: needs a CUDA GPU (the CPU path is tested above)")
def test_cuda_probe_measures_allocator_peak():
    r = run_probe(TINY, ProbeSettings(**{**FAST, "device": "cuda", "mode": "training", "batch_size": 8}))
    assert r.peak_memory_bytes is not None and r.peak_memory_bytes > layer_table(TINY).activation_bytes(8)
    assert statistics.median(r.times_ms) == pytest.approx(r.median_ms)


# ----------------------------------------------------------------------------- ResNets
TINY_RESNET = ResNetConfig(stage_depths=(1, 2), widths=(4, 8), block="basic", stem="cifar", stem_width=4,
                           num_classes=10, input_size=16)
RESNET_KINDS = kinds_of(arch.get_family("resnet"))


@pytest.mark.parametrize("mode", ["inference", "training"])
def test_resnet_probe_flops_and_estimate_follow_independent_counts(mode):
    r = run_probe(TINY_RESNET, ProbeSettings(mode=mode, batch_size=3, **{**FAST, "breakdown": True}))
    model = build_resnet(TINY_RESNET).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(3, 3, 16, 16))
    assert r.flops_per_iteration == (3 if mode == "training" else 1) * counter.get_total_flops()
    assert r.config == TINY_RESNET.to_dict() and r.memory_efficient is False and r.median_ms > 0
    table = arch.layer_table(TINY_RESNET)
    if mode == "training":
        assert r.estimated_memory_bytes >= 3 * 4 * table.params + table.activation_bytes(3)
    assert r.breakdown and set(r.breakdown) <= set(RESNET_KINDS)


# resnet20 with --stages 1,1,1 at input 16: option A shortcuts (slice and zero-pad)
RESNET20_SMALL = RESNET_PRESETS["resnet20"].config.replace(stage_depths=(1, 1, 1), input_size=16).validate()


@pytest.mark.parametrize("mode", ["inference", "training"])
def test_resnet_probe_breakdown_has_resnet_kinds(mode):
    settings = ProbeSettings(mode=mode, batch_size=2, breakdown_iters=2, **{**FAST, "breakdown": True})
    r = run_probe(RESNET20_SMALL, settings)
    assert r.breakdown and r.breakdown_convention and r.breakdown_iteration_ms > 0
    assert set(r.breakdown) <= set(RESNET_KINDS)
    assert sum(v["fraction"] for v in r.breakdown.values()) == pytest.approx(1.0)
    assert r.breakdown["residual convs"]["fraction"] > 0
    assert ("optimizer" in r.breakdown) == (mode == "training")


@pytest.mark.parametrize("shortcut, block", [("A", "basic"), ("B", "bottleneck")])
def test_resnet_breakdown_attributes_every_part(shortcut, block):
    cfg = TINY_RESNET.replace(shortcut=shortcut, block=block).validate()
    step = probe_mod._Step(cfg, ProbeSettings(mode="training", batch_size=2), torch.device("cpu"))
    step()
    kinds, cats, wall_ms = breakdown(step, 2)
    assert set(cats) == set(RESNET_KINDS) and sum(cats.values()) == 0  # no concatenations
    assert sum(v["fraction"] for v in kinds.values()) == pytest.approx(1.0)
    assert sum(v["ms"] for v in kinds.values()) <= 1.01 * wall_ms
    assert kinds.get("other", {"fraction": 0.0})["fraction"] < 0.2  # backward ops go to their forward kinds
    for kind in ("stem", "residual convs", "residual BN/ReLU", "shortcuts", "head", "optimizer"):
        assert kinds[kind]["ms"] > 0, kind
    step.release()


def test_resnet_residual_add_is_labelled_a_shortcut():
    from torch.profiler import profile

    model = build_resnet(TINY_RESNET).eval()
    hooks = label_modules(model, arch.family_of(TINY_RESNET))
    with profile() as prof, torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    for h in hooks:
        h.remove()

    def range_of(evt):
        while evt is not None and not evt.name.startswith("densegui::"):
            evt = evt.cpu_parent
        return evt and evt.name

    adds = [range_of(e) for e in prof.events() if e.name == "aten::add_"]
    convs = {range_of(e) for e in prof.events() if e.name == "aten::conv2d"}
    assert adds == ["densegui::shortcuts"] * sum(TINY_RESNET.stage_depths)  # one residual add per block
    assert convs == {"densegui::stem", "densegui::residual convs", "densegui::shortcuts"}  # option B's projection


def test_kinds_come_from_the_families_in_display_order():
    by_family = kinds_by_family(arch.families().values())
    assert by_family["densenet"] == kinds_of(arch.get_family("densenet")) == (
        "stem", "dense convs", "dense BN/ReLU", "concatenation", "transitions", "head", "optimizer", "other")
    assert by_family["resnet"] == RESNET_KINDS == (
        "stem", "residual convs", "residual BN/ReLU", "shortcuts", "head", "optimizer", "other")
    assert kinds_of(None) == ("optimizer", "other")
    for family in arch.families().values():  # every rule names one of the family's kinds
        assert {kind for _, kind in family.profile} <= set(family.kinds), family.name


def _kinds_by_class(model) -> dict[str, str]:
    """The breakdown's labels as the module classes give them (an independent reference): path → kind
    of every module that opens a range of its own."""
    from densegui.core.arch.densenet.model import DenseBlock, Transition
    from densegui.core.arch.resnet.model import ResNet

    out = {}
    if isinstance(model, ResNet):
        for name in ("conv1", "bn1", "relu", "maxpool"):
            out[name] = "stem"
        out["avgpool"] = out["fc"] = "head"
        for s, stage in enumerate(model.stages(), 1):
            for b, _block in enumerate(stage):
                p = f"layer{s}.{b}"
                out[p] = "shortcuts"
                for cname, _ in _block.named_children():
                    out[f"{p}.{cname}"] = ("shortcuts" if cname == "downsample" else
                                           "residual convs" if cname.startswith("conv") else "residual BN/ReLU")
        return out
    for name, m in model.features.named_children():
        p = f"features.{name}"
        if name in ("conv0", "norm0", "relu0", "pool0"):
            out[p] = "stem"
        elif isinstance(m, DenseBlock):
            out[p] = "concatenation"
            for lname, layer in m.items():
                out[f"{p}.{lname}"] = "concatenation"
                for cname, _ in layer.named_children():
                    out[f"{p}.{lname}.{cname}"] = "dense convs" if cname.startswith("conv") else "dense BN/ReLU"
        elif isinstance(m, Transition):
            out[p] = "transitions"
        elif name == "norm5":
            out[p] = "head"
    out["classifier"] = "head"
    return out


@pytest.mark.parametrize("cfg", [
    TINY, TINY.replace(stem="imagenet", bottleneck=False, input_size=32),
    TINY_RESNET, TINY_RESNET.replace(block="bottleneck", stem="imagenet", input_size=32), RESNET20_SMALL,
], ids=["dense-cifar", "dense-imagenet-basic", "res-basic-B", "res-bottleneck-imagenet", "res-A"])
def test_the_profile_rules_label_the_modules_as_their_classes_do(cfg):
    model = arch.build_model(cfg, "meta")
    assert module_kinds(model, arch.family_of(cfg)) == _kinds_by_class(model)
    assert module_kinds(model, None) == {} and label_modules(model, None) == []


def test_resnet_refuses_memory_efficient_mode_in_one_line():
    with pytest.raises(ConfigError) as info:
        run_probe(TINY_RESNET, ProbeSettings(memory_efficient=True, **FAST))
    assert "memory_efficient must be false for a ResNet" in str(info.value) and "\n" not in str(info.value)
    assert run_probe(TINY_RESNET, ProbeSettings(memory_efficient=False, **FAST)).memory_efficient is False


def test_resnet_cancel_lands_inside_an_iteration():
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 3  # the 4th check: inside the first forward (one check per residual block)

    with pytest.raises(ProbeCancelled):
        run_probe(TINY_RESNET, ProbeSettings(mode="training", batch_size=2, **FAST), cancel=cancel)
    assert calls["n"] == 4


def test_resnet_sweep_runs():
    s = sweep(TINY_RESNET, ProbeSettings(**FAST), max_batch=2)
    assert [p.batch_size for p in s.points] == [1, 2] and s.stop_reason == "max_batch"


@pytest.mark.parametrize("cfg", [TINY, TINY_RESNET, RESNET20_SMALL], ids=["dense", "res-B", "res-A"])
def test_cancel_checks_sit_on_the_plans_units(cfg):
    step = probe_mod._Step(cfg.validate(), ProbeSettings(mode="training", batch_size=2), torch.device("cpu"))
    calls = []
    step.install_cancel_hooks(lambda: calls.append(1) and False)
    step()
    inner = [u for u in arch.plan(cfg).units if u.block is not None]  # dense layers, transitions, residual blocks
    assert len(calls) == 2 * len(inner)  # before each one's forward, and as its first weight's gradient lands
    step.release()


def test_a_third_family_gets_its_kinds_and_cancel_checks_from_its_rules_and_plan(toy_family):
    cfg = toy_family.presets["toynet-s"].config
    step = probe_mod._Step(cfg, ProbeSettings(mode="training", batch_size=2), torch.device("cpu"))
    assert step.family is toy_family
    calls = []
    step.install_cancel_hooks(lambda: calls.append(1) and False)
    step()
    assert len(calls) == 2 * sum(cfg.depths)  # one conv unit per layer of a stage
    step.remove_hooks()
    kinds, cats, _ = breakdown(step, 1)
    assert set(kinds) <= set(kinds_of(toy_family)) and sum(cats.values()) == 0
    for kind in ("stem", "convs", "BN/ReLU", "pooling", "head", "optimizer"):
        assert kinds[kind]["ms"] > 0, kind
    step.release()
