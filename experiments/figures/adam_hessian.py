"""adam-hessian: why Adam rescues diagonal recurrences (Zucchet & Orvieto 2024,
arXiv:2405.21064, Fig. 4): Adam's effective learning rates on the linear teacher-student task,
and the participation ratio of the Hessian's top eigenvectors at the optimum.

The experiment is experiments/curse.py (its docstring: the task, the students, the sizes and the
rows, stated before its run); its full run is committed under results/curse/ (its README gives
the machine, the times and the numbers). This figure's rows come from that run: in full mode
``measure`` reads results/curse/ (seconds; it is 12 CPU minutes to recompute with
``python experiments/curse.py``), in quick mode it runs the experiment at its quick sizes
(2 seeds x 150 steps, through the same functions).

EXPECTED. (a) log10 ELR(diagonal lambda) - log10 ELR(dense A) >= 2 at the end of training, in
every seed (their statistic 10^mean(log10(max(-u, 0) + 1e-8)), u Adam's update for a unit
gradient), for the cartesian (their Fig. 4) and the polar diagonal student: sign rows count the
seeds below 2 decades, finding rows give the mean difference with its spread (the momentum-free
reading and the LRU beside them, not judged). (b) The mean participation ratio of the top 4
Hessian eigenvectors is lower for the diagonal student than for the dense one in every seed:
sign rows count the seeds where it is not, finding rows give the means.
Run alone: ``python experiments/figures/adam_hessian.py [--quick]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments import curse
from experiments.figures import tables as on_disk
from experiments.figures.common import is_quick, standalone
from experiments.figures.plots import adam_hessian as plot

FIGURE = plot.FIGURE
COMMITTED = curse.ROOT / "results" / "curse"
READS = ("effective_lr_final.csv", "effective_lr_recurrent.csv", "hessian.csv")


def measure(mode: str) -> dict:
    """The experiment's tables: read from the committed run (full) or computed (quick)."""
    if is_quick(mode):
        return curse.run(**curse.QUICK)
    absent = on_disk.missing(COMMITTED, READS)
    if absent:
        raise FileNotFoundError(f"missing {absent[0]}: make it with python experiments/curse.py")
    return on_disk.read(COMMITTED, READS)


def rows(measured: dict) -> list[dict]:
    return curse.rows(measured["effective_lr_final.csv"], measured["hessian.csv"])


def quick_may_fail(r: dict) -> bool:
    """At 150 steps the effective learning rates are not yet the trained model's."""
    return r["kind"] == "sign" and "effective lr" in r["quantity"]


def tables(measured: dict) -> dict:
    """The draw step's tables (plot.TABLES), as the experiment wrote them."""
    return {name: measured[name] for name in plot.TABLES}


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
