"""`iufbench sweep` against `iufbench run`, and what the persistent feature cache saves; each arm is
one CLI command timed from outside (wall clock), run back to back in this order.

    .venv/bin/python benchmarks/sweep_scaling.py parallel [--methods uniad,iuf,uniad_ewc,joint] [--seeds 0,1] [--epochs N] [--sweep-first]
        `run` with 2 torch threads, then `sweep` with 2 one-thread jobs (--cpus-per-job 1), same
        protocol (demo), methods and seeds; the feature cache is warmed first (for 1 and 2 threads,
        part of the key on the CPU) so both arms read features from it and the arms differ only in
        how training is spread over the cores
    .venv/bin/python benchmarks/sweep_scaling.py jobs [--methods uniad,iuf,joint,uniad_ewc] [--seeds 0] [--epochs N] [--passes 2]
        `run --jobs 1` with 2 torch threads against `run --jobs 2` (two one-thread jobs), same
        protocol (demo), methods and seeds, cache warmed first as in `parallel`; the passes
        alternate which arm goes first, so drift of a shared machine hits both
    .venv/bin/python benchmarks/sweep_scaling.py cache --data-root ../shared/data/deeppcb [--methods padim,patchcore,uniad]
        deeppcb_6_1's feature bank built with an empty cache (extracted, as every run did before the
        cache existed), then with the warm cache (read); prints both and the feature time that one
        run per method spends without and with the cache (training is the same in both)
    .venv/bin/python benchmarks/sweep_scaling.py gpu [--methods uniad] [--seeds 0,1,2,3]
        on one GPU: the demo pairs as a sweep with --gpus-per-job 0.25 (four pairs share the GPU)
        against --gpus-per-job 1 (one at a time); prints the throughput ratio

Every part writes under a fresh temporary folder, with its own IUFBENCH_CACHE.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iufbench.records import RunDir

CLI = [sys.executable, "-m", "iufbench.cli"]


# The demo's features into the cache, as a job with this many threads on this device would key them.
WARM = ("import sys, torch; from iufbench.feature_bank import FeatureBank; from iufbench.feature_cache import "
        "FeatureCache; from iufbench.features import FeatureExtractor; from iufbench.protocols import load_protocol, "
        "resolve_objects; p = load_protocol('demo'); d = torch.device(sys.argv[1]); FeatureBank.build("
        "resolve_objects(p), FeatureExtractor(p.backbone), p.image_size, d, False, False, FeatureCache.default(), "
        "'bf16' if d.type == 'cuda' else 'fp32')")


def timed(argv: list[str], threads: int, cache: Path, command: list[str] = CLI) -> float:
    """Wall seconds of one CLI command (its output discarded unless it fails)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "TQDM_DISABLE": "1", "IUFBENCH_CACHE": str(cache)}
    t0 = time.perf_counter()
    done = subprocess.run(command + argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return seconds


def step_seconds(folder: Path) -> float:
    """Training + evaluation seconds the engine recorded for every pair under `folder` (all records)."""
    return sum(step.seconds for record in folder.rglob("record.json")
               if ".pairs" in record.parts or record.parent.name == "run"
               for steps in RunDir(record.parent).read_record().steps.values() for step in steps.values())


def parallel(args: argparse.Namespace, tmp: Path) -> None:
    common = ["--methods", args.methods, "--seeds", args.seeds] + (["--epochs", str(args.epochs)] if args.epochs else [])
    cache = tmp / "cache"
    warm = sum(timed(["cpu"], threads, cache, [sys.executable, "-c", WARM]) for threads in (1, 2))
    arms = {
        "run, 2 threads": lambda: timed(["run", "--protocol", "demo", *common, "--out", str(tmp), "--run-id", "run",
                                         "--jobs", "1", "--no-progress"], 2, cache),
        "sweep, 2 jobs x 1 thread": lambda: timed(["sweep", "--protocols", "demo", *common, "--out", str(tmp / "sweep"),
                                                   "--cpus-per-job", "1", "--no-progress"], 1, cache),
    }
    order = list(arms)[::-1] if args.sweep_first else list(arms)
    wall = {name: arms[name]() for name in order}
    pairs = len(args.methods.split(",")) * len(args.seeds.split(","))
    print(f"demo, {args.methods}, seeds {args.seeds}, epochs {args.epochs or 'fast'}: {pairs} pairs, "
          f"in the order {' then '.join(order)} (cache warm-up {warm:.0f} s, not counted)")
    recorded = {"run, 2 threads": step_seconds(tmp / "run"), "sweep, 2 jobs x 1 thread": step_seconds(tmp / "sweep")}
    for name in arms:
        print(f"{name:<26} wall {wall[name]:8.1f} s   steps recorded {recorded[name]:8.1f} s (sum over pairs)")
    print(f"sweep speed-up (wall): {wall['run, 2 threads'] / wall['sweep, 2 jobs x 1 thread']:.2f}x")


def jobs(args: argparse.Namespace, tmp: Path) -> None:
    common = ["--protocol", "demo", "--methods", args.methods, "--seeds", args.seeds, "--no-progress"] + (
        ["--epochs", str(args.epochs)] if args.epochs else [])
    cache = tmp / "cache"
    warm = sum(timed(["cpu"], threads, cache, [sys.executable, "-c", WARM]) for threads in (1, 2))
    print(f"demo, {args.methods}, seeds {args.seeds}, epochs {args.epochs or 'fast'} (cache warm-up {warm:.0f} s, "
          "not counted)")
    for n in range(args.passes):
        arms = {"--jobs 1, 2 threads": lambda: timed(["run", *common, "--out", str(tmp), "--run-id", f"seq{n}",
                                                      "--jobs", "1"], 2, cache),
                "--jobs 2, 1 thread each": lambda: timed(["run", *common, "--out", str(tmp), "--run-id", f"par{n}",
                                                          "--jobs", "2"], 2, cache)}
        order = list(arms) if n % 2 == 0 else list(arms)[::-1]
        wall = {name: arms[name]() for name in order}
        print(f"pass {n + 1} ({' then '.join(order)}): " + ", ".join(f"{k} {v:.1f} s" for k, v in wall.items())
              + f"; ratio {wall['--jobs 1, 2 threads'] / wall['--jobs 2, 1 thread each']:.2f}x")


def cache(args: argparse.Namespace, tmp: Path) -> None:
    """What each run spends getting features: built from the images (an empty cache, as every run did
    before the cache existed) and read from the cache (a warm one). N runs of one protocol spend N
    cold builds without the cache, one cold build and N-1 warm ones with it."""
    os.environ["IUFBENCH_CACHE"] = str(tmp / "cache")
    import torch  # noqa: PLC0415

    from iufbench.feature_bank import FeatureBank  # noqa: PLC0415
    from iufbench.feature_cache import FeatureCache  # noqa: PLC0415
    from iufbench.features import FeatureExtractor  # noqa: PLC0415
    from iufbench.protocols import load_protocol, resolve_objects  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    protocol = load_protocol("deeppcb_6_1", data_root=args.data_root)
    objects, extractor, cpu = resolve_objects(protocol), FeatureExtractor(protocol.backbone), torch.device("cpu")
    seconds = {}
    for arm in ("cold", "warm"):
        t0 = time.perf_counter()
        bank = FeatureBank.build(objects, extractor, protocol.image_size, cpu, False, False, FeatureCache.default())
        seconds[arm] = time.perf_counter() - t0
        print(f"{arm}: {seconds[arm]:.1f} s ({len(bank.extracted)} of {len(objects)} objects extracted)")
    n = len(args.methods.split(","))
    before, after = n * seconds["cold"], seconds["cold"] + (n - 1) * seconds["warm"]
    print(f"{n} runs of deeppcb_6_1 ({args.methods}), feature seconds: {before:.1f} without the cache, "
          f"{after:.1f} with it (saved {before - after:.1f} s, {before / after:.2f}x less)")


def gpu(args: argparse.Namespace, tmp: Path) -> None:
    common = ["--protocols", "demo", "--methods", args.methods, "--seeds", args.seeds, "--no-progress"]
    cache_dir = tmp / "cache"
    timed(["cuda"], 1, cache_dir, [sys.executable, "-c", WARM])  # features extracted on CUDA once, outside both arms
    shared = timed(["sweep", *common, "--gpus-per-job", "0.25", "--out", str(tmp / "quarter")], 1, cache_dir)
    whole = timed(["sweep", *common, "--gpus-per-job", "1", "--out", str(tmp / "whole")], 1, cache_dir)
    print(f"--gpus-per-job 1:    {whole:8.1f} s")
    print(f"--gpus-per-job 0.25: {shared:8.1f} s")
    print(f"throughput ratio (0.25 vs 1): {whole / shared:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["parallel", "jobs", "cache", "gpu"])
    parser.add_argument("--methods")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--sweep-first", action="store_true", help="part parallel: time the sweep before the run")
    parser.add_argument("--epochs", type=int, help="epochs per task (default: the fast schedule)")
    parser.add_argument("--data-root", default="../shared/data/deeppcb", help="DeepPCB root (part cache)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (part cache)")
    parser.add_argument("--passes", type=int, default=2, help="part jobs: passes, alternating which arm goes first")
    args = parser.parse_args()
    args.methods = args.methods or {"parallel": "uniad,iuf,uniad_ewc,joint", "jobs": "uniad,iuf,joint,uniad_ewc",
                                    "cache": "padim,patchcore,uniad", "gpu": "uniad"}[args.part]
    if args.part == "gpu" and args.seeds == "0,1":
        args.seeds = "0,1,2,3"
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        {"parallel": parallel, "jobs": jobs, "cache": cache, "gpu": gpu}[args.part](args, Path(tmp))


if __name__ == "__main__":
    main()
