"""The HTML report: its content (front table = `study pareto`, every plot), self-containedness, the CLI."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sdd_opt.cli import main
from sdd_opt.testing import run_cli

PLOTS = ("plot-pareto", "plot-levels", "plot-curves", "plot-sdd-gap", "plot-importance", "plot-hypervolume")
SECTIONS = ("summary", "settings", "pareto", "levels", "curves", "importance", "hypervolume", "trials", "trial-curves")


run = run_cli  # (capsys, *args) -> (exit code, stdout, stderr)


class Page(HTMLParser):
    """Tables (headers, rows of data-v values), element ids, img srcs, script/link attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.ids: set[str] = set()
        self.imgs: dict[str, str] = {}
        self.external: list[str] = []
        self._table = None
        self._row = None
        self._th = False
        self._head: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("src", "href"):
            if a.get(key) and re.match(r"(https?:)?//", a[key]) and tag in ("script", "link", "img", "iframe"):
                self.external.append(f"{tag} {key}={a[key]}")
        if tag == "script" and a.get("src"):
            self.external.append(f"script src={a['src']}")
        if tag == "img":
            self.imgs[a.get("id") or a.get("alt", "")] = a.get("src", "")
        if tag == "table":
            self._table = {"headers": [], "rows": [], "trials": []}
            self.tables[a.get("id", f"t{len(self.tables)}")] = self._table
        elif tag == "th" and self._table is not None:
            self._th = True
            self._table["headers"].append("")
        elif tag == "tr" and self._table is not None and "data-trial" in a:
            self._row = []
            self._table["rows"].append(self._row)
            self._table["trials"].append(a["data-trial"])
        elif tag == "td" and self._row is not None:
            self._row.append(json.loads(a["data-v"]))

    def handle_data(self, data):
        if self._th:
            self._table["headers"][-1] += data

    def handle_endtag(self, tag):
        if tag == "th":
            self._th = False
        elif tag == "tr":
            self._row = None
        elif tag == "table":
            self._table = None


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and a == pytest.approx(b, rel=1e-8, abs=1e-10)
    return a == b


