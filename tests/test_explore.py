"""The explorer: its data files against the store, its rebuilds, its exports, and the page itself
driven in headless Chromium from ``file://`` (load, points drawn, hover, linked selection,
class toggles, selection by index and by link)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import _browser
from repscope.engine.errors import SettingsError
from repscope.engine.explore import PAGE, export_projector, notebook_view, quantise, sprite_sheet, thumbnail_factor
from repscope.store import RunStore, embedding_key

N = 1000  # the smoke preset's
#: matplotlib's tab10, the classes' colours on the page as in the report's figures
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def _put(path: Path) -> tuple[str, dict, bytes]:
    """The id, meta and bytes of a data file (``repscope.put(id, meta, "<base64>");``)."""
    match = re.fullmatch(r'repscope\.put\((".*?"), (\{.*?\}), "([A-Za-z0-9+/=]*)"\);\n', path.read_text())
    assert match, path
    return json.loads(match[1]), json.loads(match[2]), base64.b64decode(match[3])


def _manifest(page: Path) -> dict:
    text = page.read_text()
    return json.loads(re.search(r'<script type="application/json" id="manifest">(.*?)</script>', text, re.S)[1])


@pytest.fixture(scope="module")
def explorer(smoke_run):
    page = smoke_run / "report" / PAGE
    assert page.is_file()  # the report stage writes it
    return page, _manifest(page)


def _codes(page: Path, ds: dict, method: str, network: str, name: str) -> np.ndarray:
    _, meta, payload = _put(page.parent / ds["embeddings"][f"{method}/42/{network}/{name}"]["file"])
    codes = np.frombuffer(payload, dtype="<u2").reshape(-1, 2)
    assert len(codes) == meta["n"]
    return codes


# ---------------------------------------------------------------------------- files


def test_quantise_keeps_aspect_and_handles_one_point_and_bad_values():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 2)) * [10, 1] + 3
    q = quantise(points)
    assert q.codes.dtype == np.uint16 and q.codes[:, 0].min() == 0 and q.codes[:, 0].max() == 65535
    y = q.codes[:, 1].astype(int)
    assert abs(y.min() + y.max() - 65535) <= 1 and y.max() - y.min() < 65535 // 3  # the short side centred
    assert np.abs(q.decode() - points).max() <= q.span / 65535 / 2 + 1e-12  # half a step
    same = quantise(np.full((4, 2), 7.0))  # a dead filter: every point in one place, drawn in the middle
    assert same.codes.tolist() == [[32768, 32768]] * 4 and same.lo == (6.5, 6.5)
    assert quantise(np.zeros((1, 2))).codes.shape == (1, 2)
    with pytest.raises(ValueError, match="finite"):
        quantise(np.array([[0.0, np.nan]]))


def test_thumbnails_shrink_by_whole_factors_and_pack_row_major():
    assert thumbnail_factor(28, 28) == 1 and thumbnail_factor(64, 64) == 1 and thumbnail_factor(224, 224) == 4
    images = np.random.default_rng(1).integers(0, 256, size=(5, 3, 2, 3), dtype=np.uint8)  # colour
    sheet = sprite_sheet(images, columns=2)
    assert sheet.shape == (9, 4, 3)
    assert (sheet[6:9, 0:2] == images[4]).all() and (sheet[6:9, 2:4] == 0).all()


def test_data_files_hold_the_store_s_labels_and_embeddings(smoke_run, explorer):
    page, manifest = explorer
    store = RunStore(smoke_run / "store.zarr")
    assert [d["name"] for d in manifest["datasets"]] == ["mnist", "fashion-mnist"]
    for ds in manifest["datasets"]:
        labels = np.asarray(store.labels(ds["name"]))
        ident, meta, payload = _put(page.parent / ds["labels"])
        assert ident == f"{ds['name']}/labels" and meta == {"dtype": "uint8", "n": N}
        assert (np.frombuffer(payload, np.uint8) == labels).all()
        assert ds["counts"] == np.bincount(labels, minlength=10).tolist() and len(ds["classes"]) == 10
        # every complete embedding of both methods and networks, the input once per method
        assert len(ds["embeddings"]) == 2 * (24 + 24) and len({e["file"] for e in ds["embeddings"].values()}) == 2 * 47
        for network, name in (("trained", "layer3"), ("untrained", "layer2/filter07"), ("untrained", "original")):
            points = np.asarray(store.array(embedding_key(ds["name"], 42, network, "umap", name))[:])
            codes = _codes(page, ds, "umap", network, name)
            assert (codes == quantise(points).codes).all()
        assert ds["defaults"] == [[net, name] for net in ("trained", "untrained")
                                  for name in ("original", "layer1/all", "layer2/all", "layer3")]
        assert ds["image"]["width"] == ds["image"]["height"] == 28 and len(ds["image"]["sheets"]) == 1


def test_a_rebuild_writes_only_what_is_missing_or_changed(smoke_run, tmp_path):
    from repscope.engine.explore import build_explorer

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run, ignore=shutil.ignore_patterns("figures"))
    folder = run / "report" / "explore"
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    gone = folder / "data" / "mnist" / "tsne" / "seed42" / "untrained" / "layer2-filter03.js"
    gone.unlink()
    sheet = folder / "sprites" / "fashion-mnist" / "0.png"
    sheet.write_bytes(b"cut short")  # made from other inputs, as the manifest says next
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sprites/fashion-mnist/0"]["key"] = "stale"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    build_explorer(run)
    changed = {p for p in files if (p.stat().st_mtime_ns, p.read_bytes()) != before[p]}
    assert changed - {folder / "explore.js"} == {gone, sheet}  # the page's script is always copied
    assert gone.read_bytes() == before[gone][1] and sheet.read_bytes() == before[sheet][1]


def test_projector_export_writes_what_tensorboard_reads(smoke_run, tmp_path):
    from PIL import Image

    store = RunStore(smoke_run / "store.zarr")
    config = export_projector(smoke_run, tmp_path / "p", "fashion-mnist", "tsne", 42, "untrained", "layer2/filter02")
    text = config.read_text()
    assert 'tensor_name: "fashion-mnist/tsne/seed42/untrained/layer2/filter02"' in text
    assert 'tensor_path: "tensors.tsv"' in text and "single_image_dim: 28" in text
    vectors = np.loadtxt(tmp_path / "p" / "tensors.tsv", delimiter="\t")
    expected = store.array(embedding_key("fashion-mnist", 42, "untrained", "tsne", "layer2/filter02"))[:]
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    rows = (tmp_path / "p" / "metadata.tsv").read_text().splitlines()
    labels = np.asarray(store.labels("fashion-mnist"))
    assert rows[0] == "index\tlabel\tclass" and len(rows) == N + 1
    classes = json.loads((smoke_run / "config.json").read_text())["data"]["fashion-mnist"]["classes"]
    assert rows[1] == f"0\t{labels[0]}\t{classes[labels[0]]}"
    sprite = np.asarray(Image.open(tmp_path / "p" / "sprite.png"))
    assert sprite.shape == (32 * 28, 32 * 28)  # ceil(sqrt(1000)) = 32 per row
    original = np.asarray(store.array("fashion-mnist/original")[:])
    assert (sprite[28:56, 28 * 2:28 * 3] == original[32 + 2].reshape(28, 28)).all()
    export_projector(smoke_run, tmp_path / "v", "mnist", "umap", vectors="representation")
    assert np.loadtxt(tmp_path / "v" / "tensors.tsv", delimiter="\t").shape == (N, 64)  # layer3's 64 units
    with pytest.raises(SettingsError, match=r"representation 'layer9' is not in this run; choose from original"):
        export_projector(smoke_run, tmp_path / "x", "mnist", "umap", representation="layer9")


def test_cli_explore_and_projector(smoke_run, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "repscope", "-q", *args], capture_output=True, text=True,
                              timeout=300)

    proc = cli("projector", "--out", str(smoke_run), "--to", str(tmp_path / "p"), "--dataset", "mnist",
               "--method", "tsne", "--seed", "7")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: seed 7 is not in this run; choose from 42"
    (tmp_path / "file").write_text("")
    proc = cli("projector", "--out", str(smoke_run), "--to", str(tmp_path / "file"), "--dataset", "mnist",
               "--method", "tsne")
    assert proc.returncode == 2 and proc.stderr.strip().startswith(f"error: cannot write the projector's files into "
                                                                  f"{tmp_path / 'file'}")
    proc = cli("explore", "--out", str(tmp_path))
    assert proc.returncode == 3 and proc.stderr.startswith(f"error: {tmp_path} is not a run folder")  # data: missing
    assert len(proc.stderr.strip().splitlines()) == 1


def test_notebook_view_links_selection_across_panels(smoke_run):
    pytest.importorskip("jscatter")  # the notebook extra (in dev)
    widget = notebook_view(smoke_run, "mnist", "umap")
    assert len(widget.scatters) == 8
    store = RunStore(smoke_run / "store.zarr")
    points = store.array(embedding_key("mnist", 42, "untrained", "umap", "layer2/all"))[:]
    np.testing.assert_array_equal(widget.scatters[6]._data[["x", "y"]].to_numpy(), points)
    widget.scatters[3].widget.selection = [5, 17, 400]
    assert [list(map(int, s.widget.selection)) for s in widget.scatters] == [[5, 17, 400]] * 8


# ---------------------------------------------------------------------------- the page in a browser


@pytest.fixture(scope="module")
def browser():
    if _browser.binaries() is None:
        if os.environ.get("REPSCOPE_BROWSER") == "required":
            pytest.fail("Chromium and ChromeDriver are required here: apt-get install chromium chromium-driver")
        pytest.skip("no Chromium or ChromeDriver (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")
    with _browser.chrome(1600, 1000) as driver:
        yield driver


@pytest.fixture(scope="module", params=["cpu", "gl"])
def raster(request) -> str:
    """Both ways the page draws points: rasterised by its script (its choice where WebGL runs in
    software, as here) and with WebGL's own points (its choice on a GPU)."""
    return request.param


