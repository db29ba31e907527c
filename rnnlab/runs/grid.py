"""Grid planning and validation before Hydra runs anything: every override key exists, every job
of a sweep composes to a valid run specification, and the output directory can be created. Nothing
here knows an app: a job's configuration becomes a specification through the function the app gives
(``runs.driver.App.spec_from_config``), which raises ``ConfigError``.
"""
from __future__ import annotations

import copy
import errno
import os
import re
from pathlib import Path

from ..checks import ConfigError, suggest


def _known_keys(cfg) -> list[str]:
    from omegaconf import OmegaConf

    flat = []

    def walk(node, prefix):
        for k in node:
            v = node[k]
            if OmegaConf.is_dict(v):
                walk(v, f"{prefix}{k}.")
            else:
                flat.append(f"{prefix}{k}")
    plain = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    walk(plain, "")
    return flat


def check_keys(overrides, cfg, groups, set_by=None) -> None:
    """Every overridden key exists (``+key`` too: rnnlab has no free-form keys); a misspelt one
    is named with the nearest valid key, one that another option of a config group sets (a
    cell's own key, ``model.r_min`` of ``model=lru``) with those options (``set_by(key)``)."""
    known = _known_keys(cfg)
    for o in overrides:
        key = o.key_or_group
        if o.is_hydra_override() or o.is_delete() or "/" in key or key in groups:
            continue
        if key not in known:
            where = set_by(key) if set_by is not None else []
            if where:
                raise ConfigError(f"unknown key {key!r} in this configuration: it is a key of "
                                  f"{' or '.join(where)}; choose that on the command line too")
            raise ConfigError(f"unknown key {key!r}{suggest(key, known)} "
                              "(every key is listed in docs/measurement.md, docs/training.md "
                              "and conf/)")


def options_setting(loader, cfg, key: str) -> list[str]:
    """``group=option`` for every option of the config groups ``cfg`` chose from (Hydra's own
    left out) whose own file sets ``key``, through Hydra's config repository (``loader``)."""
    from hydra.core.object_type import ObjectType
    from omegaconf import OmegaConf

    found = []
    files = [Path(s.path) for s in loader.repository.get_sources() if s.scheme() == "file"]
    leaf = re.compile(rf"^\s*{re.escape(key.rpartition('.')[2])}\s*:", re.MULTILINE)
    for group in OmegaConf.select(cfg, "hydra.runtime.choices", default=None) or {}:
        if group.split("/")[0] == "hydra":
            continue
        for option in loader.repository.get_group_options(group, ObjectType.CONFIG):
            path = f"{group}/{option}"
            # a file without a line "<key's name>:" is taken not to set it and is not parsed
            # (this runs on every misspelt key: the command line's fast path)
            text = next((f.read_text() for f in (d / f"{path}.yaml" for d in files)
                         if f.is_file()), None)
            if text is not None and not leaf.search(text):
                continue
            result = loader.repository.load_config(path)
            package = (result.header or {}).get("package") or group.replace("/", ".")
            inner = key if package == "_global_" else \
                key[len(package) + 1:] if key.startswith(f"{package}.") else None
            if inner and _has_key(result.config, inner):
                found.append(f"{group}={option}")
    return found


def _has_key(node, dotted: str) -> bool:
    """Whether a nested config holds the dotted key (null values count)."""
    for part in dotted.split("."):
        if not hasattr(node, "keys") or part not in node:
            return False
        node = node[part]
    return True


def writable(path: Path) -> None:
    """Raise the OSError that creating ``path`` would meet (permission denied, read-only file
    system, not a directory...), naming the path; leaves nothing behind."""
    path = path.absolute()
    first_missing = None
    probe = path
    while not probe.exists():
        first_missing, probe = probe, probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(probe))
    if first_missing is None:
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return
    try:  # the real test (root passes os.access on a read-only mount)
        os.mkdir(first_missing)
        os.rmdir(first_missing)
    except OSError as err:
        raise type(err)(err.errno, f"cannot create the output directory {path}: "
                        f"{(err.strerror or '').lower()} at {first_missing}") from None


