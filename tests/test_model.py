"""The model spec: the study's network, layers by module path and hooks, shapes from a dry pass, checkpoints."""

import pytest
import torch
from torch import nn

from repscope.engine.errors import SettingsError
from repscope.engine.model import Layer, ModelSpec, build, capture, count_parameters, load_state, probe_shapes, resolve
from repscope.engine.presets.study import LAYERS, REPRESENTATIONS, StudyCNN, add_channel, model_spec


def test_parameter_count():
    assert count_parameters(StudyCNN()) == 27_010


@pytest.mark.parametrize("batch", [1, 7])
def test_hooks_give_the_study_shapes(batch, fresh_torch_seed):
    model = StudyCNN()
    images = torch.rand(batch, 28, 28)
    with capture(model, LAYERS) as out:
        logits = model(add_channel(images))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "layer1": (batch, 4, 12, 12), "layer2": (batch, 16, 5, 5), "layer3": (batch, 64)}
    assert logits.shape == (batch, 10)
    for t in (*out.values(), logits):  # each ends in a ReLU
        assert (t >= 0).all()
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())  # hooks removed


def test_layers_compose_as_specified(fresh_torch_seed):
    m = StudyCNN()
    x = torch.rand(3, 1, 28, 28)
    f = torch.nn.functional
    conv1, conv2, conv3 = m.layer1[0], m.layer2[0], m.layer3[0]
    l1 = f.relu(f.max_pool2d(conv1(x), 2))
    l2 = f.relu(f.max_pool2d(conv2(l1), 2))
    l3 = f.relu(conv3(l2)).reshape(3, 64)
    with capture(m, LAYERS) as out:
        logits = m(x)
    torch.testing.assert_close(out["layer3"], l3, rtol=0, atol=0)
    torch.testing.assert_close(logits, f.relu(m.fc(l3)), rtol=0, atol=0)


def test_the_study_spec_probes_its_own_shapes():
    spec = model_spec()
    shapes = probe_shapes(build(spec, 0), spec, torch.rand(1, 28, 28))
    assert shapes == {"layer1": (4, 12, 12), "layer2": (16, 5, 5), "layer3": (64,)}
    assert [r.name for r in REPRESENTATIONS][:2] == ["original", "layer1/filter01"]


def test_seeded_initial_states_repeat_and_differ():
    spec = model_spec()
    a, b, c = (build(spec, s).state_dict() for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layer1.0.weight"], c["layer1.0.weight"])


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 5, 3))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(5 * 4 * 4, 4))

    def forward(self, x):
        return self.head(self.features(x))


def test_a_bad_layer_name_lists_the_modules():
    spec = ModelSpec(factory=Tiny, layers=(Layer("features.9"),), transform=add_channel)
    with pytest.raises(SettingsError, match=r"no module 'features.9'; closest: .*features.0.*; its modules are: "
                                            r"features, features.0, features.1, features.2, head, head.0, head.1"):
        probe_shapes(build(spec, 0), spec, torch.rand(1, 8, 8))


def test_shapes_of_any_model_from_a_dry_pass():
    spec = ModelSpec(factory=Tiny, layers=(Layer("features.0", "channels"), Layer("head.0"), Layer("head")),
                     transform=add_channel)
    assert probe_shapes(build(spec, 0), spec, torch.rand(1, 8, 8)) == {"features.0": (3, 6, 6), "head.0": (80,),
                                                                      "head": (4,)}


def test_a_dry_pass_that_fails_names_the_shape():
    spec = ModelSpec(factory=Tiny, layers=(Layer("head"),))  # no channel axis added
    with pytest.raises(SettingsError, match=r"dry forward pass on examples of shape \(8, 8\) failed"):
        probe_shapes(build(spec, 0), spec, torch.rand(2, 8, 8))