def _open(driver, page: Path, raster: str, fragment: str = "") -> float:
    first = _browser.open_explorer(driver, page, "&".join(filter(None, [fragment, f"raster={raster}"])))
    assert driver.execute_script("return window.repscope.state.raster") == raster
    return first


def _panel(driver, i: int) -> dict:
    return driver.execute_script("return window.repscope.panels()")[i]


def _screen(rect, codes: np.ndarray) -> np.ndarray:
    """Client coordinates of points at the default view (centre 0.5, unit scale 2 x 0.94)."""
    left, top, width, height = rect
    clip = (codes / 65535 - 0.5) * 1.88
    return np.stack([left + (clip[:, 0] + 1) / 2 * width, top + (1 - clip[:, 1]) / 2 * height], axis=1)


def _isolated(xy: np.ndarray, pool: np.ndarray, radius: float) -> list[int]:
    """Points of ``pool`` with no other point within ``radius`` pixels, most isolated first."""
    d = np.sqrt(((xy[pool, None, :] - xy[None, :, :]) ** 2).sum(-1))
    d[np.arange(len(pool)), pool] = np.inf
    gap = d.min(axis=1)
    return [int(pool[i]) for i in np.argsort(-gap) if gap[i] > radius]


def _move(driver, x: float, y: float) -> None:
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
    actions.perform()


