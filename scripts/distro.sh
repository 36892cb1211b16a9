#!/usr/bin/env bash
# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
#
# Which ROS 2 distribution the project is set up for, and the folders that belong to it.
# Sourced by setup.sh and run_tests.sh; `bash scripts/distro.sh NAME` prints one of the
# values below (the Makefile asks for `install`).
#
# The one switch is ROS_DISTRO:
#   unset            a system ROS 2 in /opt/ros (Jazzy or newer; the newest one) if there is
#                    one, otherwise the ROS 2 Kilted wheels from PyPI (the default)
#   ROS_DISTRO=jazzy /opt/ros/jazzy if installed (sourcing it sets ROS_DISTRO itself),
#                    otherwise the ROS 2 Jazzy wheels from PyPI
#   ROS_DISTRO=kilted /opt/ros/kilted if installed, otherwise the Kilted wheels
# Kilted keeps the folders .venv, build and install; any other distribution gets its own
# (.venv-jazzy, build-jazzy, install-jazzy), so both sets live side by side in one clone.
#
# Sets: lf_distro (jazzy, kilted, ...), lf_system_ros (/opt/ros/<distro>/ or empty: wheels),
# lf_suffix ('' or -<distro>), lf_venv, lf_build, lf_install (names relative to the root),
# lf_constraints (the pip pins of the wheel set) and lf_error (why nothing fits, or empty).

lf_supported_system() {  # is /opt/ros/$1 a ROS 2 this project supports (Jazzy or newer)?
  case "$1" in
    ardent|bouncy|crystal|dashing|eloquent|foxy|galactic|humble|iron) return 1 ;;
  esac
  [ -f "/opt/ros/$1/setup.bash" ]
}

lf_distro="${ROS_DISTRO:-}"
lf_system_ros=""
lf_error=""
if [ -z "$lf_distro" ]; then
  for _lf_d in /opt/ros/*/; do
    _lf_d="$(basename "$_lf_d")"
    lf_supported_system "$_lf_d" && lf_distro="$_lf_d"
  done
  unset _lf_d
  lf_distro="${lf_distro:-kilted}"
fi
if lf_supported_system "$lf_distro"; then
  lf_system_ros="/opt/ros/$lf_distro/"
fi
case "$lf_distro" in
  kilted) lf_constraints=scripts/constraints.txt ;;
  jazzy) lf_constraints=scripts/constraints-jazzy.txt ;;
  *)
    lf_constraints=""
    if [ -z "$lf_system_ros" ]; then
      lf_error="ROS_DISTRO=$lf_distro: no /opt/ros/$lf_distro (Jazzy or newer) and no wheel \
set for it; use ROS_DISTRO=kilted (default) or ROS_DISTRO=jazzy"
    fi
    ;;
esac
if [ "$lf_distro" = kilted ]; then lf_suffix=""; else lf_suffix="-$lf_distro"; fi
lf_venv=".venv$lf_suffix"
lf_build="build$lf_suffix"
lf_install="install$lf_suffix"

if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # executed: print what was asked for
  case "${1:-}" in
    distro) echo "$lf_distro" ;;
    system_ros) echo "$lf_system_ros" ;;
    venv) echo "$lf_venv" ;;
    build) echo "$lf_build" ;;
    install) echo "$lf_install" ;;
    error) echo "$lf_error" ;;
    *) echo "usage: $0 distro|system_ros|venv|build|install|error" >&2; exit 2 ;;
  esac
fi
