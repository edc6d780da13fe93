"""``bongain`` command line: list cells, inspect Parquet artifacts, view a cell's samples joined with their
grades and rewards, print a run's key numbers and the artifact schemas, plan allocations, write the SLURM
profile."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from bongain import config as bconf
from bongain import schemas
from bongain.io import ArtifactError, read_parquet


def summarise(df: pl.DataFrame, head: int = 5) -> str:
    """Schema, row count, head and per-column statistics of a table, as text."""
    lines = [f"rows: {df.height}", f"columns: {df.width}", "", "schema:"]
    lines += [f"  {name}: {dtype}" for name, dtype in df.schema.items()]
    with pl.Config(tbl_cols=-1, tbl_rows=head, fmt_str_lengths=60, tbl_width_chars=160):
        lines += ["", f"head({head}):", str(df.head(head)), "", "column statistics:", str(column_stats(df))]
    return "\n".join(lines)


def column_stats(df: pl.DataFrame) -> pl.DataFrame:
    """One row per column: nulls, distinct values, and min/mean/max for numeric columns."""
    rows = []
    for name, dtype in df.schema.items():
        s = df[name]
        numeric = dtype.is_numeric() or dtype == pl.Boolean
        num = s.cast(pl.Float64) if numeric else None
        rows.append(
            {
                "column": name,
                "dtype": str(dtype),
                "nulls": s.null_count(),
                "distinct": s.n_unique(),
                "min": num.min() if num is not None else None,
                "mean": num.mean() if num is not None else None,
                "max": num.max() if num is not None else None,
            }
        )
    return pl.DataFrame(rows, schema_overrides={"min": pl.Float64, "mean": pl.Float64, "max": pl.Float64})


def _cmd_cells(args: argparse.Namespace) -> int:
    cfg = bconf.load_config(args.configfile)
    results = cfg["results_dir"]
    rm = bconf.primary_reward_model(cfg)
    for c in bconf.cells(cfg):
        target = f"{results}/cells/{c.slug}/gains/{rm}.parquet" if args.paths else c.slug
        print(target)
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from bongain.report.view import joined_view

    order: list[str] = []
    results = args.results
    if args.configfile.exists() or results is None:
        cfg = bconf.load_config(args.configfile)
        order = bconf.reward_model_names(cfg)
        results = results or cfg["results_dir"]
    try:
        view = joined_view(results, args.cell, args.split, order)
    except (ArtifactError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.prompt is not None:
        view = view.filter(pl.col("prompt_id") == args.prompt)
        if view.is_empty():
            print(f"error: no prompt {args.prompt!r} in {args.cell}/{args.split}", file=sys.stderr)
            return 1
    if args.out is not None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".csv":
            view.write_csv(out)
        else:
            view.write_parquet(out)
        print(f"wrote {view.height} rows x {view.width} columns to {out}")
        return 0
    rows = view.height if args.rows < 0 else args.rows
    print(f"== {results}/cells/{args.cell}/{args.split}: {view.height} samples")
    if args.prompt is not None and "question" in view.columns:
        print(f"question: {view['question'][0]}\ngold: {view['gold'][0]}")
    with pl.Config(tbl_cols=-1, tbl_rows=rows, fmt_str_lengths=args.width, tbl_width_chars=250):
        print(view.drop("question", "gold", strict=False))
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    for path in args.paths:
        try:
            df = read_parquet(path)
        except ArtifactError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"== {path}")
        print(summarise(df, args.head))
    return 0


def _cmd_schemas(args: argparse.Namespace) -> int:
    print(schemas.markdown())
    return 0


def _cmd_allocate(args: argparse.Namespace) -> int:
    from bongain.fit.allocation import plan_table

    curve = Path(args.results) / "fit" / "curve.parquet"
    try:
        table = plan_table(read_parquet(curve, "fit_curve"), args.budget, args.cells)
    except (ArtifactError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"plan for {args.budget} samples per prompt on average, {args.cells} cells of {curve}:")
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=3):
        print(table)
    print(f"samples per prompt used: {table['n_planned'].mean():.3f} (budget {args.budget})")
    return 0


def _cmd_numbers(args: argparse.Namespace) -> int:
    from bongain.report.numbers import run_numbers

    cfg = bconf.load_config(args.configfile)
    results = Path(args.results or cfg["results_dir"])
    try:
        lines = run_numbers(results, cfg)
    except (ArtifactError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"# bongain numbers: {results} ({args.configfile})")
    print("\n".join(lines))
    return 0


def _cmd_slurm_profile(args: argparse.Namespace) -> int:
    from bongain import slurm

    try:
        kinds = slurm.cluster_kinds(
            **{
                f"{prefix}{key}": getattr(args, f"{prefix}{key}")
                for key in ("partition", "account", "qos")
                for prefix in ("", "cpu_", "gpu_")
            },
            cpu_constraint=args.cpu_constraint,
            gpu_constraint=args.gpu_constraint,
            gpu_model=args.gpu_model,
        )
        path = slurm.write_profile(
            kinds,
            name=args.name,
            status_command=args.status_command,
            jobs=args.jobs,
            config_dir=args.config_dir,
            template=args.template or slurm.TEMPLATE,
            force=args.force,
        )
    except slurm.ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    warning = slurm.check_preemption(kinds)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"wrote {path}\n"
        f"GPU jobs: partition {kinds['gpu']['partition']}; CPU jobs: partition {kinds['cpu']['partition']}\n"
        f"run the workflow on the cluster with: snakemake --profile {args.name} [--configfile ...]"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bongain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cells", help="list the cells (model/method/task) of a config")
    p.add_argument("--configfile", type=Path, default=Path("config/config.yaml"))
    p.add_argument(
        "--paths", action="store_true", help="print each cell's gains target (fit.reward_model's) instead"
    )
    p.set_defaults(func=_cmd_cells)
    p = sub.add_parser("inspect", help="summarise Parquet artifacts: schema, rows, head, column stats")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--head", type=int, default=5)
    p.set_defaults(func=_cmd_inspect)
    p = sub.add_parser(
        "view",
        help="one cell's split, one row per sample: completion, answer, correctness, length, logprob, "
        "entropy, self-certainty and every reward model's reward (best_<rm>: what best-of-N picks from)",
    )
    p.add_argument("cell", help="the cell as model/method/task (see `bongain cells`)")
    p.add_argument("split", nargs="?", default="test", help="split (default: test, the scored one)")
    p.add_argument("--configfile", type=Path, default=Path("config/config.yaml"))
    p.add_argument("--results", default=None, help="results folder (default: the config's results_dir)")
    p.add_argument("--prompt", default=None, help="only this prompt_id (printed with question and gold)")
    p.add_argument("--out", default=None, help="write the whole table to this .parquet or .csv instead")
    p.add_argument("--rows", type=int, default=24, help="rows printed (-1: all)")
    p.add_argument("--width", type=int, default=40, help="characters of a text cell printed")
    p.set_defaults(func=_cmd_view)
    p = sub.add_parser("numbers", help="print a run's key numbers (what README quotes) from its artifacts")
    p.add_argument("--configfile", type=Path, default=Path("config/config.yaml"))
    p.add_argument("--results", default=None, help="results folder (default: the config's results_dir)")
    p.set_defaults(func=_cmd_numbers)
    p = sub.add_parser("schemas", help="print the documented artifact schemas as Markdown")
    p.set_defaults(func=_cmd_schemas)
    p = sub.add_parser(
        "allocate", help="plan samples per cell for a budget from the fit's predicted gain curves"
    )
    p.add_argument("--budget", type=float, required=True, help="average samples per prompt over the cells")
    p.add_argument("--results", default="results", help="results folder of the run (default: results)")
    p.add_argument("--cells", choices=["all", "evaluated", "screened"], default="all")
    p.set_defaults(func=_cmd_allocate)
    p = sub.add_parser(
        "slurm-profile",
        help="write the SLURM cluster profile to ~/.config/snakemake/NAME/ (run: snakemake --profile NAME)",
    )
    for kind, what in (("", "both kinds of job"), ("cpu-", "CPU jobs"), ("gpu-", "GPU jobs")):
        p.add_argument(f"--{kind}partition", help=f"SLURM partition of {what}")
        p.add_argument(f"--{kind}account", help=f"SLURM account of {what} (left out: the executor guesses)")
        p.add_argument(f"--{kind}qos", help=f"SLURM QoS of {what}")
    p.add_argument("--cpu-constraint", help="node features CPU jobs need (sbatch -C)")
    p.add_argument("--gpu-constraint", help="node features GPU jobs need (sbatch -C), e.g. a GPU memory size")
    p.add_argument("--gpu-model", help="GPU model of GPU jobs (sbatch --gpus=MODEL:N), e.g. a100")
    p.add_argument(
        "--status-command",
        choices=["sacct", "squeue"],
        help="how job states are polled (default: sacct where it works; squeue without slurmdbd)",
    )
    p.add_argument("--jobs", type=int, help="jobs queued or running at once (template: 100)")
    p.add_argument("--name", default="slurm", help="profile name, used as --profile NAME (default: slurm)")
    p.add_argument(
        "--config-dir",
        type=Path,
        help="Snakemake config folder (default: $XDG_CONFIG_HOME/snakemake or ~/.config/snakemake)",
    )
    p.add_argument("--template", type=Path, default=None, help="profile template (default: profiles/slurm)")
    p.add_argument("--force", action="store_true", help="replace an existing profile of that name")
    p.set_defaults(func=_cmd_slurm_profile)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except bconf.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
