"""The exact measurement: pure tensors, no I/O, no Hydra. Cells (``cells/``, one module each),
the adjoint sweep over every pair (``adjoint``), the weight gradient by lag (``weightgrad``),
Lyapunov exponents (``lyapunov``), the decay-rate fit (``fit``), torch modules
(``torch_modules.measure_module``), the gradient through the inputs of any sequence model
(``input_sensitivity``) with the attention layer it is contrasted with (``attention``) and the
autograd references (``reference``)."""
