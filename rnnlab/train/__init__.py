"""The training app (``experiments/train.py``): the training presets (``archs``), a run's
configuration (``config``), its random streams and batches (``data``), the networks from the cell
registry and the saved model (``networks``), a cell module over a sequence (``sequence``), the
training loop (``loop``) and its regularisers (``regularizer``: ``omega``, ``flossing``), the
exact decay rate while training (``horizon``), the app as the driver sees it (``app``), and a
sweep's tables and figures (``tables``, ``plots``). Tasks are ``rnnlab.tasks``.

``rnnlab.train.train_module(cell, task=..., ...)`` trains a user's own cell module (any
``torch.nn.Module`` with ``step`` and ``init_state``) through the same loop."""


def __getattr__(name):
    # lazily, so that importing the app's configuration does not load the loop
    if name == "train_module":
        from .loop import train_module
        return train_module
    raise AttributeError(f"module 'rnnlab.train' has no attribute {name!r}")
