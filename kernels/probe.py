"""Linear probes: how much class information a representation holds, read linearly.

A multinomial logistic regression (scikit-learn's ``LogisticRegression``, L-BFGS, L2
penalty C = 1) is fitted on standardised training rows (each feature scaled to zero
mean and unit variance on the training rows; a constant feature is left at zero) and
scored on held-out rows standardised the same way. The solver is deterministic; the
seed is passed on for solvers that are not.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._arrays import InputError, validate

#: Iterations of L-BFGS; a probe that does not converge within them still reports its accuracy.
MAX_ITER = 1000


class Probe(NamedTuple):
    """Accuracy on the held-out rows and on the training rows, and whether L-BFGS converged."""

    test_accuracy: float
    train_accuracy: float
    converged: bool


def _host(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


def linear_probe(train_x, train_y, test_x, test_y, *, seed: int = 0, max_iter: int = MAX_ITER) -> Probe:
    """Fit a linear probe on ``train_x`` (N, d) with ``train_y`` and score it on ``test_x``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 300)
    >>> x = rng.normal(size=(300, 4)) + 3 * y[:, None]
    >>> p = linear_probe(x[:200], y[:200], x[200:], y[200:])
    >>> p.test_accuracy > 0.8, p.converged
    (True, True)
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_x, train_y = validate(_host(train_x).reshape(len(train_x), -1), _host(train_y))
    test_x, test_y = validate(_host(test_x).reshape(len(test_x), -1), _host(test_y), min_points=1)
    if train_x.shape[1] != test_x.shape[1]:
        raise InputError(f"training rows have {train_x.shape[1]} features, held-out rows {test_x.shape[1]}; "
                         "they must be the same representation")
    if np.unique(train_y).shape[0] < 2:
        raise InputError("a probe needs at least 2 classes among the training rows")
    scaler = StandardScaler().fit(train_x.astype(np.float64))
    model = LogisticRegression(max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(scaler.transform(train_x.astype(np.float64)), train_y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    test = float((model.predict(scaler.transform(test_x.astype(np.float64))) == test_y).mean())
    train = float((model.predict(scaler.transform(train_x.astype(np.float64))) == train_y).mean())
    return Probe(test, train, converged)
