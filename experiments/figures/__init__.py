"""The reproduced figures of docs/theory.md, one compute module each, all of one shape:

- ``FIGURE``: the figure's name (its folder under results/reproduction/, its rows' ``figure``);
- ``plot``: its draw module, ``experiments.figures.plots.<module>`` (``FIGURE``, ``TABLES``,
  ``draw(tables, out_dir)``; no torch: plots/__init__.py);
- ``measure(mode)``: the computation, for ``mode`` "full" or "quick", as plain data (a dict of
  numbers, arrays and DataFrames, or one DataFrame); nothing is written;
- ``rows(measured) -> list[dict]``: the comparison rows of results/reproduction/summary.csv
  (``common.row``), from the measured data alone;
- ``tables(measured) -> {file name: DataFrame}``: the tables written to the figure's folder, at
  least every file its draw step reads (``FLOAT_FORMATS``, optional: a CSV's float format);
- ``quick_may_fail(row) -> bool`` (optional): True for a row that need not hold at quick sizes,
  so a quick run reports its failure as expected;
- ``main(argv=None) -> int``: the figure alone on the command line,
  ``python experiments/figures/<name>.py [--quick] [--out DIR]`` or
  ``python -m experiments.figures.<name> [--quick] [--out DIR]`` (``common.standalone``).

``common.make`` measures, writes the tables (``tables.write``) and draws from the files it wrote
(``tables.redraw``), as ``python experiments/reproduce.py --redraw`` does later from the
committed ones. ``common`` holds what the compute modules share, ``annealed`` the mean-field
rows; experiments/reproduce.py lists the figures and runs them all.
"""
