"""``densegui reuse --svg/--pdf/--png``: vector figures of a real checkpoint's heatmaps, and bad
output paths refused in one line (exit 2) before any analysis."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from helpers.corpus import SMALL_BC, known_state_dict, write_good

from densegui.cli import main

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def ckpt(tmp_path):
    return write_good("state_dict", tmp_path / "small.pt", known_state_dict(SMALL_BC, seed=5), SMALL_BC)


def test_svg_and_pdf_are_vector_figures_of_every_connected_cell(ckpt, tmp_path, capsys):
    svg, pdf = tmp_path / "r.svg", tmp_path / "r.pdf"
    assert main(["reuse", str(ckpt), "--svg", str(svg), "--pdf", str(pdf), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    connected = sum(v is not None for b in out["blocks"] for row in b["matrix"] for v in row)
    root = ET.parse(svg).getroot()
    cells = [child for g in root.iter(f"{SVG}g") if g.get("fill", "").startswith("#")
             for child in g if child.tag == f"{SVG}rect"]
    assert len(cells) >= connected > 0 and not list(root.iter(f"{SVG}image"))
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"Block 1", "Block 2", "Block 3", "source", "target", "cls"} <= texts
    assert any((t or "").startswith("small.pt: mean |w|") for t in texts)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 3000 and b"/Subtype /Image" not in data
    assert re.search(rb"/MediaBox \[0 0 [\d.]+ [\d.]+\]", data)


@pytest.mark.parametrize("flag", ["--svg", "--pdf", "--png"])
def test_bad_output_path_exits_2_with_one_line_before_the_analysis(tmp_path, flag, capsys, monkeypatch):
    import densegui.core.weights.checkpoint as checkpoint

    def never(*_a, **_k):
        raise AssertionError("the checkpoint was loaded before the output path was checked")

    monkeypatch.setattr(checkpoint, "load_checkpoint", never)
    (tmp_path / "a_file").write_text("x")
    for out, phrase in ((tmp_path / "missing" / "r.out", "does not exist"), (tmp_path / "a_file" / "r.out", "not a folder"),
                        (tmp_path, "is a folder")):
        assert main(["reuse", flag, str(out)]) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("densegui: error:") and phrase in lines[0], captured.err
        assert captured.out == "" and "Traceback" not in captured.err
    assert main(["reuse", "--svg", str(tmp_path / "r.svg"), "--cmap", "no-such-map"]) == 2
    assert "unknown colour map" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_png_keeps_writing_png_whatever_the_suffix(ckpt, tmp_path, capsys):
    from PySide6.QtGui import QImage

    out = tmp_path / "figure.out"
    assert main(["reuse", str(ckpt), "--png", str(out), "--normalise", "raw"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    image = QImage(str(out), "PNG")
    assert not image.isNull() and image.width() >= 500
    pixels = np.array([[image.pixelColor(x, y).lightness() for x in range(0, image.width(), 7)]
                       for y in range(0, image.height(), 7)])
    assert (pixels < 200).sum() > 100  # cells drawn, not a blank page
