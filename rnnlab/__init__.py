"""rnnlab: how ||dL_t/dh_k|| vanishes or explodes with the lag t - k in Elman RNNs."""
__version__ = "0.1.0"

from .modules import measure_module  # noqa: E402,F401
