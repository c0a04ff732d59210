"""Statistics across seeds: intervals for every mean, paired tests of trained against untrained.

Each seed trains its own network pair, draws its own untrained initialisation and
embeds with its own seed, so seeds are independent replicates of the whole experiment.

- **Intervals**: the mean over seeds with a 95 % Student-t interval,
  ``mean +- t(0.975, n - 1) * sd / sqrt(n)`` (none with one seed).
- **Paired comparisons** (each layer and measure): the per-seed differences trained -
  untrained, signed so that positive is better for the trained network (lower is better
  for ``ds`` and ``cs``, higher for the rest), tested with the exact one-sided Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon``, ``alternative="greater"``; zero
  differences dropped; where absolute differences tie, scipy's exact distribution
  ignores the ties and the p value is conservative). The direction is fixed before looking: every comparison asks
  whether training made the measure better. With n seeds the smallest p is 1 / 2^n:
  0.031 with 5 seeds, 0.0625 with 4, so fewer than 5 seeds cannot reach p < 0.05.
- **Findings** (a yes or no per seed): the exact one-sided sign test of the seeds in
  which the finding holds against a coin toss, ``P(X >= held)`` for X ~ Binomial(n, 1/2).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from .findings import LOWER_IS_BETTER, SEPARATION

#: The level of every interval, and the p value below which a comparison holds.
LEVEL = 0.95
ALPHA = 0.05


class Interval(NamedTuple):
    """Mean over seeds, its interval (NaN bounds with fewer than 2 values) and the count."""

    mean: float
    low: float
    high: float
    n: int


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of ``values`` (NaN ones left out) with its Student-t interval.

    Examples
    --------
    >>> i = mean_interval([1.0, 2.0, 3.0])
    >>> i.mean, round(i.low, 4), round(i.high, 4), i.n
    (2.0, -0.4841, 4.4841, 3)
    >>> mean_interval([0.5]).high
    nan
    """
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, int(x.size))


class Paired(NamedTuple):
    """A one-sided paired comparison across seeds.

    n: seeds with both values; better: seeds in which the first is better; p: the p value
    (NaN where there is nothing to test: no seeds, or every difference zero).
    """

    n: int
    better: int
    p: float


def paired_wilcoxon(first: Sequence[float], second: Sequence[float], higher_is_better: bool = True) -> Paired:
    """Whether ``first`` is better than ``second``, seed by seed (exact one-sided Wilcoxon
    signed-rank test; see the module doc).

    Examples
    --------
    Better in all five seeds: the smallest p value five seeds allow.

    >>> paired_wilcoxon([0.9, 0.8, 0.85, 0.95, 0.7], [0.5, 0.6, 0.55, 0.4, 0.65])
    Paired(n=5, better=5, p=0.03125)
    """
    from scipy import stats

    pairs = [(a, b) for a, b in zip(first, second) if not (math.isnan(a) or math.isnan(b))]
    d = np.asarray([a - b for a, b in pairs], dtype=np.float64)
    if not higher_is_better:
        d = -d
    better = int((d > 0).sum())
    if d.size == 0 or not d.any():
        return Paired(int(d.size), better, math.nan)
    p = float(stats.wilcoxon(d, alternative="greater", method="exact", zero_method="wilcox").pvalue)
    return Paired(int(d.size), better, p)


def sign_test(held: int, total: int) -> float:
    """One-sided exact sign test: P(X >= held) for X ~ Binomial(total, 1/2) (NaN for total 0).

    Examples
    --------
    >>> sign_test(5, 5), sign_test(4, 5)
    (0.03125, 0.1875)
    """
    from scipy import stats

    if total == 0:
        return math.nan
    return float(stats.binomtest(held, total, 0.5, alternative="greater").pvalue)


def significant(p: float) -> bool:
    """Whether a p value is below ``ALPHA`` (0.05)."""
    return not math.isnan(p) and p < ALPHA


#: The measures compared between the networks: the study's six and those beyond it that
#: each network has (``cka_untrained`` is one value for both; ``avg`` is a scale).
COMPARED = (*SEPARATION, "silhouette", "recall", "trustworthiness", "continuity", "probe_accuracy")
STATISTICS_COLUMNS = ("dataset", "space", "method", "layer", "measure", "seeds", "trained_mean", "trained_low",
                      "trained_high", "untrained_mean", "untrained_low", "untrained_high", "trained_better", "p")


def comparisons(rows: list[dict], depths: dict) -> list[dict]:
    """For each (dataset, space, method, analysed layer, measure): both networks' means
    over seeds with intervals, and the paired test of trained against untrained.

    A layer's value per seed is its per-layer average (:func:`repscope.engine.findings.layer_average`:
    the mean over its channels for a layer split by channel). Measures that were not
    scored (NaN in every seed) are left out.
    """
    from collections import defaultdict

    from .findings import cells_by_run, layer_average

    groups: dict = defaultdict(dict)  # (dataset, space, method) -> {seed: {(network, rep): {measure: value}}}
    for space in {row["space"] for row in rows}:
        for (dataset, method, seed), cells in cells_by_run(rows, space, COMPARED).items():
            groups[dataset, space, method][seed] = cells
    out = []
    for (dataset, space, method), by_seed in sorted(groups.items()):
        d = depths[dataset]
        seeds = sorted(by_seed)
        for layer in d.layers:
            for measure in COMPARED:
                series = {network: [layer_average(by_seed[s], d, network, layer, measure) for s in seeds]
                          for network in ("trained", "untrained")}
                if all(math.isnan(v) for v in series["trained"] + series["untrained"]):
                    continue
                t, u = mean_interval(series["trained"]), mean_interval(series["untrained"])
                test = paired_wilcoxon(series["trained"], series["untrained"], measure not in LOWER_IS_BETTER)
                out.append({"dataset": dataset, "space": space, "method": method, "layer": layer, "measure": measure,
                            "seeds": test.n, "trained_mean": t.mean, "trained_low": t.low, "trained_high": t.high,
                            "untrained_mean": u.mean, "untrained_low": u.low, "untrained_high": u.high,
                            "trained_better": test.better, "p": test.p})
    return out
