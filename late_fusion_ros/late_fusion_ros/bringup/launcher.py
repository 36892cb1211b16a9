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
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

from . import NodeSpec, PACKAGE, ros_args, unmatched_sections, write_parameters


def executable_path(executable: str, env: Optional[Dict[str, str]] = None) -> str:
    """
    Find a console script of this package: <prefix>/lib/late_fusion_ros, then PATH.

    With `env`, the prefixes of its AMENT_PREFIX_PATH are searched (another workspace or
    distribution than this process's); otherwise this process's ament index.
    """
    if env is not None:
        for prefix in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
            index = os.path.join(prefix, 'share', 'ament_index', 'resource_index', 'packages')
            candidate = os.path.join(prefix, 'lib', PACKAGE, executable)
            if os.path.exists(os.path.join(index, PACKAGE)) and os.access(candidate, os.X_OK):
                return candidate
    else:
        try:
            from ament_index_python.packages import get_package_prefix
            candidate = os.path.join(get_package_prefix(PACKAGE), 'lib', PACKAGE, executable)
            if os.access(candidate, os.X_OK):
                return candidate
        except Exception:  # noqa: BLE001 - not installed through colcon
            pass
    found = shutil.which(executable, path=(env or os.environ).get('PATH'))
    if not found:
        raise FileNotFoundError(f'{executable} not found: source install/setup.bash first')
    return found


class ProcessGroup:
    """
    A set of node processes started together and stopped together.

    Processes are keyed by node name, or by 'namespace.name' for a namespaced node
    (also the name of its log file), so that two graphs in two namespaces fit in one group.
    """

    def __init__(self, env: Optional[Dict[str, str]] = None, log_dir: Optional[str] = None,
                 prefix: Sequence[str] = ()):
        """
        Start processes with `env` (default: this process's), logs in `log_dir`.

        `prefix` goes before every command line, e.g. `ip netns exec robot` to start the
        nodes on another (emulated) host; it must exec the command, so that signals reach it.
        """
        self._env = dict(os.environ if env is None else env)
        self._prefix = list(prefix)
        self._own_env = env is not None  # nodes come from that environment's install
        self.log_dir = log_dir
        self._logs = []
        self.procs: Dict[str, subprocess.Popen] = {}
        # Each node's resolved parameters file (bringup.write_parameters) is kept with the
        # logs, or in a temporary folder removed by stop().
        self._tmp = None if log_dir else tempfile.TemporaryDirectory(prefix='late_fusion_')
        self.params_dir = os.path.join(log_dir, 'params') if log_dir else self._tmp.name

    def start_all(self, specs: Sequence[NodeSpec]) -> List[str]:
        """
        Start every spec; first report parameters-file sections that configure none of them.

        Returns the reported lines (also written to stderr), as `ros2 launch` logs them.
        """
        problems = unmatched_sections(specs)
        for line in problems:
            print(f'[late_fusion_ros] WARNING: {line}', file=sys.stderr, flush=True)
        for spec in specs:
            self.start(spec)
        return problems

    def start(self, spec: NodeSpec, extra_args: Optional[List[str]] = None):
        """Start one node; its output goes to <log_dir>/<name>.log or is inherited."""
        params = write_parameters(spec, self.params_dir)
        exe = executable_path(spec.executable, self._env if self._own_env else None)
        cmd = self._prefix + [exe] + ros_args(spec, params) + (extra_args or [])
        out = None
        key = spec.fqn.lstrip('/').replace('/', '.') if spec.namespace.strip('/') else spec.name
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir, f'{key}.log'), 'w')
            self._logs.append(out)
        self.procs[key] = subprocess.Popen(
            cmd, env=self._env, stdout=out, stderr=subprocess.STDOUT if out else None)
        return self.procs[key]

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
        if self._tmp is not None:
            self._tmp.cleanup()
        return codes
