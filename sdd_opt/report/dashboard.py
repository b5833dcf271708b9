"""optuna-dashboard on a study storage, with the artifact store attached and SDD plots added.

Binds to 127.0.0.1 unless told otherwise. What the dashboard shows of an sdd-opt study:

* metric names (``val_acc``, ``sparsity``, ...) and the study note (markdown: the study file,
  objectives, how to reproduce), both stored when the study was created;
* each trial's SDD metrics as user attributes and its ``curve.png`` / ``curve.csv`` artifacts;
* infeasible trials (an SDD constraint violated) greyed out in its own plots: Optuna 5 records
  constraints as ``constraints:<name>`` system attributes, optuna-dashboard reads the older
  ``constraints`` list, so this module's storage view supplies that list on read;
* "Best Trial" marks from Optuna's own front, which leaves infeasible trials out (the dashboard's
  front ignores constraints);
* three plots added to the study's page (computed on each read, never stored): the front over
  every level of every trial (validation accuracy against decades of weights removed, the search
  measure's axes; the staircase is ``study pareto --levels``; hover: test accuracy, trial, level,
  sparsity, the parameters that applied), shown first and full width (a style rule injected into
  the dashboard's page); the best hypervolume so far against the epochs paid; all curves;
* parameters that applied only: a trial's ``params`` in the API answers (trial list, "Best Trial"
  cards) keep the searched keys that applied to it (never a key drawn by ``sample_always`` for
  another remedy, never a ``<key>.off`` switch), and ``/param_importances`` is answered per remedy
  group over the trials where each key applied (:mod:`sdd_opt.report.importance`).

Locking: the dashboard only reads (apart from notes a user edits). It opens the storage without
heartbeats and, on SQLite, through the same WAL + busy-timeout settings as the workers: under WAL
readers take no lock that blocks a writer, and SQLAlchemy's SQLite driver opens no transaction for
a plain SELECT, so its polling never makes a worker fail with "database is locked"
(``tests/report/test_dashboard.py`` runs a study while the API is polled every 50 ms).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Callable, Optional

logger = logging.getLogger(__name__)

_STUDY_DETAIL = re.compile(r"^/api/studies/(\d+)/?$")
_IMPORTANCES = re.compile(r"^/api/studies/(\d+)/param_importances/?$")
FRONT_HEIGHT = 560  # px: the all-levels front spans the page's width above everything else
# optuna-dashboard draws user plots after its own cards; this rule (CSS only, React's DOM untouched)
# moves the grid holding the front to the top of the study page and widens the front's cell.
_FRONT = '[id="user-defined-plot:sdd-pareto-front"]'
PAGE_STYLE = ('<style id="sdd-opt-style">'
              f'div:has(> .MuiGrid-container {_FRONT}){{display:flex;flex-direction:column}}'
              f'.MuiGrid-container:has(> div {_FRONT}){{order:-1}}'
              f'.MuiGrid-container > div:has({_FRONT}){{order:-1;flex-basis:100%;max-width:100%}}'
              f'{_FRONT}{{height:{FRONT_HEIGHT}px !important}}</style>')


# --------------------------------------------------------------------------- storage view
def _with_legacy_constraints(t):
    from sdd_opt.study._optuna_compat import with_system_attrs

    if "constraints" in t.system_attrs:
        return t
    from sdd_opt.study.record import constraint_values

    cons = constraint_values(t)
    if not cons:
        return t
    return with_system_attrs(t, {"constraints": [float(c) for c in cons]})


def dashboard_view(storage):
    """Make ``storage``'s trials carry the ``constraints`` list optuna-dashboard reads (in place).

    Only this object's two read methods are wrapped; its class (RDBStorage, retries) is unchanged.
    """
    if getattr(storage, "_sdd_dashboard_view", False):
        return storage
    get_all, get_one = storage.get_all_trials, storage.get_trial

    def get_all_trials(study_id, deepcopy=True, states=None):
        return [_with_legacy_constraints(t) for t in get_all(study_id, deepcopy=deepcopy, states=states)]

    def get_trial(trial_id):
        return _with_legacy_constraints(get_one(trial_id))

    storage.get_all_trials, storage.get_trial = get_all_trials, get_trial
    storage._sdd_dashboard_view = True
    return storage


# --------------------------------------------------------------------------- SDD plots
class SddPlots:
    """WSGI middleware: adds the SDD plots to ``GET /api/studies/<id>`` answers of sdd-opt studies.

    The figures are rebuilt only when the study's trials changed (number, states, last finish;
    checked at most every ``TTL`` seconds); any error leaves the dashboard's own answer untouched.
    """

    TTL = 2.0  # seconds

    def __init__(self, app, storage):
        self.app = app
        self.storage = storage
        self._lock = threading.Lock()
        self._cache: dict[int, tuple] = {}
        self._specs: dict[tuple[int, str], object] = {}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD", "GET") != "GET":
            return self.app(environ, start_response)
        m, imp = _STUDY_DETAIL.match(path), _IMPORTANCES.match(path)
        if m:
            edit = lambda body: self._augment(int(m.group(1)), body)  # noqa: E731
        elif imp:
            edit = lambda body: self._importances(int(imp.group(1)), body)  # noqa: E731
        elif path == "/dashboard" or path.startswith("/dashboard/"):
            edit = _with_style
        else:
            return self.app(environ, start_response)
        return self._edited(environ, start_response, edit)

    def _edited(self, environ, start_response, edit):
        """The app's answer with its body passed through ``edit`` (a 200 only; unchanged on any error)."""
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None  # the app returns its body; nothing calls write()

        body_iter = self.app(environ, capture)
        try:
            body = b"".join(body_iter)
        finally:
            if hasattr(body_iter, "close"):
                body_iter.close()
        status, headers = captured["status"], list(captured["headers"])
        if status.startswith("200"):
            try:
                body = edit(body)
                drop = {"content-length", "etag", "last-modified"}  # the body is no longer the file's
                headers = [(k, v) for k, v in headers if k.lower() not in drop]
                headers.append(("Content-Length", str(len(body))))
            except Exception as exc:  # never break the dashboard for a plot
                logger.warning("sdd-opt plots skipped: %s: %s", type(exc).__name__, exc)
        start_response(status, headers)
        return [body]

    def _spec(self, study_id: int, name: str):
        """The study's stored spec (None for a study not made by sdd-opt, or an unreadable spec)."""
        key = (study_id, name)
        if key not in self._specs:
            from sdd_opt.study.runner import SPEC_ATTR
            from sdd_opt.study.spec import StudySpec

            raw = self.storage.get_study_user_attrs(study_id).get(SPEC_ATTR)
            try:
                self._specs[key] = StudySpec.from_json(raw) if raw else None
            except Exception as exc:  # e.g. written by another sdd-opt version
                logger.warning("study %r: stored spec not readable (%s); no sdd-opt plots", name, exc)
                self._specs[key] = None
        return self._specs[key]

    def _augment(self, study_id: int, body: bytes) -> bytes:
        extra = self.extras(study_id)
        if not extra:
            return body
        data = json.loads(body)
        figures = extra["plots"]
        mine = [{"id": pid, "graph_object": fig} for pid, fig in figures.items()]
        theirs = [g for g in data.get("plotly_graph_objects", []) if g["id"] not in figures]
        data["plotly_graph_objects"] = mine + theirs
        if extra.get("best_trials") is not None:
            data["best_trials"] = extra["best_trials"]
        applied = self.applied(study_id)
        for t in data.get("trials", []) + data.get("best_trials", []):
            keys = applied.get(t.get("number"))
            if keys is not None:
                t["params"] = [p for p in t.get("params", []) if p.get("name") in keys]
        return json.dumps(data).encode()

    def applied(self, study_id: int) -> dict[int, set[str]]:
        """Trial number -> the searched keys that applied to it (read on every call: trials start often)."""
        from sdd_opt.study.applied import applied_keys

        spec = self._spec(study_id, self.storage.get_study_name_from_id(study_id))
        if spec is None:
            return {}
        return {t.number: set(applied_keys(t, spec)) for t in self.storage.get_all_trials(study_id, deepcopy=False)}

    def _importances(self, study_id: int, body: bytes) -> bytes:
        """Importances per remedy group, over the trials where each key applied (sdd-opt studies only)."""
        from optuna.trial import TrialState

        from sdd_opt.report.importance import dashboard_importances

        spec = self._spec(study_id, self.storage.get_study_name_from_id(study_id))
        if spec is None:
            return body
        trials = self.storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        if len(trials) < 2:
            return body
        return json.dumps({"param_importances": dashboard_importances(trials, spec)}).encode()

    def extras(self, study_id: int) -> dict:
        """For an sdd-opt study: ``plots`` (plot id -> plotly figure JSON) and ``best_trials``.

        ``best_trials`` is Optuna's front, which leaves infeasible trials out (the dashboard's own
        "Best Trial" marks ignore constraints); None when it cannot be serialized. {} for a study
        not made by sdd-opt.
        """
        import optuna

        from sdd_opt.report import figures as F
        from sdd_opt.study.measure import measure_of
        from sdd_opt.study.pareto import hypervolume_history

        with self._lock:  # the page polls every few seconds: look at the storage at most every TTL seconds
            hit = self._cache.get(study_id)
            if hit and time.monotonic() - hit[2] < self.TTL:
                return hit[1]
        name = self.storage.get_study_name_from_id(study_id)
        spec = self._spec(study_id, name)
        if spec is None:
            return {}
        trials = self.storage.get_all_trials(study_id, deepcopy=False)
        key = (len(trials), tuple(t.state.value for t in trials),
               max((t.datetime_complete for t in trials if t.datetime_complete), default=None))
        with self._lock:
            if hit and hit[0] == key:
                self._cache[study_id] = (key, hit[1], time.monotonic())
                return hit[1]
        study = optuna.load_study(study_name=name, storage=self.storage)
        figs = {"sdd-pareto-front": F.levels_figure(study, spec)}
        hv = F.hypervolume_figure(hypervolume_history(study, spec) if trials else None, measure_of(spec))
        if hv is not None:
            figs["sdd-hypervolume"] = hv
        figs["sdd-curves"] = F.curves_figure(study, spec, title="All curves by remedy")
        for pid, fig in figs.items():  # the dashboard's cards are 450 px high (the front's: FRONT_HEIGHT)
            fig.update_layout(height=FRONT_HEIGHT - 10 if pid == "sdd-pareto-front" else 440,
                              margin={"t": 80, "b": 50}, title={"font": {"size": 14}})
        out = {"plots": {k: fig.to_json() for k, fig in figs.items()}, "best_trials": self._best(study, study_id)}
        with self._lock:
            self._cache[study_id] = (key, out, time.monotonic())
        return out

    def _best(self, study, study_id: int):
        try:
            from sdd_opt.study._optuna_compat import serialize_frozen_trial

            best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
            attrs = self.storage.get_study_system_attrs(study_id)
            return [serialize_frozen_trial(study_id, _with_legacy_constraints(t), attrs)
                    for t in sorted(best, key=lambda t: t.number)]
        except Exception as exc:  # no complete trial, or another optuna-dashboard version
            logger.debug("best trials left to optuna-dashboard: %s", exc)
            return None


