"""Reduction at capture time: each reduction against a plain reference, its settings, and a run with it."""

import numpy as np
import pytest
import torch
from torch import nn

from repscope.engine.errors import SettingsError
from repscope.engine.model import Layer, ModelSpec, canonical_reduce, probe_shapes, projection_matrix, reduce_batch


@pytest.fixture
def batch():
    return torch.from_numpy(np.random.default_rng(0).normal(size=(5, 6, 7, 9)).astype(np.float32))


def test_global_pooling_is_torchs(batch):
    avg = reduce_batch(batch, Layer("c", reduce="avgpool"))
    top = reduce_batch(batch, Layer("c", reduce="maxpool"))
    torch.testing.assert_close(avg, nn.functional.adaptive_avg_pool2d(batch, 1).flatten(1), rtol=1e-6, atol=1e-6)
    assert torch.equal(top, nn.functional.adaptive_max_pool2d(batch, 1).flatten(1))
    sequence = batch[:, :, 0]  # a Conv1d's (batch, channels, length)
    torch.testing.assert_close(reduce_batch(sequence, Layer("c", split="whole", reduce="avgpool")),
                               sequence.mean(dim=2), rtol=0, atol=0)


@pytest.mark.parametrize("grid", ["1x1", "2x2", "3x4", "7x9"])
def test_grid_pooling_is_torchs(batch, grid):
    height, width = map(int, grid.split("x"))
    out = reduce_batch(batch, Layer("c", reduce=f"pool:{grid}"))
    assert torch.equal(out, nn.functional.adaptive_avg_pool2d(batch, (height, width)))


def test_ties_and_constant_inputs_pool_to_themselves():
    same = torch.full((3, 4, 5, 5), 2.5)
    for reduce in ("avgpool", "maxpool", "pool:2x2"):
        out = reduce_batch(same, Layer("c", reduce=reduce))
        assert torch.all(out == 2.5), reduce


def test_projection_is_seeded_and_matches_a_dense_reference(batch):
    from repscope.engine import model

    layer = Layer("c", reduce="project:16")
    first = reduce_batch(batch, layer)
    model._PROJECTIONS.clear()  # made again from its seed: the same matrix
    assert torch.equal(first, reduce_batch(batch, layer))
    dense = projection_matrix(batch[0].numel(), 16).to_dense()
    torch.testing.assert_close(first, batch.flatten(1) @ dense.T, rtol=1e-5, atol=1e-5)
    assert torch.equal(reduce_batch(batch[:2], layer), first[:2])  # row by row: batches do not matter


def test_projection_preserves_distances_on_random_data():
    """Johnson-Lindenstrauss: with D = 512 pairwise distances keep within a few percent."""
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(40, 20_000)).astype(np.float32))
    y = reduce_batch(x, Layer("fc", reduce="project:512"))
    before, after = torch.pdist(x), torch.pdist(y)
    ratio = after / before
    assert abs(float(ratio.mean()) - 1) < 0.03 and float(ratio.std()) < 0.06
    assert torch.all(reduce_batch(torch.zeros(2, 20_000), Layer("fc", reduce="project:512")) == 0)


def test_projection_of_one_and_duplicate_examples():
    x = torch.ones(1, 300)
    one = reduce_batch(x, Layer("fc", reduce="project:8"))
    twice = reduce_batch(torch.cat([x, x]), Layer("fc", reduce="project:8"))
    assert one.shape == (1, 8) and torch.equal(twice[0], twice[1]) and torch.equal(twice[:1], one)


@pytest.mark.parametrize("given, spelled", [
    ("none", None), (None, None), ("AVGPOOL", "avgpool"), (" maxpool", "maxpool"), ("pool:2x2", "pool:2x2"),
    ("pool: 02 x 3", "pool:2x3"), ("project:64", "project:64"),
])
def test_reduce_is_spelled_one_way(given, spelled):
    assert canonical_reduce(given) == spelled
    assert Layer.parse({"path": "x", "reduce": given}).reduce == spelled


@pytest.mark.parametrize("given", ["mean", "pool:2", "pool:0x2", "project:", "project:-3", "pca", "pca:0", 3, "pool:2x2x2"])
def test_unknown_reductions_are_one_line(given):
    with pytest.raises(SettingsError) as info:
        Layer("x", reduce=given)
    assert "reduce =" in str(info.value) and "\n" not in str(info.value)


