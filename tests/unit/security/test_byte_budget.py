"""The in-flight byte budget: admits up to its limit, refuses with a retry hint beyond it."""

from __future__ import annotations

import pytest

from eventwire._errors import Overloaded
from eventwire.security.limits import ByteBudget


def test_takes_up_to_the_limit_then_refuses_until_released() -> None:
    budget = ByteBudget(100)
    budget.take(60)
    budget.take(40)
    with pytest.raises(Overloaded) as info:
        budget.take(1)
    assert info.value.retry_after_ms > 0
    assert budget.held == 100  # a refusal charges nothing
    budget.release(40)
    budget.take(30)
    assert budget.held == 90


def test_an_oversize_message_gets_in_when_nothing_is_held() -> None:
    budget = ByteBudget(100)
    budget.take(500)  # or no request larger than the budget could ever be served
    with pytest.raises(Overloaded):
        budget.take(1)
    budget.release(500)
    assert budget.held == 0


def test_zero_means_no_limit() -> None:
    budget = ByteBudget(0)
    budget.take(1 << 40)
    budget.take(1 << 40)
    assert budget.held == 2 << 40
