"""Pages are decoded with orjson where it reads them as ``response.json()`` does: the same value
for every body, or the same ``ValueError``, so a faster walk changes nothing a record holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from og_pipeline.http_common import json_body

# Any value the standard library writes, NaN, infinities and integers beyond 64 bits included.
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# Number literals as a server might write them: long mantissas, exponents out of range.
numbers = st.from_regex(
    r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?\Z", fullmatch=True
)


def response(body: bytes, charset: str | None = None) -> requests.Response:
    answer = requests.Response()
    answer.status_code = 200
    answer._content = body
    answer.encoding = charset
    return answer


def same_reading(body: bytes, charset: str | None = None) -> None:
    def read(decode: Any) -> tuple[str, str]:
        try:
            # Dumped again to compare NaN, -0.0 and int-versus-float exactly.
            return "value", json.dumps(decode(response(body, charset)))
        except ValueError:
            return "error", ""

    assert read(json_body) == read(requests.Response.json)


@given(values, st.booleans())
def test_any_json_value_reads_as_the_standard_library_reads_it(
    value: Any, ensure_ascii: bool
) -> None:
    same_reading(json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass"))


@given(st.lists(numbers, min_size=1, max_size=5))
def test_number_literals_read_as_the_standard_library_reads_them(literals: list[str]) -> None:
    same_reading(f"[{', '.join(literals)}]".encode())


@given(st.binary(max_size=64))
def test_any_bytes_read_the_same_or_fail_the_same(body: bytes) -> None:
    same_reading(body)


@pytest.mark.parametrize(
    ("body", "charset"),
    [
        (b"[18446744073709551616, -9223372036854775809]", None),  # beyond 64 bits
        (b"[NaN, Infinity, 1e400]", None),
        (b'"\\ud800"', None),  # a lone surrogate
        ("\ufeff[1]".encode(), None),  # a byte-order mark
        ('["caf\u00e9"]'.encode(), "ISO-8859-1"),  # valid UTF-8, declared otherwise
        ('{"results": [], "next": null}'.encode("utf-16"), None),
    ],
)
def test_bodies_orjson_reads_otherwise_read_as_before(body: bytes, charset: str | None) -> None:
    same_reading(body, charset)
