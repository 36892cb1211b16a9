# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""ament_pep257 over the package: docstrings on public modules, classes and functions."""

import os

from ament_pep257.main import main
import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(__file__), '..')


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    """Docstrings follow pep257 as ament configures it."""
    rc = main(argv=[PACKAGE_DIR, 'test'])
    assert rc == 0, 'Found code style errors / warnings'
