"""The post-training recipes section of the report: numbers against hand computations, the CI
construction against coverage and a brute-force bootstrap, labels and row order along the chain, and its
absence without recipes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from bongain import config as bconf
from bongain.posttrain.recipes import method_recipe_chains
from bongain.report.build import render_report
from bongain.report.recipes import AS_SHIPPED, chain_label, recipe_summary, recipes_section
from test_report import _coefficients, _features, _gains, _metrics, _predictions

ROOT = Path(__file__).resolve().parents[1]
Z95 = 1.959963984540054  # normal quantile 0.975, written out (not taken from the code under test)

#: Offsets and SE scales per statistic, so that a statistic read from the wrong column shows.
OFFSET = {"pass1": 0.3, "diversity": 0.2, "agreement": 0.4, "gain": 0.0}
SCALE = {"pass1": 1.0, "diversity": 2.0, "agreement": 0.5, "gain": 1.0}
COLUMN = {
    "pass1": "pass_at_k",
    "diversity": "answer_diversity",
    "agreement": "agreement_mean",
    "gain": "gain",
}


def _tables(
    cells: dict[tuple[str, str, str], tuple[float, float]], asym: set[tuple[str, str, str]] = frozenset()
):
    """Features and gains rows whose every statistic s is value + OFFSET[s] with a 95% interval of
    width 2 * 1.96 * se * SCALE[s] (centred, or skewed 1:3 for the cells in ``asym``)."""
    frows, grows = [], []
    for (model, method, task), (value, se) in cells.items():
        ends = {}
        for s in OFFSET:
            x, h = value + OFFSET[s], Z95 * se * SCALE[s]
            lo, hi = (x - 0.5 * h, x + 1.5 * h) if (model, method, task) in asym else (x - h, x + h)
            ends[s] = (x, lo, hi)
        key = {"model": model, "method": method, "task": task}
        frow = {**key, "ci_level": 0.95}
        for s in ("diversity", "agreement"):
            c = COLUMN[s]
            frow.update({c: ends[s][0], f"{c}_lo": ends[s][1], f"{c}_hi": ends[s][2]})
        frows.append(frow)
        for k in (1, 2):  # pass@1 is the k = 1 row; the k = 2 row carries a decoy pass@k
            p = ends["pass1"] if k == 1 else (9.0, 9.0, 9.0)
            g = ends["gain"]
            grows.append(
                {
                    **key,
                    "k": k,
                    "pass_at_k": p[0],
                    "pass_at_k_lo": p[1],
                    "pass_at_k_hi": p[2],
                    "gain": g[0],
                    "gain_lo": g[1],
                    "gain_hi": g[2],
                    "ci_level": 0.95,
                }
            )
    return pl.DataFrame(frows), pl.DataFrame(grows)


CHAINS = {
    "sft-dpo": [["sft", "sft"], ["sft-dpo", "dpo"]],
    "base": [],
    "sft": [["sft", "sft"]],
}
CELLS = {
    ("m", "base", "a"): (0.10, 0.03),
    ("m", "base", "b"): (0.30, 0.04),
    ("m", "sft", "a"): (0.20, 0.04),
    ("m", "sft", "b"): (0.50, 0.03),
    ("m", "sft-dpo", "a"): (0.40, 0.05),
}
# By hand (gain; the other statistics add OFFSET to every value and scale every SE by SCALE):
#   base:    mean (0.10 + 0.30) / 2 = 0.20, SE sqrt(0.03^2 + 0.04^2) / 2 = 0.025
#   sft:     mean (0.20 + 0.50) / 2 = 0.35, SE sqrt(0.04^2 + 0.03^2) / 2 = 0.025
#            delta mean (0.10 + 0.20) / 2 = 0.15, SE sqrt(0.03^2 + 0.04^2 + 0.04^2 + 0.03^2) / 2 = 0.0353553
#   sft-dpo: one task (a): mean 0.40, SE 0.05; delta over the shared task a: 0.30, SE sqrt(0.05^2 + 0.03^2)
EXPECTED = {
    "base": {"mean": (0.20, 0.025), "delta": None},
    "sft": {"mean": (0.35, 0.025), "delta": (0.15, 0.0353553)},
    "sft-dpo": {"mean": (0.40, 0.05), "delta": (0.30, 0.0583095)},
}


def test_summary_numbers_match_hand_computation():
    features, gains = _tables(CELLS, asym={("m", "base", "a")})
    summary, level = recipe_summary(features, gains, CHAINS)
    assert level == 0.95
    assert summary["method"].to_list() == ["base", "sft", "sft-dpo"]  # reference, then by chain depth
    assert summary["n_tasks"].to_list() == [2, 2, 1]
    assert summary["n_shared"].to_list() == [0, 2, 1]
    for r in summary.iter_rows(named=True):
        exp = EXPECTED[r["method"]]
        for s in OFFSET:
            mean, se = exp["mean"]
            assert r[s] == pytest.approx(mean + OFFSET[s], abs=1e-12)
            half = Z95 * se * SCALE[s]
            assert (r[f"{s}_lo"], r[f"{s}_hi"]) == pytest.approx((r[s] - half, r[s] + half), abs=1e-6)
            if exp["delta"] is None:
                assert r[f"d_{s}"] is None and r[f"d_{s}_lo"] is None
            else:
                d, dse = exp["delta"]
                assert r[f"d_{s}"] == pytest.approx(d, abs=1e-12)
                dh = Z95 * dse * SCALE[s]
                assert (r[f"d_{s}_lo"], r[f"d_{s}_hi"]) == pytest.approx((d - dh, d + dh), abs=1e-6)


def test_section_rows_labels_and_per_task_table():
    features, gains = _tables(CELLS)
    text = "\n".join(recipes_section(features, gains, CHAINS))
    assert text.startswith("## Post-training recipes")
    assert "### m" in text and "Reference (Δ): `base`." in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    # summary rows in chain order, with recipe and chain labels
    assert rows[1].startswith("| base | as shipped | as shipped | 2 | 0.500 [0.451, 0.549] | — |")
    # sft gain: 0.35 +- 1.96 * 0.025 = [0.301, 0.399]; delta 0.15 +- 1.96 * 0.0353553 = [0.081, 0.219]
    assert rows[2].startswith("| sft | sft | sft | 2 |")
    assert rows[2].endswith("| 0.350 [0.301, 0.399] | 0.150 [0.081, 0.219] |")
    # sft-dpo: gain 0.40 +- 0.098 = [0.302, 0.498]; delta 0.30 +- 1.96 * 0.0583095 = [0.186, 0.414]
    assert rows[3].startswith("| sft-dpo | sft-dpo | sft -> sft-dpo (dpo) | 1 |")
    assert rows[3].endswith("| 0.400 [0.302, 0.498] | 0.300 [0.186, 0.414] |")
    # per-task breakdown: the cells' own gain intervals, a dash where a cell is missing
    assert "| model/task | base | sft | sft-dpo |" in text
    assert "| m/b | 0.300 [0.222, 0.378] | 0.500 [0.441, 0.559] | — |" in text


def test_chain_labels():
    assert chain_label([]) == AS_SHIPPED
    assert chain_label([["sft", "sft"], ["dpo", "dpo"]]) == "sft -> dpo"
    assert chain_label([["warm", "sft"], ["pref", "dpo"]]) == "warm (sft) -> pref (dpo)"


def test_reference_is_first_as_shipped_method_per_model():
    cells = {
        ("m", "chat", "a"): (0.2, 0.01),
        ("m", "base", "a"): (0.1, 0.01),
        ("m", "sft", "a"): (0.4, 0.01),
        ("n", "sft", "a"): (0.3, 0.01),
    }
    features, gains = _tables(cells)
    chains = {"chat": [], "base": [], "sft": [["sft", "sft"]]}
    summary, _ = recipe_summary(features, gains, chains)
    m = summary.filter(pl.col("model") == "m")
    assert m["method"].to_list() == ["chat", "base", "sft"]
    assert set(m["reference"].to_list()) == {"chat"}
    assert m.filter(pl.col("method") == "sft")["d_gain"].item() == pytest.approx(0.2)
    n = summary.filter(pl.col("model") == "n").row(0, named=True)
    assert n["reference"] is None and n["d_gain"] is None
    assert "No as-shipped method: no Δ." in "\n".join(recipes_section(features, gains, chains))


def test_absent_without_recipes():
    features, gains = _tables(CELLS)
    assert recipes_section(features, gains, None) == []
    assert recipes_section(features, gains, {}) == []
    assert recipes_section(features, gains, {"base": [], "sft": [], "sft-dpo": []}) == []
    # a recipe on a method without cells does not count
    assert recipes_section(features, gains, {"other": [["sft", "sft"]]}) == []


def _percentile_ci(values: np.ndarray, rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _simulated_cell(rng: np.random.Generator, alpha: float, n_prompts: int, n: int = 4) -> np.ndarray:
    """Per-prompt c_i / N with p_i ~ Beta(alpha, 3): population mean alpha / (alpha + 3)."""
    return rng.binomial(n, rng.beta(alpha, 3.0, size=n_prompts)) / n


def test_ci_coverage_of_mean_over_tasks_and_of_the_change():
    """Each cell gets a percentile-bootstrap interval over its own prompts (independent of the code under
    test); the section's interval of the mean over tasks, and of the change vs the reference (independent
    prompts here), should cover the population value at about the nominal 95%."""
    rng = np.random.default_rng(11)
    alphas = {"base": [1.0, 2.0, 4.0], "sft": [2.0, 3.0, 1.5]}
    truth = {me: float(np.mean([a / (a + 3.0) for a in al])) for me, al in alphas.items()}
    reps, hits_mean, hits_delta = 200, 0, 0
    chains = {"base": [], "sft": [["sft", "sft"]]}
    for _ in range(reps):
        cells = {}
        for me, al in alphas.items():
            for t, a in enumerate(al):
                v = _simulated_cell(rng, a, 50)
                lo, hi = _percentile_ci(v, rng, 300)
                cells[("m", me, f"t{t}")] = (float(v.mean()), lo, hi)
        summary, _ = recipe_summary(*_raw_tables(cells), chains)
        sft = summary.filter(pl.col("method") == "sft").row(0, named=True)
        hits_mean += sft["gain_lo"] <= truth["sft"] <= sft["gain_hi"]
        hits_delta += sft["d_gain_lo"] <= truth["sft"] - truth["base"] <= sft["d_gain_hi"]
    # 200 reps: binomial SD of the coverage at 0.95 is 0.015
    assert 0.90 <= hits_mean / reps <= 0.99
    assert 0.90 <= hits_delta / reps <= 0.99


def test_ci_width_matches_brute_force_pooled_bootstrap():
    """The propagated SE of the mean over tasks agrees with the SD of a brute-force bootstrap that
    resamples every task's prompts independently and recomputes the mean over tasks."""
    rng = np.random.default_rng(5)
    values = [_simulated_cell(rng, a, p) for a, p in ((1.0, 40), (3.0, 80), (0.5, 25))]
    cells = {}
    for t, v in enumerate(values):
        lo, hi = _percentile_ci(v, rng, 4000)
        cells[("m", "sft", f"t{t}")] = (float(v.mean()), lo, hi)
    summary, _ = recipe_summary(*_raw_tables(cells), {"sft": [["sft", "sft"]]})
    r = summary.row(0, named=True)
    se = (r["gain_hi"] - r["gain_lo"]) / (2 * Z95)
    boot = np.mean([v[rng.integers(0, len(v), size=(4000, len(v)))].mean(axis=1) for v in values], axis=0)
    assert se == pytest.approx(float(boot.std()), rel=0.08)
    assert r["gain"] == pytest.approx(float(np.mean([v.mean() for v in values])))


