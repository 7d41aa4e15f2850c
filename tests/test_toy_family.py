"""ToyNet, a family no densegui file mentions, registered through the ``densegui.families`` entry
points (tests/helpers/toyfamily), followed through what a family gets for free: ``presets``,
``summary --json``, the design sweeps, the probe's per-kind breakdown, Pin as baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers.cli import run

from densegui.core.arch import registry


def test_a_fresh_process_finds_the_family_through_its_entry_point(toy_family):
    proc = subprocess.run([sys.executable, "-m", "densegui", "presets", "--json"], capture_output=True, text=True,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    presets = json.loads(proc.stdout)
    assert {"toynet-s", "toynet-m", "densenet121", "resnet50"} <= set(presets)
    assert presets["toynet-m"]["params"] == registry.plan(toy_family.presets["toynet-m"].config).params


def test_presets_lists_it(toy_family, capsys):
    code, out, err = run(["presets"], capsys)
    assert code == 0, err
    assert "toynet-s" in out and "ToyNet small" in out


def test_summary_json_gives_the_plan_and_the_modules_numbers(toy_family, capsys):
    code, out, err = run(["summary", "--preset", "toynet-m", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    cfg = toy_family.presets["toynet-m"].config
    model = registry.build_model(cfg)
    assert data["params"] == sum(p.numel() for p in model.parameters()) == registry.plan(cfg).params
    assert data["macs"] == registry.layer_table(cfg).macs
    assert data["config"]["family"] == "toynet"
    # a field flag of the family works, and another family's is refused in one line
    code, out, err = run(["summary", "--preset", "toynet-s", "--stem-width", "4", "--json"], capsys)
    assert code == 0, err and json.loads(out)["config"]["stem_width"] == 4
    code, out, err = run(["summary", "--preset", "toynet-s", "--growth-rate", "4"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_design_sweeps_vary_its_fields(toy_family, capsys):
    code, out, err = run(["sweep", "--preset", "toynet-s", "--vary", "stem_width=4,8,16", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    base = toy_family.presets["toynet-s"].config
    assert [r["params"] for r in rows] == [registry.plan(base.replace(stem_width=w)).params for w in (4, 8, 16)]
    code, out, err = run(["sweep", "--preset", "toynet-s", "--vary", "depths=1,2", "--json"], capsys)
    assert code == 0, err
    assert [r["params"] for r in json.loads(out)["rows"]] == [
        registry.plan(base.replace(depths=(d,) * len(base.depths))).params for d in (1, 2)]


def test_the_probe_breaks_its_time_down_by_its_own_kinds(toy_family):
    from densegui.core.probe.run import run_probe
    from densegui.core.probe.types import ProbeSettings

    result = run_probe(toy_family.presets["toynet-s"].config,
                       ProbeSettings(device="cpu", repeats=2, min_repeats=1, min_warmup=1, max_warmup=1))
    kinds = set(result.breakdown)
    assert {"convs", "BN/ReLU"} <= kinds <= set(toy_family.kinds) | {"optimizer", "other"}
    assert result.breakdown["convs"]["ms"] > 0


@pytest.mark.usefixtures("qapp")
def test_pin_as_baseline(toy_family, qtbot):
    from densegui.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    try:
        window.pin_preset("toynet-m")
        assert window.baseline is registry.layer_table(toy_family.presets["toynet-m"].config)
        assert window.channel_panel.baseline is window.baseline
    finally:
        window.shutdown()
        window.finish_shutdown()


def test_the_entry_point_scan_agrees_with_importlib_metadata(toy_family):
    from importlib.metadata import entry_points

    found = registry._entry_point_specs()
    assert ("toynet", "densegui_toy:FAMILY") in found
    assert sorted(found) == sorted((ep.name, ep.value) for ep in entry_points(group=registry.GROUP))


def test_a_broken_family_entry_point_is_left_out_with_a_warning(toy_family, monkeypatch):
    monkeypatch.setattr(registry, "_entry_point_specs", lambda: [("broken", "no_such_module_here:FAMILY"),
                                                                 ("toynet", "densegui_toy:FAMILY")])
    with pytest.warns(UserWarning, match="family entry point 'broken'"):
        families = registry.reload()
    assert list(families) == ["densenet", "resnet", "rdnet", "toynet"]