def test_page_loads_from_file_without_errors_and_draws_every_point(browser, raster, explorer):
    page, manifest = explorer
    first = _open(browser, page, raster)
    assert _browser.errors(browser) == []
    panels = browser.execute_script("return window.repscope.panels()")
    assert [(p["network"], p["name"]) for p in panels] == [tuple(x) for x in manifest["datasets"][0]["defaults"]]
    assert all(p["loaded"] and p["drawn"] == N for p in panels)
    assert 0 < first < 30_000
    ds = manifest["datasets"][0]
    xy = _screen(panels[3]["rect"], _codes(page, ds, "tsne", "trained", "layer3"))
    i = _isolated(xy, np.arange(N), 5)[0]
    assert browser.execute_script("return window.repscope.screenPosition(3, arguments[0])", i) == pytest.approx(
        xy[i].tolist(), abs=1e-6)
    labels = np.frombuffer(_put(page.parent / ds["labels"])[2], np.uint8)
    colour = np.array([int(TAB10[labels[i]][k:k + 2], 16) for k in (1, 3, 5)])
    pixel = np.array(browser.execute_script("return window.repscope.pixel(...arguments)", *xy[i]))
    assert pixel[3] > 150 and np.abs(pixel[:3] / pixel[3] * 255 - colour).max() <= 3  # its class's colour
    from PIL import Image  # and so it looks on the page: 90 % of the colour over white
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    seen = shot[int(xy[i][1]), int(xy[i][0])].astype(int)
    assert np.abs(seen - (0.9 * colour + 0.1 * 255)).max() <= 4, (seen, colour)
    for k, panel in enumerate(panels):  # every panel draws its points where they are
        network, name = panel["network"], panel["name"]
        xy_k = _screen(panel["rect"], _codes(page, ds, "tsne", "trained" if name == "original" else network, name))
        j = _isolated(xy_k, np.arange(N), 5)[0]
        assert browser.execute_script("return window.repscope.pixel(...arguments)", *xy_k[j])[3] > 150, (k, j)
    corner = panels[3]["rect"]
    assert browser.execute_script("return window.repscope.pixel(...arguments)", corner[0] + 2, corner[1] + 2)[3] == 0
    # only the first view's files are read (7 embeddings, the input shared, and the labels); any other on demand
    scripts = "return [...document.querySelectorAll('head script')].map(e => e.getAttribute('src'))"
    assert len(browser.execute_script(scripts)) == 8
    browser.find_element("css selector", "#chooser summary").click()
    boxes = browser.find_elements("css selector", "#panel-table input")
    assert len(boxes) == 24 + 24  # every representation of either network
    boxes[2 * 9].click()  # layer2/filter05 of the trained network
    browser.find_element("css selector", "#chooser summary").click()
    _wait_loaded(browser)
    panels = browser.execute_script("return window.repscope.panels()")
    assert ("trained", "layer2/filter05") in [(p["network"], p["name"]) for p in panels] and len(panels) == 9
    assert all(p["drawn"] == N for p in panels)
    assert browser.execute_script(scripts)[-1] == ds["embeddings"]["tsne/42/trained/layer2/filter05"]["file"]
    assert _browser.errors(browser) == []


