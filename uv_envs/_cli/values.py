"""The command line's own value types: hours, human sizes, operation statuses, keys as shown.

Each is an argparse ``type``: a value it cannot read is refused by the parser
with the flag's name and the value as typed (``--idle-hours -1``), before the
core sees it in its own units (seconds, bytes).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Final

from uv_envs._models import EnvKey, OperationStatus

#: Binary multiples, as du and ls -h print them: 1K is 1024 bytes.
_UNITS: Final = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_RE: Final = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[KMGT]?)(?:I?B)?")


def hours(text: str) -> float:
    """A number of hours, 0 or more (fractions allowed: 0.5 is half an hour)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise argparse.ArgumentTypeError(f"give a number of hours, 0 or more, not {text!r}")
    return value


def size(text: str) -> int:
    """Bytes, plain (``5000000``) or with a binary unit: ``500M``, ``1G``, ``1.5GiB``."""
    match = _SIZE_RE.fullmatch(text.strip().upper())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"give a size in bytes, or with a unit (500M, 1G, 2T), not {text!r}"
        )
    return int(float(match["number"]) * _UNITS[match["unit"]])


#: The statuses an audit record can have, for ``ops --status`` (any case).
STATUSES: Final = tuple(status.value for status in OperationStatus)


def status(text: str) -> str:
    """An operation status in any case (``failed``), as the audit trail spells it."""
    return text.strip().upper()


def human_size(count: int) -> str:
    """Bytes as ``du -h`` prints them, in the units :func:`size` reads: ``1.5G``, ``300K``."""
    value = float(count)
    for unit in ("B", "K", "M", "G"):
        if value < _UNITS["K"]:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= _UNITS["K"]
    return f"{value:.1f}T"


def human_hours(seconds: float) -> str:
    """A duration in hours as ``--idle-hours`` takes them: ``30.2 h``."""
    return f"{seconds / 3600:.1f} h"


def shown(key: EnvKey) -> str:
    """A key as the CLI prints it: ``wf/n/v1``, and ``wf/n/@`` for the empty version.

    ``str(key)`` ends such a key in a slash (``wf/n/``), which reads as a path
    cut short; ``@`` is the folder the empty version lives in.
    """
    return f"{key.workflow_id}/{key.node_id}/{key.version_id or '@'}"


def print_json(value: object) -> None:
    """One JSON document on stdout, as every ``--json`` answer is printed."""
    print(json.dumps(value, indent=2, sort_keys=True, default=str))
