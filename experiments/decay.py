"""Measure how ||dL_t/dh_k|| decays or grows with the lag t - k: one run, or a sweep with -m.

    python experiments/decay.py model.activation=linear model.init=orthogonal \
        model.spectral_radius=0.9
    python experiments/decay.py -m                 # the default sweep, into results/default/

Expected: for a linear RNN with W = rho Q every ratio ||dL_t/dh_k|| / ||dL_t/dh_t|| is exactly
rho^(t-k), so decay_rate = ln rho; for tanh and relu the rate crosses 0 near rho ~ 1 (vanishing
below, exploding above). Keys and outputs: README.md. A bad key or value exits 2 with one line
before anything is written (RNNLAB_TRACEBACK=1 for the traceback); Ctrl-C says what finished.
"""
import sys
from pathlib import Path

import torch

# before torch starts its worker threads, which inherit the setting: denormals in a vanishing
# sweep otherwise slow every kernel (26x seen on a 2-core CPU)
torch.set_flush_denormal(True)

import hydra  # noqa: E402 (after set_flush_denormal)

from rnnlab.measure.app import APP  # noqa: E402 (after set_flush_denormal)
from rnnlab.runs import driver  # noqa: E402 (after set_flush_denormal)

CONF = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(version_base="1.3", config_path="../conf", config_name="decay")
def main(cfg) -> None:
    driver.run_job(APP, cfg)


if __name__ == "__main__":
    # the checks Hydra cannot swallow run before it dispatches (rnnlab.runs.driver)
    sys.exit(driver.main(main, CONF, APP))
