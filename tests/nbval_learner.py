"""A pytest plugin for the nbval check of the committed notebooks (tests/test_notebooks.py passes it with ``-p``).

The committed outputs were made with a stand-in learner logging in at 07's login cell (``workbook refresh``);
the fresh run nbval compares them with gets the same stand-in at the same cell, so both show a login.
"""

from __future__ import annotations

import os

import pytest

from jhtutorial.notebook.standin import StandInLearner, is_login_cell

_learners: list[StandInLearner] = []


def pytest_runtest_setup(item: pytest.Item) -> None:
    cell = getattr(item, "cell", None)  # nbval's items carry the notebook cell they run
    if cell is not None and is_login_cell(cell.source):
        learner = StandInLearner(os.environ["JHTUTORIAL_NAMESPACE"])
        _learners.append(learner)
        learner.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for learner in _learners:
        learner.__exit__(None, None, None)
        print(f"\nstand-in learner: {learner.outcome}")
