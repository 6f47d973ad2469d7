"""Fixtures the unit tests share: a fresh HSM to run gRPC scenarios against."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hsm_support import Scenario, fresh_hsm_home, scenario_runner


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Scenario], None]:
    """Runs a scenario against a fresh HSM (SQLite and LMK under tmp_path) through its stub.

    test_hsm_hostif.py has its own, which also starts the host interface.
    """
    fresh_hsm_home(tmp_path, monkeypatch)
    return scenario_runner()
