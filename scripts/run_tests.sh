#!/usr/bin/env bash
# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
#
# Run every test of the package set (unit, integration over real DDS, linters) with pytest.
# Expects `source install/setup.bash` (make test does it). DDS traffic is isolated per run:
# a random ROS_DOMAIN_ID and discovery limited to localhost, so parallel runs never cross.
#
# Arguments go to pytest: `-m ros` runs only the node, launch and integration tests (what CI
# runs on the second distribution), a file or `-k` selects as usual.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=distro.sh
source scripts/distro.sh
export ROS_DOMAIN_ID="${LATE_FUSION_TEST_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export PYTHONUNBUFFERED=1
# The distribution's build folder: the real ROS tools are built into <build>/ros-tools.
export LATE_FUSION_BUILD_DIR="$PWD/$lf_build"
mkdir -p "$lf_build"
echo "[test] ROS 2 $lf_distro (${lf_system_ros:-wheels in $lf_venv}), \
ROS_DOMAIN_ID=$ROS_DOMAIN_ID, discovery localhost only"
# The whole suite, unless the arguments name test files or folders themselves.
suite=(late_fusion_ros/test)
for arg in "$@"; do
  [ -e "${arg%%::*}" ] && suite=()
done
# -rs: every skip is listed with its reason at the end (none is silent).
exec python -m pytest -p no:cacheprovider -o junit_family=xunit2 -rs \
  --junitxml="$lf_build/test-results.xml" "${suite[@]}" "$@"
