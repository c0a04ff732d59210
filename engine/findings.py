"""Findings: statements about a run's metrics, each a rule a table of numbers meets or not.

Rules are checked per (dataset, method, seed); across seeds the report gives the share
of seeds in which each holds. The vocabulary, shared by the generic findings here and
the study's own (:mod:`repscope.engine.presets.study`):

- "Better" compares the six separation metrics (``ds``, ``dd``, ``cs``, ``cd``,
  ``acc_knn``, ``acc_knn_loo``; ``avg`` is a scale, not a score), each in its own
  direction (lower ``ds``, ``cs``; higher the rest). *A beats B* when A is better on a
  majority (4 or more) of the six.
- A layer's score is its *per-layer average*: the representation itself for a layer
  analysed whole, the mean over its channels for a layer split by channel (dead
  channels, whose distance ratios are undefined, left out as in the tables).
- *Relative shortfall* of A against B: how much worse A is, as a fraction of B's value,
  averaged over the metrics defined for both (negative when it is better).

The generic findings, which make sense for any model: the trained network's last
analysed layer beats the untrained network's (training made the classes separate), and
it beats the input. The functions here know numbers only; the report gathers them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..store import ORIGINAL, Representation, layer_names
from .tables import filter_mean

#: The metrics that score class separation, in the order of the tables.
SEPARATION = ("ds", "dd", "cs", "cd", "acc_knn", "acc_knn_loo")
LOWER_IS_BETTER = frozenset({"ds", "cs"})

#: (network, representation) -> {metric: value} for one (dataset, method, seed).
Cells = dict


class Depths:
    """The analysed layers of a run in depth order, and which representations stand for each.

    Examples
    --------
    >>> from repscope.store import build_representations
    >>> d = Depths(build_representations(64, [("conv", "channels", (2, 3, 3), None), ("fc", "whole", (8,), None)]))
    >>> d.layers, d.members("conv"), d.last
    (['original', 'conv', 'fc'], ['conv/filter01', 'conv/filter02'], 'fc')
    """

    def __init__(self, representations: Sequence[Representation]) -> None:
        self.representations = tuple(representations)
        self.layers = layer_names(self.representations)
        self._members = {layer: [r.name for r in self.representations if r.array == layer and r.in_study]
                         for layer in self.layers}
        self._whole = {r.array: r.name for r in self.representations if r.channel is None}

    def members(self, layer: str) -> list[str]:
        """The representations averaged for ``layer``: its channels, or the layer itself."""
        return self._members[layer]

    def whole(self, layer: str) -> str:
        """The representation of the whole layer (``<layer>`` or ``<layer>/all``)."""
        return self._whole[layer]

    @property
    def last(self) -> str:
        """The whole last analysed layer: where the outliers and the generic findings look."""
        return self.whole(self.layers[-1])

    def channel_layers(self) -> list[str]:
        """The layers split by channel, in depth order."""
        return [layer for layer in self.layers if any(r.array == layer and r.channel is not None
                                                       for r in self.representations)]


@dataclass
class Check:
    """One finding for one (dataset, method, seed): whether it holds (None: not
    applicable or not computable) and the numbers behind the verdict."""

    holds: bool | None
    detail: str

    def __post_init__(self) -> None:
        self.holds = None if self.holds is None else bool(self.holds)


@dataclass
class Finding:
    """A statement, the rule that checks it, and its checks per (dataset, method) and seed."""

    number: int
    statement: str
    rule: str
    #: (dataset, method) -> {seed: Check}
    checks: dict = field(default_factory=lambda: defaultdict(dict))

    def share(self, dataset: str, method: str) -> tuple[int, int]:
        """(seeds in which it holds, seeds in which it could be checked)."""
        verdicts = [c.holds for c in self.checks[dataset, method].values() if c.holds is not None]
        return sum(verdicts), len(verdicts)


def cells_by_run(rows: list[dict], space: str = "embedding",
                 measures: tuple[str, ...] = SEPARATION) -> dict[tuple[str, str, int], Cells]:
    """Metrics rows of ``space`` -> {(dataset, method, seed): cells}, each cell holding the
    ``measures`` its row has."""
    out: dict = defaultdict(dict)
    for row in rows:
        if row["space"] == space:
            out[row["dataset"], row["method"], row["seed"]][row["network"], row["representation"]] = {
                m: row[m] for m in measures if m in row}
    return dict(out)


def is_better(metric: str, a: float, b: float) -> bool | None:
    """Whether value ``a`` separates classes better than ``b`` (None if either is NaN)."""
    if math.isnan(a) or math.isnan(b):
        return None
    return a < b if metric in LOWER_IS_BETTER else a > b


def wins(a: dict, b: dict) -> int:
    """On how many of the six metrics ``a`` is better than ``b``."""
    return sum(bool(is_better(m, a[m], b[m])) for m in SEPARATION)


def beats(a: dict, b: dict) -> bool:
    """Whether ``a`` is better than ``b`` on a majority (4 or more) of the six metrics."""
    return wins(a, b) > len(SEPARATION) / 2


def shortfall(a: dict, b: dict) -> float:
    """Mean relative amount by which ``a`` is worse than ``b`` (negative: better)."""
    gaps = []
    for m in SEPARATION:
        if math.isnan(a[m]) or math.isnan(b[m]) or b[m] == 0:
            continue
        gap = (a[m] - b[m]) / abs(b[m])
        gaps.append(gap if m in LOWER_IS_BETTER else -gap)
    return float(np.mean(gaps)) if gaps else math.nan


def layer_average(cells: Cells, depths: Depths, network: str, layer: str, metric: str) -> float:
    """The per-layer average of one metric (NaN if a cell is missing)."""
    values = [cells.get((network, name), {}).get(metric) for name in depths.members(layer)]
    return filter_mean(values)[0]


def need(cells: Cells, *keys) -> str | None:
    """None if every (network, representation) has cells, else a line naming the missing ones."""
    missing = [f"{network} {name}" for network, name in keys if (network, name) not in cells]
    return f"missing from metrics.csv: {', '.join(missing)}" if missing else None


def undecided(a: dict, b: dict) -> str | None:
    """None where a majority verdict is possible, else why not: fewer than 4 of the six
    metrics are defined for both (one class, or a representation that is constant)."""
    # distances but none between two classes: one class
    if any(math.isnan(cell.get("dd", math.nan)) and not math.isnan(cell.get("ds", math.nan)) for cell in (a, b)):
        return "undefined: there are no examples of two different classes to separate (one class)"
    defined = sum(is_better(m, a[m], b[m]) is not None for m in SEPARATION)
    if defined > len(SEPARATION) / 2:
        return None
    return f"undefined: only {defined} of 6 metrics are defined for both (a constant representation)"


def listing(a: dict, b: dict) -> str:
    """The six metrics of ``a`` and ``b`` side by side, for a finding's numbers."""
    return ", ".join(f"{m} {a[m]:.3f} vs {b[m]:.3f}" for m in SEPARATION)