def _raw_tables(cells: dict[tuple[str, str, str], tuple[float, float, float]]):
    """Tables whose every statistic is the given (value, lo, hi)."""
    frows, grows = [], []
    for (model, method, task), (x, lo, hi) in cells.items():
        key = {"model": model, "method": method, "task": task, "ci_level": 0.95}
        frows.append(
            {
                **key,
                **{
                    f"{c}{e}": v
                    for c in ("answer_diversity", "agreement_mean")
                    for e, v in (("", x), ("_lo", lo), ("_hi", hi))
                },
            }
        )
        grows.append(
            {
                **key,
                "k": 1,
                **{
                    f"{c}{e}": v
                    for c in ("pass_at_k", "gain")
                    for e, v in (("", x), ("_lo", lo), ("_hi", hi))
                },
            }
        )
    return pl.DataFrame(frows), pl.DataFrame(grows)


def test_method_recipe_chains_from_posttrain_config():
    config = yaml.safe_load((ROOT / "config/posttrain-test.yaml").read_text())
    bconf.validate_config(config)
    chains = method_recipe_chains(config)
    assert chains == {
        "base": [],
        "sft": [["sft", "sft"]],
        "rft": [["rft", "rft"]],
        "sft-dpo": [["sft", "sft"], ["sft-dpo", "dpo"]],
    }
    assert [chain_label(c) for c in chains.values()] == [AS_SHIPPED, "sft", "rft", "sft -> sft-dpo (dpo)"]


def _render(out: Path, **kw) -> str:
    path = render_report(
        _features(),
        _gains(),
        _predictions(),
        _metrics(),
        _coefficients(),
        out,
        title="t",
        config_summary={},
        **kw,
    )
    return path.read_text(encoding="utf-8")


def test_render_report_adds_the_section_only_with_recipes(tmp_path: Path):
    plain = _render(tmp_path / "plain")
    assert "Post-training recipes" not in plain
    assert _render(tmp_path / "none", recipes={"base": [], "dpo": []}) == plain
    text = _render(tmp_path / "dpo", recipes={"base": [], "dpo": [["dpo", "dpo"]]})
    assert "## Post-training recipes" in text and "### qwen" in text
    # qwen's dpo cell (task math) shares no task with its base cell (gsm8k): no change is computed
    assert "| dpo | dpo | dpo | 1 |" in text
    assert (
        text.replace(text[text.index("## Post-training recipes") : text.index("## Validation")], "") == plain
    )
