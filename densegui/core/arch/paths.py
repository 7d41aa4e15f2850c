"""The backprop distance of a block, for any family: one function that both the connectivity rule
(integers) and the plan (module paths) use."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence


def longest_path(maps: Sequence[Hashable], reads: Mapping[Hashable, Iterable[Hashable]]) -> int:
    """Over every pair of feature maps s before t in ``maps`` (in order; each map's ``reads`` are
    earlier maps, the first map reads nothing), the fewest connections a gradient from t crosses to
    reach s; the most of those (0 for a single map). One pass per s: sources precede their readers."""
    worst = 0
    for i, s in enumerate(maps):
        dist = {s: 0}
        for t in maps[i + 1:]:
            reach = [dist[x] for x in reads[t] if x in dist]
            if reach:
                dist[t] = min(reach) + 1
        worst = max(worst, max(dist.values()))
    return worst
