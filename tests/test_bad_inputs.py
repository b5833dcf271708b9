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
import shutil
import socket
import socketserver
import sqlite3
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

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
    setup: Optional[Callable[[Path, "Templates"], None]] = None  # copies a template DB or run in


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
    # a mistake in a --set is named as that --set, not as the file it was applied to
    Case("set-unknown-key-on-a-file", ["train", "--config", "c.yaml", "--out", "run", "--set", "train.epochz=3"],
         "error: --set train.epochz=3: train.epochz: unknown key", cfg("train: {epochs: 2}\n")),
    Case("set-unknown-key-on-a-study", ["study", "run", "s.yaml", "--storage", SQLITE, "--set", "train.epochz=3"],
         "error: --set train.epochz=3: train.epochz: unknown key", {"s.yaml": lambda tmp: study()}),
    Case("set-unknown-key-on-train-with-a-study-file", ["train", "--config", "s.yaml", "--out", "run",
                                                        "--set", "train.epochz=3"],
         "error: --set train.epochz=3: train.epochz: unknown key", {"s.yaml": lambda tmp: study()}),
    Case("set-last-one-named", SET + ["train.epochs=true", "--set", "train.epochs=1.5"],
         "--set train.epochs=1.5: train.epochs"),
    Case("set-a-section-to-a-value", ["train", "--config", "c.yaml", "--out", "run", "--set", "train=5"],
         "--set train=5: train", cfg("train: {epochs: 2}\n")),
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
         "percent-encode", {"s.yaml": lambda tmp: study()}, secret="S3c"),
    Case("url-postgres-encoded-password", ["study", "create", "s.yaml", "--storage",
                                           "postgresql+psycopg://user:S3c%2Fret@127.0.0.1:1/db"],
         "cannot open storage", {"s.yaml": lambda tmp: study()}, secret="S3c"),
    Case("url-mysql-password", ["study", "create", "s.yaml", "--storage", "mysql+pymysql://bob:hunter2@127.0.0.1:1/db"],
         "cannot open storage", {"s.yaml": lambda tmp: study()}, secret="hunter2"),
    Case("url-password-with-colon-and-slash", ["study", "create", "s.yaml", "--storage",
                                               "postgresql+psycopg://u:a:b/c:d@127.0.0.1:1/db"],
         "percent-encode", {"s.yaml": lambda tmp: study()}, secret="b/c"),
    # a raw "@" and "/" in the password: SQLAlchemy would read host "ss"; no part of the URL is printed
    *[Case(f"url-{db}-raw-at-and-slash-{cmd}", argv + ["--storage", f"{scheme}://root:p@ss/w0rd@127.0.0.1:{port}/test"],
           "--storage: the password holds a raw '@'", {"s.yaml": lambda tmp: study()}, secret="ss/w0rd")
      for db, scheme, port in (("postgres", "postgresql+psycopg", 5432), ("mysql", "mysql+pymysql", 3306))
      for cmd, argv in (("create", ["study", "create", "s.yaml"]), ("list", ["study", "list"]),
                        ("dashboard", ["dashboard"]))],
    Case("url-raw-at-only", ["study", "run", "s.yaml", "--storage", "postgresql+psycopg://u:p@ss@127.0.0.1:1/db"],
         "percent-encode", {"s.yaml": lambda tmp: study()}, secret="ss@"),
    Case("url-raw-hash", ["study", "list", "--storage", "mysql+pymysql://u:pa#ss@127.0.0.1:1/db"],
         "SDD_OPT_STORAGE_PASSWORD", secret="pa#ss"),
    Case("url-malformed", ["study", "create", "s.yaml", "--storage", "not a url"], "malformed storage URL",
         {"s.yaml": lambda tmp: study()}),
    Case("url-unsupported", ["study", "create", "s.yaml", "--storage", "oracle://u:pw0rd@host/db"], "unsupported database",
         {"s.yaml": lambda tmp: study()}, secret="pw0rd"),
]


# -- templates: one Optuna database and one interrupted run, made once and copied into cases ------

