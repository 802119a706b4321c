"""The docs' example extractor finds every example and tells real output from a mismatch."""

from __future__ import annotations

import pytest

from tests.support.doc_examples import Block, Command, blocks, commands, output_mismatch, printed

PAGE = """\
# A page

```console
$ eventwire track signup \\
    --user u-42
success: True
event_id: 01a23754-5327-7248-97bc-70746f1b1068
$ eventwire count; echo "exit $?"
count: 1
exit 0
```

```python
print(reply.success, reply.duplicate)  # True False: committed before the reply
x = 1  # not a print
print(n)  # 1
```

~~~sh
pip install eventwire
~~~
"""


def test_blocks_are_found_with_their_language_and_line() -> None:
    found = blocks(PAGE)
    assert [(b.language, b.line) for b in found] == [("console", 4), ("python", 14), ("sh", 20)]
    assert found[2].body == "pip install eventwire\n"


def test_commands_keep_continuations_and_their_output() -> None:
    console = blocks(PAGE)[0]
    assert commands(console) == [
        Command(
            "eventwire track signup \\\n    --user u-42",
            "success: True\nevent_id: 01a23754-5327-7248-97bc-70746f1b1068\n",
            4,
        ),
        Command('eventwire count; echo "exit $?"', "count: 1\nexit 0\n", 8),
    ]


def test_output_before_a_command_is_refused() -> None:
    with pytest.raises(ValueError, match="line 7"):
        commands(Block("console", 7, "stray output\n$ eventwire count\n"))


def test_a_python_block_shows_its_print_comments() -> None:
    assert printed(blocks(PAGE)[1]) == "True False\n1\n"


@pytest.mark.parametrize(
    ("shown", "actual"),
    [
        ("a: 1\n", "a: 1   \n"),  # trailing blanks
        (
            "id: 01a23754-5327-7248-97bc-70746f1b1068\n",
            "id: 6f83b2bf-f307-40c3-a031-fd57420d075a\n",
        ),
        ("id: <uuid>\n", "id: 6f83b2bf-f307-40c3-a031-fd57420d075a\n"),
        ("id: <id>\n", "id: order-7\n"),
        ("from 2000 to ... ms, or 0\n", "from 2000 to 1796709600000 ms, or 0\n"),
        ("first\n...\nlast\n", "first\nlast\n"),
        ("first\n...\nlast\n", "first\nx\ny\nlast\n"),
    ],
)
def test_placeholders_match_what_varies(shown: str, actual: str) -> None:
    assert output_mismatch(shown, actual) is None


@pytest.mark.parametrize(
    ("shown", "actual"),
    [
        ("count: 2\n", "count: 3\n"),
        ("id: <uuid>\n", "id: order-7\n"),
        ("id: <id>\n", "id: two words\n"),
        ("a\nb\n", "a\n"),
        ("a\n", "a\nb\n"),
        ("to ... ms\n", "to 17 seconds\n"),
        ("exit 1\n", "exit 0\n"),
    ],
)
def test_a_different_output_is_a_mismatch(shown: str, actual: str) -> None:
    mismatch = output_mismatch(shown, actual, "page.md line 3")
    assert mismatch is not None
    assert "shown (page.md line 3)" in mismatch
