"""The command-line scripts of rnnlab (decay.py, train.py, aggregate.py, reproduce.py,
initial_decay.py) and the reproduced figures (``experiments.figures``). A package so that
reproduce.py imports the figure modules by name; each script still runs as a file."""
