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

import hydra

from rnnlab.runs import driver

CONF = Path(__file__).resolve().parents[1] / "conf"
# imported as the command line is checked: a misspelt key costs no torch import, a bad value
# no pandas or seaborn
APP = driver.AppRef("train", "rnnlab.train.app", "rnnlab.train.config")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg) -> None:
    driver.run_job(APP, cfg)


if __name__ == "__main__":
    # the checks Hydra cannot swallow run before it dispatches (rnnlab.runs.driver)
    sys.exit(driver.main(main, CONF, APP))
