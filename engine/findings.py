"""The study's four published findings, checked against a run's metrics.

Each finding is turned into a rule that a table of numbers either meets or does not,
per (dataset, method, seed); across seeds the report gives the share of seeds in which
it holds. The rules, and why they read the statements this way:

- "Better" compares the six separation metrics (``ds``, ``dd``, ``cs``, ``cd``,
  ``acc_knn``, ``acc_knn_loo``; ``avg`` is a scale, not a score), each in its own
  direction (lower ``ds``, ``cs``; higher the rest). *A beats B* when A is better on a
  majority (4 or more) of the six.
- A layer's score is its *per-layer average*: the representation itself for
  ``original`` and ``layer3``, the mean over the filters for ``layer1`` and ``layer2``
  (dead filters, whose distance ratios are undefined, left out as in the tables).
- *Relative shortfall* of a filter against ``original``: how much worse it is, as a
  fraction of ``original``'s value, averaged over the metrics defined for both
  (negative when it is better). A filter is *near* ``original`` at a shortfall of at
  most 2 %, *far worse* at 5 % or more.
- Class overlap is read from the leave-one-out 10-NN vote of the trained ``layer3``
  embedding: the share of two classes' points voted into the other class.

The functions here know numbers only; the report gathers them from the run folder.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from store import REPRESENTATIONS

from .tables import filter_mean

#: The metrics that score class separation, in the order of the tables.
SEPARATION = ("ds", "dd", "cs", "cd", "acc_knn", "acc_knn_loo")
LOWER_IS_BETTER = frozenset({"ds", "cs"})
#: Depth 0..3 of the study's per-layer plots.
LAYERS = ("original", "layer1", "layer2", "layer3")
FILTERS = {layer: [r.name for r in REPRESENTATIONS if r.array == layer and r.channel is not None]
           for layer in ("layer1", "layer2")}
NEAR = 0.02
FAR = 0.05
OVERLAP = 0.05
OVERLAP_PAIR = ("Shirt", "T-shirt/top")

#: (network, representation) -> {metric: value} for one (dataset, method, seed).
Cells = dict


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
    number: int
    statement: str
    rule: str
    #: (dataset, method) -> {seed: Check}
    checks: dict = field(default_factory=lambda: defaultdict(dict))

    def share(self, dataset: str, method: str) -> tuple[int, int]:
        """(seeds in which it holds, seeds in which it could be checked)."""
        verdicts = [c.holds for c in self.checks[dataset, method].values() if c.holds is not None]
        return sum(verdicts), len(verdicts)


def cells_by_run(rows: list[dict]) -> dict[tuple[str, str, int], Cells]:
    """Embedding-space metrics rows -> {(dataset, method, seed): cells}."""
    out: dict = defaultdict(dict)
    for row in rows:
        if row["space"] == "embedding":
            out[row["dataset"], row["method"], row["seed"]][row["network"], row["representation"]] = {
                m: row[m] for m in SEPARATION}
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


def layer_average(cells: Cells, network: str, layer: str, metric: str) -> float:
    """The per-layer average of one metric (NaN if a cell is missing)."""
    names = FILTERS.get(layer, [layer])
    values = [cells.get((network, name), {}).get(metric) for name in names]
    return filter_mean(values)[0]


def _need(cells: Cells, *keys) -> str | None:
    missing = [f"{network} {name}" for network, name in keys if (network, name) not in cells]
    return f"missing from metrics.csv: {', '.join(missing)}" if missing else None


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def _listing(a: dict, b: dict) -> str:
    return ", ".join(f"{m} {a[m]:.3f} vs {b[m]:.3f}" for m in SEPARATION)


def finding1(cells: Cells) -> Check:
    """Trained beats untrained: always at layer3, and in most per-layer averages."""
    missing = _need(cells, ("trained", "layer3"), ("untrained", "layer3"))
    if missing:
        return Check(None, missing)
    t3, u3 = cells["trained", "layer3"], cells["untrained", "layer3"]
    at_layer3 = wins(t3, u3)
    won, compared, lost = 0, 0, []
    for layer in LAYERS[1:]:
        for m in SEPARATION:
            verdict = is_better(m, layer_average(cells, "trained", layer, m), layer_average(cells, "untrained", layer, m))
            if verdict is None:
                continue
            compared += 1
            won += verdict
            if not verdict:
                lost.append(f"{layer} {m}")
    holds = at_layer3 == len(SEPARATION) and compared > 0 and won > compared / 2
    detail = (f"layer3: trained better on {at_layer3} of 6 metrics ({_listing(t3, u3)}); "
              f"per-layer averages of layer1-3: trained better in {won} of {compared}"
              + (f" (not in: {', '.join(lost)})" if lost else ""))
    return Check(holds, detail)


def finding2(cells: Cells) -> Check:
    """Trained layer3 beats original; untrained layer3 does not."""
    missing = _need(cells, ("trained", "layer3"), ("untrained", "layer3"), ("trained", "original"))
    if missing:
        return Check(None, missing)
    original = cells["trained", "original"]
    t, u = wins(cells["trained", "layer3"], original), wins(cells["untrained", "layer3"], original)
    holds = t > len(SEPARATION) / 2 and not u > len(SEPARATION) / 2
    detail = (f"trained layer3 better than original on {t} of 6 metrics, untrained layer3 on {u} of 6 "
              f"(acc_knn_loo: original {original['acc_knn_loo']:.3f}, trained layer3 "
              f"{cells['trained', 'layer3']['acc_knn_loo']:.3f}, untrained layer3 "
              f"{cells['untrained', 'layer3']['acc_knn_loo']:.3f})")
    return Check(holds, detail)


def finding3(cells: Cells, network: str = "trained") -> Check:
    """Layer-2 filters all score worse than original; layer-1 filters are mixed."""
    missing = _need(cells, ("trained", "original"), *((network, f) for f in FILTERS["layer1"] + FILTERS["layer2"]))
    if missing:
        return Check(None, missing)
    original = cells["trained", "original"]
    worse2 = [f for f in FILTERS["layer2"] if beats(original, cells[network, f])]
    gaps1 = {f: shortfall(cells[network, f], original) for f in FILTERS["layer1"]}
    near = [f for f, g in gaps1.items() if g <= NEAR]
    far = [f for f, g in gaps1.items() if not g < FAR]  # NaN (nothing defined) counts as far worse
    holds = len(worse2) == len(FILTERS["layer2"]) and bool(near) and bool(far)
    gaps2 = [shortfall(cells[network, f], original) for f in FILTERS["layer2"]]
    detail = (f"layer2: {len(worse2)} of {len(FILTERS['layer2'])} filters worse than original "
              f"(relative shortfall {np.nanmin(gaps2) * 100:.1f} % to {np.nanmax(gaps2) * 100:.1f} %); "
              f"layer1 shortfall: " + ", ".join(f"{f.split('/')[1]} {_pct(g)}" for f, g in gaps1.items())
              + f"; near original (<= {NEAR:.0%}): {len(near)}, far worse (>= {FAR:.0%}): {len(far)}")
    return Check(holds, detail)


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


def finding4(confusion: Confusion | None) -> Check:
    """Shirt and T-shirt/top overlap even in trained layer3 (FashionMNIST)."""
    if confusion is None:
        return Check(None, "no trained layer3 embedding to read the votes from")
    if not set(OVERLAP_PAIR) <= set(confusion.classes):
        return Check(None, "not applicable: the finding is about FashionMNIST's Shirt and T-shirt/top")
    a, b = (confusion.classes.index(c) for c in OVERLAP_PAIR)
    rate = confusion.pair_rate(a, b)
    ranked = confusion.ranked_pairs()
    rank = 1 + [(x, y) for _, x, y in ranked].index((min(a, b), max(a, b)))
    top_rate, x, y = ranked[0]
    detail = (f"{100 * rate:.1f} % of Shirt and T-shirt/top points are voted into the other class "
              f"(Shirt voted T-shirt/top: {confusion.counts[a, b]}, T-shirt/top voted Shirt: {confusion.counts[b, a]}); "
              f"rank {rank} of {len(ranked)} class pairs"
              + ("" if rank == 1 else f" (most confused: {confusion.classes[x]} / {confusion.classes[y]}, "
                                      f"{100 * top_rate:.1f} %)"))
    return Check(rate >= OVERLAP, detail)


STATEMENTS = {
    1: ("The trained network's embeddings are better than the untrained one's in general: always at layer3, "
        "and in most per-layer averages (not in every single one).",
        "Holds when trained layer3 is better than untrained layer3 on all six metrics and the trained per-layer "
        "averages of layer1, layer2 and layer3 are better in more than half of the (layer, metric) comparisons."),
    2: ("Trained layer3 beats original; untrained layer3 does not.",
        "Holds when trained layer3 is better than original on 4 or more of the six metrics and untrained layer3 "
        "is not."),
    3: ("Single filters of layer 2 score worse than original; single filters of layer 1 are mixed, some near "
        "original, some far worse (dead or near-constant filters).",
        f"Checked on the trained network. Holds when original beats every layer-2 filter (4 or more of six "
        f"metrics) and, among the layer-1 filters, at least one is near original (mean relative shortfall "
        f"<= {NEAR:.0%}) and at least one is far worse (>= {FAR:.0%})."),
    4: ("On FashionMNIST, Shirt and T-shirt/top overlap even in trained layer3.",
        f"Holds when at least {OVERLAP:.0%} of the Shirt and T-shirt/top points of the trained layer3 embedding "
        f"are voted into the other class by their 10 nearest neighbours (leave-one-out). MNIST: not applicable."),
}


def check_findings(rows: list[dict], confusions: dict[tuple[str, str, int], Confusion]) -> list[Finding]:
    """All four findings for every (dataset, method, seed) with embedding metrics.

    ``confusions``: the trained layer3 embedding's vote counts per (dataset, method, seed).
    """
    findings = [Finding(n, *STATEMENTS[n]) for n in sorted(STATEMENTS)]
    for (dataset, method, seed), cells in sorted(cells_by_run(rows).items()):
        checks = (finding1(cells), finding2(cells), finding3(cells),
                  finding4(confusions.get((dataset, method, seed))))
        for finding, check in zip(findings, checks):
            finding.checks[dataset, method][seed] = check
    return findings
