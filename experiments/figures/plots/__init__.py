"""The draw step of each reproduced figure, one module per figure (named as its compute module in
experiments/figures/), all of one shape:

- ``FIGURE``: the figure's name (its folder under results/reproduction/);
- ``TABLES``: the files of that folder it reads, and the only thing it reads;
- ``draw(tables, out_dir) -> Path``: the PNG from ``{file name: DataFrame}``, written to
  ``out_dir``; returns its path.

No module here imports torch or rnnlab.engine (nor rnnlab.theory, which does): every number drawn,
theory lines included, is in a table the compute step wrote (``tables(measured)`` of the figure's
compute module; experiments/figures/tables.py reads and writes them). So
``python experiments/reproduce.py --redraw`` redraws every committed figure in seconds on a
machine without torch.
"""
