"""The report: its figures and tables against the run folder, and the findings' rules."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from repscope.engine.findings import SEPARATION, Confusion, Depths, check_findings
from repscope.engine.presets.study import FILTERS, REPRESENTATIONS, finding1, finding2, finding3, finding4
from repscope.engine.report import build_report, file_names, outlier_name, slug
from repscope.engine.tables import read_metrics_csv

ROOT = Path(__file__).resolve().parents[1]
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class Page(HTMLParser):
    """The figure files a page references and its tables (caption, rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.files, self.tables, self._cell, self._caption = set(), [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name, "").startswith("figures/"):
                self.files.add(attrs[name])
        if tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "caption":
            self._caption = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "caption":
            self.tables[-1]["caption"] = "".join(self._caption).strip()
            self._caption = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)


@pytest.fixture(scope="module")
def report(smoke_run):
    """The smoke run's report (the run's last stage wrote it) and the parsed page."""
    page = smoke_run / "report" / "index.html"
    assert page.is_file()
    parsed = Page()
    parsed.feed(page.read_text())
    return smoke_run, parsed


@pytest.mark.network
def test_every_figure_the_page_references_exists_and_is_an_image(report):
    from PIL import Image

    run, page = report
    assert len(page.files) > 300
    for rel in page.files:
        path = run / "report" / rel
        assert path.is_file(), rel
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.verify()
                assert image.size[0] > 100 and image.size[1] > 100, rel
        else:
            assert path.suffix == ".svg" and ET.parse(path).getroot().tag.endswith("svg"), rel


@pytest.mark.network
def test_figures_have_names_that_say_what_they_show(report):
    run, page = report
    figures = run / "report" / "figures"
    for path in ("mnist/tsne/seed42/trained/layer2-filter03.png", "mnist/tsne/seed42/untrained/layer1-filter04.png",
                 "mnist/umap/seed42/original.png", "fashion-mnist/umap/seed42/trained/grid.png",
                 "fashion-mnist/tsne/seed42/beyond-study-grid.png", "mnist/tsne/seed42/trained/layer1-all.png",
                 "fashion-mnist/tsne/depth/acc_knn_loo.png", "fashion-mnist/tsne/depth/acc_knn_loo.svg",
                 "fashion-mnist/filters/seed42/t-shirt-top.png", "mnist/filters/seed42/7.png"):
        assert (figures / path).is_file(), path
    # every metric has its depth plot for each dataset and method, and the page shows it
    for dataset in ("mnist", "fashion-mnist"):
        for method in ("tsne", "umap"):
            for metric in SEPARATION:
                assert f"figures/{dataset}/{method}/depth/{metric}.png" in page.files
    outliers = list((figures / "fashion-mnist/tsne/seed42/outliers").glob("*-voted-*.png"))
    assert outliers and all(p.name.count("-voted-") == 1 for p in outliers)


@pytest.mark.network
def test_every_table_in_the_page_matches_metrics_csv(report):
    run, page = report
    rows = read_metrics_csv(run / "metrics.csv")
    by = {(r["dataset"], r["method"], r["network"], r["representation"]): r for r in rows if r["space"] == "embedding"}
    layers = {"original": ["original"], "layer1": FILTERS["layer1"], "layer2": FILTERS["layer2"], "layer3": ["layer3"],
              "beyond-study": [r.name for r in REPRESENTATIONS if not r.in_study]}
    checked = 0
    for table in page.tables:
        caption = table["caption"]
        if "(trained / untrained)" not in caption:
            continue
        dataset, method, layer = (part.strip() for part in caption.split("(")[0].split(","))
        header, *body = table["rows"]
        assert header[0] == "representation"
        names = [row[0] for row in body]
        assert names[:len(layers[layer])] == layers[layer]
        for row in body:
            for metric, cell in zip(header[1:], row[1:]):
                pair = []
                for network in ("trained", "untrained"):
                    if row[0] == "mean of filters":
                        values = [by[dataset, method, network, f][metric] for f in layers[layer]]
                        defined = [v for v in values if not math.isnan(v)]
                        text = f"{np.mean(defined):.4f}" + ("*" if len(defined) < len(values) else "")
                    else:
                        value = by[dataset, method, network, row[0]][metric]
                        text = "nan" if math.isnan(value) else f"{value:.4f}"
                    pair.append(text)
                assert cell == " / ".join(pair), (caption, row[0], metric)
        checked += 1
    assert checked == 2 * 2 * 5  # datasets x methods x (original, layer1, layer2, layer3, beyond-study)