def _with_style(body: bytes) -> bytes:
    """The dashboard's page with :data:`PAGE_STYLE` in its head (its CSP allows inline styles)."""
    if b"</head>" not in body or b"sdd-opt-style" in body:
        return body
    return body.replace(b"</head>", PAGE_STYLE.encode() + b"</head>", 1)


# --------------------------------------------------------------------------- app and server
def make_app(storage_url: Optional[str], artifacts: Optional[str], *, sdd_plots: bool = True):
    """The dashboard's WSGI app (used by ``serve`` and by tests on a free port) and the storage URL."""
    from optuna_dashboard import wsgi

    from sdd_opt.study.artifact_stores import open_artifact_store
    from sdd_opt.study.storage import StorageSettings, open_storage, resolve_url

    url = resolve_url(storage_url)
    storage = dashboard_view(open_storage(url, StorageSettings(heartbeat_interval=None, grace_period=None,
                                                               max_retry=None, threads=4,
                                                               must_exist=True)))
    store = open_artifact_store(url, artifacts)
    app = wsgi(storage, artifact_store=store)
    return (SddPlots(app, storage) if sdd_plots else app), url


def serve(storage_url: Optional[str], artifacts: Optional[str], host: str = "127.0.0.1", port: int = 8080,
          log: Callable[[str], None] = print) -> None:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from sdd_opt.errors import UserError
    from sdd_opt.study.storage import masked

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):  # the browser polls every few seconds: no access log
            pass

    from sdd_opt.study.storage import resolve_url
    from sdd_opt.study.storage.dbcheck import check_sqlite_file

    check_sqlite_file(resolve_url(storage_url), must_exist=True)  # writes nothing, takes no port
    try:  # then the port: a busy one must fail before the storage is opened or artifacts/ made
        httpd = make_server(host, port, None, server_class=Server, handler_class=Quiet)
    except OSError as exc:
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
    try:
        app, url = make_app(storage_url, artifacts)
    except BaseException:
        httpd.server_close()
        raise
    httpd.set_app(app)
    log(f"optuna-dashboard for {masked(url)} at http://{host}:{port}/  (Ctrl-C to stop)")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        log("dashboard stopped")
