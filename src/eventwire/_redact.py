"""The one secret redactor: what may reach a log line or an error goes through it.

A store URL or a driver's error can carry a password in three shapes, and a
request's metadata a bearer token:

* URL user information: ``postgresql://app:s3cret@db/x``;
* a key-value pair, in a URL's query (``?password=s3cret&sslmode=require``) or
  a libpq conninfo string (``host=db password='s3 cret'``), quoted or not;
* ``Bearer <token>``.

Each becomes ``***``; secrets the caller knows (a password parsed out of a URL
in a form none of the above matches) are replaced wherever they appear.
"""

from __future__ import annotations

import re
from typing import Final

MASK: Final = "***"

# Up to the last "@" of the word: a password may hold an unescaped "@" or "/"
# (masking a little more than the password is the safe side).
_USERINFO: Final = re.compile(r"""(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^\s'"]*@""")
# libpq's password and sslpassword, and the spellings other drivers accept.
_KEY_VALUE: Final = re.compile(
    r"""(\b(?:\w*password|passwd|pwd)\s*=\s*)('(?:[^'\\]|\\.)*'?|"[^"]*"?|[^\s&;,'"]+)""",
    re.IGNORECASE,
)
_BEARER: Final = re.compile(r"(\bbearer\s+)[^\s,;'\"]+", re.IGNORECASE)


def redact(text: str, *secrets: str) -> str:
    """``text`` with every password, token and each of ``secrets`` masked."""
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    text = _KEY_VALUE.sub(rf"\1{MASK}", text)
    text = _BEARER.sub(rf"\1{MASK}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