@pytest.mark.network
def test_the_page_states_each_finding_with_numbers(report):
    run, page = report
    findings = [t for t in page.tables if t["rows"] and t["rows"][0][:3] == ["data set", "method", "verdict"]]
    assert len(findings) == 4
    for table in findings:
        for row in table["rows"][1:]:
            assert row[2] in ("holds", "does not hold", "holds in some seeds", "n/a")
            assert row[3] in ("1 of 1 seed", "0 of 1 seed", "n/a")
    # finding 4 is about FashionMNIST only, with the vote counts behind it
    f4 = {(r[0], r[1]): r for r in findings[3]["rows"][1:]}
    assert f4["mnist", "tsne"][2] == "n/a"
    assert "Shirt voted T-shirt/top" in f4["fashion-mnist", "tsne"][4]


@pytest.mark.network
def test_a_rerun_redraws_only_what_is_missing(report, tmp_path):
    run, _ = report
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    figures = copy / "report" / "figures"
    victim = figures / "mnist/umap/seed42/trained/layer3.png"
    victim.unlink()
    before = {p: p.stat().st_mtime_ns for p in figures.rglob("*.png")}
    build_report(copy)
    assert victim.is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


def test_report_needs_a_finished_run_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "repscope", "report", "--out", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 3  # data: the run's files are missing
    assert str(tmp_path) in result.stderr and "repscope run --out" in result.stderr


def test_slugs():
    assert slug("layer2/filter03") == "layer2-filter03"
    assert slug("layer1/all") == "layer1-all"
    assert slug("T-shirt/top") == "t-shirt-top"
    assert slug("Ankle boot") == "ankle-boot"


#: Class names that no letter or digit names, that share a slug, that hold HTML or mathtext.
HOSTILE = ("<!--", "-->", "", "a/b", "a-b", "A-B", "a b", 'A&B "q"', "<b>&amp;</b>", "$^$", "\u732b", "\u72ac",
           "same", "same", "grid", "x-voted-y", "x", "y-voted-z", "z", "voted", "v" * 300, "v" * 301)
FILE_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def test_file_names_are_distinct_and_non_empty_for_any_class_names():
    names = list(HOSTILE)
    names.append(file_names(["a/b", "a-b"])[0])  # a name made to meet another's digested form
    stems = file_names(names, taken=("grid",))
    assert len(set(stems)) == len(names) and "grid" not in stems
    assert all(FILE_NAME.fullmatch(s) and len(s) <= 80 for s in stems), stems
    assert stems == file_names(names, taken=("grid",))  # stable: the same names, the same files
    assert file_names(FASHION) == [slug(c) for c in FASHION]  # names with their own slugs keep them
    assert slug("<!--") and slug("<!--") != slug("-->") and slug("") != ""


def test_outlier_figures_have_one_file_per_ordered_class_pair():
    stems = file_names(HOSTILE)
    pairs = [outlier_name(stems[a], stems[b]) for a in range(len(HOSTILE)) for b in range(len(HOSTILE)) if a != b]
    assert len(set(pairs)) == len(pairs)
    assert all(FILE_NAME.fullmatch(p) for p in pairs)
    shirt, tshirt = file_names(FASHION)[6], file_names(FASHION)[0]
    assert outlier_name(shirt, tshirt) == "shirt-voted-t-shirt-top"


