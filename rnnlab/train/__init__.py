"""The training app (``experiments/train.py``): the training presets (``archs``), a run's
configuration (``config``), the models and the training loop (``loop``), the exact decay rate
while training (``horizon``), the app as the driver sees it (``app``), and a sweep's tables and
figures (``tables``, ``plots``). Tasks are ``rnnlab.tasks``."""
