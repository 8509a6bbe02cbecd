"""The package sets the benchmarks install, one definition so their figures compare."""

from __future__ import annotations

SMALL = ("requests",)
#: 30 packages locked.
MEDIUM = (
    "pandas",
    "numpy",
    "requests",
    "pydantic",
    "fastapi",
    "sqlalchemy",
    "jinja2",
    "click",
    "rich",
    "httpx",
)
SETS = {"small": SMALL, "medium": MEDIUM}
