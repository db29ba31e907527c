"""Train an RNN on a long-dependency task: one run, or a sweep with -m.

    python experiments/train.py task=temporal_order task.length=50 arch=irnn
    python experiments/train.py -m sweep=trainability   # results/trainability/cells/

Writes model.pt (state dicts of the torch modules and the configuration), curve.parquet (loss,
error rate and the exactly measured decay rate at each evaluation) and run.json (solved,
steps_to_solve, test error rate with its count, final and no-memory baseline loss, initial decay
rate, provenance). Keys and outputs: README.md "Training". A bad key or value exits 2 with one line
before anything is written (RNNLAB_TRACEBACK=1 for the traceback); Ctrl-C says what finished.
"""
import sys
from pathlib import Path

import torch

# before torch starts its worker threads (see experiments/decay.py)
torch.set_flush_denormal(True)

import hydra  # noqa: E402 (after set_flush_denormal)

from rnnlab.runs import driver  # noqa: E402 (after set_flush_denormal)
from rnnlab.train.app import APP  # noqa: E402 (after set_flush_denormal)

CONF = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg) -> None:
    driver.run_job(APP, cfg)


if __name__ == "__main__":
    sys.exit(driver.main(main, CONF, APP))
