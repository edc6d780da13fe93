"""Time the per-cell statistics on a synthetic cell of ~1M samples (issue 5 target: < 3 s on 2 cores).

    python benchmarks/bench_statistics.py                      # 15,625 prompts x N = 64
    python benchmarks/bench_statistics.py --prompts 1000 --n 1000
    python benchmarks/bench_statistics.py --quick              # 200 x 16, for a smoke run

Prints machine info and date, then one row per stage (wall and CPU seconds): the table plumbing
(validate + align + answer coding), features with and without their bootstrap, pass@k / best-of-k /
maj@k / weighted maj@k curves for all k, the bootstrap of the GAINS curves, and compute_gains and
compute_features end to end from the tables. Then the exact best-of-k kernel against Monte-Carlo subset
resampling: how many random subsets per prompt Monte Carlo needs before its error (max over k of the
standard error, computed from the exact per-prompt values) reaches a target — 1e-3 and the bootstrap
SE of bon@k — and the time that takes, measured at a few draw counts and extrapolated linearly.
Timings depend on the machine and its load; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import polars as pl

from bongain.cellstats import bootstrap, passk, votes
from bongain.cellstats.features import answer_codes, compute_features, join_per_sample, prompt_matrix
from bongain.cellstats.gains import compute_gains


def machine_info() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"host: {platform.node()}, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, numpy {np.__version__}, polars {pl.__version__}",
        f"cpu: {cpu}; usable cores: {affinity}; load average: {load}",
    ]


def synthetic_cell(n_prompts: int, n: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """SAMPLES, GRADES and SCORES tables of a synthetic cell with realistic answer structure.

    Per prompt: a success probability p ~ Beta(1, 1.5); a correct sample answers the gold class, a wrong
    one (or an abstention, 5%) one of 12 wrong classes with Dirichlet(0.3) shares; rewards ~ N(1, 1) for
    correct samples and N(0, 1) for wrong ones; lengths, log-probs and entropies are noise.
    """
    rng = np.random.default_rng(seed)
    size = n_prompts * n
    p = rng.beta(1.0, 1.5, size=n_prompts)
    correct = rng.random((n_prompts, n)) < p[:, None]
    shares = rng.dirichlet(np.full(12, 0.3), size=n_prompts)
    wrong = (rng.random((n_prompts, n, 1)) > np.cumsum(shares, axis=1)[:, None, :]).sum(axis=2)
    wrong = np.minimum(wrong, 11) + 1
    abstain = ~correct & (rng.random((n_prompts, n)) < 0.05)
    answer_id = np.where(correct, 0, wrong).ravel()
    answers = pl.Series(answer_id.astype(str)).set(pl.Series(abstain.ravel()), None)
    pid = pl.Series([f"q{i:07d}" for i in range(n_prompts)]).gather(np.repeat(np.arange(n_prompts), n))
    idx = pl.Series(np.tile(np.arange(n, dtype=np.int32), n_prompts))
    samples = pl.DataFrame(
        {
            "prompt_id": pid,
            "sample_idx": idx,
            "n_tokens": rng.integers(1, 512, size).astype(np.int32),
            "finish_reason": np.where(rng.random(size) < 0.03, "length", "stop"),
            "mean_logprob": -rng.gamma(2.0, 0.2, size),
            "mean_entropy": rng.gamma(2.0, 0.3, size),
        }
    )
    grades = pl.DataFrame(
        {"prompt_id": pid, "sample_idx": idx, "answer": answers, "correct": correct.ravel()}
    )
    scores = pl.DataFrame(
        {"prompt_id": pid, "sample_idx": idx, "reward": rng.normal(size=size) + correct.ravel()}
    )
    return samples, grades, scores


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, float, object]:
    """Best wall time over ``repeat`` runs, the CPU time of that run, and the result."""
    best = (np.inf, np.inf, None)
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if wall < best[0]:
            best = (wall, cpu, out)
    return best


def mc_bon_curve(
    rewards: np.ndarray, correct: np.ndarray, n_draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Best-of-k for all k by Monte-Carlo subsets: ``n_draws`` random permutations per prompt, the first
    k entries being a random k-subset; the running argmax of the reward gives every k at once."""
    p, m = rewards.shape
    out = np.zeros(m)
    block = max(1, (1 << 20) // (n_draws * m))
    for lo in range(0, p, block):
        r, c = rewards[lo : lo + block], correct[lo : lo + block]
        b = r.shape[0]
        perm = rng.permuted(np.tile(np.arange(m, dtype=np.int32), (b * n_draws, 1)), axis=1)
        start = (np.arange(b * n_draws) // n_draws * m)[:, None]
        seq_r = r.ravel()[perm + start]
        seq_c = c.ravel()[perm + start]
        best = np.maximum.accumulate(seq_r, axis=1)
        pos = np.maximum.accumulate(np.where(seq_r == best, np.arange(m), 0), axis=1)
        out += np.take_along_axis(seq_c, pos, axis=1).sum(axis=0)
    return out / (p * n_draws)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=15_625)
    ap.add_argument("--n", type=int, default=64, help="samples per prompt")
    ap.add_argument("--repeat", type=int, default=2, help="runs per stage (best wall time is shown)")
    ap.add_argument("--quick", action="store_true", help="200 prompts x 16, one run per stage")
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.n, args.repeat = 200, 16, 1
    print("\n".join(machine_info()))
    samples, grades, scores = synthetic_cell(args.prompts, args.n)
    print(f"cell: {args.prompts:,} prompts x N = {args.n} = {samples.height:,} samples\n")

    df, n = join_per_sample(grades, scores, ("grades", "scores"), (("answer", "correct"), ("reward",)))
    correct = prompt_matrix(df, "correct", n).astype(bool)
    rewards = prompt_matrix(df, "reward", n).astype(np.float64)
    codes, cc = answer_codes(df, n)
    rows: list[tuple[str, float, float]] = []

    def stage(name: str, fn: Callable[[], object]) -> object:
        wall, cpu, out = timed(fn, args.repeat)
        rows.append((name, wall, cpu))
        return out

    cols = (("answer", "correct"), ("reward",))
    stage(
        "plumbing: validate + align grades/scores", lambda: join_per_sample(grades, scores, ("g", "s"), cols)
    )
    stage("plumbing: answer codes", lambda: answer_codes(df, n))
    stage("features (+ bootstrap B=1000)", lambda: compute_features(samples, grades))
    stage("features (bootstrap B=1)", lambda: compute_features(samples, grades, n_boot=1))
    stage("pass@k curve, all k", lambda: passk.pass_at_k_curve(correct.sum(axis=1), n))
    stage("bon@k curve, all k (exact kernel)", lambda: passk.bon_curve(rewards, correct))
    maj = stage("maj@k curve, all k", lambda: votes.maj_curve(codes, cc, np.random.default_rng(0)))
    stage("wmaj@k curve, all k", lambda: votes.wmaj_curve(codes, cc, rewards, np.random.default_rng(0)))
    per_prompt = np.column_stack(
        [
            passk.pass_prompt_values(correct.sum(axis=1), n),
            passk.bon_prompt_values(rewards, correct),
            votes.maj_prompt_values(codes, cc, range(1, n + 1), np.random.default_rng(0))[0],
        ]
    )
    stage(
        "bootstrap B=1000 of 3 curves x N",
        lambda: bootstrap.bootstrap_ci(per_prompt, np.random.default_rng(0)),
    )
    gains = stage("compute_gains from tables (all of it)", lambda: compute_gains(grades, scores, seed=0))
    stage("compute_gains, bootstrap B=1", lambda: compute_gains(grades, scores, seed=0, n_boot=1))
    print(f"{'stage':44s} {'wall s':>8s} {'cpu s':>8s}")
    for name, wall, cpu in rows:
        print(f"{name:44s} {wall:8.3f} {cpu:8.3f}")
    target = dict((name, wall) for name, wall, _ in rows)
    core = target["features (+ bootstrap B=1000)"] + target["compute_gains from tables (all of it)"]
    issue5 = sum(
        target[name]
        for name in (
            "features (+ bootstrap B=1000)",
            "pass@k curve, all k",
            "bon@k curve, all k (exact kernel)",
            "maj@k curve, all k",
        )
    )
    print(f"{'issue 5 set: features + pass + bon + maj':44s} {issue5:8.3f}   (target < 3 s)")
    print(f"{'features + compute_gains, end to end':44s} {core:8.3f}")
    print(
        f"maj@k: auto n_mc = {votes.auto_n_mc(args.prompts, n)}, exact for k with C(N, k) <= "
        f"{votes.auto_max_exact_subsets(args.prompts, n)}; max MC SE {maj[1].max():.2e}"
    )

    # ------------------------------------------------------------- exact BoN kernel vs Monte Carlo
    exact_wall, _, _ = timed(lambda: passk.bon_curve(rewards, correct), args.repeat)
    v = passk.bon_prompt_values(rewards, correct)
    per_draw_var = (v * (1 - v)).sum(axis=0) / args.prompts**2  # Var of the MC mean with one draw/prompt
    half = (gains["bon_at_k_hi"] - gains["bon_at_k_lo"]).to_numpy() / 2
    boot_se = float(np.median(half[1:]) / 1.96)
    print("\nbest-of-k: exact kernel vs Monte-Carlo subset resampling (all k, every prompt)")
    print(f"exact kernel: {exact_wall:.3f} s, error ~1e-15 (float rounding)")
    draw_times = []
    for n_draws in (2, 8):
        rng = np.random.default_rng(n_draws)
        wall, _, curve = timed(lambda nd=n_draws, g=rng: mc_bon_curve(rewards, correct, nd, g), 1)
        err = np.abs(curve - passk.bon_curve(rewards, correct)).max()
        se = np.sqrt(per_draw_var.max() / n_draws)
        draw_times.append(wall / n_draws)
        print(
            f"MC, {n_draws:3d} subsets/prompt: {wall:7.3f} s, max |error| over k {err:.1e} (max SE {se:.1e})"
        )
    per_draw = float(np.median(draw_times))
    for label, tol in (("1e-3", 1e-3), (f"bootstrap SE {boot_se:.1e}", boot_se), ("1e-4", 1e-4)):
        need = int(np.ceil(per_draw_var.max() / tol**2))
        t = need * per_draw
        print(
            f"MC to reach SE <= {label:22s}: {need:7d} subsets/prompt, ~{t:8.2f} s "
            f"({t / exact_wall:,.0f}x the exact kernel)"
        )


if __name__ == "__main__":
    main()
