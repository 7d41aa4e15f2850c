"""``densegui sweep`` and ``densegui compare``: JSON rows exact, CSV and PNG outputs, measured
figures, and bad input in one line with exit 2."""

from __future__ import annotations

import csv
import json

import pytest
from helpers.cli import run
from helpers.reference import count_params

from densegui.core.arch import registry as arch

pytestmark = pytest.mark.usefixtures("one_thread")



def test_sweep_json_rows_are_exact_and_carry_their_config(capsys):
    code, out, _ = run(["sweep", "--preset", "densenet121", "--vary", "k=12:48:12", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["field"] == "growth_rate" and [r["value"] for r in data["rows"]] == [12, 24, 36, 48]
    for r in data["rows"]:
        cfg = arch.config_from_dict(r["config"])
        assert cfg.growth_rate == r["value"] and r["params"] == count_params(cfg)
        assert {"params", "macs", "memory"} <= set(r) and r["memory"]["naive_bytes"] > r["memory"]["efficient_bytes"]


def test_sweep_text_csv_and_png(capsys, tmp_path):
    code, out, _ = run(["sweep", "--preset", "resnet18", "--vary", "width=32,64"], capsys)
    assert code == 0 and "11,689,512" in out
    code, out, _ = run(["sweep", "--preset", "densenet-40-k12", "--vary", "theta=0.5,1", "--csv", str(tmp_path)],
                       capsys)
    assert code == 0
    with open(tmp_path / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["value"]) for r in rows] == [0.5, 1.0]
    assert int(rows[1]["params"]) == arch.layer_table(arch.get_preset("densenet-40-k12")).params
    png = tmp_path / "sweep.png"
    code, out, err = run(["sweep", "--preset", "densenet-40-k12", "--vary", "k=6:18:6", "--png", str(png)], capsys)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["--preset", "resnet18", "--vary", "width=32,64"],  # no memory-efficient mode
                                  ["--preset", "densenet-40-k12", "--vary", "k=6,12"]])
def test_sweep_png_prints_only_its_own_line(capsys, tmp_path, recwarn, argv):
    png = tmp_path / "sweep.png"
    code, out, err = run(["sweep", *argv, "--png", str(png)], capsys)
    assert code == 0 and out == f"wrote {png}\n"
    assert "All-NaN" not in err and "Warning" not in err
    assert not [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_sweep_measured_adds_latency(capsys):
    code, out, err = run(["sweep", "--preset", "densenet-bc-100-k12", "--blocks", "2,2,2", "--vary", "k=4,8",
                          "--measure", "--device", "cpu", "--rounds", "1", "--repeats", "3", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert all(r["measured"]["latency_ms"] > 0 and r["measured"]["device"] == "cpu" for r in rows)


def test_compare_json_and_text(capsys):
    code, out, _ = run(["compare", "densenet201", "resnet101", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)["rows"]
    assert [(r["name"], r["family"], r["params"]) for r in rows] == [
        ("densenet201", "densenet", 20_013_928), ("resnet101", "resnet", 44_549_160)]
    assert all(r["published"] for r in rows)
    code, out, _ = run(["compare", "densenet121", "resnet50"], capsys)
    assert code == 0 and "7,978,856" in out and "25,557,032" in out


@pytest.mark.parametrize("argv, phrase", [
    (["sweep", "--preset", "densenet121", "--vary", "nope=1:2:1"], "unknown field"),
    (["sweep", "--preset", "densenet121", "--vary", "width=32"], "resnet field"),
    (["compare", "nope"], "unknown preset"),
])
def test_bad_input_is_one_line_exit_2(argv, phrase, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and phrase in err and err.count("\n") == 1 and "Traceback" not in err
