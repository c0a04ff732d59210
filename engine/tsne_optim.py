"""openTSNE's optimisation for TorchDR's t-SNE: its gradient descent and its schedule.

TorchDR's ``TSNE`` optimises with plain momentum SGD, a learning-rate floor of 50, and a
fresh optimizer (momentum 0.5, then 0.8) after early exaggeration. openTSNE, the CPU
reference, uses momentum 0.8 throughout with per-coordinate gains (delta-bar-delta)
that survive the end of early exaggeration, clips each point's step to a norm of 5,
re-centres the embedding after every step, and takes a learning rate of N / exaggeration
with no floor. Left alone, the two give different pictures of the same affinities (on
scikit-learn's digits TorchDR's embedding spans a third of openTSNE's, and its class
distance scores differ by a quarter). :class:`GainsSGD` is openTSNE's update as a
PyTorch optimizer; :func:`opentsne_schedule_tsne` builds TorchDR's ``TSNE`` with
openTSNE's learning-rate rule and keeps the optimizer's state across the two phases.

TorchDR's loss is the KL divergence with autograd's factor 4 in its gradient (the
convention of scikit-learn); openTSNE leaves the 4 out of its gradient, so openTSNE's
rate N / exaggeration is N / exaggeration / 4 here.
"""

from __future__ import annotations

import torch


class GainsSGD(torch.optim.Optimizer):
    """Momentum gradient descent with per-coordinate gains, as openTSNE's ``gradient_descent``.

    Each step, for the (N, d) parameter ``p`` with gradient ``g``: a coordinate's gain
    grows by 0.2 where ``g``'s sign differs from the last update's and otherwise becomes
    ``gain * 0.8 + min_gain``; ``update = momentum * update - lr * gain * g``; each row
    of ``update`` longer than ``max_step_norm`` is shortened to it; ``p += update``, and
    ``p`` is re-centred on the origin (t-SNE's loss does not see translations).

    Parameters
    ----------
    params
        The parameters (TorchDR passes the embedding).
    lr
        The learning rate.
    momentum, min_gain, max_step_norm
        openTSNE's defaults: 0.8, 0.01 and 5; ``max_step_norm=None`` does not clip.
    centre
        Re-centre each parameter's rows on their mean after the step.

    Examples
    --------
    >>> import torch
    >>> z = torch.nn.Parameter(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    >>> opt = GainsSGD([z], lr=1.0)
    >>> z.grad = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    >>> _ = opt.step()
    >>> z.detach()  # gains 1.2 (the first update was zero): each point moves by 1.2
    tensor([[-0.2000,  0.0000],
            [ 0.2000,  0.0000]])
    """

    def __init__(self, params, lr: float, momentum: float = 0.8, min_gain: float = 0.01,
                 max_step_norm: float | None = 5.0, centre: bool = True) -> None:
        if not float(lr) > 0:
            raise ValueError(f"GainsSGD: the learning rate must be positive, not {lr!r}")
        defaults = {"lr": lr, "momentum": momentum, "min_gain": min_gain, "max_step_norm": max_step_norm,
                    "centre": centre}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["update"] = torch.zeros_like(p)
                    state["gains"] = torch.ones_like(p)
                update, gains, grad = state["update"], state["gains"], p.grad
                flipped = torch.sign(update) != torch.sign(grad)
                gains.copy_(torch.where(flipped, gains + 0.2, gains * 0.8 + group["min_gain"]))
                update.mul_(group["momentum"]).sub_(group["lr"] * gains * grad)
                if group["max_step_norm"] is not None and update.ndim == 2:
                    norms = update.norm(dim=1, keepdim=True)
                    limit = group["max_step_norm"]
                    update.mul_(torch.where(norms > limit, limit / norms, torch.ones_like(norms)))
                p.add_(update)
                if group["centre"] and p.ndim == 2:
                    p.sub_(p.mean(dim=0, keepdim=True))
        return loss


def opentsne_schedule_tsne(**params):
    """TorchDR's ``TSNE`` with openTSNE's learning-rate rule and one optimizer for both phases.

    ``params`` are TorchDR's own; pass ``optimizer=GainsSGD`` and ``lr="auto"`` for
    openTSNE's optimisation. The learning rate is N / exaggeration / 4 (openTSNE's
    N / exaggeration in TorchDR's gradient scale) without TorchDR's floor of 50, and at
    the end of early exaggeration only the rate changes: the optimizer, with its gains
    and momentum, carries on (TorchDR would make a new one).

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(60, 3, generator=torch.Generator().manual_seed(0))
    >>> tsne = opentsne_schedule_tsne(perplexity=5.0, max_iter=40, early_exaggeration_iter=20, lr="auto",
    ...                               optimizer=GainsSGD, device="cpu", random_state=0)
    >>> tsne.fit_transform(x).shape
    torch.Size([60, 2])
    """
    from torchdr import TSNE

    class OpenTSNEScheduleTSNE(TSNE):
        def _set_learning_rate(self):
            if self.lr == "auto":
                self.lr_ = self.n_samples_in_ / self.early_exaggeration_coeff_ / 4
            else:
                self.lr_ = self.lr

        def on_training_step_end(self):
            if self.early_exaggeration_coeff_ > 1 and self.n_iter_ == self.early_exaggeration_iter:
                self.early_exaggeration_coeff_ = 1
                self._set_learning_rate()
                for group in self.optimizer_.param_groups:
                    group["lr"] = self.lr_
            return self

    return OpenTSNEScheduleTSNE(**params)
