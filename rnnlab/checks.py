"""The one validation vocabulary of rnnlab: every configuration check of both apps (and the engine's
own argument checks) raises ``ConfigError`` with one line naming the key, the value and what is
allowed. Pure Python: importing it costs nothing, so a bad command line is rejected before torch,
pandas or seaborn load.
"""
from __future__ import annotations

import difflib
import math


class ConfigError(ValueError):
    """A bad configuration key or value: reported in one line, before any compute."""


def suggest(key: str, allowed) -> str:
    """``; did you mean 'x'?`` for the allowed key nearest to a misspelt one, else ''."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def choice(key: str, value, allowed) -> None:
    """``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {list(allowed)}")


def integer(key: str, value, low: int) -> None:
    """An integer (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}={value!r} is not allowed; it must be an integer >= {low}")


def number(key: str, value, positive: bool = False, optional: bool = False) -> None:
    """A finite number >= 0 (> 0 with ``positive``); ``None`` too with ``optional``."""
    if value is None and optional:
        return
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
    if bad or value < 0 or (positive and value == 0) or value == math.inf:
        kind = "a finite number > 0" if positive else "a finite number >= 0"
        raise ConfigError(f"{key}={value!r} is not allowed; it must be {kind}"
                          + (" or null" if optional else ""))


def real(key: str, value) -> None:
    """Any finite number, of either sign."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or abs(value) == math.inf:
        raise ConfigError(f"{key}={value!r} is not allowed; it must be a finite number")


def correlation(key: str, value) -> None:
    """A correlation strictly between -1 and 1 (a stationary AR(1) coefficient)."""
    real(key, value)
    if not -1 < value < 1:
        raise ConfigError(f"{key}={value!r} is not allowed; it must lie in (-1, 1) (a "
                          "stationary autocorrelation)")


def flag(key: str, value) -> None:
    """A boolean."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of [true, false]")


def known_keys(section: str, given, allowed) -> None:
    """Every key of ``section`` is one of ``allowed``; a misspelt one is named with the nearest."""
    known = sorted(f"{section}.{k}" for k in allowed)
    unknown = sorted(f"{section}.{k}" for k in set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]}{suggest(unknown[0], known)} "
                          f"(allowed: {', '.join(known)})")
