"""A network's connections as a graph, read from its family plan (torch-free, Qt-free).

Every plan unit is a node named by its module path; every feature map a unit concatenates is one
incoming edge (so a dense layer's in-degree is its number of sources), and a unit that reads only the
previous unit's output has one edge from it. The Architecture tab draws this graph and
``densegui graph --dot`` writes it.

An edge also carries what the target spends on it: the slice of the target's input normalisation
and of its first channel-mixing weight (``Unit.mixer``) that reads the source's channels, in
parameters and MACs. That is what hiding a connection would remove.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any, NamedTuple

from densegui.core.arch import paths
from densegui.core.arch.plan import Plan, Unit


class Node(NamedTuple):
    path: str
    kind: str  # the unit's kind ("input" for a source that is no unit of the plan)
    block: int | None
    index: int | None
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    params: int
    macs: int
    residual: bool = False


class Edge(NamedTuple):
    source: str
    target: str
    channels: int  # channels of the source's feature map that the target reads
    params: int = 0  # the target's parameters that read this feature map
    macs: int = 0  # the target's MACs on it, per sample


def edge_cost(unit: Unit, channels: int) -> tuple[int, int]:
    """(params, MACs) of ``unit`` that read ``channels`` of its ``in_channels`` input channels: the
    share of its mixer weight, and of the 1-D affine tensors over the input that come before the
    mixer (a pre-activation BatchNorm). (0, 0) for a unit without a mixer."""
    if unit.mixer is None or unit.in_channels <= 0:
        return 0, 0
    mixer = f"{unit.mixer}.weight"
    params = macs = 0
    for t in unit.tensors:
        if t.key == mixer:
            params += prod(t.shape) * channels // unit.in_channels
            macs += t.macs * channels // unit.in_channels
            break
        if not t.buffer and t.shape == (unit.in_channels,):
            params += channels
    return params, macs


@dataclass(frozen=True)
class Graph:
    config: Any
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def in_degree(self) -> dict[str, int]:
        out = {n.path: 0 for n in self.nodes}
        for e in self.edges:
            out[e.target] += 1
        return out

    def incoming(self, path: str) -> list[Edge]:
        return [e for e in self.edges if e.target == path]

    def node(self, path: str) -> Node:
        for n in self.nodes:
            if n.path == path:
                return n
        raise KeyError(path)


def from_plan(plan: Plan) -> Graph:
    paths = {u.path for u in plan.units}
    nodes: list[Node] = []
    edges: list[Edge] = []
    previous: Unit | None = None
    for u in plan.units:
        if u.sources:
            for src, ch in zip(u.sources, u.source_channels, strict=True):
                if src not in paths and all(n.path != src for n in nodes):
                    nodes.append(Node(src, "input", u.block, 0, ch, ch, u.in_size, u.in_size, 0, 0))
                edges.append(Edge(src, u.path, ch, *edge_cost(u, ch)))
        elif previous is not None:
            edges.append(Edge(previous.path, u.path, previous.out_channels, *edge_cost(u, previous.out_channels)))
        nodes.append(Node(u.path, u.kind, u.block, u.index, u.in_channels, u.out_channels, u.in_size, u.out_size,
                          u.params, u.macs, u.residual))
        previous = u
    return Graph(plan.config, tuple(nodes), tuple(edges))


def graph_of(cfg: Any) -> Graph:
    from densegui.core.arch import registry

    return from_plan(registry.plan(cfg))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:g}"


def to_dot(graph: Graph, *, title: str = "", block_word: str = "block") -> str:
    """Graphviz DOT: one node per unit (its module path), one edge per feature map it reads; the
    units of a block in a cluster. Nodes carry kind/channels/size/params/macs attributes."""
    lines = [f"digraph {_quote(title or 'network')} {{",
             f"  graph [rankdir=LR, label={_quote(title)}, fontname=Helvetica];",
             "  node [shape=box, style=rounded, fontname=Helvetica, fontsize=10];",
             "  edge [arrowsize=0.5];"]
    blocks: dict[int, list[Node]] = {}
    loose: list[Node] = []
    for n in graph.nodes:
        (blocks.setdefault(n.block, []) if n.block is not None and n.index is not None else loose).append(n)

    def node_line(n: Node, indent: str) -> str:
        label = f"{n.path}\n{n.in_channels} → {n.out_channels} ch · {n.out_size}²"
        attrs = (f"label={_quote(label)}, kind={_quote(n.kind)}, "
                 f"in_channels={n.in_channels}, out_channels={n.out_channels}, size={n.out_size}, "
                 f"params={n.params}, macs={n.macs}, tooltip={_quote(f'{_si(n.params)} params, {_si(n.macs)} MACs')}")
        if n.residual:
            attrs += ", residual=true"
        return f"{indent}{_quote(n.path)} [{attrs}];"

    for n in loose:
        lines.append(node_line(n, "  "))
    for b, members in blocks.items():
        size = members[0].out_size
        lines.append(f"  subgraph {_quote(f'cluster_{block_word}{b}')} {{")
        lines.append(f"    label={_quote(f'{block_word} {b} · {size}×{size}')};")
        lines.extend(node_line(n, "    ") for n in members)
        lines.append("  }")
    for e in graph.edges:
        lines.append(f"  {_quote(e.source)} -> {_quote(e.target)} [channels={e.channels}, params={e.params}, "
                     f"macs={e.macs}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def backprop_distance(plan: Plan) -> int | None:
    """The most layers a gradient must cross between two feature maps of one block, along the
    connections (the Log-DenseNet paper's backprop distance: 1 when every layer reads every
    earlier one); None for a network whose layers concatenate nothing (a ResNet)."""
    blocks: dict[int, list[Unit]] = {}
    for u in plan.units:
        if u.block is not None and u.index is not None and u.sources:
            blocks.setdefault(u.block, []).append(u)
    if not blocks:
        return None
    return max(paths.longest_path([layers[0].sources[0], *(u.path for u in layers)],  # the input, then each layer
                                  {u.path: u.sources for u in layers})
               for layers in blocks.values())


def connections(plan: Plan) -> int:
    """Feature maps concatenated by every unit of the network (transitions and head included)."""
    return sum(len(u.sources) for u in plan.units)