def test_hover_shows_the_example_its_label_image_and_vote(browser, raster, explorer, smoke_run):
    from PIL import Image

    page, manifest = explorer
    _open(browser, page, raster, "dataset=fashion-mnist&method=umap")
    ds = manifest["datasets"][1]
    panel = _panel(browser, 7)  # untrained layer3
    codes = _codes(page, ds, "umap", "untrained", "layer3")
    xy = _screen(panel["rect"], codes)
    i = _isolated(xy, np.arange(N), 4)[0]
    _move(browser, *xy[i])
    tip = browser.find_element("id", "tooltip")
    assert tip.is_displayed() and int(tip.get_attribute("data-index")) == i
    labels = np.asarray(RunStore(smoke_run / "store.zarr").labels("fashion-mnist"))
    assert int(tip.get_attribute("data-label")) == labels[i]
    assert f"#{i}" in tip.text and f"label {labels[i]}: {ds['classes'][labels[i]]}" in tip.text
    # the vote: the 10 nearest others by (distance, index), ties to the smallest label
    d = ((codes.astype(np.int64) - codes[i]) ** 2).sum(axis=1)
    d[i] = np.iinfo(np.int64).max
    nearest = np.lexsort((np.arange(N), d))[:10]
    counts = np.bincount(labels[nearest], minlength=10)
    assert int(tip.get_attribute("data-vote")) == int(np.argmax(counts))
    assert f"10-NN vote: {ds['classes'][np.argmax(counts)]} ({counts.max()} of 10)" in tip.text
    # the image: the thumbnail's cell of its sprite sheet is the example
    thumb = tip.find_element("css selector", ".thumb")
    sheet = np.asarray(Image.open(page.parent / thumb.get_attribute("data-sheet")))
    cell = int(thumb.get_attribute("data-cell"))
    assert cell == i
    r, c = divmod(cell, ds["image"]["columns"])
    original = RunStore(smoke_run / "store.zarr").array("fashion-mnist/original")[i]
    assert (sheet[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] == np.asarray(original).reshape(28, 28)).all()
    assert "sprites/fashion-mnist/0.png" in thumb.value_of_css_property("background-image")
    _move(browser, 5, 5)
    assert not tip.is_displayed()
    assert _browser.errors(browser) == []


