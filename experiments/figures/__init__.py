"""The reproduced figures of docs/theory.md, one module each, all of one shape:

- ``FIGURE``: the figure's name (its folder under results/reproduction/, its rows' ``figure``);
- ``measure(mode)``: the computation, for ``mode`` "full" or "quick", as plain data (a dict of
  numbers, arrays and DataFrames, or one DataFrame); nothing is written;
- ``rows(measured) -> list[dict]``: the comparison rows of results/reproduction/summary.csv
  (``common.row``), from the measured data alone;
- ``draw(measured, out_dir) -> None``: the figure's PNG and its CSV tables in ``out_dir``;
- ``quick_may_fail(row) -> bool`` (optional): True for a row that need not hold at quick sizes,
  so a quick run reports its failure as expected;
- ``main(argv=None) -> int``: the three for one figure on the command line,
  ``python experiments/figures/<name>.py [--quick] [--out DIR]`` or
  ``python -m experiments.figures.<name> [--quick] [--out DIR]`` (``common.standalone``).

``common`` holds what they share; experiments/reproduce.py lists the modules and runs them all.
"""