class Templates:
    """An Optuna SQLite database holding study 'tiny', and a run interrupted after level 1 of 3."""

    def __init__(self, root: Path):
        self.root = root
        self._db: Optional[Path] = None
        self._run: Optional[Path] = None

    def _cli(self, *args: str) -> None:
        from sdd_opt.cli import main

        cwd = os.getcwd()
        os.chdir(self.root)
        try:
            main(list(args))
        except SystemExit as exc:
            assert exc.code in (0, None), f"template command failed: {args}"
        finally:
            os.chdir(cwd)

    @property
    def db(self) -> Path:
        if self._db is None:
            (self.root / "s.yaml").write_text(study())
            self._cli("study", "create", "s.yaml", "--storage", "sqlite:///tdb/studies.db")
            self._db = self.root / "tdb/studies.db"
            conn = sqlite3.connect(self._db)  # WAL: move what the creating process wrote into the file we copy
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
        return self._db

    @property
    def run(self) -> Path:
        if self._run is None:
            self._cli("train", "--out", "trun", "--quiet", *RUN_SETS)
            curve = self.root / "trun/curve.csv"
            curve.write_text("".join(curve.read_text().splitlines(keepends=True)[:3]))  # levels 0 and 1
            self._run = self.root / "trun"
        return self._run


RUN_SETS = [a for o in ("data.name=synthetic1d", "data.data_dir=data", "model.width=8", "train.epochs=2",
                        "train.batch_size=64", "prune.levels=3", "train.threads=1", "distill.teacher.cache_dir=teachers")
            for a in ("--set", o)]
TDB = "sqlite:///db/studies.db"


def with_db(tmp: Path, t: Templates) -> None:
    (tmp / "db").mkdir()
    shutil.copy(t.db, tmp / "db/studies.db")


def with_run(tmp: Path, t: Templates) -> None:
    shutil.copytree(t.run, tmp / "run")


def with_run_and(change: Callable[[Path], None]) -> Callable[[Path, Templates], None]:
    def setup(tmp: Path, t: Templates) -> None:
        with_run(tmp, t)
        change(tmp / "run")
    return setup


def other_program_db(tmp: Path, t: Templates) -> None:
    (tmp / "db").mkdir()
    conn = sqlite3.connect(tmp / "db/studies.db")
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.commit()
    conn.close()


def _wrong_shape_checkpoint(run: Path) -> None:
    import torch

    path = run / "checkpoints/level_1.pt"
    ckpt = torch.load(path, weights_only=True)
    name = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][name] = torch.zeros(3, 3)
    torch.save(ckpt, path)


