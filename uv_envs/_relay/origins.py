"""Where a wheel relay may fetch from: an allow-list of exact origins.

An origin is ``scheme://host:port`` (:func:`~uv_envs._relay.urls.origin_of`).
The list starts from the indexes a root is configured with (no index: PyPI)
and grows by the origins of the locks the relay's owner publishes; an index
whose files live on another host brings that host along (:data:`FILE_HOSTS`).
Anything else is refused before a connection is made, redirects included.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import attrs

from uv_envs._models import IndexSettings
from uv_envs._relay.urls import origin_of

#: The index uv uses when a root names none.
DEFAULT_INDEX = "https://pypi.org/simple"
#: Hosts an index serves its files from, allowed with the index: PyPI's pages
#: link to files.pythonhosted.org. Others are given with ``--allow-origin``.
FILE_HOSTS: Mapping[str, tuple[str, ...]] = {
    "https://pypi.org:443": ("https://files.pythonhosted.org:443",),
}


def index_origins(index: IndexSettings) -> frozenset[str]:
    """The origins of the indexes and links of ``index`` (PyPI when it names no index)."""
    urls = [
        *([] if index.no_index else [index.index_url or DEFAULT_INDEX]),
        *index.extra_index_urls,
        *index.find_links,
    ]
    return frozenset(origin for origin in map(origin_of, urls) if origin is not None)


def _set_of(origins: Iterable[str]) -> set[str]:
    return set(origins)


@attrs.define
class AllowedOrigins:
    """The origins a relay fetches from; grows by :meth:`add`, never shrinks."""

    _origins: set[str] = attrs.field(factory=set, alias="origins", converter=_set_of)
    _guard: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    @classmethod
    def of(cls, index: IndexSettings, extra: Iterable[str] = ()) -> AllowedOrigins:
        """The origins of ``index`` and of the URLs ``extra``; raises ValueError for a bad one."""
        allowed = cls(index_origins(index))
        for url in extra:
            origin = origin_of(url)
            if origin is None:
                raise ValueError(f"not an http(s) origin: {url!r}")
            allowed.add([origin])
        return allowed

    def add(self, origins: Iterable[str]) -> None:
        """Allow ``origins`` (as :func:`origin_of` writes them) and their file hosts."""
        with self._guard:
            for origin in origins:
                self._origins.add(origin)
                self._origins.update(FILE_HOSTS.get(origin, ()))

    def allows(self, url: str) -> bool:
        """Whether ``url`` is on an allowed origin (a malformed URL never is)."""
        origin = origin_of(url)
        with self._guard:
            return origin is not None and origin in self._origins

    def __attrs_post_init__(self) -> None:
        self.add(list(self._origins))
