"""The runner, shared by both apps and knowing neither: the run store (``store``: directories,
atomic writes, locks, configuration hashes, resume, provenance), grid planning and validation
(``grid``) and the one command-line driver (``driver``) that apps plug into with an ``App``."""
