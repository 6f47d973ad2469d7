"""The shared XOR against the byte-by-byte definition, and its refusal of unequal lengths."""

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_sim.algorithms import bits
from tests.oracle import oracle


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(bits)
    assert result.attempted > 0
    assert result.failed == 0


@oracle
@given(st.integers(min_value=0, max_value=32).flatmap(
    lambda n: st.tuples(st.binary(min_size=n, max_size=n), st.binary(min_size=n, max_size=n))))
def test_xor_is_bytewise_xor_and_keeps_leading_zero_bytes(pair: tuple[bytes, bytes]) -> None:
    left, right = pair
    assert bits.xor(left, right) == bytes(a ^ b for a, b in zip(left, right, strict=True))


@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=4))
def test_xor_all_of_components_undoes_itself(parts: list[bytes]) -> None:
    combined = bits.xor_all(parts)
    assert bits.xor_all([combined, *parts]) == bytes(16)


def test_unequal_lengths_are_refused_with_both_lengths() -> None:
    with pytest.raises(ValueError, match=r"xor: lengths differ \(8 and 16 bytes\)"):
        bits.xor(bytes(8), bytes(16))
