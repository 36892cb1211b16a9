# late_fusion_ros: `make demo` and `make test` do all set-up on first use (scripts/setup.sh).
# ROS_DISTRO chooses the ROS 2 distribution: Kilted by default (or the system ROS 2 in
# /opt/ros), `ROS_DISTRO=jazzy make test` for Jazzy, each in its own venv/build/install
# folders (scripts/distro.sh).
SHELL := /bin/bash
DURATION ?= 30
FACE ?=
TRANSCRIBE ?= 1
# Extra pytest arguments, e.g. PYTEST_ARGS='-m ros' (node, launch and integration tests only).
PYTEST_ARGS ?=
INSTALL := $(shell bash scripts/distro.sh install)
BUILD := $(shell bash scripts/distro.sh build)
VENV := $(shell bash scripts/distro.sh venv)

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@source $(INSTALL)/setup.bash && python -m late_fusion_ros.tools.demo --duration $(DURATION) $(if $(FACE),--face,) $(if $(filter 0 false no,$(TRANSCRIBE)),--no-transcribe,)

test: setup
	@source $(INSTALL)/setup.bash && bash scripts/run_tests.sh $(PYTEST_ARGS)

bench: setup
	@source $(INSTALL)/setup.bash && bash bench/run_all.sh

clean:
	rm -rf $(BUILD) $(INSTALL) log $(VENV)
