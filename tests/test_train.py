import pytest
import torch

from repscope.engine import train as T
from repscope.engine.errors import TrainingError
from repscope.engine.presets.study import RECIPES, StudyCNN, model_spec
from repscope.engine.sources import open_source
from repscope.engine.train import Recipe

SPEC = model_spec()
MNIST = RECIPES["mnist"]


@pytest.mark.network
def test_one_epoch_on_a_few_thousand_examples_learns(data_root):
    data = open_source("mnist", data_root)
    initial, trained, acc = T.train_attempt(SPEC, data, Recipe(**{**MNIST.__dict__, "epochs": 1}), 42, "cpu", 8_000)
    assert acc > 0.5
    # the untrained copy is the exact initial state of the seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        expected = StudyCNN().state_dict()
    for k, v in expected.items():
        assert torch.equal(initial[k], v)
        assert not torch.equal(trained[k], v)


def _fake_attempt(accuracies, calls):
    def attempt(spec, data, recipe, seed, device, n_train):
        calls.append(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            state = StudyCNN().state_dict()
        return state, state, accuracies[len(calls) - 1]

    return attempt


class _Data:
    name = "mnist"
    classes = tuple(str(k) for k in range(10))
    train = [0] * 100
    scale = 255.0
    sha256 = {"train-images-idx3-ubyte": "a", "train-labels-idx1-ubyte": "b"}


def test_retries_with_new_seeds_until_the_threshold(monkeypatch):
    calls = []
    monkeypatch.setattr(T, "train_attempt", _fake_attempt([0.5, 0.89, 0.95], calls))
    untrained, trained, acc, attempt = T.train(SPEC, _Data(), Recipe(min_accuracy=0.9, max_attempts=5), 42)
    assert (acc, attempt) == (0.95, 2)
    assert calls == [42, T.attempt_seed(42, 1), T.attempt_seed(42, 2)]
    assert len(set(calls)) == 3


def test_fails_loudly_after_the_last_attempt(monkeypatch):
    monkeypatch.setattr(T, "train_attempt", _fake_attempt([0.1, 0.2], []))
    with pytest.raises(TrainingError, match=r"below 0.9 in 2 attempts \(0.1000, 0.2000\) with seed 7"):
        T.train(SPEC, _Data(), Recipe(min_accuracy=0.9, max_attempts=2), 7)


def test_checkpoints_are_saved_and_reused(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(T, "train_attempt", _fake_attempt([0.97, 0.98, 0.99], calls))
    first = T.ensure_checkpoints(tmp_path, SPEC, _Data(), MNIST, 42)
    assert not first.reused and first.trained.is_file() and first.untrained.is_file()
    assert first.trained.parent == tmp_path / "checkpoints" / "mnist" / "seed42"
    again = T.ensure_checkpoints(tmp_path, SPEC, _Data(), MNIST, 42)
    assert again.reused and again.sha256 == first.sha256 and len(calls) == 1
    other = T.ensure_checkpoints(tmp_path, SPEC, _Data(), Recipe(**{**MNIST.__dict__, "epochs": 4}), 42)
    assert not other.reused and len(calls) == 2
    net = T.load_network(SPEC, other.untrained)
    assert isinstance(net, StudyCNN) and not net.training


def test_half_saved_pair_is_trained_again(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(T, "train_attempt", _fake_attempt([0.97, 0.98], calls))
    first = T.ensure_checkpoints(tmp_path, SPEC, _Data(), MNIST, 42)
    first.trained.unlink()  # a kill between the two writes
    assert not T.ensure_checkpoints(tmp_path, SPEC, _Data(), MNIST, 42).reused
    assert len(calls) == 2
