"""The bad-input corpus: every case exits 2 with one stderr line naming the field or file, and writes nothing.

Each case runs ``sdd-opt`` in-process inside an empty working directory holding only the case's
files. After it: exit code 2, exactly one line on stderr (``error: ...``) that contains the case's
needle (the field, flag or file at fault), no secret anywhere in the output, and the directory --
every path and every file's bytes, databases included -- exactly as before. No case trains: the
errors must all come before training (or before anything is written).
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

import pytest
import yaml

from sdd_opt.testing import run_cli, tiny_study

Content = Union[str, bytes, Callable[[Path], Union[str, bytes, None]]]


@dataclass
class Case:
    id: str
    argv: list[str]
    needle: str
    files: dict[str, Content] = field(default_factory=dict)
    secret: str = ""
    skip: str = ""


def cfg(text: str) -> dict[str, Content]:
    """A run config file c.yaml with ``text``."""
    return {"c.yaml": text}


def study(**changes) -> str:
    return yaml.safe_dump(tiny_study(Path("."), **changes))


def study_with_base(base_changes: dict) -> str:
    s = tiny_study(Path("."))
    for section, values in base_changes.items():
        s["base"].setdefault(section, {}).update(values)
    return yaml.safe_dump(s)


TRAIN = ["train", "--config", "c.yaml", "--out", "run"]
SET = ["train", "--out", "run", "--set"]
SQLITE = "sqlite:///db/studies.db"  # its folder does not exist: creating it would be a write
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False

CASES = [
    # -- run config files: strict YAML ------------------------------------------------------------
    Case("yaml-duplicate-section", TRAIN, "duplicate key 'train'", cfg("train: {epochs: 2}\ntrain: {epochs: 3}\n")),
    Case("yaml-duplicate-key", TRAIN, "duplicate key 'epochs'", cfg("train:\n  epochs: 2\n  epochs: 3\n")),
    Case("yaml-not-utf8", TRAIN, "c.yaml: not UTF-8", cfg(b"train:\n  device: \"caf\xe9\"\n")),
    Case("yaml-utf16", TRAIN, "c.yaml: not UTF-8", cfg("train: {epochs: 2}\n".encode("utf-16"))),
    Case("yaml-empty", TRAIN, "c.yaml: empty file", cfg("")),
    Case("yaml-only-comments", TRAIN, "c.yaml: empty file", cfg("# nothing here yet\n\n")),
    Case("yaml-top-level-list", TRAIN, "expected a mapping", cfg("- train\n- prune\n")),
    Case("yaml-top-level-scalar", TRAIN, "expected a mapping", cfg("hello\n")),
    Case("yaml-malformed", TRAIN, "line 3, column 1", cfg("train:\n  epochs: [3\n")),
    Case("yaml-tab-indent", TRAIN, "malformed YAML", cfg("train:\n\tepochs: 3\n")),
    Case("yaml-nul-byte", TRAIN, "malformed YAML", cfg("train: {epochs: 3}\x00\n")),
    Case("yaml-python-tag", TRAIN, "c.yaml", cfg("seed: !!python/object/apply:os.system ['touch pwned']\n")),
    Case("yaml-unknown-key", TRAIN, "train.epochz: unknown key", cfg("train:\n  epochz: 3\n")),
    Case("yaml-unknown-section", TRAIN, "trian", cfg("trian:\n  epochs: 3\n")),
    Case("yaml-section-is-a-value", TRAIN, "data", cfg("data: 5\n")),
    Case("config-missing", ["train", "--config", "nope.yaml", "--out", "run"], "nope.yaml: no such file"),
    Case("config-is-a-directory", ["train", "--config", "cdir", "--out", "run"], "--config",
         {"cdir/keep": "x"}),
    # -- run config values: strict types, finite numbers, bounds ---------------------------------
    Case("epochs-true", TRAIN, "train.epochs", cfg("train: {epochs: true}\n")),
    Case("epochs-float", TRAIN, "train.epochs", cfg("train: {epochs: 2.5}\n")),
    Case("epochs-string", TRAIN, "train.epochs", cfg("train: {epochs: '5'}\n")),
    Case("seed-false", TRAIN, "seed", cfg("seed: false\n")),
    Case("nesterov-int", TRAIN, "train.nesterov", cfg("train: {nesterov: 1}\n")),
    Case("distill-enabled-string", TRAIN, "distill.enabled", cfg("distill: {enabled: 'yes'}\n")),
    Case("lr-true", TRAIN, "train.lr", cfg("train: {lr: true}\n")),
    Case("lr-inf", TRAIN, "train.lr", cfg("train: {lr: .inf}\n")),
    Case("lr-nan", TRAIN, "train.lr", cfg("train: {lr: .nan}\n")),
    Case("weight-decay-minus-inf", TRAIN, "train.weight_decay", cfg("train: {weight_decay: -.inf}\n")),
    Case("milestones-bool", TRAIN, "train.milestones", cfg("train: {milestones: [1, true]}\n")),
    Case("noise-one", TRAIN, "data.noise", cfg("data: {noise: 1.0}\n")),
    Case("width-zero", TRAIN, "model.width", cfg("model: {width: 0}\n")),
    Case("device-gpu", TRAIN, "train.device", cfg("train: {device: gpu}\n")),
    Case("levels-million", TRAIN, "prune.levels", cfg("prune: {levels: 1000000}\n")),
    Case("levels-negative", TRAIN, "prune.levels", cfg("prune: {levels: -1}\n")),
    Case("levels-past-last-weight", TRAIN, "prune.levels", cfg("prune: {rate: 0.99, levels: 10}\n")),
    Case("levels-past-smallest-layer", TRAIN, "prune.levels",
         cfg("data: {name: mnist}\nmodel: {name: lenet300}\nprune: {scope: layer, levels: 40}\n")),
    Case("target-sparsity-past-cap", TRAIN, "target_sparsity", cfg("prune: {rate: 0.01, target_sparsity: 0.999999}\n")),
    Case("model-does-not-take-images", TRAIN, "model.name", cfg("data: {name: cifar10}\nmodel: {name: cnn1d}\n")),
    Case("model-does-not-take-1d", TRAIN, "model.name", cfg("model: {name: resnet18}\n")),
    Case("rewind-past-training", TRAIN, "prune.rewind_to", cfg("train: {epochs: 2}\nprune: {rewind_to: 5}\n")),
    Case("train-size-too-big", TRAIN, "data.train_size",
         cfg("data: {name: synthetic1d, train_size: 100000}\nmodel: {width: 8}\n")),
    Case("augment-on-1d-data", TRAIN, "data.augment", cfg("data: {name: synthetic1d, augment: true}\nmodel: {width: 8}\n")),
    Case("study-file-base-epochs-true", TRAIN, "epochs", cfg(study_with_base({"train": {"epochs": True}}))),
    # -- --set overrides --------------------------------------------------------------------------
    Case("set-epochs-true", SET + ["train.epochs=true"], "train.epochs"),
    Case("set-epochs-float", SET + ["train.epochs=1.5"], "train.epochs"),
    Case("set-lr-inf", SET + ["train.lr=.inf"], "train.lr"),
    Case("set-lr-inf-word", SET + ["train.lr=inf"], "train.lr"),
    Case("set-lr-nan", SET + ["train.lr=.nan"], "train.lr"),
    Case("set-levels-million", SET + ["prune.levels=1000000"], "prune.levels"),
    Case("set-rate-one", SET + ["prune.rate=1"], "prune.rate"),
    Case("set-noise-kind", SET + ["data.noise_kind=gaussian"], "data.noise_kind"),
    Case("set-no-equals", SET + ["nokey"], "expected key=value"),
    Case("set-empty-key", SET + ["=5"], "empty key"),
    Case("set-empty-part", SET + ["train..lr=1"], "empty key"),
    Case("set-into-a-value", SET + ["seed=0", "--set", "seed.x=1"], "not a section"),
    Case("set-duplicate-key", SET + ["train={epochs: 1, epochs: 2}"], "duplicate key 'epochs'"),
    # -- train and plot flags: where output goes --------------------------------------------------
    Case("out-under-a-file", ["train", "--out", "afile/run"], "afile is a file", {"afile": "x"}),
    Case("out-is-a-file", ["train", "--out", "afile"], "--out", {"afile": "x"}),
    Case("out-in-proc", ["train", "--out", "/proc/sdd-opt-no/run"], "/proc",
         skip="" if sys.platform.startswith("linux") else "needs /proc"),
    Case("out-unwritable", ["train", "--out", "ro/run"], "cannot write in ro", {"ro/keep": "x"},
         skip="root writes anywhere" if ROOT else ""),
    Case("resume-empty-folder", ["train", "--out", "empty", "--resume"], "--resume: empty holds no run", {"empty/keep": ""}),
    Case("resume-missing-folder", ["train", "--out", "nothere", "--resume"], "--resume"),
    Case("checkpoints-choice", ["train", "--out", "run", "--checkpoints", "some"], "--checkpoints"),
    Case("unknown-option", ["train", "--epochs", "3"], "--epochs"),
    Case("plot-out-under-a-file", ["plot", "r1", "--out", "afile/x.png"], "afile is a file",
         {"afile": "x", "r1/curve.csv": "level,sparsity\n"}),
    Case("plot-out-type", ["plot", "r1", "--out", "x.txt"], "'.txt'", {"r1/keep": ""}),
    Case("plot-out-is-a-directory", ["plot", "r1", "--out", "r1"], "--out", {"r1/keep": ""}),
    Case("plot-no-curve", ["plot", "r1", "--out", "x.png"], "r1: no curve.csv", {"r1/keep": ""}),
    Case("plot-missing-run", ["plot", "r9", "--out", "x.png"], "r9"),
    Case("plot-labels", ["plot", "r1", "--out", "x.png", "--label", "a", "--label", "b"], "--label", {"r1/keep": ""}),
    Case("data-dir-under-a-file", SET + ["data.data_dir=afile/data"], "data.data_dir afile/data: afile is a file",
         {"afile": "x"}),
    Case("teacher-cache-under-a-file", SET + ["distill.enabled=true", "--set", "distill.teacher.cache_dir=afile/t"],
         "distill.teacher.cache_dir", {"afile": "x"}),
    # -- data ---------------------------------------------------------------------------------------
    Case("cifar-no-data", TRAIN, "cifar10", cfg("data: {name: cifar10, data_dir: new/data}\nmodel: {name: resnet18, width: 8}\n")),
    Case("mnist-no-data", TRAIN, "mnist", cfg("data: {name: mnist, data_dir: new/data}\nmodel: {name: lenet300}\n")),
    # -- study files --------------------------------------------------------------------------------
    Case("study-malformed", ["study", "create", "s.yaml", "--storage", SQLITE], "line",
         {"s.yaml": "name: x\nsearch_space:\n  prune.rate: {type: float, low: 0.1\n"}),
    Case("study-duplicate-key", ["study", "create", "s.yaml", "--storage", SQLITE], "duplicate key 'name'",
         {"s.yaml": lambda tmp: "name: a\n" + study()}),
    Case("study-same-search-key-twice", ["study", "create", "s.yaml", "--storage", SQLITE], "duplicate key 'prune.rate'",
         {"s.yaml": lambda tmp: study().replace("search_space:\n", "search_space:\n  prune.rate: {type: float, low: 0.1, high: 0.2}\n")}),
    Case("study-not-utf8", ["study", "create", "s.yaml", "--storage", SQLITE], "s.yaml: not UTF-8",
         {"s.yaml": lambda tmp: study().encode() + b"# \xff\n"}),
    Case("study-empty", ["study", "create", "s.yaml", "--storage", SQLITE], "s.yaml: empty file", {"s.yaml": ""}),
    Case("study-unknown-sampler", ["study", "create", "s.yaml", "--storage", SQLITE], "unknown sampler 'annealing'",
         {"s.yaml": lambda tmp: study(sampler={"name": "annealing"})}),
    Case("study-low-above-high", ["study", "run", "s.yaml", "--storage", SQLITE], "low (0.1) > high (0.01)",
         {"s.yaml": lambda tmp: study(search_space={"train.weight_decay": {"type": "float", "low": 0.1, "high": 0.01}})}),
    Case("study-unknown-search-key", ["study", "run", "s.yaml", "--storage", SQLITE], "search_space.model.depth",
         {"s.yaml": lambda tmp: study(search_space={"model.depth": {"type": "int", "low": 1, "high": 3}})}),
    Case("study-no-budget", ["study", "run", "s.yaml", "--storage", SQLITE], "no budget",
         {"s.yaml": lambda tmp: study(budget={})}),
    Case("study-base-lr-inf", ["study", "create", "s.yaml", "--storage", SQLITE], "lr",
         {"s.yaml": lambda tmp: study_with_base({"train": {"lr": float("inf")}})}),
    # -- storage URLs: one line, the password never shown -------------------------------------------
    Case("url-postgres-slash-password", ["study", "create", "s.yaml", "--storage",
                                         "postgresql+psycopg://user:S3c/ret@127.0.0.1:1/db"],
         "cannot open storage", {"s.yaml": lambda tmp: study()}, secret="S3c"),
    Case("url-mysql-password", ["study", "create", "s.yaml", "--storage", "mysql+pymysql://bob:hunter2@127.0.0.1:1/db"],
         "cannot open storage", {"s.yaml": lambda tmp: study()}, secret="hunter2"),
    Case("url-password-with-colon-and-slash", ["study", "create", "s.yaml", "--storage",
                                               "postgresql+psycopg://u:a:b/c:d@127.0.0.1:1/db"],
         "cannot open storage", {"s.yaml": lambda tmp: study()}, secret="a:b/c"),
    Case("url-malformed", ["study", "create", "s.yaml", "--storage", "not a url"], "malformed storage URL",
         {"s.yaml": lambda tmp: study()}),
    Case("url-unsupported", ["study", "create", "s.yaml", "--storage", "oracle://u:pw0rd@host/db"], "unsupported database",
         {"s.yaml": lambda tmp: study()}, secret="pw0rd"),
]


def _write(tmp: Path, files: dict[str, Content]) -> None:
    for rel, content in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content = content(tmp)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def listing(root: Path) -> list[tuple[str, str]]:
    """Every path under ``root`` with the hash of its bytes ('dir' for folders)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out.append((os.path.relpath(os.path.join(dirpath, d), root), "dir"))
        for f in filenames:
            p = os.path.join(dirpath, f)
            out.append((os.path.relpath(p, root), hashlib.sha256(Path(p).read_bytes()).hexdigest()))
    return sorted(out)


def _offline(*args, **kwargs):
    raise urllib.error.URLError("no network in tests")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, capsys, monkeypatch):
    if case.skip:
        pytest.skip(case.skip)
    monkeypatch.chdir(tmp_path)
    for var in ("SDD_OPT_STORAGE", "SDD_OPT_STORAGE_PASSWORD", "SDD_OPT_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    _write(tmp_path, case.files)
    if case.id == "out-unwritable":
        (tmp_path / "ro").chmod(0o500)
    before = listing(tmp_path)

    code, out, err = run_cli(capsys, *case.argv)

    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.needle in lines[0], lines[0]
    if case.secret:
        assert case.secret not in out + err
    assert listing(tmp_path) == before


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
