# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Start NodeSpecs as processes and stop them with SIGINT, where `ros2 launch` is absent.

launch_ros has no wheel on PyPI, so the demo and the integration tests start the same
NodeSpecs the launch file uses with this small process group instead.
"""

import os
import shutil
import signal
import subprocess
import time
from typing import Dict, List, Optional

from .bringup import NodeSpec, PACKAGE, ros_args


def executable_path(executable: str) -> str:
    """Find a console script of this package: <prefix>/lib/late_fusion_ros, then PATH."""
    try:
        from ament_index_python.packages import get_package_prefix
        candidate = os.path.join(get_package_prefix(PACKAGE), 'lib', PACKAGE, executable)
        if os.access(candidate, os.X_OK):
            return candidate
    except Exception:  # noqa: BLE001 - not installed through colcon
        pass
    found = shutil.which(executable)
    if not found:
        raise FileNotFoundError(f'{executable} not found: source install/setup.bash first')
    return found


class ProcessGroup:
    """A set of node processes started together and stopped together."""

    def __init__(self, env: Optional[Dict[str, str]] = None, log_dir: Optional[str] = None):
        self._env = dict(os.environ if env is None else env)
        self.log_dir = log_dir
        self._logs = []
        self.procs: Dict[str, subprocess.Popen] = {}

    def start(self, spec: NodeSpec, extra_args: Optional[List[str]] = None):
        """Start one node; its output goes to <log_dir>/<name>.log or is inherited."""
        cmd = [executable_path(spec.executable)] + ros_args(spec) + (extra_args or [])
        out = None
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir, f'{spec.name}.log'), 'w')
            self._logs.append(out)
        self.procs[spec.name] = subprocess.Popen(
            cmd, env=self._env, stdout=out, stderr=subprocess.STDOUT if out else None)
        return self.procs[spec.name]

    def alive(self) -> Dict[str, Optional[int]]:
        """Return {name: None if running else exit code}."""
        return {name: p.poll() for name, p in self.procs.items()}

    def stop(self, timeout: float = 10.0) -> Dict[str, int]:
        """Send SIGINT (like Ctrl-C) to every node, wait, kill stragglers; return codes."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        codes = {}
        for name, p in self.procs.items():
            try:
                codes[name] = p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        for f in self._logs:
            f.close()
        return codes
