"""Studies for the report tests: a real tiny one run through the CLI, and synthetic ones (no training)."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution

from sdd_opt.curve import sdd_metrics, select_level
from sdd_opt.testing import cli_exit_code, tiny_study


def tiny_study_dict(tmp, **changes) -> dict:
    settings = {"description": "tiny synthetic study for the report tests",
                "constraints": [{"metric": "sdd_gap", "max": 0.02}], "budget": {"n_trials": 4}}
    settings.update(changes)
    return tiny_study(tmp, levels=3, rate=0.4, **settings)


run_cli = cli_exit_code  # (*args) -> exit code


@pytest.fixture(scope="session")
def real_study(tmp_path_factory):
    """4 trials of a tiny study (the paper's 3 reference points first), run through the CLI."""
    tmp = tmp_path_factory.mktemp("real_study")
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_study_dict(tmp)))
    url = f"sqlite:///{tmp / 'studies.db'}"
    code = run_cli("study", "run", str(path), "--storage", url, "--artifacts", str(tmp / "art"), "--seed-with-paper")
    assert code == 0
    return {"url": url, "name": "tiny", "dir": tmp, "artifacts": tmp / "art"}


GAPS = [0.0, 0.06, 0.01, 0.08, 0.0, 0.03]  # > 0.02: infeasible
REMEDIES = ["none", "l2", "distill"]


def synthetic_curve(i: int) -> list[dict]:
    """Dense 0.8, a dip of 0.05 at level 1, a recovery of GAPS[i] at level 2, collapse at level 3."""
    gap = GAPS[i % len(GAPS)]
    val = [0.8, 0.75, 0.75 + gap, 0.5]
    sp = [0.0, 0.5, 0.75, 0.875]
    return [{"level": k, "sparsity": sp[k], "train_acc": 0.55 + 0.03 * k, "val_acc": v, "test_acc": v - 0.02 - 0.001 * i,
             "loss": 1.0, "val_acc_std": 0.0, "test_acc_std": 0.0, "epochs": 2, "seconds": 0.1}
            for k, v in enumerate(val)]


def add_synthetic_trials(study: optuna.Study, n: int, max_gap: float = 0.02,
                         objectives=("val_acc", "sparsity")) -> None:
    for i in range(n):
        rows = synthetic_curve(i)
        sp, val = [r["sparsity"] for r in rows], [r["val_acc"] for r in rows]
        sdd = sdd_metrics(sp, val).as_dict()
        sdd_test = sdd_metrics(sp, [r["test_acc"] for r in rows]).as_dict()
        sel = select_level(val, sp, "best")
        remedy = REMEDIES[i % 3]
        wd = 0.0 if remedy == "none" else [1e-4, 1e-3, 5e-3, 1e-2][i % 4]
        cons = [sdd["sdd_gap"] - max_gap]
        params = {"train.weight_decay.off": wd == 0.0, "distill.enabled": remedy == "distill",
                  "prune.rate": [0.2, 0.3, 0.4][i % 3]}
        dists = {"train.weight_decay.off": CategoricalDistribution([False, True]),
                 "distill.enabled": CategoricalDistribution([False, True]),
                 "prune.rate": FloatDistribution(0.2, 0.4, step=0.1)}
        if wd:
            params["train.weight_decay"] = wd
            dists["train.weight_decay"] = FloatDistribution(1e-4, 1e-2, log=True)
        attrs = {"curve": rows, "curve_seed0": rows, "selected_level": sel, "val_acc": val[sel],
                 "val_acc_std": 0.0, "sparsity": sp[sel], "test_acc": rows[sel]["test_acc"], "sdd": sdd,
                 "sdd_test": sdd_test, "sdd_gap": sdd["sdd_gap"], "dip_acc": sdd["dip_acc"], "peak_acc": sdd["peak_acc"],
                 "dense_acc": sdd["dense_acc"], "sdd_present": sdd["sdd_present"], "remedy": remedy,
                 "curve_epochs": 8.0, "constraints": cons, "config": {"train": {"weight_decay": wd}}}
        metric = {"val_acc": val[sel], "sparsity": sp[sel], "sdd_gap": sdd["sdd_gap"], "curve_epochs": 8.0}
        study.add_trial(optuna.trial.create_trial(values=[metric[m] for m in objectives], params=params, distributions=dists,
                                                  user_attrs=attrs, constraints={"sdd_gap<=0.02": cons[0]}))


@pytest.fixture
def synthetic(tmp_path):
    """make(n) -> (study, spec, url): an sdd-opt study with n synthetic trials (every 'GAPS' shape)."""
    from sdd_opt.study.runner import create_or_resume
    from sdd_opt.study.spec import parse_study
    from sdd_opt.study.storage import open_storage

    def make(n: int = 6, name: str = "synthetic", objectives=("val_acc", "sparsity")):
        url = f"sqlite:///{tmp_path / (name + '.db')}"
        spec = parse_study(tiny_study_dict(tmp_path, name=name, objectives=[{"metric": m} for m in objectives]),
                           f"{name}.yaml")
        study = create_or_resume(spec, open_storage(url), url)
        add_synthetic_trials(study, n, objectives=objectives)
        return study, spec, url

    return make