@pytest.fixture(scope="session")
def real_report(real_study, tmp_path_factory):
    """`sdd-opt report` on the real tiny study, and `study pareto --format json` of the same study."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("report") / "sub" / "report.html"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["report", real_study["name"], "--storage", real_study["url"], "--out", str(out)])
        main(["study", "pareto", real_study["name"], "--storage", real_study["url"], "--format", "json"])
    printed = buf.getvalue()
    front = json.loads(printed[printed.index("\n") + 1:])  # first line: "wrote ..."
    assert printed.startswith(f"wrote {out}")
    return out, out.read_text(encoding="utf-8"), front


def test_front_table_rows_equal_study_pareto(real_report):
    _, text, front = real_report
    page = Page(text)
    table = page.tables["front-table"]
    assert front, "the tiny study has a Pareto front"
    assert table["headers"] == list(front[0].keys())
    assert [int(t) for t in table["trials"]] == [r["trial"] for r in front]
    for row, expected in zip(table["rows"], front):
        for value, (col, want) in zip(row, expected.items()):
            assert same(value, want), f"{col}: report {value!r} != pareto {want!r}"
    embedded = json.loads(re.search(r'<script type="application/json" id="front-data">(.*?)</script>', text, re.S)
                           .group(1).replace("<\\/", "</"))
    assert embedded == front


def test_every_plot_and_section_is_there(real_report, real_study):
    _, text, front = real_report
    page = Page(text)
    for sid in SECTIONS:
        assert sid in page.ids, sid
    for pid in PLOTS:
        assert pid in page.ids, pid
        assert re.search(r'Plotly\.newPlot\(\s*"' + pid + '"', text), f"{pid} is never drawn"
    # the paper-style figure and one curve figure per Pareto-optimal trial, as embedded PNGs
    for key in ["img-curves"] + [f"curve of trial {r['trial']}" for r in front]:
        src = page.imgs[key]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # settings and the trials table
    import optuna

    study = optuna.load_study(study_name=real_study["name"], storage=real_study["url"])
    for needle in ("val_acc (maximize)", "sparsity (maximize)", "sdd_gap ≤ 0.02", "train.weight_decay",
                   "prune.rate", "sdd-opt study run", "tiny.yaml"):
        assert needle in text, needle
    assert len(page.tables["trials-table"]["rows"]) == len(study.trials)
    # the curves plot has every complete trial for each of test / val / train accuracy
    n_complete = sum(t.state.name == "COMPLETE" for t in study.trials)
    assert text.count('"name":"trial ') >= 3 * n_complete


def test_report_is_self_contained(real_report):
    _, text, _ = real_report
    page = Page(text)
    assert page.external == []
    assert not re.search(r"<script[^>]*\ssrc=", text)
    assert not re.search(r"<link[^>]*\shref=[\"']?https?:", text)
    assert not re.search(r"url\(\s*['\"]?https?:", text)
    from plotly.offline import get_plotlyjs

    assert text.count(get_plotlyjs()) == 1  # plotly.js inlined once
    rest = text.replace(get_plotlyjs(), "")
    assert "cdn." not in rest and "@import" not in rest and "mathjax" not in rest.lower()


def test_report_on_a_synthetic_study_tells_infeasible_apart(synthetic, tmp_path):
    from sdd_opt.report.html import build_report

    study, spec, url = synthetic(6)
    text = build_report(study, spec, url)
    page = Page(text)
    rows = page.tables["trials-table"]
    feasible = rows["headers"].index("feasible")
    assert [r[feasible] for r in rows["rows"]] == [True, False, True, False, True, False]
    assert "INFEASIBLE" in text and "sdd_gap 0.06 &gt; max 0.02" in text
    assert "plot-importance" in page.ids  # 6 trials with varying parameters: importances computed


def test_importances_that_cannot_be_computed_become_a_note(synthetic):
    from sdd_opt.report.html import build_report

    study, spec, url = synthetic(1, name="one")
    text = build_report(study, spec, url, trial_figures=False)
    assert "plot-importance" not in Page(text).ids
    assert "needs at least 2 complete trials" in text
    assert "plot-pareto" in Page(text).ids and "trial-curves" not in Page(text).ids


def test_report_of_a_study_without_complete_trials(synthetic):
    from sdd_opt.report.html import build_report

    study, spec, url = synthetic(0, name="empty")
    text = build_report(study, spec, url)
    page = Page(text)
    assert "front-table" in page.ids and page.tables["front-table"]["rows"] == []
    assert "no complete trial yet" in text


@pytest.mark.parametrize("objectives", [("val_acc",), ("val_acc", "sdd_gap", "curve_epochs")])
def test_report_with_other_objectives(synthetic, objectives):
    from sdd_opt.report.html import build_report

    study, spec, url = synthetic(4, name="other", objectives=objectives)
    page = Page(build_report(study, spec, url, trial_figures=False))
    assert {"plot-pareto", "plot-levels", "plot-curves", "front-table"} <= page.ids
    assert "plot-hypervolume" in page.ids  # the search measure reads the curves, whatever the objectives
    assert page.tables["front-table"]["headers"][1:1 + len(objectives)] == list(objectives)
    html = build_report(study, spec, url, trial_figures=False)
    # objectives other than (val_acc, sparsity): the front over all levels is the product, so it comes first
    assert html.index('id="levels"') < html.index('id="pareto"')
    assert "Trials and their score" in html and "Pareto front — selected points" not in html


def test_curves_command(real_study, tmp_path, capsys):
    s, u = real_study["name"], real_study["url"]
    code, out, err = run(capsys, "study", "curves", s, "--storage", u, "--out", str(tmp_path / "c.png"))
    assert code == 0, err
    assert "4 curves" in out and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    code, out, _ = run(capsys, "study", "curves", s, "--storage", u, "--out", str(tmp_path / "f.pdf"), "--front",
                       "--metric", "val_acc")
    assert code == 0 and (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    code, _, err = run(capsys, "study", "curves", s, "--storage", u, "--out", str(tmp_path / "x.png"), "--trials", "99")
    assert code == 2 and "no complete trial" in err and "Traceback" not in err
    code, _, err = run(capsys, "study", "curves", s, "--storage", u, "--out", str(tmp_path / "x.txt"))
    assert code == 2 and "--out" in err
    code, _, err = run(capsys, "report", "nope", "--storage", u, "--out", str(tmp_path / "r.html"))
    assert code == 2 and "not found" in err


@pytest.mark.browser
def test_report_renders_offline_in_chromium(real_report, tmp_path):
    """Headless Chromium opens the report with every network request refused: all plots draw."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    path, _, _ = real_report
    requests = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})

        def refuse(route):
            if route.request.url.startswith("file:"):
                route.continue_()
            else:
                requests.append(route.request.url)
                route.abort()

        page.route("**/*", refuse)
        page.goto(path.as_uri())
        for pid in PLOTS:
            page.wait_for_selector(f"#{pid} .main-svg", timeout=30_000)
        assert page.locator("#plot-pareto .scatterlayer .point").count() >= 1
        page.screenshot(path=str(tmp_path / "report.png"))
        browser.close()
    assert requests == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
