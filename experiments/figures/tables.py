"""A figure's tables on disk: what its compute step writes and its draw step reads, and nothing
else passes between them.

A figure's compute module returns its tables as ``{file name: DataFrame}`` (``tables(measured)``);
``write`` puts them in the figure's folder, CSV or, for a large grid, Parquet. ``read`` loads
exactly the files a draw module names in its ``TABLES``, and ``redraw`` draws the figure from
them: ``python experiments/reproduce.py --redraw`` and every full or quick run go through it, so
a PNG made by a run and one redrawn later come from the same files.

pandas writes a float in CSV as the shortest decimal that reads back as the same float64, and
``read`` parses it exactly (pandas >= 3 by default; before, ``float_precision="round_trip"``:
the older default parser may be one unit in the last place off), so a table read back holds the
values that were written.

Pure pandas (the draw path imports no torch): a table that is not there raises
``MissingTable``, whose message names the file.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

# pandas < 3 parses CSV floats exactly only when asked (3.x does by default and deprecates the key)
EXACT = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


class MissingTable(FileNotFoundError):
    """A table a draw step needs is not in the folder; ``path`` is the file."""

    def __init__(self, path: Path):
        super().__init__(f"missing table {path}")
        self.path = Path(path)


def write(out_dir: Path, frames: dict[str, pd.DataFrame],
          float_formats: dict[str, str] | None = None) -> list[Path]:
    """Write each ``{name: frame}`` to ``out_dir/name`` without its index: Parquet for a name
    ending in .parquet, else CSV (``float_formats[name]``, when given, formats its floats)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    float_formats = float_formats or {}
    paths = []
    for name, frame in frames.items():
        path = out_dir / name
        if path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, float_format=float_formats.get(name))
        paths.append(path)
    return paths


def missing(directory: Path, names) -> list[Path]:
    """The files of ``names`` that are not in ``directory``."""
    return [Path(directory) / n for n in names if not (Path(directory) / n).is_file()]


def read(directory: Path, names) -> dict[str, pd.DataFrame]:
    """``{name: DataFrame}`` of the tables ``names`` in ``directory``; MissingTable for the first
    that is not there (before anything is read)."""
    absent = missing(directory, names)
    if absent:
        raise MissingTable(absent[0])
    out = {}
    for name in names:
        path = Path(directory) / name
        out[name] = (pd.read_parquet(path) if path.suffix == ".parquet"
                     else pd.read_csv(path, **EXACT))
    return out


def redraw(plot, tables_dir: Path, out_dir: Path | None = None) -> Path:
    """Draw one figure (its draw module ``plot``: FIGURE, TABLES, draw) from the tables in
    ``tables_dir`` into ``out_dir`` (default ``tables_dir``); returns the PNG's path."""
    out_dir = Path(tables_dir if out_dir is None else out_dir)
    frames = read(tables_dir, plot.TABLES)
    out_dir.mkdir(parents=True, exist_ok=True)
    return plot.draw(frames, out_dir)
