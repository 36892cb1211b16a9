# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""ament_flake8 over the package (99 columns, google import order, single quotes)."""

import os

from ament_flake8.main import main_with_errors
import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(__file__), '..')
REPO_DIR = os.path.join(PACKAGE_DIR, '..')


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    """The package, the set-up tooling and the benchmarks pass flake8."""
    paths = [PACKAGE_DIR] + [p for p in (os.path.join(REPO_DIR, 'bench'),) if os.path.isdir(p)]
    rc, errors = main_with_errors(argv=paths)
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
