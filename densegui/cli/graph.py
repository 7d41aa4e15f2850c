"""``densegui graph``: the network's connections as Graphviz DOT, or drawn as SVG, PDF or PNG.

The DOT has one node per unit of the family plan, named by its module path, and one incoming edge
per feature map the unit concatenates (a dense layer's in-degree is its number of sources); it
needs neither torch nor Qt. The drawings are the Architecture tab's diagram
(:mod:`densegui.gui.diagram_render`), made offscreen.
"""

from __future__ import annotations

import sys
from pathlib import Path

from densegui.cli.common import add_model_args, config_from_args
from densegui.core.arch import registry
from densegui.core.arch.graph import graph_of, to_dot
from densegui.core.errors import DenseguiError
from densegui.core.writing import check_writable, write_atomic
from densegui.gui.diagram_layout import COLLAPSE_OVER  # (plain Python, as is diagram_render until it draws)
from densegui.gui.diagram_render import EXPAND, render

DOT_SUFFIXES = ("dot", "gv")
FIGURES = ("svg", "pdf", "png")
STDOUT = "-"


def register(sub) -> None:
    p = sub.add_parser(
        "graph", help="the network's connections as Graphviz DOT, or drawn as SVG, PDF or PNG",
        description="Write the network's graph: DOT (one node per layer, named by its module path, one "
                    "incoming edge per feature map it concatenates) and/or the Architecture tab's "
                    "drawing (SVG and PDF as vector figures). At least one output is required; "
                    "--dot - prints the DOT.")
    add_model_args(p, checkpoint=True)
    out = p.add_argument_group("outputs (at least one; any together)")
    out.add_argument("--dot", metavar="OUT.dot", help="Graphviz DOT (`-`: print it)")
    out.add_argument("--svg", metavar="OUT.svg", help="the diagram as an SVG (vector)")
    out.add_argument("--pdf", metavar="OUT.pdf", help="the diagram as a one-page PDF (vector)")
    out.add_argument("--png", metavar="OUT.png", help="the diagram as a PNG (2 pixels per point)")
    out.add_argument("-o", "--output", metavar="OUT", action="append", default=[],
                     help="an output whose format is its suffix: .dot/.gv, .svg, .pdf or .png (repeatable)")
    p.add_argument("--expand", choices=EXPAND, default="auto",
                   help=f"the drawings' blocks: auto (those of over {COLLAPSE_OVER} layers collapsed into one box, as the "
                        "tab starts), all or none expanded (default auto; the DOT always has every layer)")
    p.set_defaults(func=run)


def format_of(path: str) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in DOT_SUFFIXES:
        return "dot"
    if suffix in FIGURES:
        return suffix
    raise DenseguiError(f"cannot tell the format of {path!r}: name the file .dot, .gv, .svg, .pdf or .png "
                        "(or use --dot, --svg, --pdf or --png).")


def outputs(args) -> list[tuple[str, str]]:
    """(format, path) of every output asked for; DenseguiError when there is none."""
    wanted = [(fmt, getattr(args, fmt)) for fmt in ("dot", *FIGURES) if getattr(args, fmt)]
    wanted += [(format_of(path), path) for path in args.output]
    if not wanted:
        raise DenseguiError("graph needs an output: --dot OUT.dot, --svg OUT.svg, --pdf OUT.pdf, --png OUT.png "
                            "or -o OUT (--dot - prints the DOT).")
    for fmt, path in wanted:
        if path == STDOUT and fmt != "dot":
            raise DenseguiError(f"only the DOT can go to standard output, not the {fmt.upper()}.")
    return wanted


def run(args) -> int:
    wanted = outputs(args)
    cfg = config_from_args(args)
    for _fmt, path in wanted:
        if path != STDOUT:
            check_writable(path)  # every output before the first is written
    report = sys.stderr if any(path == STDOUT for _fmt, path in wanted) else sys.stdout  # (stdout: the DOT only)
    dot = None
    for fmt, path in wanted:
        if fmt == "dot":
            if dot is None:
                dot = to_dot(graph_of(cfg), title=cfg.label(), block_word=registry.family_of(cfg).unit)
            if path == STDOUT:
                sys.stdout.write(dot)
                continue
            write_atomic(Path(path), dot.encode("utf-8"))
        else:
            try:
                render(cfg, path, expand=args.expand, fmt=fmt)
            except ImportError as exc:
                raise DenseguiError(f"--svg, --pdf and --png need the Qt libraries ({exc.name or exc}).") from None
        print(f"wrote {path}", file=report)
    return 0
