"""The run's key numbers as plain text lines, read from the artifacts (``bongain numbers``).

README quotes these lines; a reader reruns the pipeline and ``bongain numbers`` to check them. Nothing here
computes a statistic of its own: every number is read from a stage's table (gains, features, fit
comparison, allocation, training logs, Snakemake's benchmark files) or summarised from it (min, max, median,
count), and each block names the artifact it reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from bongain.constants import CELL_KEYS
from bongain.report.format import fmt, fmt_ci
from bongain.report.recipes import STATISTICS, recipe_summary
from bongain.report.strategies import strategy_summary


def _cells_table(results: Path, name: str, schema: str) -> pl.DataFrame:
    """``name`` (a path below a cell's folder) of every cell of a run, concatenated."""
    from bongain.io import read_parquet

    paths = sorted((results / "cells").glob(f"*/*/*/{name}"))
    if not paths:
        raise FileNotFoundError(f"no {name} under {results / 'cells'}: run the workflow first")
    return pl.concat([read_parquet(p, schema) for p in paths], how="diagonal_relaxed")


def gains_lines(gains: pl.DataFrame, rm: str | None = None) -> list[str]:
    """Range of the cells' gains and the median half-width of their CIs (one reward model's gains tables,
    k = N)."""
    last = gains.sort([*CELL_KEYS, "k"]).group_by(CELL_KEYS, maintain_order=True).last()
    half = ((last["gain_hi"] - last["gain_lo"]) / 2).median()
    src = f"cells/*/*/*/gains/{rm}.parquet" if rm else "cells/*/*/*/gains/*.parquet"
    return [
        f"gains{f' under RM {rm}' if rm else ''} (best-of-N minus pass@1, test split, {last.height} cells): "
        f"{fmt(last['gain'].min())} .. {fmt(last['gain'].max())}, median CI half-width {fmt(half)} "
        f"({src})"
    ]


def oracle_lines(gains: pl.DataFrame) -> list[str]:
    """The cells' oracle gaps (pass@N - pass@1, test split; any reward model's gains tables, k = N)."""
    last = gains.sort([*CELL_KEYS, "k"]).group_by(CELL_KEYS, maintain_order=True).last()
    gap = last["gain_oracle"]
    floor = float(last["gap_floor"][0])
    half = ((last["gain_oracle_hi"] - last["gain_oracle_lo"]) / 2).median()
    return [
        f"oracle gap (pass@N minus pass@1, test split, {last.height} cells): {fmt(gap.min())} .. "
        f"{fmt(gap.max())}, mean {fmt(gap.mean())}, median CI half-width {fmt(half)}; "
        f"{int((gap <= 1e-12).sum())} cells without a gap, {int((gap < floor).sum())} below the efficiency "
        f"floor {fmt(floor)} (gain_oracle)"
    ]


def rm_lines(summary: pl.DataFrame, agreement: pl.DataFrame | None = None) -> list[str]:
    """Per reward model: pooled and median efficiency, mean within-prompt AUC (``fit/rm_summary.parquet``);
    agreement of the cells' gains between reward models and with the oracle gap (``fit/rm_agreement``)."""

    def ci(r: Mapping[str, Any], col: str) -> str:
        return fmt_ci(r[col], r[f"{col}_lo"], r[f"{col}_hi"])

    lines = [
        f"RM {r['rm']}: mean gain {fmt(r['gain_mean'])} of mean oracle gap {fmt(r['gain_oracle_mean'])}, "
        f"pooled efficiency {ci(r, 'pooled_efficiency')}, median efficiency {fmt(r['efficiency_median'])} "
        f"over {r['n_efficiency']} cells with a gap >= {fmt(r['gap_floor'])}; within-prompt AUC mean "
        f"{ci(r, 'auc_mean')}, median {fmt(r['auc_median'])} ({r['n_auc']} cells)"
        for r in summary.iter_rows(named=True)
    ]
    if agreement is not None:
        lines += [
            f"agreement of per-cell gains, {r['a']} vs {r['b']}: Spearman "
            f"{fmt_ci(r['spearman'], r['spearman_lo'], r['spearman_hi'])} ({r['n_cells']} cells)"
            for r in agreement.iter_rows(named=True)
        ]
    return lines


def recipe_lines(features: pl.DataFrame, gains: pl.DataFrame, chains: Mapping[str, Any]) -> list[str]:
    """Per base model and method: pass@1, answer diversity, agreement and gain (mean over tasks, CI), and
    the change of pass@1 and gain vs the model as shipped (the report's post-training section)."""
    summary, level = recipe_summary(features, gains, chains)
    lines = [f"recipes (mean over tasks, {fmt(level)} CI; change vs as shipped):"]
    for r in summary.iter_rows(named=True):
        parts = [f"{s} {fmt_ci(r[s], r[f'{s}_lo'], r[f'{s}_hi'])}" for s in STATISTICS]
        deltas = [
            f"d_{s} {fmt_ci(r[f'd_{s}'], r[f'd_{s}_lo'], r[f'd_{s}_hi'])}"
            for s in ("pass1", "gain")
            if r[f"d_{s}"] is not None
        ]
        lines.append(
            f"  {r['model']} / {r['method']} ({r['chain'] or 'as shipped'}): " + "; ".join(parts + deltas)
        )
    return lines


def _target_name(r: Mapping[str, Any]) -> str:
    return str(r["target"]) if r["rm"] is None else f"{r['target']} under RM {r['rm']}"


def fit_lines(comparison: pl.DataFrame) -> list[str]:
    """Per target (the oracle gap, each reward model's gain; ``fit/comparison.parquet``): the headline row
    with its trivial baseline (the validation gap through the same procedure) and pass@1 baseline, the
    no-fit Spearmans, and the configured ridge under every held-out scheme. The configured target
    (``fit_target``) comes first and its headline line starts with ``headline (``."""
    lines = []
    targets = comparison.select("target", "rm", "fit_target").unique(maintain_order=True)
    targets = targets.sort("fit_target", descending=True, maintain_order=True)
    for target, rm, is_fit in targets.rows():
        same_rm = pl.col("rm").is_null() if rm is None else pl.col("rm") == rm
        rows = comparison.filter((pl.col("target") == target) & same_rm)
        head = rows.filter(pl.col("headline"))
        if not head.height:
            continue
        h = head.row(0, named=True)
        name = _target_name(h)
        lines.append(
            f"{'headline' if is_fit else 'target'} ({h['scheme']}, {h['n_folds']} groups, {h['n_cells']} "
            f"cells), {name}: ridge Spearman {fmt(h['spearman'])}, permutation p = {fmt(h['perm_p'])} "
            f"({h['n_perm']} permutations, {h['null_kind']}), null q95 {fmt(h['null_q95'])}, noise ceiling "
            f"{fmt(h['noise_ceiling'])}"
        )

        def one(scheme: str, predictor: str, rows: pl.DataFrame = rows) -> dict[str, Any] | None:
            r = rows.filter((pl.col("scheme") == scheme) & (pl.col("predictor") == predictor))
            return r.row(0, named=True) if r.height else None

        gap, base = one(h["scheme"], "gap"), one(h["scheme"], "baseline")
        if gap is not None:
            lines.append(
                f"  trivial baseline (validation gap, same procedure): Spearman {fmt(gap['spearman'])}, "
                f"p = {fmt(gap['perm_p'])}; ridge - trivial "
                f"{fmt_ci(h['delta_trivial'], h['delta_trivial_lo'], h['delta_trivial_hi'])}"
            )
        if base is not None:
            lines.append(
                f"  pass@1 baseline (same procedure): Spearman {fmt(base['spearman'])}, "
                f"p = {fmt(base['perm_p'])}"
            )
        for predictor, what in (("baseline", "pass@1"), ("gap", "validation gap")):
            raw = one("raw", predictor)
            if raw is not None:
                lines.append(
                    f"  {what} vs {target} (no fit): Spearman {fmt(raw['spearman'])}, two-sided p = "
                    f"{fmt(raw['perm_p'])}"
                )
        ridge = rows.filter((pl.col("predictor") == "ridge") & (pl.col("scheme") != "raw"))
        for r in ridge.iter_rows(named=True):
            same = r.get("same_as")
            lines.append(
                f"  ridge, {r['scheme']}: Spearman {fmt(r['spearman'])}, p = {fmt(r['perm_p'])}, "
                f"null q95 {fmt(r['null_q95'])}, noise ceiling {fmt(r['noise_ceiling'])}"
                + (f" (same folds as {same})" if same else "")
            )
    return lines


def strategy_fit_lines(table: pl.DataFrame) -> list[str]:
    """The ridge under the headline scheme per strategy's gain as target (``fit/strategy_fit.parquet``)."""

    def name(r: Mapping[str, Any]) -> str:
        return str(r["strategy"]) if r["rm"] is None else f"{r['strategy']}:{r['rm']}"

    parts = [
        f"{name(r)} {fmt(r['spearman'])} (p = {fmt(r['perm_p'])}){' best' if r['best'] else ''}"
        if r["skipped"] is None
        else f"{name(r)} skipped"
        for r in table.iter_rows(named=True)
    ]
    return [f"predictor per strategy's gain ({table['scheme'][0]}, held-out Spearman): " + ", ".join(parts)]


def allocation_lines(summary: pl.DataFrame) -> list[str]:
    """Planned vs uniform accuracy per budget (``fit/allocation_summary.parquet``)."""
    return [
        f"allocation, budget {r['budget']} samples/prompt over {r['n_cells']} cells: planned - uniform = "
        f"{fmt_ci(r['diff'], r['diff_lo'], r['diff_hi'])} accuracy on the test split"
        for r in summary.sort("budget").iter_rows(named=True)
    ]


def strategy_lines(gains: pl.DataFrame) -> list[str]:
    """How many cells each selection strategy wins at k = N (the report's strategy comparison)."""
    if "bom_at_k" not in gains.columns:
        return []
    best = strategy_summary(gains)["best"].value_counts(sort=True)
    counts = ", ".join(f"{r['best']} {r['count']}" for r in best.iter_rows(named=True))
    return [f"best selection strategy at k = N (cells): {counts}"]


def training_lines(logs: Sequence[pl.DataFrame]) -> list[str]:
    """Per adapter: steps, examples, first and last loss, wall time (``posttrain/*/*/train_log.parquet``)."""
    lines = []
    for log in logs:
        r0, r1 = log.row(0, named=True), log.row(log.height - 1, named=True)
        lines.append(
            f"  trained {r0['model']}/{r0['recipe']} ({r0['kind']}): {r1['step']} steps on "
            f"{r0['n_examples']} examples, loss {fmt(r0['loss'])} -> {fmt(r1['loss'])}, {r1['wall_s']:.0f} s"
        )
    return ["post-training:", *lines] if lines else []


def job_benchmarks(results: Path) -> pl.DataFrame:
    """One row per job from Snakemake's benchmark files under ``<results>/benchmarks/<rule>/...``:
    ``rule``, ``wildcards`` (the file's path below the rule's folder, e.g. ``smollm2-135m/base/add2d1d``;
    empty for a rule with one job), ``seconds`` (wall) and ``max_rss_mb`` (also read by
    ``benchmarks/stage_memory.py``)."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule, *rest = tsv.relative_to(results / "benchmarks").with_suffix("").parts
        df = pl.read_csv(tsv, separator="\t", null_values=["-", "NA"])
        rows.append(
            {
                "rule": rule,
                "wildcards": "/".join(rest),
                "seconds": float(df["s"][0]),
                "max_rss_mb": float(df["max_rss"][0] or 0.0),
            }
        )
    schema = {"rule": pl.String, "wildcards": pl.String, "seconds": pl.Float64, "max_rss_mb": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def stage_lines(results: Path) -> list[str]:
    """Summed job wall time per stage from Snakemake's benchmark files (the jobs ran 2 at a time)."""
    jobs = job_benchmarks(results)
    if jobs.is_empty():
        return []
    table = jobs.group_by("rule").agg(jobs=pl.len(), s=pl.col("seconds").sum()).sort("s", descending=True)
    parts = [f"{r['rule']} {r['s']:.0f} s ({r['jobs']})" for r in table.iter_rows(named=True)]
    return [f"summed job time per stage (jobs): {', '.join(parts)}; total {table['s'].sum():.0f} s"]


def run_numbers(results: Path, config: Mapping[str, Any]) -> list[str]:
    """Every line of ``bongain numbers`` for the results folder of a run of ``config``."""
    from bongain.config import primary_reward_model, reward_model_names
    from bongain.io import read_parquet
    from bongain.posttrain.recipes import method_recipe_chains

    results = Path(results)
    rms = reward_model_names(config)
    primary = primary_reward_model(config)
    gains = _cells_table(results, f"gains/{primary}.parquet", "gains")
    features = _cells_table(results, "features.parquet", "features")
    evaluated = gains.select(CELL_KEYS).unique()
    features = features.join(evaluated, on=CELL_KEYS)  # screened cells have features but no gains
    n = gains["n_samples"].max()
    lines = [
        f"cells: {evaluated.height} evaluated ({evaluated['model'].n_unique()} models x "
        f"{evaluated['method'].n_unique()} methods x {evaluated['task'].n_unique()} tasks), "
        f"test prompts per cell {gains['n_prompts'].min()}..{gains['n_prompts'].max()}, N = {n}; "
        f"reward models {', '.join(rms)} (per-cell lines: {primary})",
        *oracle_lines(gains),
    ]
    for rm in rms:
        lines += gains_lines(
            gains if rm == primary else _cells_table(results, f"gains/{rm}.parquet", "gains"), rm
        )
    chains = method_recipe_chains(config)
    if any(chains.get(m) for m in evaluated["method"].to_list()):
        lines += recipe_lines(features, gains, chains)
    logs = [
        read_parquet(p, "posttrain_log")
        for p in sorted((results / "posttrain").glob("*/*/train_log.parquet"))
    ]
    lines += training_lines(logs)
    fit = results / "fit"
    if (fit / "comparison.parquet").exists():
        lines += fit_lines(read_parquet(fit / "comparison.parquet", "fit_comparison"))
    if (fit / "rm_summary.parquet").exists():
        agreement = fit / "rm_agreement.parquet"
        lines += rm_lines(
            read_parquet(fit / "rm_summary.parquet", "fit_rm_summary"),
            read_parquet(agreement, "fit_rm_agreement") if agreement.exists() else None,
        )
    if (fit / "strategy_fit.parquet").exists():
        lines += strategy_fit_lines(read_parquet(fit / "strategy_fit.parquet", "fit_strategy"))
    if (fit / "allocation_summary.parquet").exists():
        lines += allocation_lines(read_parquet(fit / "allocation_summary.parquet", "fit_allocation_summary"))
    lines += strategy_lines(gains)
    lines += stage_lines(results)
    return lines