#: A small run's classes: no letter or digit, one slug for two names, HTML and mathtext.
ADVERSARIAL = ("<!--", "a/b", "a-b", 'A&B "q"', "$^$")
ADVERSARIAL_K = 5  # not the default (10), so a report that ignores the run's k shows it


@pytest.fixture(scope="module")
def adversarial_run(tmp_path_factory):
    """An untrained MLP on small images of the ADVERSARIAL classes, t-SNE only, scored with
    k = ADVERSARIAL_K; the report is left to the tests (a few seconds)."""
    import torch
    from torch import nn

    import repscope

    folder = tmp_path_factory.mktemp("adversarial")
    labels = np.repeat(np.arange(len(ADVERSARIAL)), 21)
    images = (np.random.default_rng(0).random((len(labels), 6, 6)) * 200 + labels[:, None, None] * 10)
    np.savez(folder / "adv.npz", x=images.astype(np.uint8), y=labels, classes=np.array(ADVERSARIAL))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)  # the untrained copy is the run seed's (0) initialisation
        net = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, len(ADVERSARIAL)))
        run = repscope.analyze(net, str(folder / "adv.npz"), layers=["2"], methods=["tsne"], n=len(labels),
                               seeds=[0], out=folder / "run", workers=0, k=ADVERSARIAL_K, report=False)
    return run.path


def test_the_report_shows_the_runs_k_and_refuses_another(adversarial_run, capsys, tmp_path):
    from repscope.engine import cli
    from repscope.engine.errors import EXIT_USAGE, SettingsError

    capsys.readouterr()
    assert cli.main(["report", "--out", str(adversarial_run), "--k", "10"]) == EXIT_USAGE
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "--k 10" in line and f"k = {ADVERSARIAL_K}" in line
    assert "repscope.analyze(" in line and "k=10)" in line  # the run was made in Python: the way to rescore it
    made_from_a_run_file = shutil.copytree(adversarial_run, tmp_path / "run", ignore=shutil.ignore_patterns("report"))
    config = json.loads((made_from_a_run_file / "config.json").read_text())
    config["settings"]["preset"] = "smoke"
    (made_from_a_run_file / "config.json").write_text(json.dumps(config))
    with pytest.raises(SettingsError, match=f"computed with k = {ADVERSARIAL_K}.*--k 10 --reconfigure"):
        build_report(made_from_a_run_file, 10)
    for k in (None, ADVERSARIAL_K):  # the default is the run's k; the run's k given is accepted
        html = build_report(adversarial_run, k).read_text()
        assert f"whose {ADVERSARIAL_K} nearest neighbours" in html and "whose 10 nearest" not in html


def test_hostile_class_names_give_one_figure_per_link_and_escaped_text(adversarial_run):
    page_path = build_report(adversarial_run)
    html = page_path.read_text()
    page = Page()
    page.feed(html)
    assert "<!--" not in html and "&lt;!--" in html and "A&amp;B" in html
    for rel in page.files:
        assert (page_path.parent / rel).is_file(), rel
    matrix = next(t for t in page.tables if t["rows"] and t["rows"][0][:1] == ["a \\ b"])
    assert matrix["rows"][0][1:] == list(ADVERSARIAL) and [r[0] for r in matrix["rows"][1:]] == list(ADVERSARIAL)
    pairs = sum(bool(re.match(r"\d", cell)) for a, row in enumerate(matrix["rows"][1:]) for b, cell in
                enumerate(row[1:]) if a != b)
    outliers = page_path.parent / "figures/adv/tsne/seed0/outliers"
    linked = {f for f in page.files if "/outliers/" in f}
    assert pairs > len(ADVERSARIAL)  # enough pairs that the old names met
    assert len(linked) == pairs == len(list(outliers.glob("*.png")))


