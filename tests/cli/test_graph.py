"""``densegui graph``: the DOT's nodes and in-degrees against the built ``nn.Module`` (ours for every
preset, torchvision's densenet121), the SVG/PDF/PNG drawings parsed, and every bad input (one line
on stderr, exit 2, no file left)."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch
from helpers.cli import run
from helpers.libraries import torchvision_models
from torch import nn
from torch.overrides import TorchFunctionMode

from densegui.cli import main
from densegui.core.arch import registry
from densegui.gui import diagram_layout as dl

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

PRESETS = list(registry.presets())
DENSE = "densenet121"
OTHER = next(n for n, p in registry.presets().items()  # a preset of another family (a ResNet)
             if registry.family_of(p.config) is not registry.family_of(registry.get_preset(DENSE)))


# ----------------------------------------------------------------------------- a small DOT parser
_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(->)|([{}\[\];=,])|([A-Za-z0-9_.]+))')


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, end = [], 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"not DOT at {text[pos:pos + 40]!r}"
        quoted, arrow, sym, word = m.groups()
        out.append(("id", re.sub(r"\\(.)", r"\1", quoted)) if quoted is not None else
                   ("sym", arrow or sym) if (arrow or sym) else ("id", word))
        pos = m.end()
    return out


def parse_dot(text: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict[str, str]]]]:
    """(nodes: name → attributes, edges: (source, target, attributes)) of a digraph."""
    toks = _tokens(text)
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []
    i = 0

    def take(kind=None, value=None):
        nonlocal i
        k, v = toks[i]
        assert (kind is None or k == kind) and (value is None or v == value), (toks[i], kind, value)
        i += 1
        return v

    def attrs() -> dict[str, str]:
        out = {}
        take("sym", "[")
        while toks[i] != ("sym", "]"):
            key = take("id")
            take("sym", "=")
            out[key] = take("id")
            if toks[i] == ("sym", ","):
                take()
        take("sym", "]")
        return out

    def body() -> None:
        nonlocal i
        take("sym", "{")
        while toks[i] != ("sym", "}"):
            if toks[i] == ("id", "subgraph"):
                take()
                take("id")
                body()
                continue
            name = take("id")
            if toks[i] == ("sym", "->"):
                take()
                target = take("id")
                edges.append((name, target, attrs() if toks[i] == ("sym", "[") else {}))
            elif toks[i] == ("sym", "="):
                take()
                take("id")
            elif name in ("graph", "node", "edge"):
                attrs()
            else:
                assert name not in nodes, f"node {name} declared twice"
                nodes[name] = attrs() if toks[i] == ("sym", "[") else {}
            if toks[i] == ("sym", ";"):
                take()
        take("sym", "}")

    take("id", "digraph")
    if toks[i][0] == "id":
        take("id")
    body()
    assert i == len(toks), "text after the graph"
    return nodes, edges


def test_the_parser_reads_nodes_edges_and_clusters():
    nodes, edges = parse_dot('digraph "t" {\n graph [rankdir=LR];\n "a" [kind="x", n=1];\n'
                             ' subgraph "cluster_1" { label="b 1"; "b.c" [kind="y"]; }\n "a" -> "b.c" [channels=3];\n}\n')
    assert nodes == {"a": {"kind": "x", "n": "1"}, "b.c": {"kind": "y"}}
    assert edges == [("a", "b.c", {"channels": "3"})]


# ----------------------------------------------------------------------------- the independent count
class _Cats(TorchFunctionMode):
    """Records every torch.cat (however the model reaches it) with how many tensors it joins."""

    def __init__(self, events: list) -> None:
        super().__init__()
        self.events = events

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.cat:
            return func(*args, **kwargs)
        tensors = list(args[0] if args else kwargs["tensors"])
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        self.events.append(("cat", None, len(tensors)))
        # Its shape only: meta cat's first call costs ~1 s (the refs it imports).
        shape = list(tensors[0].shape)
        shape[dim] = sum(t.shape[dim] for t in tensors)
        return torch.empty(shape, dtype=tensors[0].dtype, device=tensors[0].device)


def traced_sources(model: nn.Module, shape: tuple[int, ...], nodes: set[str]) -> dict[str, list[str]]:
    """For each of ``nodes`` (module paths), the nodes whose outputs it reads, from a meta-device
    forward of ``model``: a module called with a list of tensors reads that many, one called with
    one tensor right after a concatenation reads the concatenated ones, any other reads one; they
    are the outputs of the nodes that ran last before it."""
    for m in model.modules():  # (meta BatchNorm is a slow Python decomposition; it joins nothing)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = lambda x: x
    events: list = []  # ("start", path, tensors given in a list or None) | ("end", path, None) | ("cat", None, n)
    hooks = []
    for name, m in model.named_modules():
        def pre(_m, args, name=name):
            events.append(("start", name, len(args[0]) if isinstance(args[0], (list, tuple)) else None))

        def post(_m, _args, _out, name=name):
            events.append(("end", name, None))

        hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.no_grad(), _Cats(events):
            model(torch.empty(shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    # a dense layer joins the list it was given; a container, its input and each such child's output
    given = {name: n for kind, name, n in events if kind == "start" and n is not None}
    running: list[str] = []
    for kind, name, n in events:
        if kind == "start":
            running.append(name)
        elif kind == "end":
            running.pop()
        elif running[-1] in given:
            assert n == given[running[-1]], (running[-1], n)
        else:
            top = running[-1]
            children = [f"{top}.{c}".lstrip(".") for c, _ in model.get_submodule(top).named_children()]
            assert n == 1 + sum(c in given for c in children), (top, n)

    order: list[str] = []  # the nodes in the order they ran
    out: dict[str, list[str]] = {}
    joined = None  # tensors of the last concatenation since the previous node ended
    for kind, name, n in events:
        if kind == "cat":
            joined = n
        elif kind == "start" and name in nodes:
            assert name not in out, f"{name} ran twice"
            k = n if n is not None else joined if joined is not None else min(1, len(order))
            out[name] = order[len(order) - k:] if k else []
            order.append(name)
        elif kind == "end" and name in nodes:
            joined = None
    missing = nodes - set(out)
    assert not missing, f"DOT nodes no module ran: {sorted(missing)}"
    assert set(given) <= nodes, f"modules given a list of feature maps that are no node: {set(given) - nodes}"
    return out


def dot_of(name: str, tmp_path, capsys) -> str:
    path = tmp_path / f"{name}.dot"
    code, out, err = run(["graph", "--preset", name, "--dot", str(path)], capsys)
    assert code == 0 and err == "" and out == f"wrote {path}\n", err
    return path.read_text(encoding="utf-8")


def check_against(model: nn.Module, cfg, nodes, edges) -> dict[str, list[str]]:
    modules = dict(model.named_modules())
    assert all(path in modules for path in nodes), [p for p in nodes if p not in modules]
    for s, t, _ in edges:
        assert s in nodes and t in nodes, (s, t)
    incoming: dict[str, list[str]] = {p: [] for p in nodes}
    for s, t, _ in edges:
        incoming[t].append(s)
    expected = traced_sources(model, (1, cfg.in_channels, cfg.input_size, cfg.input_size), set(nodes))
    for path in nodes:
        assert len(incoming[path]) == len(expected[path]), (path, len(incoming[path]), len(expected[path]))
        assert incoming[path] == expected[path], path
    return expected


@pytest.mark.parametrize("name", PRESETS)
def test_dot_in_degrees_are_the_modules_sources(name, tmp_path, capsys):
    cfg = registry.get_preset(name)
    nodes, edges = parse_dot(dot_of(name, tmp_path, capsys))
    expected = check_against(registry.build_model(cfg, "meta").eval(), cfg, nodes, edges)
    kinds = {}
    for path, attrs in nodes.items():
        kinds.setdefault(attrs["kind"], []).append(len(expected[path]))
    depths = getattr(cfg, registry.family_of(cfg).depths)
    layers = [k for kind, degs in kinds.items() for k in degs if kind not in ("stem", "transition", "head")]
    assert len(layers) == sum(depths) and len(kinds["head"]) == 1
    if "dense" in kinds:  # Figure 1: a block of L layers has L(L+1)/2 connections into its layers
        assert sum(kinds["dense"]) == sum(d * (d + 1) // 2 for d in depths)
        assert kinds["head"] == [depths[-1] + 1]
    else:  # no concatenation: each unit reads the one before it
        assert {k for degs in kinds.values() for k in degs} == {0, 1}


def test_dot_matches_torchvisions_own_densenet121(tmp_path, capsys):
    tv = torchvision_models()
    assert tv is not None, "torchvision is a test dependency (README's test command installs it)"
    cfg = registry.get_preset(DENSE)
    with torch.device("meta"):
        model = tv.densenet121(weights=None).eval()
    expected = check_against(model, cfg, *parse_dot(dot_of(DENSE, tmp_path, capsys)))
    assert len(expected["features.denseblock2.denselayer7"]) == 7
    assert len(expected["features.transition2"]) == 13 and len(expected["classifier"]) == 17


def test_dot_to_stdout_and_by_suffix(tmp_path, capsys):
    gv = tmp_path / "n.gv"
    code, out, err = run(["graph", "--preset", OTHER, "--dot", "-", "-o", str(gv)], capsys)
    assert code == 0 and err == f"wrote {gv}\n", err
    assert out == gv.read_text(encoding="utf-8")
    nodes, edges = parse_dot(out)
    assert len(edges) == len(nodes) - 1  # a chain: each unit reads the one before it


def test_dot_needs_neither_torch_nor_qt(tmp_path):
    out = tmp_path / "x.dot"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "densegui", "graph", "--preset", DENSE,
                           "--dot", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == f"wrote {out}\n", proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "densegui.core.arch.graph" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in ("torch", "PySide6", "shiboken6", "numpy"))
    assert not heavy, heavy
    assert parse_dot(out.read_text(encoding="utf-8"))[0]


# ----------------------------------------------------------------------------- the drawings
def scene(name: str, expanded: dict | None = None) -> dl.Layout:
    cfg = registry.get_preset(name)
    return dl.layout(registry.plan(cfg), registry.family_of(cfg), expanded)


@pytest.mark.parametrize("name", [DENSE, OTHER])
def test_svg_pdf_and_png(name, tmp_path, capsys):
    svg, pdf, png = tmp_path / "g.svg", tmp_path / "g.pdf", tmp_path / "g.png"
    code, out, err = run(["graph", "--preset", name, "--svg", str(svg), "--pdf", str(pdf), "-o", str(png)], capsys)
    assert code == 0 and err == "", err
    assert out.splitlines() == [f"wrote {svg}", f"wrote {pdf}", f"wrote {png}"]
    lay = scene(name)

    root = ET.parse(svg).getroot()
    tags = [el.tag.rsplit("}", 1)[-1] for el in root.iter()]
    assert "image" not in tags  # a true vector drawing
    units = len(registry.plan(registry.get_preset(name)).units)
    assert tags.count("rect") + tags.count("path") >= units  # a bar or box per unit, the arcs as paths
    text = " ".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("text"))
    unit = registry.family_of(registry.get_preset(name)).unit.capitalize()
    assert all(f"{unit} {row.block}" in text for row in lay.rows if row.block is not None), text[:300]
    from shiboken6 import delete

    from densegui.gui.diagram import DiagramView

    view = DiagramView()
    view.set_layout(lay)
    width, height = view.scene_size()  # the layout widened to its block titles, which are drawn whole
    delete(view)
    assert width >= lay.width and height == lay.height
    assert [float(v) for v in root.get("viewBox").split()][2:] == pytest.approx([width, height], abs=1)
    assert text.count("MACs") == sum(1 for row in lay.rows if row.title)  # each title's last word is there

    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")

    from PySide6.QtGui import QImage

    image = QImage(str(png))
    assert not image.isNull()
    assert abs(image.width() - 2 * width) <= 2 and abs(image.height() - 2 * height) <= 2
    gray = image.convertToFormat(QImage.Format.Format_Grayscale8)
    dark = sum(1 for y in range(0, gray.height(), 4) for x in range(0, gray.width(), 4) if gray.pixelColor(x, y).value() < 100)
    assert dark > 50  # bars and text drawn, not a blank page
    assert not list(tmp_path.glob(".*"))  # no temporaries left


def test_expand_all_draws_wider_than_none(tmp_path, capsys):
    name = "densenet264"
    widths = {}
    for mode in ("all", "none"):
        path = tmp_path / f"{mode}.svg"
        assert run(["graph", "--preset", name, "--expand", mode, "-o", str(path)], capsys)[0] == 0
        widths[mode] = float(ET.parse(path).getroot().get("viewBox").split()[2])
    blocks = {u.block for u in registry.plan(registry.get_preset(name)).units if u.block is not None}
    assert widths["all"] == pytest.approx(scene(name, dict.fromkeys(blocks, True)).width, abs=1)
    assert widths["none"] == pytest.approx(scene(name, dict.fromkeys(blocks, False)).width, abs=1)
    assert widths["all"] > 2 * widths["none"]


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv, needle", [
    (["--growth-rate", "0", "--dot", "{tmp}/x.dot"], "growth_rate"),
    (["--growth-rate", "0", "--svg", "{tmp}/x.svg"], "growth_rate"),
    (["--svg", "/nonexistent/x.svg"], "/nonexistent"),
    (["--dot", "{tmp}/x.dot", "--pdf", "/nonexistent/x.pdf"], "/nonexistent"),  # nothing written, not even x.dot
    (["--dot", "/nonexistent/x.dot"], "/nonexistent"),
    (["-o", "{tmp}/x.txt"], "x.txt"),
    (["--png", "-"], "standard output"),
    ([], "needs an output"),
])
def test_bad_input_one_line_exit_2_no_file(argv, needle, tmp_path, capsys):
    code, out, err = run(["graph", "--preset", DENSE, *[a.replace("{tmp}", str(tmp_path)) for a in argv]], capsys)
    assert code == 2, (code, err)
    assert out == "" and err.count("\n") == 1 and err.startswith("densegui: error: ") and needle in err, err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())