def plan_jobs(config) -> tuple[list[list[str]], list[str]]:
    """The override lists of every job of a multirun, as Hydra's basic sweeper splits them, and
    the run directory name Hydra gives each (``hydra.job.override_dirname``)."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    params = config.hydra.sweeper.get("params") or {}
    args = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    jobs = [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(args), None)
            for job in batch]
    naming = config.hydra.job.config.override_dirname
    names = [get_overrides_dirname(parser.parse_overrides(job), list(naming.exclude_keys),
                                   naming.item_sep, naming.kv_sep) for job in jobs]
    return jobs, names


def job_keys(config, jobs: list[list[str]]) -> list[str]:
    """The keys that name a grid's run directories: every key set on the command line or by the
    sweep, less the naming's excluded keys (``hydra.job.config.override_dirname.exclude_keys``),
    sorted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    excluded = set(config.hydra.job.config.override_dirname.exclude_keys)
    keys = {o.get_key_element() for job in jobs for o in parser.parse_overrides(job)}
    return sorted(keys - excluded)


def same_grid(out: Path, keys: list[str], kv_sep: str = "=") -> None:
    """Refuse (ConfigError) a sweep into a directory that holds runs named by other keys: their
    tables, figures and report would pool two grids. Runs named by the same keys (the grid
    extended, or resumed) are fine."""
    out = Path(out)
    if not out.is_dir():
        return
    for run_json in sorted(out.glob("*/run.json")):
        name = run_json.parent.name
        theirs = sorted(part.split(kv_sep, 1)[0] for part in _split_name(name))
        if theirs != keys:
            raise ConfigError(
                f"{out} holds runs of another grid (run {name!r} is named by "
                f"{', '.join(theirs) or 'no key'}; this sweep by {', '.join(keys) or 'no key'}); "
                "give this sweep its own sweep.name=... (or hydra.sweep.dir=...)")


def _split_name(name: str, item_sep: str = ",") -> list[str]:
    """``k=v,k2=[a,b]`` split at the item separators outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(name):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == item_sep and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    return [p for p in parts if p]


def validate_jobs(base, jobs: list[list[str]], load_job, to_spec) -> list:
    """The run specification of every job (``to_spec`` of its composed config), or a
    ConfigError naming the first bad job.

    Values (``key=value``) are set on a plain copy of the composed base config; a job that also
    chooses config groups (``model=...``) starts from Hydra's composition of those choices
    (``load_job(choices)``, Hydra's own sweep-config loader), composed once per distinct choice.
    Hydra's own keys do not reach the RunSpec and are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parser = OverridesParser.create()

    def plain(cfg) -> dict:
        return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                                      resolve=True)

    composed = {(): plain(base)}
    specs = []
    for job in jobs:
        parsed = [(text, parser.parse_override(text)) for text in job]
        parsed = [(t, o) for t, o in parsed if not o.is_hydra_override()]
        choices = tuple(t for t, o in parsed if not _is_value(base, o))
        if choices not in composed:
            composed[choices] = plain(load_job(list(choices)))
        cfg = copy.deepcopy(composed[choices])
        for text, o in parsed:
            if text in choices:
                continue
            *parents, leaf = o.key_or_group.split(".")
            node = cfg
            for part in parents:
                node = node.setdefault(part, {})
            if o.is_delete():
                node.pop(leaf, None)
            else:
                node[leaf] = o.value()
        try:
            specs.append(to_spec(cfg))
        except ConfigError as err:
            shown = [t for t in job if not t.lstrip("+~").startswith(("sweep=", "hydra"))]
            raise ConfigError(f"sweep job {','.join(shown)}: {err}") from None
    return specs


def _is_value(base, override) -> bool:
    """Whether an override sets a value (a dotted key or a scalar), not a config-group choice."""
    from omegaconf import OmegaConf

    if override.is_hydra_override():
        return True
    key = override.key_or_group
    if "/" in key:
        return False
    choices = OmegaConf.select(base, "hydra.runtime.choices", default=None)
    if choices is not None and key in choices:  # a group, whatever package it fills
        return False
    node = OmegaConf.select(base, key, default=None)
    return not OmegaConf.is_dict(node) or override.is_add()
