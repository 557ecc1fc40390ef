"""`iufbench` command line: parse arguments and call the engine, the data tools or the report."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from iufbench.errors import ConfigError, IufbenchError


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in _csv(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"seeds must be integers like 0,1,2, got '{text}'") from exc


def _roots(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--root '{pair}' must look like SOURCE=PATH")
        name, path = pair.split("=", 1)
        out[name] = path
    return out


def _training_options(parser: argparse.ArgumentParser) -> None:
    """The training options `run` and `sweep` share."""
    parser.add_argument("--epochs", type=int, help="epochs for every task (overrides the schedule)")
    parser.add_argument("--batch-size", type=int, help="training batch size")
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto = bf16 autocast on CUDA, fp32 on the CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the whole training step (CUDA graphs on CUDA)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iufbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run methods on a protocol and print the ACC/FM table")
    run.add_argument("--protocol", default="demo", help="built-in protocol name or a .yaml path (default: demo)")
    run.add_argument("--methods", default="all", type=_csv,
                     help="comma-separated method names, set names (methods/_sets.yaml, e.g. paper) or 'all'")
    run.add_argument("--seeds", default=[0], type=_seeds, help="comma-separated seeds (default: 0)")
    run.add_argument("--data-root", help="dataset root of a single-source protocol")
    run.add_argument("--dataset", help="reader for a single-source protocol's root (see `iufbench list datasets`)")
    run.add_argument("--root", action="append", default=[], metavar="SOURCE=PATH", help="root of one source")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    run.add_argument("--schedule", default="fast", help="fast (CPU-sized, default) or paper (reference epochs)")
    _training_options(run)
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override any method config key, e.g. --set model.neighbor_mask=[false,false,false]")
    run.add_argument("--backbone", help="timm backbone name (default: the protocol's)")
    run.add_argument("--backbone-weights", help="hub, pypi, random, or a timm state-dict file")
    run.add_argument("--out", type=Path, default=Path("results"), help="folder for run directories")
    run.add_argument("--run-id", help="name of the run directory (default: <protocol>-<time>)")
    run.add_argument("--jobs", default="auto",
                     help="method/seed pairs run at once, each in its own process (Ray) with cores/N threads; "
                          "auto (default): one per core on the CPU when there are 2+ pairs, else 1 (one process, "
                          "all threads)")
    run.add_argument("--resume", action="store_true",
                     help="continue --run-id from its last finished step (starts it if it does not exist yet)")
    run.add_argument("--keep-checkpoints", action="store_true", help="keep every step's checkpoint, not just the last")
    run.add_argument("--flip-auroc", action="store_true", help="reference-code quirk: report 1-AUROC when below 0.5")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars on a terminal, no per-step lines in a redirected log")
    run.add_argument("--tensorboard", action="store_true",
                     help="also write the training curves as TensorBoard event files (needs iufbench[tensorboard])")

    sw = sub.add_parser("sweep", help="protocols x methods x seeds as Ray tasks (local or a cluster), one run "
                                      "directory per protocol")
    sw.add_argument("--suite", help="a suite (suites/*.yaml or a .yaml path): protocols, methods, seeds, schedule; "
                                    "options given here override its fields")
    sw.add_argument("--protocols", type=_csv, help="comma-separated protocol names or .yaml paths")
    sw.add_argument("--methods", type=_csv, help="comma-separated method names, set names (e.g. paper) or 'all'")
    sw.add_argument("--seeds", type=_seeds, help="comma-separated seeds (default: 0)")
    sw.add_argument("--schedule", help="fast (CPU-sized, default) or paper (reference epochs)")
    _training_options(sw)
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any method config key")
    sw.add_argument("--device", default="auto", help="auto (cuda when --gpus-per-job > 0, else cpu), cpu or cuda")
    sw.add_argument("--data-root", help="dataset root of single-source protocols")
    sw.add_argument("--root", action="append", default=[], metavar="SOURCE=PATH",
                    help="root of one source; each protocol takes the roots of its own sources")
    sw.add_argument("--out", type=Path, default=Path("results/sweep"), help="DIR: one run directory DIR/<protocol>/")
    sw.add_argument("--ray-address", help="join a running Ray cluster (HOST:PORT, ray://HOST:10001, auto); "
                                          "default: start Ray on this machine")
    sw.add_argument("--cpus-per-job", type=int, default=1, help="CPU cores (torch threads) per pair (default 1)")
    sw.add_argument("--gpus-per-job", type=float, default=0.0,
                    help="GPUs per pair; fractions share a GPU (0.25: four pairs per GPU). Default 0")
    sw.add_argument("--max-retries", type=int, default=3, help="re-runs of a pair whose worker died (default 3)")
    sw.add_argument("--resume", action="store_true", help="continue the sweep in --out: skip finished pairs, "
                                                          "resume the others from their last finished step")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar")

    cache = sub.add_parser("cache", help="the persistent feature cache (IUFBENCH_CACHE/features)")
    cache.add_argument("cache_command", choices=["list", "clear"])

    bench = sub.add_parser("bench", help="measure training, inference and feature-extraction speed and memory")
    bench.add_argument("--methods", default="uniad,iuf", type=_csv, help="comma-separated method names, or 'all'")
    bench.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    bench.add_argument("--protocol", default="mvtec_14_1", help="shapes and paper schedule to project (no data read)")
    bench.add_argument("--schedule", default="paper", help="model size: paper (reference) or fast (CPU demo)")
    bench.add_argument("--batch-size", type=int, help="training batch (default: the protocol's paper batch)")
    bench.add_argument("--eval-batch-size", type=int, help="scoring batch (default: 32 CPU, 256 CUDA)")
    bench.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    bench.add_argument("--compile", action="store_true", help="torch.compile the whole training step")
    bench.add_argument("--warmup", type=int, help="untimed calls first (default: 1 CPU, 10 CUDA, 30 compiled)")
    bench.add_argument("--repeats", type=int, help="timed repeats; the median is reported (default: 3 CPU, 5 CUDA)")
    bench.add_argument("--steps", type=int, help="calls per timed repeat (default: 1 CPU, 20 CUDA)")
    bench.add_argument("--out", type=Path, help="JSON report path (default: results/bench/<device>-<time>.json)")

    rep = sub.add_parser("report", help="the paper's tables (LaTeX, Markdown, CSV), or one HTML page with tables, "
                                        "figures and run facts, from run directories")
    rep.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    rep.add_argument("--format", default="md", choices=["latex", "md", "csv", "html"],
                     help="html: one self-contained page (both tables, every figure, run facts); needs --out")
    rep.add_argument("--layout", default="table1", choices=["table1", "table2"],
                     help="table1: methods x protocols; table2: the IUF ablations")
    rep.add_argument("--definition", default="paper", choices=["paper", "standard"],
                     help="paper ACC/FM (default) or final ACC / Chaudhry FM")
    rep.add_argument("--with-paper", action="store_true", help="add the paper's reported numbers as labelled rows")
    rep.add_argument("--with-memory", action="store_true",
                     help="add each method's state after the last step (MiB) per protocol")
    rep.add_argument("--methods", help="comma-separated: only these methods of the runs (default: all)")
    rep.add_argument("--out", type=Path, help="file to write (default: print)")

    plot = sub.add_parser("plot", help="curves, heatmaps and the qualitative grid (PNG and PDF)")
    plot.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    plot.add_argument("--out", type=Path, required=True, help="folder for the figures")
    plot.add_argument("--methods", help="comma-separated: only these methods of the runs (default: all)")

    status = sub.add_parser("status", help="progress of runs (finished steps, time, estimate left) from record.json")
    status.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")

    check = sub.add_parser("check", help="fail (exit 1) when a run's scores fall below a stored reference")
    check.add_argument("run", type=Path, metavar="RUN_DIR")
    check.add_argument("--against", type=Path, required=True, help="reference JSON, e.g. results/reference/demo.json")
    check.add_argument("--tolerance", type=float, default=0.5, help="allowed drop in points (x100), default 0.5")
    check.add_argument("--update", action="store_true", help="(re)write the reference from this run")

    lst = sub.add_parser("list", help="list protocols, methods, method sets, suites or datasets")
    lst.add_argument("what", choices=["protocols", "methods", "sets", "suites", "datasets"])

    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    synth = data_sub.add_parser("synth", help="write the synthetic dataset in MVTec layout")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--categories", type=_csv, help="comma-separated subset of the categories")
    synth.add_argument("--size", type=int, help="image side in pixels")
    synth.add_argument("--n-train", type=int)
    synth.add_argument("--n-test-good", type=int)
    synth.add_argument("--n-test-defect", type=int)
    prepare = data_sub.add_parser("prepare", help="convert a public dataset's own layout into the one its protocols read")
    prepare.add_argument("dataset", choices=["deeppcb"], help="deeppcb: a checkout of github.com/tangsanli5201/DeepPCB")
    prepare.add_argument("src", type=Path, metavar="SRC", help="the checkout (the folder holding PCBData/)")
    prepare.add_argument("dst", type=Path, metavar="DST", help="the new dataset root (must not exist)")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from iufbench.protocols import load_protocol  # noqa: PLC0415

    if args.resume and not args.run_id:
        raise ConfigError("--resume needs --run-id NAME (the run directory to continue)")
    backbone = {k: v for k, v in (("name", args.backbone), ("weights", args.backbone_weights)) if v}
    protocol = load_protocol(args.protocol, data_root=args.data_root, roots=_roots(args.root), backbone=backbone,
                             dataset=args.dataset)
    if protocol.backbone.weights != "hub":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm is imported: no 47 s hub retries
    from iufbench import engine  # noqa: PLC0415
    from iufbench.method_sets import expand_methods  # noqa: PLC0415
    from iufbench.metrics import summarise_matrix  # noqa: PLC0415
    from iufbench.records import RunDir  # noqa: PLC0415
    from iufbench.report.summary import format_table  # noqa: PLC0415
    from iufbench.sweep.driver import format_failures  # noqa: PLC0415
    from iufbench.sweep.jobs import resolve_jobs, run_jobs  # noqa: PLC0415

    methods = expand_methods(args.methods)
    overrides = _overrides(args)
    run_id = args.run_id or engine.default_run_id(protocol)
    opts = engine.RunOptions(
        methods=methods, seeds=args.seeds, schedule=args.schedule, overrides=overrides, device=args.device,
        out_dir=args.out, run_id=run_id, resume=args.resume, progress=not args.no_progress,
        tensorboard=args.tensorboard, keep_all_checkpoints=args.keep_checkpoints, flip_auroc=args.flip_auroc, precision=args.precision,
        compile=args.compile,
    )
    jobs = resolve_jobs(args.jobs, args.device, len(methods) * len(args.seeds), RunDir(args.out / run_id), args.resume)
    failed: dict[str, str] = {}
    if jobs == 1:
        run_dir = engine.run(protocol, opts)
    else:
        run_dir, failed = run_jobs(protocol, opts, jobs)
    matrix = run_dir.read_matrix()
    traits = run_dir.read_record().traits
    old_data = {m for m in methods if m in traits and traits[m].uses_old_data}
    print(f"protocol {protocol.name} ({len(protocol.tasks)} tasks, {len(protocol.objects)} objects), "
          f"seeds {args.seeds}, results in {run_dir.path}")
    if not matrix.empty:
        print(format_table(summarise_matrix(matrix, protocol.learned_at()), old_data))
    if failed:
        print(f"iufbench: run: {format_failures(failed)}", file=sys.stderr)
        return 1
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    """--set entries, then the shorthands --epochs, --batch-size, --lr as the config keys they set."""
    overrides = list(args.set)
    for key, value in (("train.epochs", args.epochs), ("train.batch_size", args.batch_size),
                       ("train.lr", args.lr)):
        if value is not None:
            overrides.append(f"{key}={value}")
    return overrides


def cmd_sweep(args: argparse.Namespace) -> int:
    from iufbench.report.runs import load_run  # noqa: PLC0415
    from iufbench.report.summary import format_table  # noqa: PLC0415
    from iufbench.sweep.driver import format_failures, sweep  # noqa: PLC0415
    from iufbench.sweep.plan import SweepOptions  # noqa: PLC0415
    from iufbench.sweep.suite import load_suite  # noqa: PLC0415

    suite = load_suite(args.suite) if args.suite else None
    protocols = args.protocols or (suite.protocols if suite else None)
    if not protocols:
        raise ConfigError("pass --protocols NAME[,NAME...] or --suite NAME (see suites/)")
    opts = SweepOptions(
        protocols=protocols, methods=args.methods or (suite.methods if suite else ["all"]),
        seeds=args.seeds or (suite.seeds if suite else [0]),
        schedule=args.schedule or (suite.schedule if suite else "fast"), overrides=_overrides(args),
        device=args.device, precision=args.precision, compile=args.compile, data_root=args.data_root,
        roots=_roots(args.root), out_dir=args.out, ray_address=args.ray_address, cpus_per_job=args.cpus_per_job,
        gpus_per_job=args.gpus_per_job, max_retries=args.max_retries, resume=args.resume,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    result = sweep(opts)
    for run_dir in result.run_dirs:
        print(f"protocol {run_dir.path.name}: results in {run_dir.path}")
        run = load_run(run_dir.path)
        if not run.summary.empty:
            print(format_table(run.summary, {m for m, t in run.traits.items() if t.uses_old_data}))
    if result.failed:
        print(f"iufbench: sweep: {format_failures(result.failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_cache(args: argparse.Namespace) -> None:
    from iufbench.feature_cache import FeatureCache  # noqa: PLC0415

    cache = FeatureCache.default()
    if args.cache_command == "clear":
        n, size = cache.clear()
        print(f"removed {n} feature entries ({size / 2**20:.1f} MiB) from {cache.root}")
    else:
        print(cache.listing())


def cmd_bench(args: argparse.Namespace) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random backbone weights: nothing to fetch
    import datetime as dt  # noqa: PLC0415

    from iufbench.bench import BenchOptions, format_report, run_bench, write_report  # noqa: PLC0415
    from iufbench.methods import METHODS  # noqa: PLC0415

    methods = METHODS.names() if args.methods == ["all"] else args.methods
    opts = BenchOptions(methods=methods, device=args.device, protocol=args.protocol, schedule=args.schedule,
                        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, precision=args.precision,
                        compile=args.compile, warmup=args.warmup, repeats=args.repeats, steps=args.steps)
    report = run_bench(opts)
    out = args.out or Path("results/bench") / f"{report['device'].replace(':', '')}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    write_report(report, out)
    print(format_report(report))
    print(f"report written to {out}")


def cmd_report(args: argparse.Namespace) -> None:
    from iufbench.report.runs import load_runs  # noqa: PLC0415
    from iufbench.report.tables import report, write  # noqa: PLC0415

    methods = _csv(args.methods) if args.methods else None
    if args.format == "html":
        from iufbench.report.html import write_html  # noqa: PLC0415

        if args.out is None:
            raise ConfigError("--format html writes one file with its figures inside; pass --out report.html")
        write_html(load_runs(args.runs, methods), args.out, args.definition, args.with_paper, args.with_memory)
        print(f"wrote {args.out}")
        return
    write(report(load_runs(args.runs, methods), args.layout, args.format, args.definition, args.with_paper,
                 args.with_memory), args.out)


def cmd_plot(args: argparse.Namespace) -> None:
    from iufbench.report.plots import plot_all  # noqa: PLC0415
    from iufbench.report.runs import load_runs  # noqa: PLC0415

    methods = _csv(args.methods) if args.methods else None
    paths = plot_all(load_runs(args.runs, methods), args.out)
    print(f"wrote {len(paths)} files to {args.out}")


def cmd_status(args: argparse.Namespace) -> None:
    from iufbench.report.progress import status_of  # noqa: PLC0415

    print(status_of(args.runs))


def cmd_check(args: argparse.Namespace) -> int:
    from iufbench.report.check import (compare, format_result, other_cpu, read_reference,  # noqa: PLC0415
                                       tolerance_for, write_reference)
    from iufbench.report.runs import load_run  # noqa: PLC0415

    run = load_run(args.run)
    if args.update:
        write_reference(run, args.against)
        print(f"reference {args.against} written from {args.run}")
        return 0
    reference = read_reference(args.against)
    result = compare(run, reference, args.tolerance)
    print(format_result(result, tolerance_for(reference, args.tolerance),
                        reference["protocol_hash"] != run.record.protocol.hash,
                        reference.get("cpu") if other_cpu(reference) else None))
    return 1 if (result["status"] != "ok").any() else 0


def cmd_list(args: argparse.Namespace) -> None:
    if args.what == "protocols":
        from iufbench.protocols import list_protocols  # noqa: PLC0415

        rows = list_protocols()
    elif args.what == "methods":
        from iufbench.methods import METHODS  # noqa: PLC0415

        rows = [(n, METHODS.help(n)) for n in METHODS.names()]
    elif args.what == "sets":
        from iufbench.method_sets import method_sets  # noqa: PLC0415

        rows = [(n, ", ".join(members)) for n, members in method_sets().items()]
    elif args.what == "suites":
        from iufbench.resources import builtin_names  # noqa: PLC0415
        from iufbench.sweep.suite import load_suite  # noqa: PLC0415

        rows = [(n, load_suite(n).description) for n in builtin_names("suites")]
    else:
        from iufbench.data import DATASETS  # noqa: PLC0415

        rows = [(n, DATASETS.help(n)) for n in DATASETS.names()] + [
            ("synthetic", "built-in generator (iufbench data synth), read as MVTec layout")
        ]
    width = max(len(n) for n, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")


def cmd_data(args: argparse.Namespace) -> None:
    if args.data_command == "prepare":
        from iufbench.data.prepare_deeppcb import prepare_deeppcb  # noqa: PLC0415

        groups = prepare_deeppcb(args.src, args.dst)
        print(f"wrote {len(groups)} DeepPCB groups to {args.dst}: "
              + ", ".join(f"{name} {n_train}+{n_test}" for name, n_train, n_test in groups) + " (train+test pairs)")
        return
    from iufbench.data.synth import SynthSpec, generate  # noqa: PLC0415

    fields = {"categories": tuple(args.categories) if args.categories else None, "image_size": args.size,
              "n_train": args.n_train, "n_test_good": args.n_test_good, "n_test_defect": args.n_test_defect}
    spec = SynthSpec(seed=args.seed, **{k: v for k, v in fields.items() if v is not None})
    out = generate(args.out, spec)
    print(f"wrote {len(spec.categories)} synthetic objects to {out}")


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("timm").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    try:
        commands = {"run": cmd_run, "sweep": cmd_sweep, "cache": cmd_cache, "bench": cmd_bench, "report": cmd_report, "plot": cmd_plot,
                    "status": cmd_status, "check": cmd_check, "list": cmd_list, "data": cmd_data}
        return commands[args.command](args) or 0
    except IufbenchError as exc:
        print(f"iufbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `iufbench status RUN | head`: the reader left early, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
