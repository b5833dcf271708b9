"""Optuna studies over the run config: spec -> space -> objective -> runner -> pareto/export.

Public pieces: :func:`load_study_spec`, :class:`StudySpec`, :class:`Objective`,
:func:`create_or_resume`, :func:`work`.
"""

from sdd_opt.study.spec import StudySpec, load_study_spec

__all__ = ["StudySpec", "load_study_spec"]
