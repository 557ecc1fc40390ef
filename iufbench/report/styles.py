"""How each method looks in every figure, so a plot of 20 methods stays readable.

Colour says the family (`family:` in methods/*.yaml, kept in the run's record): UniAD, IUF and
its ablations, the continual baselines, classic AD and CAD, and any new family gets the next
colour. Within a family, each member has its own line style and marker. Methods that see or keep
old data (joint, replay, a cumulative bank: upper bounds, not fair incremental results) all have
hollow markers and a † in the legend, and keep their family colour and own line style, so they
read as one kind yet stay apart. No two methods share both colour and line style.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iufbench.records import MethodTraits

# tab10 without its grey, which draws the other families behind a facet
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
CONTEXT_GREY = "#c8c8c8"
NAMED_LINESTYLES: list[Any] = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]


def linestyle(k: int) -> Any:
    """The k-th line style: matplotlib's four named ones, then dash patterns that differ from all before."""
    if k < len(NAMED_LINESTYLES):
        return NAMED_LINESTYLES[k]
    n = k - len(NAMED_LINESTYLES)
    return (0, (2 + 2 * (n // 3), 1.5) + (1, 1.5) * (n % 3 + 1))


@dataclass(frozen=True)
class Style:
    color: str
    linestyle: Any
    marker: str
    old_data: bool  # sees or keeps old data: hollow markers, † in the legend
    family: str

    def plot_kwargs(self) -> dict[str, Any]:
        face = "white" if self.old_data else self.color
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker, "markersize": 5,
                "markerfacecolor": face, "markeredgecolor": self.color, "linewidth": 1.6}

    def label(self, method: str) -> str:
        return method + (" † (sees old data)" if self.old_data else "")


def families(traits: dict[str, MethodTraits]) -> list[str]:
    """Families in the order their first method appears."""
    return list(dict.fromkeys(t.family for t in traits.values()))


def method_styles(traits: dict[str, MethodTraits]) -> dict[str, Style]:
    """`traits` in the order methods should be listed; each family takes the next colour, each member
    of a colour the next line style and marker."""
    colour_of = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(families(traits))}
    used: dict[str, int] = {}  # colour -> members styled so far (families share a colour past 9)
    styles = {}
    for method, t in traits.items():
        colour = colour_of[t.family]
        k = used.get(colour, 0)
        used[colour] = k + 1
        styles[method] = Style(colour, linestyle(k), MARKERS[k % len(MARKERS)], t.uses_old_data, t.family)
    return styles
