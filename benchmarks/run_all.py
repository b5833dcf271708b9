"""Run every benchmark at one size and print their tables (``make bench`` runs the full size).

    python -m benchmarks.run_all              # full: the sizes quoted in docs/performance.md (~15 min on 2 cores)
    python -m benchmarks.run_all --quick      # a few minutes: fewer reps, a shorter curve, no compile in the curves
    python -m benchmarks.run_all --tiny       # seconds: synthetic data, tiny models (what the tests run)
    python -m benchmarks.run_all --device cuda --only throughput   # GPU machine: CIFAR-10 ResNet-18 too

Each benchmark line is printed before it runs (``$ python -m benchmarks.<name> ...``) so that
any table can be reproduced on its own.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

NAMES = ("throughput", "mask_overhead", "precision", "storage_overhead", "worker_scaling", "fidelity",
         "search_efficiency")


def plan(size: str, device: str) -> list[tuple[str, list[str]]]:
    """(benchmark, argv) pairs for a size."""
    if size == "tiny":
        return [
            ("throughput", ["--data", "synthetic1d", "--model", "cnn1d", "--width", "8", "--train-size", "256",
                            "--epochs", "1", "--reps", "1"]),
            ("throughput", ["--data", "synthetic_images", "--model", "resnet18", "--width", "4", "--train-size", "64",
                            "--batch-size", "32", "--epochs", "1", "--reps", "1", "--variants", "plain:fp32,sdd:fp32"]),
            ("mask_overhead", ["--data", "synthetic1d", "--width", "8", "--steps", "3", "--reps", "1"]),
            ("precision", ["--data", "synthetic1d", "--width", "8", "--reps", "1", "--step-variants", "fp32,bf16",
                           "--curve-variants", "fp32,bf16", "--seeds", "0", "--epochs", "1", "--levels", "1"]),
            ("storage_overhead", ["--storages", "sqlite", "--workers", "1", "--trials", "1", "--latency-reps", "2",
                                  "--data", "synthetic1d", "--epochs", "1", "--levels", "1", "--width", "8"]),
            ("worker_scaling", ["--workers", "1,2", "--trials", "2", "--data", "synthetic1d", "--epochs", "1",
                                "--levels", "1", "--width", "8"]),
            ("fidelity", ["--tiny"]),
            ("search_efficiency", ["--tiny", "--jobs", "1", "--n-trials", "3", "--seeds", "0"]),
        ]
    quick = size == "quick"
    image_data = "cifar10" if device.startswith("cuda") else "synthetic_images"
    image_width = "64" if device.startswith("cuda") else "16"
    out = [
        ("throughput", ["--data", "mnist1d", "--model", "cnn1d", "--epochs", "2", "--reps", "3" if quick else "5"]),
        ("throughput", ["--data", image_data, "--model", "resnet18", "--width", image_width, "--epochs", "1",
                        "--reps", "2" if quick else "3"]),
        ("mask_overhead", ["--data", "mnist1d", "--model", "cnn1d", "--steps", "60", "--reps", "5" if quick else "7"]),
        ("mask_overhead", ["--data", "synthetic_images", "--model", "resnet18", "--width", "16", "--steps", "5",
                           "--reps", "3" if quick else "5"]),
    ]
    out.append(("precision", ["--reps", "3", "--seeds", "0,1", "--epochs", "10", "--levels", "6",
                              "--curve-variants", "fp32,bf16"] if quick else
                ["--reps", "5", "--seeds", "0,1,2", "--epochs", "20", "--levels", "8"]))
    out.append(("storage_overhead", ["--data", "synthetic1d", "--width", "32", "--epochs", "10", "--levels", "6",
                                     "--trials", "2", "--latency-reps", "5"]
                                    if quick else ["--trials", "2", "--latency-reps", "10"]))
    out.append(("worker_scaling", ["--trials", "4", "--epochs", "5", "--levels", "4"] if quick else ["--reps", "2"]))
    # The two study-level benchmarks run whole studies (full: ~8 + ~19 + ~20 min on 2 cores).
    out.append(("fidelity", ["--parts", "A", "--n-trials", "6", "--set", "train.epochs=8"] if quick else
                ["--parts", "A,B", "--grid", "axes", "--seeds", "0,1"]))
    out.append(("search_efficiency", ["--n-trials", "8", "--seeds", "0", "--epochs", "4"] if quick else []))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.split("\n\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_const", dest="size", const="tiny", help="seconds; for the tests")
    size.add_argument("--quick", action="store_const", dest="size", const="quick", help="a few minutes")
    p.add_argument("--only", default=",".join(NAMES), help=f"comma list out of {', '.join(NAMES)}")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default="storage/data")
    args = p.parse_args(argv)
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = only - set(NAMES)
    if unknown:
        p.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")
    import importlib

    t_all = time.perf_counter()
    for name, bench_argv in plan(args.size or "full", args.device):
        if name not in only:
            continue
        # search_efficiency runs several studies at once with one thread each: --threads would oversubscribe.
        threads = [] if name == "search_efficiency" else ["--threads", str(args.threads)]
        bench_argv = bench_argv + ["--device", args.device, *threads, "--data-dir", args.data_dir]
        print(f"\n$ python -m benchmarks.{name} {shlex.join(bench_argv)}\n", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").main(bench_argv)
        print(f"\n({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nall benchmarks: {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