def _truncated_teacher(run: Path) -> None:
    data = (run / "checkpoints/level_0.pt").read_bytes()
    (run.parent / "teacher.pt").write_bytes(data[: len(data) // 2])
    shutil.rmtree(run)


BUSY_PORT: list[socket.socket] = []


def busy_port() -> int:
    """A port something already listens on (kept open for the whole module)."""
    if not BUSY_PORT:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        BUSY_PORT.append(sock)
    return BUSY_PORT[0].getsockname()[1]


RESUME = ["train", "--out", "run", "--resume", "--quiet", *RUN_SETS]
READ_ONLY = {"list": ["study", "list"], "status": ["study", "status", "tiny"], "pareto": ["study", "pareto", "tiny"],
             "export": ["study", "export", "tiny", "--out", "exported"], "report": ["report", "tiny"],
             "curves": ["study", "curves", "tiny", "--out", "c.png"], "worker": ["study", "worker", "tiny", "--n-trials", "1"],
             "dashboard": ["dashboard"]}

CASES += [  # the cases that need a template database or run, or a busy port
    # -- corrupt run directories ------------------------------------------------------------------
    Case("resume-garbage-curve", RESUME, "curve.csv", setup=with_run_and(
        lambda run: (run / "curve.csv").write_bytes(b"\x00\xffgarbage;;\n1,2\n"))),
    Case("resume-truncated-curve", RESUME, "curve.csv", setup=with_run_and(
        lambda run: (run / "curve.csv").write_text((run / "curve.csv").read_text()[:-25]))),
    Case("resume-curve-not-numbers", RESUME, "curve.csv", setup=with_run_and(
        lambda run: (run / "curve.csv").write_text((run / "curve.csv").read_text().replace("0.", "x.", 1)))),
    Case("resume-checkpoint-wrong-shapes", RESUME, "level_1.pt", setup=with_run_and(_wrong_shape_checkpoint)),
    Case("resume-checkpoint-garbage", RESUME, "level_1.pt", setup=with_run_and(
        lambda run: (run / "checkpoints/level_1.pt").write_bytes(b"not a checkpoint"))),
    Case("resume-config-garbage", RESUME, "config.yaml", setup=with_run_and(
        lambda run: (run / "config.yaml").write_bytes(b"\x00\xff\xfe not yaml"))),
    Case("resume-config-other-run", RESUME, "different config", setup=with_run_and(
        lambda run: (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("seed: 0", "seed: 7", 1)))),
    Case("resume-rewind-truncated", RESUME, "rewind.pt", setup=with_run_and(
        lambda run: (run / "checkpoints/rewind.pt").write_bytes((run / "checkpoints/rewind.pt").read_bytes()[:100]))),
    Case("resume-checkpoint-missing", RESUME, "level_1.pt", setup=with_run_and(
        lambda run: (run / "checkpoints/level_1.pt").unlink())),
    Case("resume-curve-level-gap", RESUME, "expected level 1", setup=with_run_and(
        lambda run: (run / "curve.csv").write_text((run / "curve.csv").read_text().replace("\n1,", "\n4,", 1)))),
    Case("plot-curve-missing-column", ["plot", "run", "--out", "x.png"], "no column", setup=with_run_and(
        lambda run: (run / "curve.csv").write_text("level,sparsity\n0,0.0\n"))),
    Case("plot-garbage-curve", ["plot", "run", "--out", "x.png"], "curve.csv", setup=with_run_and(
        lambda run: (run / "curve.csv").write_bytes(b"\x00\xffgarbage;;\n1,2\n"))),
    Case("plot-truncated-curve", ["plot", "run", "--out", "x.png"], "curve.csv", setup=with_run_and(
        lambda run: (run / "curve.csv").write_text((run / "curve.csv").read_text()[:-25]))),
    Case("teacher-truncated-checkpoint", ["train", "--out", "new", "--quiet", *RUN_SETS, "--set", "distill.enabled=true",
                                          "--set", "distill.teacher.checkpoint=teacher.pt"], "teacher.pt",
         setup=with_run_and(_truncated_teacher)),
    Case("teacher-run-other-width", ["train", "--out", "new", "--quiet", *RUN_SETS, "--set", "distill.enabled=true",
                                     "--set", "distill.teacher.run=run", "--set", "model.width=16"], "distill.teacher.run",
         setup=with_run),
    Case("teacher-missing-checkpoint", ["train", "--out", "new", "--quiet", *RUN_SETS, "--set", "distill.enabled=true",
                                        "--set", "distill.teacher.checkpoint=nothere.pt"], "nothere.pt"),
    Case("study-teacher-missing-checkpoint", ["study", "run", "s.yaml", "--storage", SQLITE, "--n-trials", "1"],
         "nothere.pt", {"s.yaml": lambda tmp: study_with_base({"distill": {"teacher": {"checkpoint": "nothere.pt"}}})}),
    Case("study-teacher-truncated", ["study", "create", "s.yaml", "--storage", SQLITE], "teacher.pt",
         {"s.yaml": lambda tmp: study_with_base({"distill": {"teacher": {"checkpoint": "teacher.pt"}}})},
         setup=with_run_and(_truncated_teacher)),
    # -- read-only commands create nothing and open only Optuna databases -------------------------
    *[Case(f"{cmd}-missing-sqlite", argv + ["--storage", "sqlite:///db/nothere.db"], "no such database file")
      for cmd, argv in READ_ONLY.items()],
    *[Case(f"{cmd}-other-programs-db", argv + ["--storage", TDB], "another program's SQLite database", setup=other_program_db)
      for cmd, argv in READ_ONLY.items()],
    Case("run-in-other-programs-db", ["study", "run", "s.yaml", "--storage", TDB], "another program's",
         {"s.yaml": lambda tmp: study()}, setup=other_program_db),
    Case("create-in-other-programs-db", ["study", "create", "s.yaml", "--storage", TDB], "another program's",
         {"s.yaml": lambda tmp: study()}, setup=other_program_db),
    Case("list-not-a-database", ["study", "list", "--storage", TDB], "is not a SQLite database", {"db/studies.db": "hello"}),
    Case("run-in-not-a-database", ["study", "run", "s.yaml", "--storage", TDB], "is not a SQLite database",
         {"db/studies.db": "hello", "s.yaml": lambda tmp: study()}),
    Case("status-directory", ["study", "status", "tiny", "--storage", "sqlite:///db"], "is a directory", {"db/keep": ""}),
    Case("create-directory", ["study", "create", "s.yaml", "--storage", "sqlite:///db"], "is a directory",
         {"db/keep": "", "s.yaml": lambda tmp: study()}),
    Case("list-empty-file", ["study", "list", "--storage", TDB], "empty file", {"db/studies.db": ""}),
    Case("status-unknown-study", ["study", "status", "nosuch", "--storage", TDB], "nosuch", setup=with_db),
    Case("report-unknown-study", ["report", "nosuch", "--storage", TDB], "nosuch", setup=with_db),
    Case("status-password-url", ["study", "status", "tiny", "--storage", "postgresql+psycopg://u:S3c/ret@127.0.0.1:1/db"],
         "percent-encode", secret="S3c"),
    Case("status-encoded-password-url", ["study", "status", "tiny", "--storage",
                                         "postgresql+psycopg://u:S3c%2Fret@127.0.0.1:1/db"],
         "cannot open storage", secret="S3c"),
    Case("list-password-url", ["study", "list", "--storage", "mysql+pymysql://u:pa ss/w0rd@127.0.0.1:1/db"],
         "percent-encode", secret="w0rd"),
    # -- study names -------------------------------------------------------------------------------
    Case("name-traversal", ["study", "create", "s.yaml", "--storage", SQLITE, "--name", "../../x"], "../../x",
         {"s.yaml": lambda tmp: study()}),
    Case("name-absolute", ["study", "create", "s.yaml", "--storage", SQLITE, "--name", "/tmp/x"], "/tmp/x",
         {"s.yaml": lambda tmp: study()}),
    Case("name-in-file-with-slash", ["study", "run", "s.yaml", "--storage", SQLITE], "a/b",
         {"s.yaml": lambda tmp: study(name="a/b")}),
    Case("name-flag-on-run", ["study", "run", "s.yaml", "--storage", SQLITE, "--name", "..", "--n-trials", "1"], "'..'",
         {"s.yaml": lambda tmp: study()}),
    Case("name-with-space", ["study", "create", "s.yaml", "--storage", SQLITE], "my study",
         {"s.yaml": lambda tmp: study(name="my study")}),
    # -- search spaces -------------------------------------------------------------------------------
    Case("search-space-empty", ["study", "create", "s.yaml", "--storage", SQLITE], "search_space",
         {"s.yaml": lambda tmp: study(search_space={})}),
    Case("search-space-missing", ["study", "create", "s.yaml", "--storage", SQLITE], "search_space",
         {"s.yaml": lambda tmp: yaml.safe_dump({k: v for k, v in tiny_study(Path(".")).items() if k != "search_space"})}),
    Case("initial-trial-unknown-key", ["study", "run", "s.yaml", "--storage", SQLITE, "--n-trials", "1"],
         "initial_trials[0]: model.width", {"s.yaml": lambda tmp: study(initial_trials=[{"model.width": 8}])}),
    Case("initial-trial-out-of-range", ["study", "create", "s.yaml", "--storage", SQLITE],
         "initial_trials[1]: prune.rate", {"s.yaml": lambda tmp: study(initial_trials=[{}, {"prune.rate": 0.9}])}),
    Case("initial-trials-not-a-list", ["study", "create", "s.yaml", "--storage", SQLITE], "initial_trials",
         {"s.yaml": lambda tmp: study(initial_trials={"prune.rate": 0.3})}),
    # -- where export and report write --------------------------------------------------------------
    Case("export-out-under-a-file", ["study", "export", "tiny", "--storage", TDB, "--out", "afile/x"], "afile is a file",
         {"afile": "x"}, setup=with_db),
    Case("export-out-is-a-file", ["study", "export", "tiny", "--storage", TDB, "--out", "afile"], "afile",
         {"afile": "x"}, setup=with_db),
    Case("export-out-in-proc", ["study", "export", "tiny", "--storage", TDB, "--out", "/proc/sdd-opt-no/x"], "/proc",
         setup=with_db),
    Case("report-out-under-a-file", ["report", "tiny", "--storage", TDB, "--out", "afile/r.html"], "afile is a file",
         {"afile": "x"}, setup=with_db),
    Case("report-out-in-proc", ["report", "tiny", "--storage", TDB, "--out", "/proc/sdd-opt-no/r.html"], "/proc",
         setup=with_db),
    Case("report-out-is-a-directory", ["report", "tiny", "--storage", TDB, "--out", "adir"], "adir",
         {"adir/keep": ""}, setup=with_db),
    Case("curves-out-under-a-file", ["study", "curves", "tiny", "--storage", TDB, "--out", "afile/c.png"], "afile is a file",
         {"afile": "x"}, setup=with_db),
    Case("report-out-type", ["report", "tiny", "--storage", TDB, "--out", "r.pdf"], "r.pdf", setup=with_db),
    Case("report-missing-folder-unknown-study", ["report", "nosuch", "--storage", TDB, "--out", "new/r.html"], "nosuch",
         setup=with_db),
    # -- the dashboard --------------------------------------------------------------------------------
    Case("dashboard-busy-port", ["dashboard", "--storage", TDB, "--port", "{busy}"], "--port", setup=with_db),
]


# -- plug-ins: a user's own builder / loader by import path (docs/plugins.md) -------------------------
# Each case has its own module name: a module imported by an earlier case stays in sys.modules.
_NET = "from torch import nn\n\ndef build(width, input_shape, num_classes):\n" \
       "    return nn.Sequential(nn.Flatten(), nn.Linear(40, num_classes))\n"
_LOAD = "import torch\n\ndef load(data_dir):\n    x = torch.randn(20, 1, 40)\n" \
        "    return {{'train': (x, {y}), 'test': ({xt}, torch.zeros({nt}, dtype=torch.long)), 'num_classes': 3}}\n"


def plugin_train(model: str = "cnn1d", data: str = "synthetic1d", *sets: str) -> list[str]:
    return ["train", "--out", "run", "--quiet", *RUN_SETS, "--set", f"model.name={model}",
            "--set", f"data.name={data}", *[a for o in sets for a in ("--set", o)]]


def _loader(y: str = "torch.zeros(20, dtype=torch.long)", xt: str = "x[:5]", nt: int = 5) -> str:
    return _LOAD.format(y=y, xt=xt, nt=nt)


def _changed_plugin_study(tmp: Path, t: Templates) -> None:
    """Study 'plug' created with pl_changed:build, whose source is then edited."""
    (tmp / "pl_changed.py").write_text(_NET)
    (tmp / "p.yaml").write_text(study_with_base({"model": {"name": "pl_changed:build"}}).replace("tiny", "plug"))
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        from sdd_opt.testing import cli_exit_code

        assert cli_exit_code("study", "create", "p.yaml", "--storage", TDB) in (0, None)
    finally:
        os.chdir(cwd)
    conn = sqlite3.connect(tmp / "db/studies.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    (tmp / "p.yaml").unlink()
    (tmp / "pl_changed.py").write_text(_NET.replace("nn.Flatten(), ", "nn.Flatten(), nn.Identity(), "))


CASES += [
    Case("plugin-module-missing", plugin_train("pl_nosuch:build"), "cannot import 'pl_nosuch:build'"),
    Case("plugin-syntax-error", plugin_train("pl_syntax:build"), "cannot import 'pl_syntax:build' (SyntaxError",
         {"pl_syntax.py": "def build(:\n"}),
    Case("plugin-import-raises", plugin_train("pl_raises_at_import:build"), "RuntimeError: no GPU here",
         {"pl_raises_at_import.py": "raise RuntimeError('no GPU here')\n"}),
    Case("plugin-no-such-attr", plugin_train("pl_noattr:build"), "has no 'build'", {"pl_noattr.py": "x = 1\n"}),
    Case("plugin-not-callable", plugin_train("pl_notcall:build"), "not a callable", {"pl_notcall.py": "build = 3\n"}),
    Case("plugin-bad-path", plugin_train("pl-x:build"), "not an import path"),
    Case("plugin-unknown-short-name", plugin_train("tinynet"), "unknown model 'tinynet'"),
    Case("plugin-builder-raises", plugin_train("pl_braise:build"), "pl_braise:build raised ValueError: depth",
         {"pl_braise.py": "def build(width, input_shape, num_classes):\n    raise ValueError('depth must be > 0')\n"}),
    Case("plugin-builder-not-module", plugin_train("pl_bnone:build"), "returned NoneType, not a torch.nn.Module",
         {"pl_bnone.py": "def build(width, input_shape, num_classes):\n    return None\n"}),
    Case("plugin-builder-wrong-logits", plugin_train("pl_blogits:build"), "logits must be (batch, 10)",
         {"pl_blogits.py": _NET.replace("Linear(40, num_classes)", "Linear(40, 7)")}),
    Case("plugin-builder-signature", plugin_train("pl_bsig:build"), "must accept the keyword argument(s) width",
         {"pl_bsig.py": "def build(x):\n    return None\n"}),
    Case("plugin-unknown-extra-key", plugin_train("pl_bextra:build", "synthetic1d", "model.depht=3"),
         "unknown key 'depht'", {"pl_bextra.py": _NET}),
    Case("builtin-model-extra-key", plugin_train("cnn1d", "synthetic1d", "model.depth=3"), "unknown key 'depth'"),
    Case("plugin-loader-labels", plugin_train("pl_lnet:build", "pl_llab:load"), "labels 0..7, outside 0..2",
         {"pl_lnet.py": _NET, "pl_llab.py": _loader(y="torch.arange(20) % 8")}),
    Case("plugin-loader-negative-labels", plugin_train("pl_lnet2:build", "pl_lneg:load"), "outside 0..2",
         {"pl_lnet2.py": _NET, "pl_lneg.py": _loader(y="-torch.ones(20, dtype=torch.long)")}),
    Case("plugin-loader-empty-split", plugin_train("pl_lnet3:build", "pl_lempty:load"), "empty test split",
         {"pl_lnet3.py": _NET, "pl_lempty.py": _loader(xt="x[:0]", nt=0)}),
    Case("plugin-loader-lengths", plugin_train("pl_lnet4:build", "pl_llen:load"), "do not fit",
         {"pl_lnet4.py": _NET, "pl_llen.py": _loader(y="torch.zeros(19, dtype=torch.long)")}),
    Case("plugin-loader-test-shape", plugin_train("pl_lnet5:build", "pl_lshape:load"), "differ in shape",
         {"pl_lnet5.py": _NET, "pl_lshape.py": _loader(xt="torch.randn(5, 1, 39)")}),
    Case("plugin-loader-raises", plugin_train("pl_lnet6:build", "pl_lraise:load"), "pl_lraise:load raised OSError",
         {"pl_lnet6.py": _NET, "pl_lraise.py": "def load(data_dir):\n    raise OSError('no such file: d.csv')\n"}),
    Case("plugin-loader-returns-list", plugin_train("pl_lnet7:build", "pl_llist:load"), "returned list",
         {"pl_lnet7.py": _NET, "pl_llist.py": "def load(data_dir):\n    return [1, 2]\n"}),
    Case("study-plugin-builder-raises", ["study", "create", "s.yaml", "--storage", SQLITE], "pl_sraise:build raised",
         {"s.yaml": lambda tmp: study_with_base({"model": {"name": "pl_sraise:build"}}),
          "pl_sraise.py": "def build(width, input_shape, num_classes):\n    raise KeyError('x')\n"}),
    Case("worker-plugin-source-changed", ["study", "worker", "plug", "--storage", TDB, "--n-trials", "1"],
         "the source of pl_changed:build changed since study 'plug' was created", setup=_changed_plugin_study),
]


def _write(tmp: Path, files: dict[str, Content]) -> None:
    for rel, content in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content = content(tmp)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def listing(root: Path) -> list[tuple[str, str]]:
    """Every path under ``root`` with the hash of its bytes ('dir' for folders).

    SQLite's ``-wal``/``-shm`` companions are left out: they exist while a connection is open
    and say nothing about what is stored (the database file's bytes do).
    """
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out.append((os.path.relpath(os.path.join(dirpath, d), root), "dir"))
        for f in filenames:
            if f.endswith(("-wal", "-shm")):
                continue
            p = os.path.join(dirpath, f)
            out.append((os.path.relpath(p, root), hashlib.sha256(Path(p).read_bytes()).hexdigest()))
    return sorted(out)


def _offline(*args, **kwargs):
    raise urllib.error.URLError("no network in tests")


def _never_serve(self, *args, **kwargs):
    raise AssertionError("the dashboard started serving: the bad input was accepted")


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    return Templates(tmp_path_factory.mktemp("templates"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, capsys, monkeypatch, templates):
    if case.skip:
        pytest.skip(case.skip)
    monkeypatch.chdir(tmp_path)
    for var in ("SDD_OPT_STORAGE", "SDD_OPT_STORAGE_PASSWORD", "SDD_OPT_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    monkeypatch.setattr(socketserver.BaseServer, "serve_forever", _never_serve)
    _write(tmp_path, case.files)
    if case.setup:
        case.setup(tmp_path, templates)
    if case.id == "out-unwritable":
        (tmp_path / "ro").chmod(0o500)
    before = listing(tmp_path)

    capsys.readouterr()  # what making a template printed
    argv = [a.replace("{busy}", str(busy_port())) for a in case.argv]
    code, out, err = run_cli(capsys, *argv)

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


def test_read_only_commands_leave_an_optuna_database_byte_identical(tmp_path, capsys, monkeypatch, templates):
    monkeypatch.chdir(tmp_path)
    with_db(tmp_path, templates)
    before = listing(tmp_path)
    for argv in (["study", "list"], ["study", "status", "tiny"], ["study", "pareto", "tiny"]):
        code, out, err = run_cli(capsys, *argv, "--storage", TDB)
        assert code == 0, (argv, out, err)
        assert listing(tmp_path) == before, argv


def test_a_name_stored_before_the_rule_stays_readable_and_its_report_stays_here(tmp_path, capsys, monkeypatch):
    from sdd_opt.study.runner import create_or_resume
    from sdd_opt.study.spec import parse_study
    from sdd_opt.study.storage import open_storage

    work = tmp_path / "a/b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    url = "sqlite:///studies.db"
    spec = parse_study(tiny_study(work, name="../../x"), "s.yaml")
    create_or_resume(spec, open_storage(url), url)  # stored by an sdd-opt without the name rule
    code, out, err = run_cli(capsys, "study", "status", "../../x", "--storage", url)
    assert code == 0 and "../../x" in out, err
    code, out, err = run_cli(capsys, "report", "../../x", "--storage", url, "--no-trial-figures")
    assert code == 0, err
    assert (work / "x-report.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_the_dashboard_note_stores_no_password(tmp_path):
    from sdd_opt.study.runner import study_note
    from sdd_opt.study.spec import parse_study

    note = study_note(parse_study(tiny_study(tmp_path), "s.yaml"), "postgresql+psycopg://user:S3c%2Fret@db.example/sdd")
    assert "S3c" not in note and "***" not in note
    assert "postgresql+psycopg://user@db.example/sdd" in note


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_a_raw_at_and_slash_in_sdd_opt_storage_is_refused_unprinted(scheme, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDD_OPT_STORAGE", f"{scheme}://root:p@ss/w0rd@127.0.0.1:1/test")
    code, out, err = run_cli(capsys, "study", "list")
    assert code == 2 and err.strip().startswith("error: $SDD_OPT_STORAGE: the password holds a raw '@'"), err
    assert "ss/w0rd" not in out + err and "127.0.0.1" not in out + err
    assert list(tmp_path.iterdir()) == []


def test_the_password_from_the_environment_may_hold_any_character(tmp_path, capsys, monkeypatch):
    """It is inserted into the parsed URL (percent-encoded there), never printed."""
    from sqlalchemy.engine import make_url

    from sdd_opt.study.storage import resolve_url

    monkeypatch.setenv("SDD_OPT_STORAGE_PASSWORD", "p@ss/w0rd#?")
    url = resolve_url("postgresql+psycopg://root@127.0.0.1:1/test")
    assert make_url(url).password == "p@ss/w0rd#?" and make_url(url).host == "127.0.0.1"
    monkeypatch.setenv("SDD_OPT_STORAGE", url)  # as `study run --jobs` hands it to its workers: accepted again
    assert resolve_url(None) == url
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "study", "list", "--storage", "postgresql+psycopg://root@127.0.0.1:1/test")
    assert code == 2 and "cannot open storage" in err
    assert "w0rd" not in out + err and "p%40ss" not in out + err