def test_a_box_in_one_panel_selects_the_same_examples_in_every_other(browser, raster, explorer):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    page, manifest = explorer
    _open(browser, page, raster)
    ds = manifest["datasets"][0]
    browser.find_element("css selector", '.modes button[data-mode="box"]').click()
    source = _panel(browser, 1)  # trained layer1/all
    left, top, width, height = source["rect"]
    x0, y0, x1, y1 = (round(v) for v in (left + 0.2 * width, top + 0.25 * height, left + 0.6 * width,
                                         top + 0.7 * height))
    drag = ActionBuilder(browser)
    drag.pointer_action.move_to_location(x0, y0).pointer_down().move_to_location((x0 + x1) // 2, y1)
    drag.pointer_action.move_to_location(x1, y1).pointer_up()
    drag.perform()
    _move(browser, 5, 5)
    chosen = browser.execute_script("return window.repscope.selection()")
    xy = _screen(source["rect"], _codes(page, ds, "tsne", "trained", "layer1/all"))
    inside = (xy[:, 0] > x0 + 1) & (xy[:, 0] < x1 - 1) & (xy[:, 1] > y0 + 1) & (xy[:, 1] < y1 - 1)
    outside = (xy[:, 0] < x0 - 1) | (xy[:, 0] > x1 + 1) | (xy[:, 1] < y0 - 1) | (xy[:, 1] > y1 + 1)
    assert 50 < len(chosen) < N and set(np.flatnonzero(inside)) <= set(chosen)
    assert not set(np.flatnonzero(outside)) & set(chosen)
    assert browser.find_element("id", "sel-count").text == f"{len(chosen)} examples"
    # the same examples stand out in the untrained network's last layer: full colour on top, the rest faded
    target = _panel(browser, 7)
    xy = _screen(target["rect"], _codes(page, ds, "tsne", "untrained", "layer3"))
    mask = np.zeros(N, bool)
    mask[chosen] = True
    for pool, bright in ((np.flatnonzero(mask), True), (np.flatnonzero(~mask), False)):
        for i in _isolated(xy, pool, 5)[:3]:
            alpha = browser.execute_script("return window.repscope.pixel(...arguments)", *xy[i])[3]
            assert (alpha > 150) if bright else (0 < alpha < 120), (i, alpha)
    browser.find_element("id", "clear").click()
    assert browser.execute_script("return window.repscope.selection()") == []
    assert _browser.errors(browser) == []


def test_a_lasso_selects_the_points_inside_its_polygon(browser, raster, explorer):
    from matplotlib.path import Path as Polygon
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    page, manifest = explorer
    _open(browser, page, raster)
    browser.find_element("css selector", '.modes button[data-mode="lasso"]').click()
    left, top, width, height = _panel(browser, 4)["rect"]  # the untrained network's input panel
    corners = [(left + a * width, top + b * height) for a, b in [(0.2, 0.2), (0.8, 0.3), (0.5, 0.85), (0.3, 0.6)]]
    path = [tuple(round(v) for v in c) for c in corners + corners[:1]]
    drag = ActionBuilder(browser)
    drag.pointer_action.move_to_location(*path[0]).pointer_down()
    for x, y in path[1:]:
        drag.pointer_action.move_to_location(x, y)
    drag.pointer_action.pointer_up()
    drag.perform()
    _move(browser, 5, 5)
    chosen = set(browser.execute_script("return window.repscope.selection()"))
    xy = _screen(_panel(browser, 4)["rect"], _codes(page, manifest["datasets"][0], "tsne", "trained", "original"))
    polygon = Polygon(path[:-1])
    # a radius grows the polygon or shrinks it by its orientation: take both, 2 px either way
    near = [polygon.contains_points(xy, radius=r) for r in (-2, 2)]
    surely_in, surely_out = near[0] & near[1], ~near[0] & ~near[1]
    assert 20 < len(chosen) < N
    assert set(np.flatnonzero(surely_in)) <= chosen and not set(np.flatnonzero(surely_out)) & chosen
    assert _browser.errors(browser) == []


def test_a_class_toggle_hides_its_points_everywhere(browser, raster, explorer, smoke_run):
    page, manifest = explorer
    _open(browser, page, raster)
    ds = manifest["datasets"][0]
    labels = np.asarray(RunStore(smoke_run / "store.zarr").labels("mnist"))
    browser.find_element("css selector", '#legend button[data-class="3"]').click()
    panels = browser.execute_script("return window.repscope.panels()")
    assert all(p["drawn"] == N - int((labels == 3).sum()) for p in panels)
    xy = _screen(panels[0]["rect"], _codes(page, ds, "tsne", "trained", "original"))
    threes = _isolated(xy, np.flatnonzero(labels == 3), 5)[:3]
    assert threes
    for i in threes:
        assert browser.execute_script("return window.repscope.pixel(...arguments)", *xy[i])[3] == 0
        _move(browser, *xy[i])
        tip = browser.find_element("id", "tooltip")
        assert not tip.is_displayed() or int(tip.get_attribute("data-label")) != 3
    browser.find_element("css selector", '#legend button[data-class="3"]').click()
    _move(browser, 5, 5)
    assert browser.execute_script("return window.repscope.panels()")[0]["drawn"] == N
    assert browser.execute_script("return window.repscope.pixel(...arguments)", *xy[threes[0]])[3] > 150


@pytest.mark.parametrize("n, classes, image", [(1, 10, False), (2, 300, True)])
def test_runs_of_one_or_two_points_many_classes_odd_names_and_no_images(browser, raster, tmp_path, n, classes, image):
    from benchmarks.explorer import synthetic_run
    from repscope.engine.explore import build_explorer

    names = ['<b>x</b> & "y" </script><!--', *[f"class {k}" for k in range(1, classes)]]
    run = synthetic_run(tmp_path / "run", n, classes=names, image=image, dead=True)
    store = RunStore(run / "store.zarr")
    key = embedding_key("mnist", 42, "untrained", "umap", "layer2")
    broken = store.read(key)
    broken[0, 1] = np.nan  # a coordinate that is not a number: that panel says so, the others draw
    store.write_whole(key, broken, {"synthetic": "a coordinate not a number"})  # written as the store writes
    page = build_explorer(run)
    _open(browser, page, raster)
    assert _browser.errors(browser) == []
    panels = browser.execute_script("return window.repscope.panels()")
    assert len(panels) == 8 and [p["drawn"] for p in panels] == [n] * 6 + [0, n]
    assert browser.find_elements("css selector", ".plot .msg")[6].text == f"not drawn: 1 of {n} points are not finite"
    assert "constant: one point" in browser.find_elements("css selector", ".panel h3")[3].text  # trained layer3
    legend = browser.find_elements("css selector", "#legend .name")
    assert len(legend) == classes and legend[0].text == names[0]  # shown as text, not markup
    labels = browser.execute_script("return Array.from(window.repscope.state.labels)")
    x, y = browser.execute_script("return window.repscope.screenPosition(0, 0)")
    _move(browser, x, y)
    tip = browser.find_element("id", "tooltip")
    assert int(tip.get_attribute("data-index")) == 0 and int(tip.get_attribute("data-label")) == labels[0]
    assert names[labels[0]] in tip.text
    assert bool(tip.find_elements("css selector", ".thumb")) == image
    vote = "10-NN vote: " + (f"{names[labels[1]]} (1 of 1)" if n == 2 else "none (no other point)")
    assert vote in tip.text
    _move(browser, 5, 5)
    browser.execute_script("window.repscope.select([0])")
    assert browser.execute_script("return window.repscope.selection()") == [0]
    assert _browser.errors(browser) == []


def test_selection_by_index_by_link_and_from_the_report_s_outliers(browser, raster, explorer, smoke_run):
    page, _ = explorer
    _open(browser, page, raster)
    field = browser.find_element("id", "indices")
    field.send_keys("3, 5-7 #12\n")
    assert browser.execute_script("return window.repscope.selection()") == [3, 5, 6, 7, 12]
    field.clear()
    field.send_keys("990-5000000000\n")  # a range past N selects up to N, at once
    assert browser.execute_script("return window.repscope.selection()") == list(range(990, N))
    field.clear()
    field.send_keys("3, x\n")
    assert '"x" is not an index' in browser.find_element("id", "status").text
    assert _browser.errors(browser) == []  # a typing error is shown, not logged
    # the report's outlier matrix links to the explorer with its examples selected
    report = (smoke_run / "report" / "index.html").read_text()
    links = re.findall(r'href="(explore\.html#dataset=fashion-mnist&amp;method=umap&amp;seed=42&amp;select=[0-9,]+)"',
                       report)
    assert links
    fragment = links[0].replace("&amp;", "&").split("#", 1)[1]
    _open(browser, page, raster, fragment)
    wanted = [int(i) for i in fragment.split("select=")[1].split(",")]
    assert browser.execute_script("return window.repscope.selection()") == wanted
    assert browser.find_element("id", "dataset").get_attribute("value") == "fashion-mnist"
    assert browser.find_element("id", "method").get_attribute("value") == "umap"
    _open(browser, page, raster, "select=1%2C2&bad=%E0%A4%A")  # parts decoded one by one; a bad one is said
    assert browser.execute_script("return window.repscope.selection()") == [1, 2]
    assert "cannot read" in browser.find_element("id", "status").text
    assert _browser.errors(browser) == []


def test_switching_data_set_method_and_seed_keeps_the_page_consistent(browser, raster, explorer, smoke_run):
    page, manifest = explorer
    _open(browser, page, raster)
    browser.execute_script("window.repscope.select([1, 2, 3])")
    switch = ("const [id, value] = arguments; const el = document.getElementById(id); el.value = value;"
              "el.dispatchEvent(new Event('change'));")
    browser.execute_script(switch, "method", "umap")  # the same examples, another method: the selection stays
    _wait_loaded(browser)
    assert browser.execute_script("return window.repscope.selection()") == [1, 2, 3]
    for name in ("fashion-mnist", "mnist", "fashion-mnist", "mnist", "fashion-mnist"):  # faster than loads finish
        browser.execute_script(switch, "dataset", name)
    _wait_loaded(browser)
    assert browser.find_element("id", "dataset").get_attribute("value") == "fashion-mnist"
    classes = [e.text for e in browser.find_elements("css selector", "#legend .name")]
    assert classes == manifest["datasets"][1]["classes"]
    labels = np.asarray(RunStore(smoke_run / "store.zarr").labels("fashion-mnist"))
    assert browser.execute_script("return Array.from(window.repscope.state.labels)") == labels.tolist()
    assert browser.execute_script("return window.repscope.selection()") == []  # another data set: none
    panels = browser.execute_script("return window.repscope.panels()")
    assert all(p["drawn"] == N for p in panels) and len(panels) == 8
    assert browser.execute_script("return window.repscope.state.method") == "umap"
    assert _browser.errors(browser) == []


def _wait_loaded(driver) -> None:
    driver.execute_async_script(
        "const done = arguments[0]; (function wait() { if (window.repscope.state.calls && "
        "window.repscope.panels().every(p => p.loaded)) setTimeout(() => { window.repscope.render(); done(); }, 50);"
        " else setTimeout(wait, 20); })();")


def test_a_hundred_classes_and_a_long_name_are_legible_in_the_report_colours(browser, tmp_path):
    """Every class in the legend, a 300-character name cut short there (whole in its title),
    nothing wider than the legend, and the colours those of the report's figures."""
    from benchmarks.explorer import synthetic_run
    from repscope.engine.explore import build_explorer
    from repscope.engine.figures import hex_colours

    names = [f"class {k}" for k in range(100)]
    names[3] = "a long class name " * 17
    page = build_explorer(synthetic_run(tmp_path / "run", 1500, classes=names))
    _open(browser, page, "cpu")
    assert _browser.errors(browser) == []
    buttons = browser.find_elements("css selector", "#legend button")
    assert len(buttons) == 100 and buttons[3].get_attribute("title") == names[3]
    assert browser.execute_script("const b = document.getElementById('legend'); return b.scrollWidth <= b.clientWidth")
    assert browser.execute_script("return window.repscope.state.colours") == hex_colours(100)