@pytest.mark.network
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium package is not installed")
def test_the_page_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image

    run, _ = report
    shot = tmp_path / "page.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--window-size=1280,2000", f"--screenshot={shot}", (run / "report" / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        assert len(np.unique(np.asarray(image.convert("L")))) > 20  # text and figures, not a blank page


# ------------------------------------------------------------------ findings on hand-made metrics

GOOD = {"ds": 0.2, "dd": 1.1, "cs": 0.15, "cd": 1.05, "acc_knn": 0.98, "acc_knn_loo": 0.97}
ORIGINAL = {"ds": 0.36, "dd": 1.07, "cs": 0.26, "cd": 0.98, "acc_knn": 0.93, "acc_knn_loo": 0.93}


def _scaled(base: dict, worse: float) -> dict:
    """``base`` made worse by a relative amount on every metric (negative: better)."""
    return {m: v * (1 + worse) if m in ("ds", "cs") else v * (1 - worse) for m, v in base.items()}


def study_cells(overrides: dict | None = None) -> dict:
    """A table where every finding holds: trained better than untrained everywhere, layer2
    filters 20 % worse than original, layer1 filters 1 % and 15 % worse."""
    cells = {("trained", "original"): ORIGINAL, ("untrained", "original"): ORIGINAL,
             ("trained", "layer3"): GOOD, ("untrained", "layer3"): _scaled(ORIGINAL, 0.2)}
    for i, f in enumerate(FILTERS["layer1"]):
        cells["trained", f] = _scaled(ORIGINAL, 0.01 if i % 2 == 0 else 0.15)
        cells["untrained", f] = _scaled(ORIGINAL, 0.3)
    for f in FILTERS["layer2"]:
        cells["trained", f] = _scaled(ORIGINAL, 0.2)
        cells["untrained", f] = _scaled(ORIGINAL, 0.4)
    cells.update(overrides or {})
    return cells


def test_every_finding_holds_on_a_table_built_for_it():
    cells = study_cells()
    assert finding1(cells).holds and finding2(cells).holds and finding3(cells).holds


def test_finding1_fails_when_untrained_layer3_wins_a_metric():
    better_loo = dict(_scaled(ORIGINAL, 0.2), acc_knn_loo=0.99)
    check = finding1(study_cells({("untrained", "layer3"): better_loo}))
    assert check.holds is False and "5 of 6" in check.detail


def test_finding1_fails_when_most_layer_averages_favour_the_untrained_network():
    overrides = {("untrained", f): _scaled(ORIGINAL, -0.5) for f in FILTERS["layer1"] + FILTERS["layer2"]}
    check = finding1(study_cells(overrides))
    assert check.holds is False and "6 of 18" in check.detail


def test_finding2_fails_when_untrained_layer3_beats_original():
    check = finding2(study_cells({("untrained", "layer3"): _scaled(ORIGINAL, -0.05)}))
    assert check.holds is False and "untrained layer3 on 6 of 6" in check.detail


def test_finding2_fails_when_trained_layer3_does_not_beat_original():
    assert finding2(study_cells({("trained", "layer3"): _scaled(ORIGINAL, 0.01)})).holds is False


def test_finding3_fails_when_a_layer2_filter_beats_original():
    check = finding3(study_cells({("trained", "layer2/filter05"): _scaled(ORIGINAL, -0.1)}))
    assert check.holds is False and "15 of 16" in check.detail


def test_finding3_fails_when_layer1_is_not_mixed():
    all_near = {("trained", f): _scaled(ORIGINAL, 0.01) for f in FILTERS["layer1"]}
    assert finding3(study_cells(all_near)).holds is False
    all_far = {("trained", f): _scaled(ORIGINAL, 0.2) for f in FILTERS["layer1"]}
    assert finding3(study_cells(all_far)).holds is False


def test_a_dead_filter_counts_as_far_worse():
    dead = dict.fromkeys(("ds", "dd", "cs", "cd"), math.nan) | {"acc_knn": 0.11, "acc_knn_loo": 0.11}
    cells = study_cells({("trained", f): _scaled(ORIGINAL, 0.01) for f in FILTERS["layer1"]})
    cells["trained", "layer1/filter02"] = dead
    assert finding3(cells).holds


def test_a_missing_cell_makes_a_finding_uncheckable_not_false():
    cells = study_cells()
    del cells["untrained", "layer3"]
    assert finding1(cells).holds is None and "untrained layer3" in finding1(cells).detail


def _confusion(shirt_as_tshirt: int, tshirt_as_shirt: int, size: int = 100) -> Confusion:
    counts = np.diag(np.full(10, size))
    counts[6, 6] -= shirt_as_tshirt
    counts[6, 0] = shirt_as_tshirt
    counts[0, 0] -= tshirt_as_shirt
    counts[0, 6] = tshirt_as_shirt
    return Confusion(counts, FASHION)


def test_finding4_reads_the_shirt_and_t_shirt_votes():
    holds = finding4(_confusion(8, 4))
    assert holds.holds and "6.0 %" in holds.detail and "rank 1 of 45" in holds.detail
    assert finding4(_confusion(2, 1)).holds is False
    assert finding4(Confusion(np.eye(10, dtype=int), tuple("0123456789"))).holds is None
    assert finding4(None).holds is None


def _rows(cells: dict, seed: int, dataset: str = "fashion-mnist", method: str = "tsne") -> list[dict]:
    return [{"dataset": dataset, "seed": seed, "network": network, "method": method, "space": "embedding",
             "representation": name, **values} for (network, name), values in cells.items()]


def test_across_seeds_the_share_of_seeds_is_reported():
    failing = study_cells({("trained", "layer3"): _scaled(ORIGINAL, 0.3)})  # worse than untrained too
    rows = _rows(study_cells(), 1) + _rows(study_cells(), 2) + _rows(failing, 3)
    confusions = {("fashion-mnist", "tsne", s): _confusion(10, 10) for s in (1, 2)}
    findings = check_findings(rows, {"fashion-mnist": Depths(REPRESENTATIONS)}, confusions, "study")
    assert findings[0].share("fashion-mnist", "tsne") == (2, 3)
    assert findings[1].share("fashion-mnist", "tsne") == (2, 3)
    assert findings[3].share("fashion-mnist", "tsne") == (2, 2)  # seed 3 has no votes: not counted
    assert findings[3].checks["fashion-mnist", "tsne"][3].holds is None


@pytest.mark.parametrize("draw", ["embedding", "grid"])
@pytest.mark.parametrize("classes", [100, 10])
def test_every_class_is_in_the_figure_legends_and_inside_the_figure(monkeypatch, tmp_path, draw, classes):
    """100 classes, or 10 with one 300-character name: every name in the legend (a long one
    cut short), the legend inside the figure, and neighbouring classes' colours apart."""
    from repscope.engine import figures

    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path, formats=("png",): drawn.append(fig) or [])
    names = tuple(f"class {k}" for k in range(classes))
    if classes == 10:
        names = (*names[:3], "x" * 300, *names[4:])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, 500)
    points = rng.normal(size=(500, 2))
    if draw == "embedding":
        figures.embedding_figure(points, labels, names, "t", tmp_path / "f")
    else:
        figures.grid_figure([(f"p{i}", points) for i in range(9)], labels, names, "t", tmp_path / "f")
    fig = drawn[0]
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert len(texts) == classes and all(len(t) <= figures.LEGEND_NAME for t in texts)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    box, frame = legend.get_window_extent(renderer), fig.bbox
    assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1
    colours = figures.class_colours(classes)[:, :3]
    assert np.abs(np.diff(colours, axis=0)).sum(axis=1).min() > 0.3
