"""``densegui sweep --vary connectivity=…``: a "spec" field swept by a list of strings. Each row's
params and MACs against the layer table of its configuration, its fraction_kept and
backprop_distance against counts made here from the plan's sources, the CSV and text outputs, and
bad values in one line with exit 2."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import pytest
from helpers.cli import run

from densegui.core.arch import registry as arch

SPECS = ["dense", "log", "window:1", "window:3", "window:12"]


def kept(cfg) -> float:
    """The dense layers' sources over the dense pattern's (layer i of a block reads i)."""
    layers = [u for u in arch.plan(cfg).units if u.kind == "dense"]
    return sum(len(u.sources) for u in layers) / sum(u.index for u in layers)


def backprop(cfg) -> int:
    """The most layers a gradient crosses between two feature maps of one block: breadth-first over
    the plan's sources, from every feature map (the block input, each layer) to those after it."""
    blocks = defaultdict(list)
    for u in arch.plan(cfg).units:
        if u.kind == "dense":
            blocks[u.block].append(u)
    worst = 0
    for layers in blocks.values():
        readers = defaultdict(list)  # feature map → the layers that read it
        for u in layers:
            for s in u.sources:
                readers[s].append(u.path)
        for start in {s for u in layers for s in u.sources}:
            dist, frontier = {start: 0}, [start]
            while frontier:
                nxt = []
                for node in frontier:
                    for r in readers[node]:
                        if r not in dist:
                            dist[r] = dist[node] + 1
                            nxt.append(r)
                frontier = nxt
            worst = max(worst, *dist.values())
    return worst


def test_sweep_rows_follow_the_plan(capsys, tmp_path):
    base = arch.get_preset("densenet-40-k12")
    code, out, err = run(["sweep", "--preset", "densenet-40-k12", "--vary",
                          "connectivity=dense, LOG,window:1,window:03,window:12", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["field"] == "connectivity" and [r["value"] for r in data["rows"]] == SPECS
    for r in data["rows"]:
        cfg = arch.config_from_dict(r["config"])
        assert cfg == base.replace(connectivity=r["value"])
        table = arch.layer_table(cfg)
        assert (r["params"], r["macs"], r["memory"]["naive_bytes"]) == (table.params, table.macs, table.naive_bytes)
        assert r["fraction_kept"] == pytest.approx(kept(cfg))
        assert r["backprop_distance"] == backprop(cfg)
    rows = {r["value"]: r for r in data["rows"]}
    # window:12 spans a whole 12-layer block: it is the dense pattern
    assert rows["dense"]["fraction_kept"] == 1.0 and rows["window:12"]["params"] == rows["dense"]["params"]
    assert rows["window:1"]["backprop_distance"] == 12 and rows["dense"]["backprop_distance"] == 1
    assert rows["window:1"]["params"] < rows["window:3"]["params"] < rows["dense"]["params"]

    code, out, _ = run(["sweep", "--preset", "densenet-40-k12", "--vary", "connectivity=log,window:3",
                        "--csv", str(tmp_path)], capsys)
    assert code == 0
    with open(tmp_path / "sweep.csv", newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["value"] for r in csv_rows] == ["log", "window:3"]
    for r, spec in zip(csv_rows, ("log", "window:3"), strict=True):
        assert float(r["fraction_kept"]) == pytest.approx(rows[spec]["fraction_kept"])
        assert int(r["backprop_distance"]) == rows[spec]["backprop_distance"]

    code, out, _ = run(["sweep", "--preset", "densenet-40-k12", "--vary", "connectivity=dense,window:3"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert "kept" in lines[1] and "backprop" in lines[1]
    assert lines[3].split()[0] == "window:3" and f"{rows['window:3']['params']:,}" in lines[3]
    assert f"{rows['window:3']['fraction_kept']:.1%}" in lines[3]


@pytest.mark.parametrize("vary, phrase", [
    ("connectivity=dense,window:0", "from 1 to 128"), ("connectivity=dense,window:x", "from 1 to 128"),
    ("connectivity=window", "needs a whole number"), ("connectivity=sparse", "must be one of dense, window:W, log"),
    ("connectivity=dense:2", "must be one of"), ("connectivity=,", "1 to 500 values"),
])
def test_bad_values_are_one_line_exit_2(vary, phrase, capsys):
    code, out, err = run(["sweep", "--preset", "densenet121", "--vary", vary], capsys)
    assert code == 2 and phrase in err and err.count("\n") == 1 and "Traceback" not in err and out == ""


@pytest.mark.parametrize("value", ["window:0", "window:x", "sparse"])
def test_the_flag_refuses_them_too(value, capsys):
    code, out, err = run(["sweep", "--preset", "densenet121", "--connectivity", value, "--vary", "k=12"], capsys)
    assert code == 2 and "connectivity" in err and repr(value) in err and err.count("\n") == 1 and out == ""
