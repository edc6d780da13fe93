"""The human-readable report: one Markdown file plus PNG figures, rebuilt from the Parquet artifacts.

Every table names the Parquet file(s) its numbers come from. Output is byte-reproducible: tables are
sorted deterministically, floats are printed with 3 decimals, figures are drawn with matplotlib's
default style on the Agg canvas at a fixed size and dpi, and the PNGs carry no software/time metadata.

The report is assembled here from its sections: :mod:`bongain.report.cells` (per cell),
:mod:`bongain.report.crosscell` (the cross-cell predictor), :mod:`bongain.report.compact` (the compact
model), :mod:`bongain.report.recipes` (post-training recipes); figures in :mod:`bongain.report.figures`,
formatting in :mod:`bongain.report.format`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from bongain.report.cells import features_section, gains_section, grading_section
from bongain.report.compact import concentration_section, ols_section, stability_section
from bongain.report.crosscell import (
    coefficients_section,
    comparison_section,
    curve_section,
    headline_section,
    metrics_section,
    predictions_section,
    screen_section,
)
from bongain.report.figures import (
    FIG_BON_CURVES,
    FIG_CONCENTRATION,
    FIG_GAIN_CURVES,
    FIG_HEADROOM,
    FIG_PRED_VS_ACTUAL,
    FIG_STABILITY,
    plot_bon_curves,
    plot_concentration,
    plot_gain_curves,
    plot_headroom,
    plot_predicted_vs_actual,
    plot_stability,
)
from bongain.report.format import CELL_KEYS, MISSING, escape, fmt
from bongain.report.headroom import headroom_section
from bongain.report.recipes import recipes_section
from bongain.report.strategies import (
    allocation_section,
    binned_section,
    scaling_section,
    strategies_section,
    strategy_fit_section,
)
from bongain.schemas import GAINS

#: Target prediction errors of the sample-size advice (config fit.concentration.targets).
DEFAULT_TARGETS: tuple[float, ...] = (0.02, 0.05)

#: Tables of the statistics stages that render_report accepts in ``stats`` (by schema name).
STATS_TABLES: tuple[str, ...] = (
    "fit_comparison",
    "fit_strategy",
    "fit_rm_summary",
    "fit_rm_agreement",
    "fit_curve",
    "fit_curve_coverage",
    "fit_screen",
    "fit_stability",
    "fit_stability_path",
    "fit_ols",
    "fit_concentration",
    "fit_concentration_terms",
    "fit_sample_size",
    "fit_sample_size_check",
    "fit_allocation",
    "fit_allocation_summary",
    "fit_allocation_bins",
)


def _summary_value(value: object) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_summary_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_summary_value(v) for v in value)
    return fmt(value)


def _distinct(values: Sequence[object]) -> str:
    uniq = sorted({v for v in values if v is not None})
    return ", ".join(str(v) for v in uniq) if uniq else MISSING


def _summary_section(
    features: pl.DataFrame, gains: pl.DataFrame, config_summary: Mapping[str, object]
) -> list[str]:
    cells = features.select(CELL_KEYS).unique().height
    n_samples = features["n_samples"].to_list() + gains["n_samples"].to_list()
    lines = [
        "## Summary",
        "",
        f"- **cells** (model x method x task): {cells}",
        f"- **models**: {_distinct(features['model'].to_list())}",
        f"- **methods**: {_distinct(features['method'].to_list())}",
        f"- **tasks**: {_distinct(features['task'].to_list())}",
        f"- **N** (samples per prompt): {_distinct(n_samples)}",
        f"- **validation prompts per cell** (features): {_distinct(features['n_prompts'].to_list())}",
        f"- **test prompts per cell** (gains): {_distinct(gains['n_prompts'].to_list())}",
    ]
    if "rm" in gains.columns:
        lines.append(
            "- **reward model of the per-cell sections and the single-target fit** (fit.reward_model): "
            f"{_distinct(gains['rm'].to_list())}"
        )
    if config_summary:
        lines += ["", "Configuration:", ""]
        lines += [f"- **{escape(str(k))}**: {escape(_summary_value(v))}" for k, v in config_summary.items()]
    return [*lines, ""]


def statistics_sections(
    stats: Mapping[str, pl.DataFrame],
    features: pl.DataFrame,
    out: Path,
    targets: Sequence[float] = DEFAULT_TARGETS,
) -> list[str]:
    """The report sections (and figures) of the statistics tables present in ``stats``."""
    lines: list[str] = []
    if "fit_comparison" in stats:
        lines += comparison_section(stats["fit_comparison"])
    if "fit_strategy" in stats:
        lines += strategy_fit_section(stats["fit_strategy"])
    if "fit_curve" in stats and "fit_curve_coverage" in stats:
        plot_gain_curves(stats["fit_curve"], out / FIG_GAIN_CURVES)
        lines += curve_section(stats["fit_curve"], stats["fit_curve_coverage"])
    if "fit_screen" in stats:
        lines += screen_section(stats["fit_screen"])
    if "fit_stability" in stats and "fit_stability_path" in stats:
        plot_stability(stats["fit_stability"], stats["fit_stability_path"], out / FIG_STABILITY)
        lines += stability_section(stats["fit_stability"])
    if "fit_ols" in stats:
        lines += ols_section(stats["fit_ols"])
    if {"fit_concentration", "fit_concentration_terms", "fit_sample_size", "fit_ols"} <= set(stats):
        check = stats.get("fit_sample_size_check")
        plot_concentration(
            stats["fit_sample_size"],
            stats["fit_ols"],
            features,
            out / FIG_CONCENTRATION,
            stats["fit_concentration"],
            targets,
        )
        lines += concentration_section(
            stats["fit_concentration"],
            stats["fit_concentration_terms"],
            stats["fit_sample_size"],
            stats["fit_ols"],
            check,
            targets,
        )
    if "fit_allocation" in stats and "fit_allocation_summary" in stats:
        lines += allocation_section(stats["fit_allocation"], stats["fit_allocation_summary"])
    if "fit_allocation_bins" in stats:
        lines += binned_section(stats["fit_allocation_bins"])
    return lines


def render_report(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    predictions: pl.DataFrame,
    metrics: pl.DataFrame,
    coefficients: pl.DataFrame,
    out_dir: Path,
    *,
    title: str,
    config_summary: Mapping[str, object],
    stats: Mapping[str, pl.DataFrame] | None = None,
    grades: pl.DataFrame | None = None,
    targets: Sequence[float] = DEFAULT_TARGETS,
    scaling: pl.DataFrame | None = None,
    recipes: Mapping[str, Sequence[Sequence[str]]] | None = None,
    rm_gains: Mapping[str, pl.DataFrame] | None = None,
) -> Path:
    """Write ``out_dir/report.md`` and its figures; return the path of the Markdown file.

    ``gains`` are the gains tables of the reward model the per-cell sections use (``fit.reward_model``);
    ``rm_gains`` (reward model -> its gains tables, config order) adds the section on headroom and
    reward-model efficiency with its figure (default: ``gains`` alone, when it has the oracle gap).

    ``grades`` (all cells' GRADES rows, any splits) adds the grading-status section when given, and
    ``scaling`` (all cells' SCALING rows) the coverage-scaling section. ``recipes`` (method -> its
    post-training chain, :func:`bongain.posttrain.recipes.method_recipe_chains`) adds the post-training
    recipes section when a method with cells went through a recipe.

    ``stats`` maps schema names of the statistics stages (:data:`STATS_TABLES`) to their tables; each
    section (and figure) is rendered when its tables are present.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = dict(stats or {})
    unknown = sorted(set(stats) - set(STATS_TABLES))
    if unknown:
        raise ValueError(f"render_report: unknown statistics table(s) {unknown}")
    plot_predicted_vs_actual(predictions, out / FIG_PRED_VS_ACTUAL, stats.get("fit_curve"), gains)
    plot_bon_curves(gains, out / FIG_BON_CURVES)
    if rm_gains is None:
        rm_gains = {str(gains["rm"][0]) if "rm" in gains.columns else "": gains}
    headroom: list[str] = []
    if rm_gains and all("gain_oracle" in g.columns for g in rm_gains.values()):
        plot_headroom(rm_gains, out / FIG_HEADROOM)
        headroom = headroom_section(rm_gains, stats.get("fit_rm_summary"), stats.get("fit_rm_agreement"))
    lines = [
        f"# {title}",
        "",
        *_summary_section(features, gains, config_summary),
        *(headline_section(stats["fit_comparison"]) if "fit_comparison" in stats else []),
        *gains_section(gains),
        "### Best-of-k curves",
        "",
        f"![bon@k, pass@k and maj@k per cell]({FIG_BON_CURVES})",
        "",
        f"Figure source: one `{GAINS.path}` per cell.",
        "",
        *headroom,
        *(strategies_section(gains) if "bom_at_k" in gains.columns else []),
        *(scaling_section(scaling) if scaling is not None else []),
        *recipes_section(features, gains, recipes),
        *features_section(features),
        *(grading_section(grades) if grades is not None else []),
        *metrics_section(metrics),
        *predictions_section(predictions),
        *coefficients_section(coefficients),
        *statistics_sections(stats, features, out, targets),
    ]
    while lines and lines[-1] == "":
        lines.pop()
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