def trained_beats_untrained(cells: Cells, depths: Depths) -> Check:
    """The trained network's last layer beats the untrained network's."""
    last = depths.last
    missing = need(cells, ("trained", last), ("untrained", last))
    if missing:
        return Check(None, missing)
    undefined = undecided(cells["trained", last], cells["untrained", last])
    if undefined:
        return Check(None, undefined)
    won = wins(cells["trained", last], cells["untrained", last])
    return Check(won > len(SEPARATION) / 2, f"{last}: trained better on {won} of 6 metrics "
                                             f"({listing(cells['trained', last], cells['untrained', last])})")


def last_beats_input(cells: Cells, depths: Depths) -> Check:
    """The trained network's last layer beats the input."""
    last = depths.last
    missing = need(cells, ("trained", last), ("trained", ORIGINAL))
    if missing:
        return Check(None, missing)
    undefined = undecided(cells["trained", last], cells["trained", ORIGINAL])
    if undefined:
        return Check(None, undefined)
    won = wins(cells["trained", last], cells["trained", ORIGINAL])
    return Check(won > len(SEPARATION) / 2, f"trained {last} better than {ORIGINAL} on {won} of 6 metrics "
                                             f"({listing(cells['trained', last], cells['trained', ORIGINAL])})")


GENERIC = {
    1: ("Training separates the classes: the trained network's last analysed layer is better than the "
        "untrained network's.",
        "Holds when the trained last layer is better than the untrained one on 4 or more of the six metrics.",
        trained_beats_untrained),
    2: ("The trained network's last analysed layer separates the classes better than the input does.",
        "Holds when the trained last layer is better than original on 4 or more of the six metrics.",
        last_beats_input),
}


def check_findings(rows: list[dict], depths: dict[str, Depths], confusions: dict | None = None,
                   preset: str = "") -> list[Finding]:
    """Every finding of ``preset`` (the generic ones for "") for each (dataset, method, seed)
    with embedding metrics. ``depths``: per dataset; ``confusions``: the last layer's
    leave-one-out vote counts per (dataset, method, seed), for findings that read them."""
    if preset:
        from .presets import preset_module

        return preset_module(preset).check_findings(rows, depths, confusions or {})
    findings = [Finding(n, statement, rule) for n, (statement, rule, _) in sorted(GENERIC.items())]
    for (dataset, method, seed), cells in sorted(cells_by_run(rows).items()):
        for finding in findings:
            finding.checks[dataset, method][seed] = GENERIC[finding.number][2](cells, depths[dataset])
    return findings


@dataclass
class Confusion:
    """Leave-one-out kNN votes of one embedding: counts[a, b] = points of class a voted b."""

    counts: np.ndarray
    classes: tuple[str, ...]

    def pair_rate(self, a: int, b: int) -> float:
        """Share of the points of classes a and b that are voted into the other one."""
        sizes = self.counts.sum(axis=1)
        total = sizes[a] + sizes[b]
        return float(self.counts[a, b] + self.counts[b, a]) / total if total else math.nan

    def ranked_pairs(self) -> list[tuple[float, int, int]]:
        n = len(self.classes)
        return sorted(((self.pair_rate(a, b), a, b) for a in range(n) for b in range(a + 1, n)), reverse=True)