@pytest.mark.parametrize("layer, message", [
    (dict(path="x", split="rows"), "split 'rows' is not one of whole, channels"),
    (dict(path="x", max_channels=0), "max_channels must be a whole number >= 1"),
    (dict(path="a/b"), "reserved or contains '/'"),
    (dict(path="x", name="original"), "reserved"),
    (dict(path="x", name="pca"), "reserved"),
    (dict(path="x", name="a,b"), "reserved or contains"),
    (dict(path="x", max_channels=True), "max_channels must be a whole number"),
    (dict(path="x", name=3), "path and name are text"),
])
def test_bad_layers(layer, message):
    with pytest.raises(SettingsError, match=message):
        Layer.parse(layer)


def test_layers_named_twice():
    with pytest.raises(SettingsError, match="named twice"):
        ModelSpec(factory=Tiny, layers=(Layer("head"), Layer("head")))


def test_checkpoints_that_do_not_fit_are_named(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(Tiny().state_dict(), good)
    assert isinstance(load_state(Tiny(), good), Tiny)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": Tiny().state_dict()}, wrapped)
    load_state(Tiny(), wrapped)
    other = tmp_path / "other.pt"
    torch.save(StudyCNN().state_dict(), other)
    with pytest.raises(SettingsError, match=r"checkpoint .*other.pt does not fit the model \(missing features"):
        load_state(Tiny(), other)
    resized = tmp_path / "resized.pt"
    state = Tiny().state_dict()
    state["head.1.weight"] = torch.zeros(7, 80)
    torch.save(state, resized)
    with pytest.raises(SettingsError, match=r"resized.pt does not fit the model \(.*size mismatch"):
        load_state(Tiny(), resized)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(SettingsError, match=r"truncated.pt is not a readable state dict"):
        load_state(Tiny(), truncated)
    with pytest.raises(SettingsError, match=r"none.pt does not exist"):
        load_state(Tiny(), tmp_path / "none.pt")


def test_factories_by_name():
    assert resolve("repscope.engine.presets.study:StudyCNN") is StudyCNN
    with pytest.raises(SettingsError, match="package.module:name"):
        resolve("StudyCNN")
    with pytest.raises(SettingsError, match="cannot import 'no_such_module'"):
        resolve("no_such_module:build")
    with pytest.raises(SettingsError, match="has no 'Nope'"):
        resolve("repscope.engine.presets.study:Nope")
    spec = ModelSpec(factory=lambda: "not a module", layers=(Layer("x"),))
    with pytest.raises(SettingsError, match="returned str, not a torch.nn.Module"):
        build(spec, 0)


class Reused(nn.Module):
    """One ReLU object called twice, and an in-place ReLU after a captured layer."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(4, 4), nn.Linear(4, 3), nn.ReLU()
        self.inplace = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.fc2(self.inplace(self.act(self.fc1(x)) - 1.0))


def test_a_module_called_twice_is_refused_and_captures_are_copies():
    model = Reused()
    with pytest.raises(SettingsError, match="module 'act' runs more than once"):
        with capture(model, [Layer("act")]):
            model.fc2(model.act(model.act(model.fc1(torch.ones(2, 4)))))
    x = torch.randn(6, 4)
    sub = torch.nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True))
    with capture(sub, [Layer("0")]) as out:
        sub(x)
    assert (out["0"] < 0).any(), "the in-place ReLU after the layer did not change the captured copy"


def test_outputs_that_are_not_batch_first_are_named():
    class SequenceFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x).transpose(0, 1)

    model = nn.Sequential(SequenceFirst())
    spec = ModelSpec(factory=lambda: model, layers=(Layer("0"),))
    with pytest.raises(SettingsError, match=r"layer '0' returns shape \(4, 2\) for a batch of 2: not batch first"):
        probe_shapes(model, spec, torch.rand(2, 4))


def test_a_channel_split_needs_a_channel_axis():
    from repscope.engine.extract import plan_representations
    from repscope.engine.sources import open_source

    spec = ModelSpec(factory=lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), layers=(Layer("1", "channels"),))
    with pytest.raises(SettingsError, match=r"layer\(s\) 1 have no channel axis to split \(shape \(5,\)\)"):
        plan_representations(spec, open_source("digits"))
