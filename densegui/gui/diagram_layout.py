"""Where the Architecture tab draws each unit of a plan (plain Python: no Qt, no NumPy).

One row per block or stage: the block's input on the left (the stem in the first row, a port for
the previous row's output after it), its layers as bars, then the units that close it (a
transition, the head). Every feature map a unit concatenates is an arc above the row from its source
to it, in the style of the paper's Figure 1; a unit that reads only the previous output gets a
straight link, and a residual unit a short skip arc over itself. A block of more than
``COLLAPSE_OVER`` layers starts collapsed into one box. Coordinates are scene units (pixels at zoom 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import sqrt
from typing import Any

COLLAPSE_OVER = 32
MARGIN = 20.0
HEADER_H = 22.0
ARC_H = 84.0  # tallest arc of a row with concatenations
SEQ_ARC_H = 22.0  # the arc zone of a row without (skip arcs only)
BAR_MAX_H = 50.0
BAR_MIN_H = 8.0
BAR_W = 12.0
PITCH = 22.0  # one layer's slot
BOX_W = 96.0
BLOCK_W = 320.0  # a collapsed block
GAP = 16.0
LABEL_H = 16.0
ROW_GAP = 24.0


@dataclass(eq=False)
class Item:
    path: str  # the unit's module path ("block:N" for a collapsed block)
    role: str  # "layer" (a bar) | "unit" (a box: stem, transition, head …) | "port" | "block" (collapsed)
    unit: Any  # the plan Unit (None for a collapsed block)
    x: float
    y: float
    w: float
    h: float
    row: int
    slot: int  # position in its row (the port or first box is 0)

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    def contains(self, x: float, y: float, pad: float = 0.0) -> bool:
        return self.x - pad <= x <= self.x + self.w + pad and self.y - pad <= y <= self.y + self.h + pad


class Arc:
    """A concatenation: the ``source``-th feature map read by ``target`` (indices in the block's reuse
    matrix: source 0 is the block input, j ≥ 1 layer j; target t is the row's t-th reader)."""

    __slots__ = ("src", "dst", "channels", "source", "target", "apex")

    def __init__(self, src: Item, dst: Item, channels: int, source: int, target: int, apex: float) -> None:
        self.src, self.dst, self.channels, self.source, self.target, self.apex = src, dst, channels, source, target, apex


@dataclass(eq=False)
class Row:
    index: int
    block: int | None
    y: float
    height: float
    baseline: float  # the bars stand on it
    collapsed: bool
    depth: int  # layers in the block
    title: str
    items: list[Item] = field(default_factory=list)
    arcs: list[Arc] = field(default_factory=list)
    links: list[tuple[Item, Item]] = field(default_factory=list)  # straight links (no concatenation)
    header: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    layer_word: str = "layers"
    port_word: str = "block"  # the family's word for a block ("stage")
    connections: int = 0  # feature maps its units concatenate (drawn or not)

    @property
    def right(self) -> float:
        return max((i.x + i.w for i in self.items), default=MARGIN)


@dataclass(eq=False)
class Layout:
    config: Any
    rows: list[Row]
    width: float
    height: float
    max_in: int
    max_macs: int
    by_path: dict[str, Item]  # each unit's own item (ports excluded)
    inside: dict[str, Item] = field(default_factory=dict)  # a collapsed block's layers → its box

    def item_at(self, x: float, y: float) -> Item | None:
        for row in self.rows:
            if not row.y <= y <= row.y + row.height:
                continue
            for item in row.items:
                if item.contains(x, y, 2.0 if item.role == "layer" else 0.0):
                    return item
            for item in row.items:  # a bar is easier to hit over its whole slot height
                if item.role == "layer" and item.x - 4 <= x <= item.x + item.w + 4 and item.y - 30 <= y <= row.baseline:
                    return item
        return None

    def header_at(self, x: float, y: float) -> Row | None:
        for row in self.rows:
            hx, hy, hw, hh = row.header
            if row.block is not None and hx <= x <= hx + hw and hy <= y <= hy + hh:
                return row
        return None


def bar_height(in_channels: int, max_in: int) -> float:
    """Bar height ∝ √(input channels): a DenseNet's first block stays visible beside its last."""
    return BAR_MIN_H + (BAR_MAX_H - BAR_MIN_H) * sqrt(max(in_channels, 0) / max(max_in, 1))


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:g}"


def block_title(family: Any, block: int, layers: list[Any], closing: list[Any]) -> str:
    first, last = layers[0], layers[-1]
    end = closing[0].in_channels if closing and closing[0].sources else last.out_channels
    params = sum(u.params for u in layers)
    macs = sum(u.macs for u in layers)
    word = family.layer + ("s" if len(layers) != 1 else "")
    return (f"{family.unit.capitalize()} {block} · {len(layers)} {word} · {first.in_size}×{first.in_size}"
            f"{'' if last.out_size == first.in_size else f' → {last.out_size}×{last.out_size}'} · "
            f"{first.in_channels} → {end} ch · {_si(params)} params · {_si(macs)} MACs")


