"""The dashboard: no "database is locked" while workers write, SDD plots and marks, and a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import pytest
import yaml

from sdd_opt.cli import main
from sdd_opt.testing import tiny_study

REPO = Path(__file__).resolve().parents[2]
SDD_PLOTS = {"sdd-pareto-front", "sdd-curves", "sdd-hypervolume"}
pytestmark = pytest.mark.filterwarnings("ignore:Some regimes:UserWarning")  # PED-ANOVA on 4 trials


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serving(app):
    server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str, timeout: float = 30):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


def get_json(url: str):
    return json.loads(get(url)[1])


def study_dict(tmp: Path, **changes) -> dict:
    settings = {"name": "busy", "sampler": {"name": "random", "seed": 1},
                "constraints": [{"metric": "sdd_gap", "max": 0.02}], "budget": {"n_trials": 4}}
    settings.update(changes)
    return tiny_study(tmp, levels=2, rate=0.4, **settings)


@pytest.fixture(scope="module")
def busy_study(tmp_path_factory):
    """4 trials run by a worker process on one SQLite file while the dashboard API is polled every 50 ms."""
    from sdd_opt.report.dashboard import make_app

    tmp = tmp_path_factory.mktemp("busy")
    path = tmp / "busy.yaml"
    path.write_text(yaml.safe_dump(study_dict(tmp)))
    url = f"sqlite:///{tmp / 'busy.db'}"
    art = tmp / "art"
    try:
        main(["study", "create", str(path), "--storage", url])
    except SystemExit as exc:
        assert exc.code == 0
    app, _ = make_app(url, str(art))
    polls: list[tuple[str, int]] = []
    errors: list[str] = []
    stop = threading.Event()

    def poll(base):
        while not stop.is_set():
            for p in ("/api/studies", "/api/studies/1?after=0", "/api/studies/1?after=2",
                      "/api/studies/1/param_importances"):
                try:
                    status, _ = get(base + p)
                    polls.append((p, status))
                except urllib.error.HTTPError as exc:
                    errors.append(f"{p}: HTTP {exc.code} {exc.read()[:300]!r}")
                except Exception as exc:  # noqa: BLE001 - every failure is a test failure
                    errors.append(f"{p}: {type(exc).__name__}: {exc}")
            time.sleep(0.05)

    with serving(app) as base:
        poller = threading.Thread(target=poll, args=(base,), daemon=True)
        poller.start()
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "sdd_opt", "study", "run", str(path), "--storage", url, "--artifacts", str(art),
             "--no-progress"],
            cwd=REPO, capture_output=True, text=True, timeout=420)
        seconds = time.monotonic() - t0
        stop.set()
        poller.join(timeout=60)
    return {"url": url, "art": art, "path": path, "proc": proc, "polls": polls, "errors": errors,
            "seconds": seconds, "app": app}


def test_polling_dashboard_never_locks_out_the_workers(busy_study):
    proc = busy_study["proc"]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "database is locked" not in output.lower() and "operationalerror" not in output.lower(), output[-3000:]
    study = optuna.load_study(study_name="busy", storage=busy_study["url"])
    assert len(study.trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials), \
        [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials]
    assert busy_study["errors"] == []
    # the dashboard really was reading all along: 4 requests every ~50 ms while the study ran
    assert len(busy_study["polls"]) >= 4 * busy_study["seconds"] and {s for _, s in busy_study["polls"]} == {200}


def test_dashboard_shows_the_sdd_study(busy_study):
    study = optuna.load_study(study_name="busy", storage=busy_study["url"])
    time.sleep(busy_study["app"].TTL + 0.5)  # the SDD plots are cached for TTL s: let the last poll's copy expire
    with serving(busy_study["app"]) as base:
        detail = get_json(f"{base}/api/studies/{study._study_id}?after=0")
        assert detail["objective_names"] == ["val_acc", "sparsity"]
        assert "Reproduce" in detail["note"]["body"] and "busy.yaml" in detail["note"]["body"]
        # SDD metrics as user attributes, constraints for the dashboard's own infeasible marks
        for t in detail["trials"]:
            keys = {a["key"] for a in t["user_attrs"]}
            assert {"sdd_gap", "dip_acc", "peak_acc", "dense_acc", "sdd_present", "remedy", "curve"} <= keys
            assert len(t["constraints"]) == 1
        # "Best Trial" marks = Optuna's constrained front
        assert sorted(t["number"] for t in detail["best_trials"]) == sorted(t.number for t in study.best_trials)
        assert all(all(c <= 0 for c in t["constraints"]) for t in detail["best_trials"])
        # the SDD plots, with hovers carrying SDD metrics and parameters
        graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
        assert SDD_PLOTS <= set(graphs)
        # the front over every level: one marker per level, hover with test accuracy and the parameters
        markers = [tr for tr in graphs["sdd-pareto-front"]["data"] if tr.get("mode") == "markers"]
        hovers = [h for tr in markers for h in tr["text"]]
        assert len(hovers) == sum(len(t.user_attrs["curve"]) for t in study.trials)
        assert all("test " in h and "level " in h and "prune.rate" in h for h in hovers)
        infeasible = [t.number for t in study.trials if t.user_attrs["constraints"][0] > 0]
        bad = [tr for tr in markers if tr["name"].startswith("infeasible")]
        assert sorted({c[0] for c in bad[0]["customdata"]} if bad else []) == sorted(infeasible)
        assert "epochs paid" in graphs["sdd-hypervolume"]["layout"]["xaxis"]["title"]["text"]
        # every trial's curve PNG is served from the artifact store
        for t in detail["trials"]:
            png = [a for a in t["artifacts"] if a["filename"] == "curve.png"]
            assert png, t["number"]
            status, body = get(f"{base}/artifacts/{study._study_id}/{t['trial_id']}/{png[0]['artifact_id']}")
            assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"


def _synthetic_study(tmp_path):
    """Two trials: the better one infeasible (its SDD gap too large), the other feasible."""
    from sdd_opt.study.runner import create_or_resume
    from sdd_opt.study.spec import parse_study
    from sdd_opt.study.storage import open_storage

    url = f"sqlite:///{tmp_path / 'syn.db'}"
    spec = parse_study(study_dict(tmp_path, name="syn"), "syn.yaml")
    study = create_or_resume(spec, open_storage(url), url)
    dist = {"prune.rate": optuna.distributions.FloatDistribution(0.2, 0.4, step=0.1)}
    for rate, values, gap in ((0.4, [0.9, 0.6], 0.08), (0.3, [0.8, 0.5], 0.0)):
        rows = [{"level": 0, "sparsity": 0.0, "train_acc": 0.5, "val_acc": 0.8, "test_acc": 0.8},
                {"level": 1, "sparsity": values[1], "train_acc": 0.6, "val_acc": values[0], "test_acc": values[0]}]
        study.add_trial(optuna.trial.create_trial(
            values=values, params={"prune.rate": rate}, distributions=dist,
            user_attrs={"curve": rows, "selected_level": 1, "sdd_gap": gap, "dip_acc": 0.8, "peak_acc": 0.8 + gap,
                        "dense_acc": 0.8, "sdd_present": gap > 0.02, "remedy": "none", "constraints": [gap - 0.02]},
            constraints={"sdd_gap<=0.02": gap - 0.02}))
    return study, url


def test_infeasible_trials_are_told_apart(tmp_path):
    from sdd_opt.report.dashboard import make_app

    study, url = _synthetic_study(tmp_path)
    optuna.create_study(study_name="plain", storage=url).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    app, _ = make_app(url, str(tmp_path / "art"))
    with serving(app) as base:
        detail = get_json(f"{base}/api/studies/{study._study_id}")
        assert [t["constraints"][0] > 0 for t in detail["trials"]] == [True, False]
        assert [t["number"] for t in detail["best_trials"]] == [1]  # the dashboard alone would say [0]
        graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
        bad = [tr for tr in graphs["sdd-pareto-front"]["data"] if tr.get("name", "").startswith("infeasible")]
        assert {c[0] for c in bad[0]["customdata"]} == {0} and bad[0]["visible"] == "legendonly"
        front = [tr for tr in graphs["sdd-pareto-front"]["data"] if tr["name"] == "front (all levels)"][0]
        assert {c[0] for c in front["customdata"]} == {1}  # the infeasible trial's levels are not on the front
        # a study not made by sdd-opt is served as optuna-dashboard serves it
        plain = [s for s in get_json(f"{base}/api/studies")["study_summaries"] if s["study_name"] == "plain"][0]
        other = get_json(f"{base}/api/studies/{plain['study_id']}")
        assert other["plotly_graph_objects"] == [] and len(other["trials"]) == 2


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip("Chromium not installed: apt-get install chromium (.ci/run does)")
    return path


@pytest.mark.browser
def test_browser_finds_the_pareto_front_and_a_curve_artifact(busy_study, tmp_path):
    """Debian's Chromium, headless, driven by Playwright: the study page and a trial's curve.png."""
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    study = optuna.load_study(study_name="busy", storage=busy_study["url"])
    front = sorted(t.number for t in study.best_trials)
    external = []
    with serving(busy_study["app"]) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
        page.goto(f"{base}/dashboard/studies/{study._study_id}")
        page.wait_for_selector("#graph-pareto-front .main-svg", timeout=60_000)
        sdd = '[id="user-defined-plot:sdd-pareto-front"]'
        page.wait_for_selector(f"{sdd} .scatterlayer .point", timeout=60_000)
        assert page.locator("#graph-pareto-front .scatterlayer .point").count() == len(study.trials)
        # hovering a front trial in the SDD plot shows its SDD metrics and parameters
        star = page.locator(f"{sdd} .scatterlayer .point").last
        star.scroll_into_view_if_needed()
        box = star.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector(f"{sdd} .hoverlayer .hovertext", timeout=10_000)
        hover = page.locator(f"{sdd} .hoverlayer").text_content()
        assert "test " in hover and "prune.rate" in hover
        page.screenshot(path=str(tmp_path / "dashboard-study.png"), full_page=True)
        # a Pareto-optimal trial's page shows its curve.png artifact, loaded
        page.goto(f"{base}/dashboard/studies/{study._study_id}/trials?numbers={front[0]}")
        img = page.locator("img[src*='/artifacts/']").first
        img.wait_for(timeout=60_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=img.element_handle(),
                               timeout=30_000)
        assert page.get_by_text("curve.png").count() >= 1
        page.screenshot(path=str(tmp_path / "dashboard-trial.png"))
        browser.close()
    for name in ("dashboard-study.png", "dashboard-trial.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert not [u for u in external if not u.startswith(("data:", "blob:"))], external
