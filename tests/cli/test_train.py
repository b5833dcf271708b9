"""``sdd-opt train`` stops on SIGTERM as on Ctrl-C: finished levels stay, ``--resume`` finishes the run."""

import os
import signal
import threading
import time

from sdd_opt.rundir import read_curve
from sdd_opt.testing import run_cli


def _sigterm_after_first_level(curve, deadline=60.0):
    def watch():
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if curve.exists() and read_curve(curve) and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.02)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_sigterm_stops_train_like_ctrl_c_and_resume_finishes(tiny_overrides, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--quiet", *[a for o in tiny_overrides for a in ("--set", o)],
            "--set", "prune.levels=6", "--set", "train.epochs=6"]
    watcher = _sigterm_after_first_level(out / "curve.csv")
    code, _, err = run_cli(capsys, *args)
    watcher.join()
    assert code == 143, err
    assert "terminated (SIGTERM)" in err and "continue with --resume" in err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again
    done = len(read_curve(out / "curve.csv"))
    assert 1 <= done < 7

    code, stdout, err = run_cli(capsys, *args, "--resume")
    assert code == 0, err
    assert f"resuming {out} at level {done}/6" in stdout
    assert [r["level"] for r in read_curve(out / "curve.csv")] == list(range(7))
