"""Screenshots of a study's HTML report and of its dashboard, for the docs (headless Chromium).

    .venv/bin/python docs/make_screenshots.py --storage sqlite:///storage/sdd_opt.db \\
        --study mnist1d-search --out-dir docs/img

Writes into --out-dir:

* ``report-overview.png``  -- the top of ``sdd-opt report`` (summary and study settings);
* ``report-pareto.png``    -- the report's Pareto front of the selected points and its table;
* ``report-levels.png``    -- the report's front over all levels of all trials;
* ``report-curves.png``    -- the report's overlaid curves (interactive and paper-style);
* ``dashboard-pareto.png`` -- the top of optuna-dashboard's study page: the front over all levels
  (first, full width), then the importances per remedy group, the hypervolume and the curves;
* ``dashboard-sdd-pareto.png`` -- that front alone, hovering a point of the staircase (test
  accuracy, trial, level, sparsity and the parameters that applied);
* ``dashboard-trial.png``  -- a Pareto-optimal trial's page with its ``curve.png`` artifact.

Needs the ``playwright`` Python package and a Chromium: Debian's ``/usr/bin/chromium``
(``apt-get install chromium``) is used, so playwright's own browser download is never needed.
Nothing is fetched from the network: the report is self-contained and the dashboard is served
from this process on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage",
                 "--disable-component-update", "--disable-default-apps", "--no-first-run", "--disable-sync",
                 "--metrics-recording-only", "--disable-extensions"]


def find_chromium(explicit: str | None = None) -> str | None:
    for cand in ([explicit] if explicit else []) + ["/usr/bin/chromium", "chromium", "chromium-browser",
                                                     "google-chrome"]:
        path = shutil.which(cand) if cand and not Path(cand).is_file() else cand
        if path and Path(path).is_file():
            return path
    return None


def launch(playwright, chromium: str):
    return playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)


def start_dashboard(storage_url: str, artifacts: str | None):
    """optuna-dashboard (sdd-opt's app) on a free local port, in a daemon thread: (server, base URL)."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from sdd_opt.report.dashboard import make_app

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    app, _ = make_app(storage_url, artifacts)
    server = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def plot_selector(plot_id: str) -> str:
    """CSS selector of an sdd-opt plot on the dashboard's study page."""
    return f'[id="user-defined-plot:{plot_id}"]'


def hover_point(page, plot_css: str, index: int = 0) -> None:
    """Move the mouse over the ``index``-th marker of the plot's largest markers (the front's stars)."""
    points = page.locator(f"{plot_css} .scatterlayer .point")
    boxes = [points.nth(i).bounding_box() for i in range(points.count())]
    boxes = sorted((b for b in boxes if b), key=lambda b: -b["width"])
    if boxes:
        b = boxes[min(index, len(boxes) - 1)]
        page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
        page.wait_for_timeout(400)


def shoot_report(browser, report: Path, out: Path) -> list[Path]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    page.goto(report.resolve().as_uri())
    page.wait_for_selector("#plot-pareto .main-svg", timeout=60_000)
    page.wait_for_timeout(800)
    shots = [out / "report-overview.png"]
    page.screenshot(path=str(shots[0]))
    page.add_style_tag(content="nav{position:static !important}")  # keep the sticky bar off section shots
    for section in ("pareto", "levels", "curves"):
        path = out / f"report-{section}.png"
        page.locator(f"section#{section}").screenshot(path=str(path))
        shots.append(path)
    page.close()
    return shots


def shoot_dashboard(browser, base: str, study_id: int, trial_number: int | None, out: Path) -> list[Path]:
    page = browser.new_page(viewport={"width": 1500, "height": 1000}, device_scale_factor=1)
    page.goto(f"{base}/dashboard/studies/{study_id}")
    page.wait_for_selector(f"{plot_selector('sdd-pareto-front')} .main-svg", timeout=60_000)
    page.wait_for_selector("#graph-hyperparameter-importances .main-svg", timeout=60_000)
    page.wait_for_timeout(1500)
    shots = [out / "dashboard-pareto.png"]
    page.screenshot(path=str(shots[0]))  # the top of the page: the front comes first
    sdd = page.locator(plot_selector("sdd-pareto-front"))
    sdd.scroll_into_view_if_needed()
    hover_point(page, plot_selector("sdd-pareto-front"), index=3)
    shots.append(out / "dashboard-sdd-pareto.png")
    sdd.screenshot(path=str(shots[-1]))
    if trial_number is not None:
        page.goto(f"{base}/dashboard/studies/{study_id}/trials?numbers={trial_number}")
        img = page.locator("img[src*='/artifacts/']").first
        img.wait_for(timeout=60_000)
        page.wait_for_timeout(800)
        shots.append(out / "dashboard-trial.png")
        page.screenshot(path=str(shots[-1]))
    page.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--storage", required=True, help="storage URL of the study, e.g. sqlite:///storage/sdd_opt.db")
    ap.add_argument("--study", required=True, help="study name")
    ap.add_argument("--artifacts", default=None, help="artifact store (default: beside the SQLite file)")
    ap.add_argument("--out-dir", default="docs/img", help="where the PNGs go (default: docs/img)")
    ap.add_argument("--chromium", default=None, help="Chromium executable (default: /usr/bin/chromium)")
    ap.add_argument("--no-trial-page", action="store_true",
                    help="leave out dashboard-trial.png (a replayed study stores no curve.png)")
    args = ap.parse_args(argv)

    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("error: no Chromium found; apt-get install chromium (or pass --chromium PATH)", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("error: pip install playwright (its browser download is not needed)", file=sys.stderr)
        return 2

    from sdd_opt.report.html import write_report
    from sdd_opt.study.runner import load_stored
    from sdd_opt.study.storage import StorageSettings, open_storage, resolve_url

    url = resolve_url(args.storage)
    storage = open_storage(url, StorageSettings(heartbeat_interval=None, grace_period=None, max_retry=None))
    study, spec = load_stored(args.study, storage)
    front = sorted(t.number for t in study.best_trials) if len(study.directions) > 1 else [study.best_trial.number]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(Path(tmp) / "report.html", study, spec, url)
        server, base = start_dashboard(url, args.artifacts)
        try:
            with sync_playwright() as p:
                browser = launch(p, chromium)
                shots = shoot_report(browser, report, out)
                shots += shoot_dashboard(browser, base, study._study_id,
                                         front[0] if front and not args.no_trial_page else None, out)
                browser.close()
        finally:
            server.shutdown()
    for s in shots:
        print(f"wrote {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
