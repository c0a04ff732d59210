"""Transformers and RNNs: token pooling, an element of a structured output, a module's input.

The two networks of ``examples/sequence_digits.py`` (a small vision transformer with a
class token, a GRU reading an 8x8 digit as 8 steps of 8 features) on scikit-learn's
digits, at N = 150 with t-SNE only: the names in the store, the metrics, the tables and
the report, the stored arrays against a direct forward pass to the bit, and one line
for each layer spec that cannot be read as given.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import repscope
from repscope.engine import threads
from repscope.engine.errors import SettingsError
from repscope.engine.extract import plan_representations
from repscope.engine.model import Layer, ModelSpec, build, capture, load_state, probe_shapes, to_float
from repscope.engine.sources import open_source
from repscope.engine.train import checkpoint_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from sequence_digits import DigitsGRU, TinyViT  # noqa: E402

N = 150
VIT_LAYERS = [{"path": "blocks.0", "tokens": "cls"}, {"path": "blocks.1", "tokens": "mean"},
              {"path": "blocks.1", "tokens": 3},
              {"path": "blocks.1", "tokens": "flatten"}, {"path": "head", "read": "input"}]
VIT_NAMES = ["original", "blocks.0[cls]", "blocks.1[mean]", "blocks.1[token3]", "blocks.1[flatten]", "head[input]"]
GRU_LAYERS = [{"path": "gru", "element": 0, "tokens": -1}, {"path": "gru", "element": 0, "tokens": "mean"},
              {"path": "head", "read": "input"}, "head"]
GRU_NAMES = ["original", "gru[0][token-1]", "gru[0][mean]", "head[input]", "head"]


@pytest.fixture(scope="module")
def digits():
    return open_source("digits")


def _run(factory, layers, out, report=False):
    return repscope.analyze(factory, "digits", layers=layers, methods=["tsne"], n=N, seeds=[0], out=out,
                            train=True, recipe={"epochs": 1, "learning_rate": 0.05}, workers=0, report=report)


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    return _run(TinyViT, VIT_LAYERS, tmp_path_factory.mktemp("vit") / "run", report=True)


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory):
    return _run(DigitsGRU, GRU_LAYERS, tmp_path_factory.mktemp("gru") / "run")


def _trained(run, factory) -> nn.Module:
    net = load_state(factory(), checkpoint_dir(run.path, "digits", 0) / "trained.pt")
    return net.eval()


def _inputs(digits) -> torch.Tensor:
    return to_float(torch.from_numpy(np.asarray(digits.train.rows(0, N))), digits.scale)


def _stored(run, layer: str, network: str = "trained") -> np.ndarray:
    return run.store.read(f"digits/seed0/{network}/{layer}")


# ------------------------------------------------------------------ a transformer


def test_a_transformer_is_named_by_its_tokens_everywhere(vit_run):
    assert [r.name for r in vit_run.representations("digits")] == VIT_NAMES
    rows = vit_run.metrics
    assert {(r["network"], r["representation"]) for r in rows} == {
        (net, name) for net in ("trained", "untrained") for name in VIT_NAMES}
    for name in VIT_NAMES[1:]:
        assert (vit_run.path / "tables" / "digits" / "tsne" / f"{name}.csv").is_file(), name
        assert vit_run.embedding("digits", name, network="untrained").shape == (N, 2)
    page = vit_run.report.read_text()
    assert all(name in page for name in VIT_NAMES[1:])


def test_cls_mean_index_and_flatten_are_the_forward_pass_to_the_bit(vit_run, digits):
    net = _trained(vit_run, TinyViT)
    seen = {}
    hooks = [net.blocks[0].register_forward_hook(lambda m, a, out: seen.__setitem__("blocks.0", out.clone())),
             net.blocks[1].register_forward_hook(lambda m, a, out: seen.__setitem__("blocks.1", out.clone())),
             net.head.register_forward_pre_hook(lambda m, args: seen.__setitem__("head", args[0].clone()))]
    with threads.pinned(threads.RUN_THREADS), torch.inference_mode():
        net(_inputs(digits))
    for hook in hooks:
        hook.remove()
    b0, b1 = seen["blocks.0"], seen["blocks.1"]
    assert tuple(b1.shape) == (N, 17, 16)
    expected = {"blocks.0[cls]": b0[:, 0], "blocks.1[mean]": b1.mean(dim=1), "blocks.1[token3]": b1[:, 3],
                "blocks.1[flatten]": b1, "head[input]": seen["head"]}
    for name, value in expected.items():
        stored = _stored(vit_run, name)
        assert stored.shape == (N, *value.shape[1:]), name
        assert np.array_equal(stored, value.numpy()), name
    assert vit_run.representation("digits", "blocks.1[flatten]").shape == (N, 17 * 16)
    assert not np.array_equal(_stored(vit_run, "blocks.1[mean]"), _stored(vit_run, "blocks.1[mean]", "untrained"))


def test_the_choices_are_recorded_with_the_arrays_and_the_representations(vit_run):
    config = json.loads((vit_run.path / "config.json").read_text())
    records = {r["name"]: r for r in config["representations"]["digits"]}
    assert records["blocks.1[mean]"]["tokens"] == "mean" and records["blocks.1[token3]"]["tokens"] == 3
    assert records["head[input]"]["read"] == "input" and "tokens" not in records["head[input]"]
    assert set(records["original"]) == {"name", "array", "channel", "in_study", "depth", "dims"}
    assert config["extract"]["digits"]["layers"]["blocks.1[flatten]"] == [17, 16]
    layers = {layer["name"]: layer for layer in config["settings"]["model"]["layers"]}
    assert layers["blocks.1[token3]"] == {"path": "blocks.1", "split": "whole", "max_channels": None,
                                          "name": "blocks.1[token3]", "tokens": 3}
    key = "digits/seed0/trained/blocks.1[mean]"
    attributes = vit_run.store.attributes(key)
    assert attributes["tokens"] == "mean" and attributes["module"] == "blocks.1"
    assert attributes["description"].startswith("the mean over tokens of the output of blocks.1[mean] (module "
                                                "blocks.1: TransformerEncoderLayer")
    assert vit_run.store.info(key)["fingerprint"]["tokens"] == "mean"  # another choice, another array
    assert vit_run.store.array(key).metadata.dimension_names == ("example", "blocks.1[mean]_feature")
    flat = vit_run.store.array("digits/seed0/trained/blocks.1[flatten]").metadata.dimension_names
    assert flat == ("example", "blocks.1[flatten]_token", "blocks.1[flatten]_feature")


def test_every_bad_sequence_layer_is_one_line(digits):
    spec = ModelSpec(factory=TinyViT, layers=(Layer("blocks.0"), Layer("head", tokens="cls"), Layer("blocks.1", tokens=17),
                                              Layer("embed", tokens="mean")))
    with pytest.raises(SettingsError) as caught:
        plan_representations(spec, digits)
    lines = str(caught.value).splitlines()
    assert lines == [
        "layer 'blocks.0' returns a 3-D output (batch, 17, 16): for a token sequence (batch, tokens, features) give "
        "tokens = \"cls\" (token 0), \"mean\" (mean over tokens), a token index such as 0 or -1, or \"flatten\" "
        "(every token, flattened); for a Conv1d's (channels, length) give split = \"whole\" or \"channels\"",
        "layer 'head[cls]': tokens = \"cls\" reads a token sequence (batch, tokens, features) but module 'head' gives "
        "(3, 10); leave tokens out",
        "layer 'blocks.1[token17]': module 'blocks.1' gives 17 tokens; tokens = 17 is past them: give an index from "
        "-17 to 16",
    ]
    assert probe_shapes(build(spec, 0), ModelSpec(TinyViT, (Layer("embed", tokens="mean"),)),
                        torch.zeros(2, 8, 8)) == {"embed[mean]": (16,)}


def test_a_token_sequence_has_no_channels_to_split():
    with pytest.raises(SettingsError, match=r"layer 'blocks.1\[mean\]': split = \"channels\" splits a convolution's "
                                            r"channels \(filters\) and a token sequence has none"):
        Layer.parse({"path": "blocks.1", "tokens": "mean", "split": "channels"})


def test_a_conv1d_output_is_read_as_before_once_split_says_so(digits):
    def conv1d():
        return nn.Sequential(nn.Conv1d(8, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(24, 10))

    spec = ModelSpec(factory=conv1d, layers=(Layer("0", "channels"), Layer("1", "whole")))
    reps, shapes = plan_representations(spec, digits)
    assert shapes == {"0": (4, 6), "1": (4, 6)}
    assert [r.name for r in reps] == ["original", "0/filter01", "0/filter02", "0/filter03", "0/filter04", "1", "0/all"]
    with pytest.raises(SettingsError, match=r"layer '1' returns a 3-D output \(batch, 4, 6\)"):
        plan_representations(ModelSpec(factory=conv1d, layers=(Layer("1"),)), digits)


# ------------------------------------------------------------------ an RNN


def test_an_rnn_reads_the_element_and_tokens_it_is_told(gru_run, digits):
    assert [r.name for r in gru_run.representations("digits")] == GRU_NAMES
    assert {r["representation"] for r in gru_run.metrics} == set(GRU_NAMES)
    net = _trained(gru_run, DigitsGRU)
    with threads.pinned(threads.RUN_THREADS), torch.inference_mode():
        output, hidden = net.gru(_inputs(digits))
        logits = net.head(output[:, -1])
    assert np.array_equal(_stored(gru_run, "gru[0][token-1]"), output[:, -1].numpy())
    assert np.array_equal(_stored(gru_run, "gru[0][mean]"), output.mean(dim=1).numpy())
    assert np.array_equal(_stored(gru_run, "head[input]"), _stored(gru_run, "gru[0][token-1]"))  # what head is given
    assert np.array_equal(_stored(gru_run, "head"), logits.numpy())
    config = json.loads((gru_run.path / "config.json").read_text())
    record = next(r for r in config["representations"]["digits"] if r["name"] == "gru[0][token-1]")
    assert (record["element"], record["tokens"], record["dims"]) == (0, -1, 32)
    assert gru_run.store.attributes("digits/seed0/trained/gru[0][token-1]")["element"] == 0


@pytest.mark.parametrize("layer, message", [
    (Layer("gru"), r"layer 'gru': module 'gru' returns a tuple \(0: tensor \(3, 8, 32\), 1: tensor \(1, 3, 32\)\), "
                   r"not a tensor; choose what to read with element = 0$"),
    (Layer("gru", element=0), r"layer 'gru\[0\]' returns a 3-D output \(batch, 8, 32\): for a token sequence"),
    (Layer("gru", element=1, tokens="mean"), r"layer 'gru\[1\]\[mean\]' returns shape \(1, 3, 32\) for a batch of 3"),
    (Layer("gru", element=1), r"layer 'gru\[1\]' returns shape \(1, 3, 32\) for a batch of 3: not batch first"),
    (Layer("gru", element=2), r"returns a tuple of 2 \(0: tensor .*\); element = 2 is not one of them"),
    (Layer("gru", element="output"), r'element = "output" is not one of them: give element = 0'),
    (Layer("head", element=0), r"layer 'head\[0\]': module 'head' returns a tensor \(3, 10\); element = 0 chooses "
                               r"from a tuple, list or dict output: leave element out"),
    (Layer("gru", read="input", element=1), r"module 'gru' is given 0: tensor \(3, 8, 8\), no positional input 1"),
])
def test_structured_outputs_need_a_choice(digits, layer, message):
    with pytest.raises(SettingsError, match=message):
        plan_representations(ModelSpec(factory=DigitsGRU, layers=(layer,)), digits)


# ------------------------------------------------------------------ any structure, any input


Pair = namedtuple("Pair", "hidden logits")


@dataclass
class Output:  # a Hugging Face ModelOutput-like result
    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor | None = None


class Structured(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind, self.lin = kind, nn.Linear(4, 3)

    def forward(self, x, mask=None):
        h = self.lin(x if mask is None else x * mask)
        return {"dict": lambda: {"hidden": h, "logits": h.sum(-1)}, "ordered": lambda: OrderedDict(hidden=h),
                "named": lambda: Pair(h, h.sum(-1)), "dataclass": lambda: Output(h), "list": lambda: [h, None]}[self.kind]()


class Wrapper(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.inner = Structured(kind)

    def forward(self, x):
        return self.inner(x, mask=torch.ones_like(x))


@pytest.mark.parametrize("kind, element", [("dict", "hidden"), ("ordered", "hidden"), ("named", "hidden"),
                                           ("named", 0), ("dataclass", "last_hidden_state"), ("list", 0)])
def test_an_element_is_read_by_position_or_name(kind, element):
    model, x = Wrapper(kind), torch.randn(5, 2, 4)
    with capture(model, [Layer("inner", element=element, tokens="mean")]) as out:
        model(x)
    assert torch.equal(out[f"inner[{element}][mean]"], model.inner.lin(x).mean(dim=1).detach())


@pytest.mark.parametrize("kind, message", [
    ("dict", r"layer 'inner': module 'inner' returns a dict \(hidden: tensor \(5, 2, 3\), logits: tensor \(5, 2\)\), "
             r"not a tensor; choose what to read with element = \"hidden\""),
    ("dataclass", r"returns a Output \(last_hidden_state: tensor \(5, 2, 3\), pooler_output: NoneType\)"),
])
def test_a_structured_output_without_a_choice_names_its_elements(kind, message):
    model = Wrapper(kind)
    with pytest.raises(SettingsError, match=message):
        with capture(model, [Layer("inner")]):
            model(torch.randn(5, 2, 4))
    listing = Wrapper("list")
    with pytest.raises(SettingsError, match=r"layer 'inner\[1\]': module 'inner': element 1 of its output is NoneType, "
                                            r"not a tensor; choose a tensor of 0: tensor \(5, 3\), 1: NoneType"):
        with capture(listing, [Layer("inner", element=1)]):
            listing(torch.randn(5, 4))


def test_a_module_input_by_position_or_keyword():
    model, x = Wrapper("dict"), torch.randn(5, 4)
    layers = [Layer("inner", read="input"), Layer("inner", read="input", element="mask"),
              Layer("inner", read="input", element="x")]
    with capture(model, layers) as out:
        model(x)
    assert torch.equal(out["inner[input]"], x) and torch.equal(out["inner[input.x]"], x)
    assert torch.equal(out["inner[input.mask]"], torch.ones_like(x))
    with pytest.raises(SettingsError, match=r"module 'inner' is given 0: tensor \(5, 4\), mask: tensor \(5, 4\); it has "
                                            r"no input 'weights'"):
        with capture(model, [Layer("inner", read="input", element="weights")]):
            model(x)


@pytest.mark.parametrize("layer, message", [
    (dict(path="x", tokens="max"), r'tokens = "max" is not one of "cls", "mean", "flatten" or a token index'),
    (dict(path="x", tokens=True), "tokens = True is not one of"),
    (dict(path="x", tokens=1.5), "tokens = 1.5 is not one of"),
    (dict(path="x", read="inputs"), "read 'inputs' is not one of output, input"),
    (dict(path="x", element=True), "element = True must be a position"),
    (dict(path="x", element="a/b"), 'element = "a/b" must be a position'),
    (dict(path="x", element=""), 'element = "" must be a position'),
    (dict(path="x", pool="mean"), r"a layer is given as \{path, split, max_channels, name, tokens, element, read, reduce\}"),
])
def test_bad_sequence_specs(layer, message):
    with pytest.raises(SettingsError, match=message):
        Layer.parse(layer)


def test_names_and_defaults():
    assert Layer.parse({"path": "b", "tokens": "-1"}).tokens == -1  # a run file's text index
    assert Layer("b", name="block", tokens="mean").key == "block[mean]"
    assert Layer("x").split is None and Layer("x").record() == {"path": "x", "split": "whole", "max_channels": None,
                                                                "name": "x"}
