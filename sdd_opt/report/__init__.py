"""Reports on a study: one self-contained HTML file, paper-style figures, dashboard plots.

* :mod:`sdd_opt.report.data` -- what the figures read from a study (trials, curves, hovers);
* :mod:`sdd_opt.report.figures` -- interactive plotly figures (Pareto fronts, curves, importances,
  hypervolume), shared by the HTML report and the dashboard;
* :mod:`sdd_opt.report.html` -- the self-contained HTML report (``sdd-opt report NAME``);
* :mod:`sdd_opt.report.dashboard` -- optuna-dashboard with the SDD plots.

Their commands live in :mod:`sdd_opt.cli.report` and :mod:`sdd_opt.cli.study` (``dashboard``).
"""
