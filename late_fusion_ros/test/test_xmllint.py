# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
XML lint of the package manifests.

ament_xmllint (schema validation against package_format3.xsd) is used where installed; it
has no wheel on PyPI, so here every XML file must be well formed and every package.xml
must pass catkin_pkg's format-3 validation, which is what colcon and bloom read.
"""

import glob
import os
import xml.etree.ElementTree as ET

from catkin_pkg.package import parse_package
import pytest

REPO_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
MANIFESTS = sorted(glob.glob(os.path.join(REPO_DIR, '*', 'package.xml')) + glob.glob(
    os.path.join(REPO_DIR, 'late_fusion_ros', 'test', 'fixtures', '*', 'package.xml')))


@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint():
    """Manifests are well formed, valid format 3, and ament_xmllint passes where present."""
    assert len(MANIFESTS) >= 3
    try:
        from ament_xmllint.main import main
    except ImportError:
        main = None
    if main is not None:
        assert main(argv=MANIFESTS) == 0
    for path in MANIFESTS:
        ET.parse(path)  # raises on malformed XML
        pkg = parse_package(path)
        pkg.validate()
        assert pkg.package_format == 3, path
        assert pkg.description and pkg.maintainers and pkg.licenses, path
