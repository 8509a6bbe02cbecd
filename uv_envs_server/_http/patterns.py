"""What a string of the HTTP API may hold, as the regular expressions its schema states.

The core checks every one of these itself; they are here so that the OpenAPI
document says what is refused, and one spelling serves ``/v1``, the original
service's routes and the event stream. Spelt without look-ahead, which not every
OpenAPI tool's regex engine has.
"""

from __future__ import annotations

from typing import Final

import uv_envs

# An id as the core takes it: 1-128 of [A-Za-z0-9._-], neither "." nor "..".
_ID_BODY: Final = (
    r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}"
    r"|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}"
    r"|\.\.[A-Za-z0-9._-]{1,126}"
)
#: A workflow or node id.
ID_PATTERN: Final = rf"^({_ID_BODY})$"
#: A version id in a body or query: an id, or empty.
VERSION_PATTERN: Final = rf"^({_ID_BODY})?$"
#: A version id in a path: an id, or ``@`` for the empty one.
PATH_VERSION_PATTERN: Final = rf"^({_ID_BODY}|@)$"
#: ``3.12`` or ``3.12.1``; empty means the server's default.
PYTHON_PATTERN: Final = r"^(3\.[0-9]{1,2}(\.[0-9]{1,3})?)?$"
#: An operation id as the core's ``operation_scope`` takes it.
OPERATION_ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,128}$"
#: The names an event filter may name, for the schema's ``enum``.
EVENT_NAMES: Final = sorted(uv_envs.EVENT_NAMES)
