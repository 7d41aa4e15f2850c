"""``densegui reuse``: JSON/CSV/PNG output and one-line errors (exit 2) for the bad-input corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers.corpus import BAD_INPUTS, SMALL_BC, known_state_dict, write_bad, write_good
from helpers.reference import naive_matrices

from densegui.cli import main
from densegui.cli.summary import summary_json
from densegui.core.analysis.reuse import DEFAULT_CHECKPOINT


@pytest.fixture
def ckpt(tmp_path):
    sd = known_state_dict(SMALL_BC, seed=5)
    return write_good("state_dict", tmp_path / "small.pt", sd, SMALL_BC), sd


def test_json_has_config_and_raw_matrices(ckpt, capsys):
    path, sd = ckpt
    assert main(["reuse", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    inferred = SMALL_BC.replace(input_size=32)
    # Same config format as `densegui summary --json`.
    assert out["config"] == summary_json(inferred)["config"]
    assert out["inferred"] is True
    expected = naive_matrices(sd)
    assert [b["block"] for b in out["blocks"]] == [1, 2, 3]
    for b, e in zip(out["blocks"], expected):
        assert len(b["sources"]) == len(b["matrix"]) == e.shape[0]
        assert len(b["targets"]) == e.shape[1]
        got = np.array([[np.nan if v is None else v for v in row] for row in b["matrix"]])
        np.testing.assert_allclose(got, e, rtol=1e-5, equal_nan=True)
    assert out["blocks"][0]["targets"][-1] == "transition 1"
    assert out["blocks"][-1]["targets"][-1] == "classifier"


def test_text_csv_and_png(ckpt, tmp_path, capsys):
    path, _ = ckpt
    assert main(["reuse", str(path)]) == 0
    text = capsys.readouterr().out
    assert "inferred from the weights" in text and "Block 3" in text
    png, folder = tmp_path / "r.png", tmp_path / "csv"
    assert main(["reuse", str(path), "--png", str(png), "--csv", str(folder), "--cmap", "inferno"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["block1.csv", "block2.csv", "block3.csv"]
    from PySide6.QtGui import QImage

    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 500 and image.height() >= 300
    assert main(["reuse", str(path), "--png", str(png), "--cmap", "no-such-map"]) == 2
    assert "unknown colour map" in capsys.readouterr().err


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_exit_2_one_line(tmp_path, name, capsys):
    path, phrase = write_bad(name, tmp_path)
    assert main(["reuse", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("densegui: error:"), captured.err
    assert phrase.lower() in lines[0].lower()
    assert captured.out == ""
    assert not (tmp_path / "MARKER").exists()


def test_real_process_hostile_file_no_traceback(tmp_path):
    path, _ = write_bad("hostile-torch-zip", tmp_path)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-m", "densegui", "reuse", str(path)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "refused" in proc.stderr
    assert not (tmp_path / "MARKER").exists()


def test_default_checkpoint(monkeypatch, tmp_path, capsys):
    """Without CHECKPOINT: the shipped file if present, else one clear line."""
    import densegui.core.resources as resources

    monkeypatch.setattr(resources, "resource_path", lambda name: tmp_path / name)
    assert main(["reuse", "--json"]) == 2
    assert "shipped default" in capsys.readouterr().err
    save = write_good("densegui", tmp_path / "x.pt", known_state_dict(SMALL_BC), SMALL_BC)
    save.rename(tmp_path / DEFAULT_CHECKPOINT)
    assert main(["reuse", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["inferred"] is False and out["config"] == SMALL_BC.to_dict()


def test_the_real_shipped_default_is_what_its_sidecar_says(capsys):
    """The installed default: its stored configuration is the sidecar's, one matrix per block of
    (input + layers) sources × (layers + transition/classifier) targets."""
    from densegui.core.resources import resource_path

    side = json.loads(resource_path(DEFAULT_CHECKPOINT.removesuffix(".pt") + ".json").read_text(encoding="utf-8"))
    assert main(["reuse", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checkpoint"].endswith(DEFAULT_CHECKPOINT) and side["file"] == DEFAULT_CHECKPOINT
    # (the sidecar predates the connectivity field: its absence means dense)
    assert out["inferred"] is False and out["config"] == {**side["config"], "connectivity": "dense"}
    assert out["metadata"]["heldout_accuracy"] == side["heldout_accuracy"]
    depths = side["config"]["block_depths"]
    assert [(len(b["sources"]), len(b["targets"])) for b in out["blocks"]] == [(d + 1, d + 1) for d in depths]
    assert out["blocks"][-1]["targets"][-1] == "classifier"


# ------------------------------------------------------------------ other libraries' files (issue #15)
def _matrices(out):
    return [np.array([[np.nan if v is None else v for v in row] for row in b["matrix"]]) for b in out["blocks"]]


def test_ema_copy_chosen_by_the_rule_and_by_name(tmp_path, capsys):
    import torch
    from helpers.corpus import timm_train_checkpoint

    from densegui.core.weights.checkpoint import CHOICE_RULE

    sd, ema = known_state_dict(SMALL_BC, seed=1), known_state_dict(SMALL_BC, seed=2)
    path = tmp_path / "model_best.pth.tar"
    torch.save(timm_train_checkpoint(sd, ema, ema_first=True), path)
    for extra, chosen, weights in (([], "state_dict", sd), (["--candidate", "state_dict_ema"], "state_dict_ema", ema)):
        assert main(["reuse", str(path), "--json", *extra]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["candidate"] == chosen and out["candidates"] == ["state_dict", "state_dict_ema"]
        assert out["choice_rule"] == CHOICE_RULE and out["notes"] == []
        for got, expected in zip(_matrices(out), naive_matrices(weights)):
            np.testing.assert_allclose(got, expected, rtol=1e-5, equal_nan=True)
    assert main(["reuse", str(path)]) == 0
    text = capsys.readouterr().out
    assert "The file holds 2 DenseNets: shown 'state_dict'" in text
    assert "Show another with --candidate NAME (state_dict_ema)." in text
    assert main(["reuse", str(path), "--candidate", "ema"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["densegui: error: 'model_best.pth.tar' holds no DenseNet 'ema'; "
                   "it holds 'state_dict', 'state_dict_ema'."]


def test_unrecognised_stem_and_head_are_notes_in_json(tmp_path, capsys):
    import torch
    from helpers.corpus import to_timm_deep_stem

    sd = known_state_dict(SMALL_BC, seed=3)
    headless = {k: v for k, v in to_timm_deep_stem(sd).items() if not k.startswith("classifier.")}
    torch.save(headless, tmp_path / "deep.pt")
    assert main(["reuse", str(tmp_path / "deep.pt"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [n.split(" (")[0] for n in out["notes"]] == ["no classifier found", "stem not recognised"]
    got, expected = _matrices(out), naive_matrices(sd)
    assert all(row[-1] is None for row in out["blocks"][-1]["matrix"])  # the classifier column
    np.testing.assert_allclose(got[-1][:, :-1], expected[-1][:, :-1], rtol=1e-5, equal_nan=True)
    for g, e in zip(got[:-1], expected[:-1]):
        np.testing.assert_allclose(g, e, rtol=1e-5, equal_nan=True)
