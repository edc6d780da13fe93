"""Coverage of the grid-respecting (two-way cluster) bootstrap CIs at the default grid size, by simulation.

    python benchmarks/grouped_ci_coverage.py            # 3 methods x 5 tasks (the default grid)
    python benchmarks/grouped_ci_coverage.py 6 10       # another grid

Prints the nominal level, the population Spearman and the coverage and mean width of the cluster
bootstrap and, for comparison, of resampling cells independently (docs/statistics.md).
"""

from __future__ import annotations

import sys

from bongain.fit.coverage_sim import simulate_ci_coverage


def main(argv: list[str]) -> None:
    n_m, n_t = (int(argv[0]), int(argv[1])) if len(argv) >= 2 else (3, 5)
    print(f"grid {n_m} methods x {n_t} tasks, 400 simulated data sets, 500 resamples each, seed 0")
    for effect_sd in (0.0, 1.0, 2.0):
        r = simulate_ci_coverage(n_methods=n_m, n_tasks=n_t, effect_sd=effect_sd)
        print(
            f"effect_sd={effect_sd}: nominal {r.level}, population Spearman {r.target:.3f}; "
            f"cluster bootstrap coverage {r.coverage_cluster:.3f} (mean width {r.mean_width_cluster:.3f}); "
            f"cell bootstrap coverage {r.coverage_cells:.3f} (mean width {r.mean_width_cells:.3f})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