def test_reduce_with_split_channels_or_flattened_tokens_is_refused():
    with pytest.raises(SettingsError, match='reduce = "avgpool" with split = "channels"'):
        Layer("conv", split="channels", reduce="avgpool")
    with pytest.raises(SettingsError, match='give tokens = "mean" instead'):
        Layer("block", tokens="flatten", reduce="avgpool")
    assert Layer("block", tokens="flatten", reduce="project:8").key == "block[flatten][project8]"


def test_what_cannot_be_reduced_is_refused_by_the_dry_pass():
    spec = ModelSpec(factory=lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)),
                     layers=(Layer("0", reduce="pool:9x9"), Layer("2", reduce="avgpool"), Layer("1", reduce="project:500")))
    with pytest.raises(SettingsError) as info:
        probe_shapes(spec.factory(), spec, torch.zeros(2, 1, 8, 8))
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert "no larger than its own" in lines[0] and "which has none" in lines[1] and "gives 144 per example" in lines[2]


def test_shapes_and_names_of_reduced_layers():
    spec = ModelSpec(factory=lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten()),
                     layers=(Layer("0", reduce="avgpool"), Layer("1", reduce="pool:2x2"), Layer("2", reduce="project:10"),
                             Layer("1", name="relu")))
    shapes = probe_shapes(spec.factory(), spec, torch.zeros(2, 1, 8, 8))
    assert shapes == {"0[avgpool]": (4,), "1[pool2x2]": (4, 2, 2), "2[project10]": (10,), "relu": (4, 6, 6)}
    assert Layer("0", reduce="avgpool").record() == {"path": "0", "split": "whole", "max_channels": None,
                                                     "name": "0[avgpool]", "reduce": "avgpool"}


def test_a_run_with_reduced_layers(tmp_path):
    """Reduced layers are stored reduced, named by their reduction, embedded and scored like any other."""
    import repscope

    torch.manual_seed(0)
    net = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 10))
    layers = [{"path": "2", "reduce": "avgpool"}, {"path": "2", "name": "grid", "reduce": "pool:2x2"},
              {"path": "3", "reduce": "project:32"}, {"path": "3", "name": "pc", "reduce": "pca:8"}]
    run = repscope.analyze(net, "digits", layers=layers, methods=["tsne"], n=150, out=tmp_path / "run",
                           transform=lambda x: x.reshape(len(x), -1), workers=0, report=False, progress=False)
    names = sorted({row["representation"] for row in run.metrics})
    assert names == ["2[avgpool]", "3[project32]", "grid[pool2x2]", "original", "pc[pca8]"]
    assert run.representation("digits", "2[avgpool]").shape == (150, 8)
    assert run.representation("digits", "grid[pool2x2]").shape == (150, 32)  # C x 2 x 2, flattened
    stored = run.representation("digits", "3[project32]")
    x = np.asarray(run.store.read("digits/original"))[:150].astype(np.float32) / 16
    with torch.no_grad():
        whole = net[:4](torch.from_numpy(x))
    np.testing.assert_allclose(stored, reduce_batch(whole, Layer("3", reduce="project:32")).numpy(), rtol=1e-5,
                               atol=1e-5)
    # pca:8: the flattened activation on its first 8 principal components, as scikit-learn's PCA gives them
    from sklearn.decomposition import PCA

    exact = PCA(8).fit(whole.numpy().astype(np.float64))
    pcs = run.representation("digits", "pc[pca8]")
    expected = exact.transform(whole.numpy().astype(np.float64))
    signs = np.sign(np.sum(pcs * expected, axis=0))
    np.testing.assert_allclose(pcs * signs, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    recorded = {r.name: r.reduce for r in run.representations("digits")}
    assert recorded == {"original": None, "2[avgpool]": "avgpool", "grid[pool2x2]": "pool:2x2",
                        "3[project32]": "project:32", "pc[pca8]": "pca:8"}
    fit = run.store.info("digits/seed42/trained/projections/pc[pca8]/components")["fit"]
    assert abs(fit["explained_variance_total"] - exact.explained_variance_ratio_.sum()) < 1e-6
