"""The study's sampler, and per-trial reseeding so that workers and resumed runs never repeat draws.

Every worker builds the sampler from the spec stored with the study; :func:`seed_per_trial`
makes trial k's draws a function of (seed, k) so it does not matter which worker runs which trial.
To add a sampler: its name in ``spec.SAMPLERS`` and a branch in :func:`_base_sampler`.
"""

from __future__ import annotations

import warnings
from typing import Optional

import optuna

from sdd_opt.study._optuna_compat import lazy_random_state_class
from sdd_opt.study.grid import grid_of
from sdd_opt.study.spec import StudySpec


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    """The study's sampler, its randomness seeded per trial (see :func:`seed_per_trial`)."""
    return seed_per_trial(_base_sampler(spec), spec.file.sampler.seed)


def _random_states(obj, seen=None):
    """The numpy RandomStates inside a sampler (and the samplers it holds)."""
    LazyRandomState = lazy_random_state_class()
    seen = seen if seen is not None else set()
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for value in vars(obj).values():
        if isinstance(value, LazyRandomState):
            yield value.rng
        elif isinstance(value, optuna.samplers.BaseSampler):
            yield from _random_states(value, seen)


def seed_per_trial(sampler: optuna.samplers.BaseSampler, seed: Optional[int]) -> optuna.samplers.BaseSampler:
    """Make trial k's random draws a function of (seed, k) instead of one stream per process.

    Every worker builds its own sampler from the stored seed: with one stream each, two workers
    (or a resumed run) would propose the same parameters again. Reseeding before each trial from
    the trial number keeps a seeded study reproducible and gives every trial its own draws,
    whichever worker runs it.
    """
    if seed is None:
        return sampler
    import numpy as np

    before = sampler.before_trial

    def before_trial(study, trial):
        for k, rng in enumerate(_random_states(sampler)):
            rng.seed(int(np.random.SeedSequence([seed, trial.number, k]).generate_state(1)[0]))
        return before(study, trial)

    sampler.before_trial = before_trial
    return sampler


def _base_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    s = spec.file.sampler
    name = spec.sampler_name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "nsga2":
            kw = {"population_size": s.population_size} if s.population_size else {}
            return optuna.samplers.NSGAIISampler(seed=s.seed, **kw)
        if name == "tpe":
            kw = {"n_startup_trials": s.n_startup_trials} if s.n_startup_trials is not None else {}
            # multivariate + group: one joint model per set of parameters that occur together, so a
            # conditional space (T and alpha only with distillation) is modelled, not sampled at random.
            return optuna.samplers.TPESampler(seed=s.seed, multivariate=True, group=True, constant_liar=True, **kw)
        if name == "gp":
            kw = {"n_startup_trials": s.n_startup_trials} if s.n_startup_trials is not None else {}
            return optuna.samplers.GPSampler(seed=s.seed, **kw)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=s.seed)
        return optuna.samplers.GridSampler(grid_of(spec.search_space, spec.source), seed=s.seed)