def layout(plan: Any, family: Any, expanded: dict[int, bool] | None = None, *,
           scale_in: int = 0, scale_macs: int = 0) -> Layout:
    """Place ``plan``'s units. ``expanded``: the blocks the user opened (True) or closed (False);
    the others follow ``COLLAPSE_OVER``. ``scale_in``/``scale_macs``: shared maxima (a baseline drawn
    over the current network uses the current one's, so their bars compare)."""
    expanded = expanded or {}
    units = plan.units
    lead: list[Any] = []
    blocks: dict[int, list[Any]] = {}
    tail: list[Any] = []
    for u in units:
        if u.block is None:
            (tail if blocks else lead).append(u)
        else:
            blocks.setdefault(u.block, []).append(u)
    max_in = scale_in or max((u.in_channels for u in units), default=1)
    max_macs = scale_macs or max((u.macs for u in units), default=1)
    rows: list[Row] = []
    by_path: dict[str, Item] = {}
    inside: dict[str, Item] = {}
    y = MARGIN
    previous: Any = None  # the unit whose output the next row reads
    order = sorted(blocks)
    if not order:  # no blocks: one row of boxes
        order = [None]
    for r, b in enumerate(order):
        members = blocks.get(b, []) if b is not None else []
        layers = [u for u in members if u.index is not None]
        closing = [u for u in members if u.index is None]
        if r == len(order) - 1:
            closing += tail
        if b is None:
            closing = lead + tail
        depth = len(layers)
        collapsed = bool(layers) and not expanded.get(b, depth <= COLLAPSE_OVER)
        concat = any(u.sources for u in layers + closing)
        arc_h = ARC_H if concat and not collapsed else SEQ_ARC_H
        header_y = y
        top = y + HEADER_H + arc_h
        baseline = top + BAR_MAX_H
        title = block_title(family, b, layers, closing) if b is not None and layers else ""
        row = Row(r, b, y, HEADER_H + arc_h + BAR_MAX_H + LABEL_H, baseline, collapsed, depth, title,
                  layer_word=family.layer + ("s" if depth != 1 else ""), port_word=family.unit,
                  connections=sum(len(u.sources) for u in layers + (closing if b is not None else tail)))
        x = MARGIN
        slot = 0
        row_items: dict[str, Item] = {}

        def box(u: Any, role: str = "unit", w: float = BOX_W) -> Item:
            nonlocal x, slot
            item = Item(u.path if u is not None else f"block:{b}", role, u, x, top, w, BAR_MAX_H, r, slot)
            x += w + GAP
            slot += 1
            row.items.append(item)
            return item

        if r == 0:
            for u in lead:
                item = box(u)
                by_path[u.path] = row_items[u.path] = item
        elif previous is not None:
            row_items[previous.path] = box(previous, "port")
        if collapsed:
            item = box(None, "block", BLOCK_W)
            for u in layers:
                row_items[u.path] = inside[u.path] = item
        else:
            for u in layers:
                h = bar_height(u.in_channels, max_in)
                item = Item(u.path, "layer", u, x + (PITCH - BAR_W) / 2, baseline - h, BAR_W, h, r, slot)
                x += PITCH
                slot += 1
                row.items.append(item)
                by_path[u.path] = row_items[u.path] = item
            if layers:
                x += GAP - (PITCH - BAR_W) / 2
        for u in closing if b is not None else tail:
            item = box(u)
            by_path[u.path] = row_items[u.path] = item
        # Connections: arcs for the feature maps a unit concatenates, straight links otherwise.
        seen: set[int] = set()
        t = 0
        readers = layers + (closing if b is not None else tail)
        # A source's row in the block's reuse matrix: its place among the feature maps of the unit that
        # reads the whole block (the transition or head); a sparse layer reads only some of them.
        whole = next((u.sources for u in reversed(readers) if u.sources), ())
        row_of = {path: j for j, path in enumerate(whole)}
        for u in readers:
            dst = row_items[u.path]
            if id(dst) in seen:  # (the layers of a collapsed block share its box)
                continue
            seen.add(id(dst))
            if u.sources and not collapsed:
                for s_i, (src_path, ch) in enumerate(zip(u.sources, u.source_channels, strict=True)):
                    src = row_items.get(src_path)
                    if src is not None:
                        row.arcs.append(Arc(src, dst, ch, row_of.get(src_path, s_i), t, 0.0))
                t += 1
            else:
                i = row.items.index(dst)
                if i > 0:
                    row.links.append((row.items[i - 1], dst))
        if r == 0 and len(lead) > 1:
            for a, c in zip(row.items[: len(lead) - 1], row.items[1: len(lead)], strict=True):
                row.links.append((a, c))
        if row.arcs:
            span = max(a.dst.slot - a.src.slot for a in row.arcs)
            for a in row.arcs:
                a.apex = (top - 6) - (arc_h - 14) * (a.dst.slot - a.src.slot) / max(span, 1)
        row.header = (MARGIN, header_y, max(row.right - MARGIN, 360.0), HEADER_H)
        rows.append(row)
        y += row.height + ROW_GAP
        last_units = (closing if b is not None else tail) or layers
        previous = last_units[-1] if last_units else previous
        if b is not None and r == len(order) - 1:
            previous = None
    width = max((row.right for row in rows), default=MARGIN) + MARGIN
    return Layout(plan.config, rows, max(width, 400.0), y - ROW_GAP + MARGIN, max_in, max_macs, by_path, inside)
