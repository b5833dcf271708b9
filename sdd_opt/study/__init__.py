"""Optuna studies over the run config: spec -> space -> objective -> runner -> pareto/export.

Use a study from Python through :func:`sdd_opt.open_study` and :func:`sdd_opt.run_study`
(docs/python.md). This package's only public names are the study file's: :func:`load_study_spec`
and :class:`StudySpec`; its modules are implementation details and may change.
"""

from sdd_opt.study.spec import StudySpec, load_study_spec

__all__ = ["StudySpec", "load_study_spec"]
