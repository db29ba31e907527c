"""Measure how ||dL_t/dh_k|| decays or grows with the lag t - k: one run, or a sweep with -m.

    python experiments/decay.py model.activation=linear model.init=orthogonal \
        model.spectral_radius=0.9
    python experiments/decay.py -m                 # the default sweep, into results/default/

Expected: for a linear RNN with W = rho Q every ratio ||dL_t/dh_k|| / ||dL_t/dh_t|| is exactly
rho^(t-k), so decay_rate = ln rho; for tanh and relu the rate crosses 0 near rho ~ 1 (vanishing
below, exploding above). Keys and outputs: docs/measurement.md. A bad key or value exits 2 with
one line before anything is written (RNNLAB_TRACEBACK=1 for the traceback); Ctrl-C says what
finished.
"""
import sys
from pathlib import Path

import hydra

from rnnlab.runs import driver

CONF = Path(__file__).resolve().parents[1] / "conf"
# imported as the command line is checked: a misspelt key costs no torch import, a bad value
# no pandas or seaborn
APP = driver.AppRef("decay", "rnnlab.measure.app", "rnnlab.measure.config")


@hydra.main(version_base="1.3", config_path="../conf", config_name="decay")
def main(cfg) -> None:
    driver.run_job(APP, cfg)


if __name__ == "__main__":
    # the checks Hydra cannot swallow run before it dispatches (rnnlab.runs.driver)
    sys.exit(driver.main(main, CONF, APP))
