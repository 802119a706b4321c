"""The gateway's JSON parser refuses a lone surrogate escape, and only that."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventwire.frontends.http.errors import HttpError
from eventwire.frontends.http.jsonparse import parse_json

# Every code point, lone surrogates included, weighted towards the D block
# (U+D000 to U+DFFF), where letters and surrogates share the first hex digit.
CHARS = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.integers(0xD000, 0xDFFF).map(chr),
)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@given(st.text(CHARS, max_size=8))
def test_a_string_is_refused_exactly_when_it_holds_a_lone_surrogate(text: str) -> None:
    # ensure_ascii writes every character above U+007F as a \u escape, a
    # character above U+FFFF as a surrogate pair, and a lone surrogate alone.
    # json.loads joins a high and a low surrogate that follow each other into
    # one character, as JSON does; what stays a surrogate after it is lone.
    body = json.dumps({"k": text}, ensure_ascii=True).encode()
    decoded = json.loads(body)
    if _has_lone_surrogate(decoded["k"]):
        with pytest.raises(HttpError, match="unpaired surrogate"):
            parse_json(body)
    else:
        assert parse_json(body) == decoded


@pytest.mark.parametrize(
    "escaped", ["\\ud4c8", "\\uD7FF", "\\ud000\\u010a", "\\ud83c\\udff4", "\\\\ud800"]
)
def test_letters_of_the_d_block_and_pairs_are_text(escaped: str) -> None:
    body = b'{"k": "' + escaped.encode() + b'"}'
    assert parse_json(body) == json.loads(body)
