#!/usr/bin/env bash
# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
#
# Run every test of the package set (unit, integration over real DDS, linters) with pytest.
# Expects `source install/setup.bash` (make test does it). DDS traffic is isolated per run:
# a random ROS_DOMAIN_ID and discovery limited to localhost, so parallel runs never cross.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ROS_DOMAIN_ID="${LATE_FUSION_TEST_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export PYTHONUNBUFFERED=1
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID, discovery localhost only"
exec python -m pytest -p no:cacheprovider -o junit_family=xunit2 \
  --junitxml=build/test-results.xml late_fusion_ros/test "$@"
