# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Copyright and license notice in every source file.

ament_copyright is used where it is installed (a ROS install); it has no wheel on PyPI, so
elsewhere the same rule (a copyright line and the license within the first lines) is
checked here directly.
"""

import os
import re

import pytest

REPO_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SOURCE_DIRS = ['late_fusion_ros', 'late_fusion_msgs', 'bench', 'scripts']
NOTICE = re.compile(r'Copyright \d{4} .+\n.*Licensed under the Apache License, Version 2\.0')


def _sources():
    for top in SOURCE_DIRS:
        for root, dirs, files in os.walk(os.path.join(REPO_DIR, top)):
            dirs[:] = [d for d in dirs if d not in ('fixtures', '__pycache__')]
            for f in files:
                if f.endswith(('.py', '.sh')):
                    yield os.path.join(root, f)


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    """Every Python and shell source names its copyright holder and license."""
    try:
        from ament_copyright.main import main
    except ImportError:
        main = None
    if main is not None:
        assert main(argv=[os.path.join(REPO_DIR, 'late_fusion_ros'), 'test']) == 0
    missing = []
    for path in _sources():
        with open(path, encoding='utf-8') as f:
            head = ''.join(f.readline() for _ in range(6))
        if not NOTICE.search(head):
            missing.append(os.path.relpath(path, REPO_DIR))
    assert not missing, 'no copyright/license notice in: ' + ', '.join(missing)
