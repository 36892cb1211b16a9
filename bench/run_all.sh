#!/usr/bin/env bash
# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
#
# Run every benchmark in bench/ (bench_*.py) one after the other and print their tables;
# a copy of each output goes to bench/results/<name>.txt (git-ignored). `make bench` runs
# this after set-up. Expects `source install/setup.bash`. DDS traffic stays on this host in
# a random domain (150-230) so that it never crosses a test run. About 7 minutes on 2 cores.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 81) + 150 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export PYTHONUNBUFFERED=1
mkdir -p bench/results
failed=()
start=$SECONDS
for bench in bench/bench_*.py; do
  name="$(basename "$bench" .py)"
  echo "==================== $name (ROS_DOMAIN_ID=$ROS_DOMAIN_ID) ===================="
  t0=$SECONDS
  python "$bench" 2>&1 | tee "bench/results/$name.txt"
  rc=${PIPESTATUS[0]}
  echo "[$name: exit $rc, $(( SECONDS - t0 )) s]"
  [ "$rc" -eq 0 ] || failed+=("$name")
done
echo "all benchmarks: $(( SECONDS - start )) s; results in bench/results/"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
