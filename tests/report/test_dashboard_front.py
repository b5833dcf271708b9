"""The all-levels front in the dashboard, and "parameters that applied only" in every view a user reads.

Two replayed studies (seconds, no training) in one SQLite file: the default study (one objective,
``curve_hv``, ``zero_below`` l2) and a two-objective one whose l2 weight is ``zero: true`` (so its
trials hold ``train.weight_decay.off`` switches), both with ``sample_always`` on the conditional keys.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from sdd_opt.cli import main
from tests.report.test_dashboard import _chromium, get_json, serving

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "benchmarks" / "data" / "mnist1d_curves.csv"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::optuna.exceptions.ExperimentalWarning")

TWO = {"name": "two-obj", "base": str(REPO / "studies" / "mnist1d_baseline.yaml"),
       "set": {"prune.target_sparsity": 0.98},
       "search_space": {
           "distill.enabled": {"type": "categorical", "choices": [False, True]},
           "train.weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True, "zero": True,
                                  "when": {"distill.enabled": False}, "sample_always": True},
           "distill.temperature": {"type": "float", "low": 1.0, "high": 20.0, "when": {"distill.enabled": True},
                                   "sample_always": True},
           "distill.alpha": {"type": "float", "low": 0.1, "high": 1.0, "when": {"distill.enabled": True},
                             "sample_always": True},
           "prune.rate": {"type": "float", "low": 0.2, "high": 0.4, "step": 0.1}},
       "sampler": {"name": "random", "seed": 3}, "objectives": [{"metric": "val_acc"}, {"metric": "sparsity"}],
       "collapse_floor": 0.3, "budget": {"n_trials": 7}}
NAMES = ("mnist1d-search", "two-obj")
CONDITIONAL = {"train.weight_decay", "distill.temperature", "distill.alpha", "distill.teacher.weight_decay"}


def cli(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(list(args))
        except SystemExit as exc:
            assert exc.code in (0, None), out.getvalue()[-2000:]
    return out.getvalue()


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Both studies replayed into one SQLite file; the ``study run`` output kept (its progress lines)."""
    tmp = tmp_path_factory.mktemp("front")
    url = f"sqlite:///{tmp / 's.db'}"
    two = tmp / "two.yaml"
    two.write_text(yaml.safe_dump(TWO))
    logs = {}
    one = tmp / "one.yaml"  # the default study, random search so that 6 trials hold both remedies
    default = yaml.safe_load((REPO / "studies" / "mnist1d_search.yaml").read_text())
    one.write_text(yaml.safe_dump(dict(default, base=str(REPO / "studies" / default["base"]),
                                       sampler={"name": "random", "seed": 0})))
    for name, path, n in (("mnist1d-search", one, 6), ("two-obj", two, 7)):
        proc = subprocess.run([sys.executable, "-m", "sdd_opt", "study", "run", str(path), "--replay", str(TABLE),
                               "--storage", url, "--n-trials", str(n), "--no-progress"],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        logs[name] = proc.stdout + proc.stderr
    from sdd_opt.study.runner import load_stored
    from sdd_opt.study.storage import open_storage

    storage = open_storage(url)
    loaded = {name: load_stored(name, storage) for name in NAMES}
    for name, (study, _) in loaded.items():  # the studies really exercise what is tested
        trials = study.get_trials(deepcopy=False)
        assert {t.user_attrs["remedy"] == "distill" for t in trials} == {True, False}, name
    assert any("train.weight_decay.off" in t.params for t in loaded["two-obj"][0].trials)
    return {"url": url, "tmp": tmp, "logs": logs, "loaded": loaded}


def not_applied(t, spec) -> set[str]:
    """Searched keys drawn for trial ``t`` (in its Optuna params) that did not apply to it."""
    from sdd_opt.study.applied import applied_keys

    drawn = {k for k in spec.search_space if k in t.params or f"{k}.off" in t.params}
    return drawn - set(applied_keys(t, spec))


def test_applied_is_recorded_and_derived_alike_for_older_records(studies):
    from sdd_opt.study.applied import applied_keys
    from sdd_opt.study.record import TrialRecord

    for study, spec in studies["loaded"].values():
        for t in study.trials:
            stored = TrialRecord.from_trial(t).applied
            distill = t.user_attrs["remedy"] == "distill"
            assert ("distill.temperature" in stored) == distill and ("train.weight_decay" in stored) == (not distill)
            old = copy.deepcopy(t)
            old.user_attrs = {k: v for k, v in t.user_attrs.items() if k != "applied"}  # stored before the field
            assert applied_keys(old, spec) == stored
            old.user_attrs = {k: v for k, v in old.user_attrs.items() if k != "config"}  # nor a config: the params
            assert applied_keys(old, spec) == stored
        assert any(not_applied(t, spec) for t in study.trials)  # sample_always drew keys that did not apply


def _param_names(text: str) -> set[str]:
    """The parameter names a user reads in ``text``."""
    return {m for m in re.findall(r"([a-z_]+(?:\.[a-z_]+)+(?:\.off)?)\s*=", text)}


def test_no_view_shows_a_parameter_that_did_not_apply(studies, tmp_path):
    from sdd_opt.report import figures as F
    from sdd_opt.report.dashboard import make_app
    from sdd_opt.report.html import build_report
    from sdd_opt.study.applied import applied_keys

    app, _ = make_app(studies["url"], str(studies["tmp"] / "art"))
    for name, (study, spec) in studies["loaded"].items():
        by_number = {t.number: t for t in study.trials}
        applied = {n: set(applied_keys(t, spec)) for n, t in by_number.items()}
        # progress lines: "trial N: key=value, ..." shows the applied keys, l2 off as "none"
        lines = re.findall(r"^trial (\d+): (\w.*=.*)$", studies["logs"][name], re.M)
        assert len(lines) == len(by_number)
        for n, text in lines:
            assert _param_names(text) == applied[int(n)], text
        assert "weight_decay.off" not in studies["logs"][name]
        # the dashboard: trial params, "Best Trial" cards, the front's hover, importances
        with serving(app) as base:
            detail = get_json(f"{base}/api/studies/{study._study_id}?after=0")
            for t in detail["trials"] + detail["best_trials"]:
                assert {p["name"] for p in t["params"]} <= applied[t["number"]], t["number"]
            front = json.loads(next(g["graph_object"] for g in detail["plotly_graph_objects"]
                                    if g["id"] == "sdd-pareto-front"))
            for trace in front["data"]:
                for (n, *_), text in zip(trace["customdata"], trace["text"]):
                    assert _param_names(text) == applied[n], text
            imps = get_json(f"{base}/api/studies/{study._study_id}/param_importances")["param_importances"]
            for entry in (e for per_objective in imps for e in per_objective):
                key = entry["name"].split(" | ")[0]
                if key.startswith("distill.") and key != "distill.enabled":
                    assert "distill.enabled=true" in entry["name"], entry
                if key == "train.weight_decay":
                    assert "distill.enabled=false" in entry["name"], entry
        # the report: captions and hovers
        page = build_report(study, spec, studies["url"])
        for n, caption in re.findall(r"<figcaption>trial (\d+) · ([^<]*)</figcaption>", page):
            assert _param_names(caption) == applied[int(n)], caption
        assert "weight_decay.off" not in page
        for hover in (h for tr in F.levels_figure(study, spec).data for h in tr.text):
            n = int(re.search(r"trial (\d+)", hover).group(1))
            assert _param_names(hover) == applied[n]
        # study pareto --levels and export: a key that did not apply is empty
        for args in (("--levels",), ()):
            for row in json.loads(cli("study", "pareto", name, "--storage", studies["url"], "--format", "json",
                                      *args)):
                shown = {c[len("param:"):] for c, v in row.items() if c.startswith("param:") and v is not None}
                assert shown <= applied[row["trial"]], row
        out = tmp_path / name
        cli("study", "export", name, "--storage", studies["url"], "--out", str(out), "--levels")
        import pandas as pd

        for row in pd.read_csv(out / "front.csv").to_dict("records"):
            shown = {c[len("param:"):] for c, v in row.items() if c.startswith("param:") and not pd.isna(v)}
            assert shown <= applied[row["trial"]], row


def test_importances_count_a_key_only_where_it_applied(studies):
    from sdd_opt.report.importance import groups

    study, spec = studies["loaded"]["two-obj"]
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    by = groups(trials, spec)
    assert set(by) == {"distill.enabled=false", "distill.enabled=true"}
    assert all(t.user_attrs["remedy"] == "distill" for t in by["distill.enabled=true"])
    assert all(t.user_attrs["remedy"] != "distill" for t in by["distill.enabled=false"])


def _front_on_page(page) -> list[dict]:
    data = page.evaluate("() => document.getElementById('user-defined-plot:sdd-pareto-front').data"
                         ".map(t => ({name: t.name, x: t.x, y: t.y, customdata: t.customdata}))")
    front = next(t for t in data if t["name"] == "front (all levels)")
    return [{"trial": c[0], "level": c[1], "sparsity": c[2], "val_acc": y} for c, y in zip(front["customdata"],
                                                                                            front["y"])]


@pytest.mark.browser
def test_browser_front_is_study_pareto_levels_and_first_on_the_page(studies, tmp_path):
    """Chromium reads the plotted front from the page: the rows of ``study pareto --levels``, one and two objectives."""
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    from sdd_opt.report.dashboard import make_app

    app, _ = make_app(studies["url"], str(studies["tmp"] / "art"))
    with serving(app) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name, (study, spec) in studies["loaded"].items():
            expected = json.loads(cli("study", "pareto", name, "--levels", "--storage", studies["url"],
                                      "--format", "json"))
            page.goto(f"{base}/dashboard/studies/{study._study_id}")
            sdd = '[id="user-defined-plot:sdd-pareto-front"]'
            page.wait_for_selector(f"{sdd} .scatterlayer .point", timeout=60_000)
            shown = _front_on_page(page)
            assert [(r["trial"], r["level"]) for r in shown] == [(r["trial"], r["level"]) for r in expected]
            for got, want in zip(shown, expected):
                assert got["val_acc"] == pytest.approx(want["val_acc"], abs=1e-9)
                assert got["sparsity"] == pytest.approx(want["sparsity"], abs=1e-9)
            # first on the page: above every card optuna-dashboard draws itself
            top = page.locator(sdd).bounding_box()["y"]
            for other in ("#graph-history", "#graph-pareto-front"):
                if page.locator(other).count():
                    assert top < page.locator(other).bounding_box()["y"], other
            best = page.get_by_text("Best Trial").count()
            assert best >= 1 or len(spec.directions) > 1
            body = page.locator("body").inner_text()
            assert "weight_decay.off" not in body
            page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        browser.close()
    assert all((tmp_path / f"{n}.png").stat().st_size > 10_000 for n in NAMES)
