# late_fusion_ros: `make demo` and `make test` do all set-up on first use (scripts/setup.sh).
SHELL := /bin/bash
DURATION ?= 30
FACE ?=
TRANSCRIBE ?= 1

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@source install/setup.bash && python -m late_fusion_ros.demo --duration $(DURATION) $(if $(FACE),--face,) $(if $(filter 0 false no,$(TRANSCRIBE)),--no-transcribe,)

test: setup
	@source install/setup.bash && bash scripts/run_tests.sh

bench: setup
	@source install/setup.bash && bash bench/run_all.sh

clean:
	rm -rf build install log .venv
