"""Billing's tests count every cent: their accounts start with nothing."""

from decimal import Decimal

import pytest
from django.conf import LazySettings


@pytest.fixture(autouse=True)
def _no_starting_balance(settings: LazySettings) -> None:
    settings.TOKENBYTE_STARTING_BALANCE = Decimal(0)
