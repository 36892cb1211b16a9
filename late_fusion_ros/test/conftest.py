# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Shared fixtures for tests that start real nodes over real DDS.

`ros` is one rclpy context per test module with a test node spinning in the background
(SingleThreadedExecutor: the multi-threaded one busy-polls both cores of this machine).
`start_nodes` starts node executables as processes and stops them with SIGINT afterwards,
checking that each one exits 0 without a traceback. `ros_tools` provides the real `ros2`
CLI, `ros2 launch` (launch_ros) and message_filters: the system's where ROS is installed,
otherwise built once per run from ../shared/vendor into the build folder.
"""

import contextlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

from late_fusion_ros.bringup import NodeSpec
from late_fusion_ros.bringup.launcher import ProcessGroup
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The driver of the launch tests: real speech and photos on a 48 kHz stereo microphone and a
# 1280x720 reliable camera. 5 fps (a common rate for a robot's ML camera) keeps two graphs
# within 2 shared cores.
PLAYER = ['run', 'late_fusion_ros', 'media_player_node', '--ros-args', '-p', 'fps:=5.0']
VENDOR_SCRIPT = ROOT.parent / 'shared' / 'vendor' / 'build-ros-tools.sh'


class RosHarness:
    """A test node spinning in a thread, with helpers to collect and wait for messages."""

    def __init__(self, name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.rclpy = rclpy
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.received = {}

    def collect(self, msg_type, topic: str, qos=None):
        """Subscribe `topic` and append (receive time, msg) to self.received[topic]."""
        from late_fusion_ros.shared.qos import EMBEDDING_QOS
        box = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, lambda m: box.append((time.time(), m)),
                                      qos or EMBEDDING_QOS)
        return box

    @staticmethod
    def wait_for(predicate, timeout: float, period: float = 0.05) -> bool:
        """Poll `predicate` until it is true or `timeout` seconds pass."""
        end = time.time() + timeout
        while time.time() < end:
            if predicate():
                return True
            time.sleep(period)
        return bool(predicate())

    @staticmethod
    def wait_quiet(value, quiet: float = 0.5, timeout: float = 10.0,
                   period: float = 0.05) -> bool:
        """
        Poll `value()` until it has not changed for `quiet` seconds; False after `timeout`.

        For what has no end marker: the outputs of inputs already sent, still on their way,
        are in once their count (or a tuple of counters) stops growing.
        """
        end = time.time() + timeout
        last, since = value(), time.time()
        while time.time() < end:
            time.sleep(period)
            now = value()
            if now != last:
                last, since = now, time.time()
            elif time.time() - since >= quiet:
                return True
        return False

    def handshake(self, publishers, subscribers=1, their_side=None, probe=None,
                  timeout: float = 30.0, period: float = 0.5):
        """
        Wait until the nodes under test and this node have discovered each other; assert it.

        Discovery completes on each side separately, and a message sent before both sides
        have matched can be dropped unseen. This side: each of `publishers` (a dict or a
        list) has at least `subscribers` matched subscriptions (a number, or a dict with the
        keys of `publishers`). The other side: `their_side()` becomes true, e.g. the node's
        diagnostics count our publisher, or an output came back for a `probe`: probe() sends
        a message that is harmless to repeat (older than any test input), again every
        `period` seconds until their_side() is true. A node whose subscription follows the
        publishers (AdaptiveSubscription: the encoders, bag_record) subscribes only once it
        has seen ours, so for it this side shows the other one too. `timeout` is the
        deadline of the whole handshake.
        """
        end = time.time() + timeout
        items = list(publishers.items() if isinstance(publishers, dict)
                     else enumerate(publishers))

        def need(key):
            return subscribers[key] if isinstance(subscribers, dict) else subscribers

        def counts():
            return {p.topic_name: (p.get_subscription_count(), need(k)) for k, p in items}

        assert self.wait_for(lambda: all(p.get_subscription_count() >= need(k)
                                         for k, p in items), timeout), \
            f'subscriptions (matched, expected) after {timeout} s: {counts()}'
        if their_side is None:
            return
        while True:
            if probe is not None:
                probe()
            left = end - time.time()
            wait = min(period, left) if probe is not None else left
            if self.wait_for(their_side, max(0.0, wait)):
                return
            assert time.time() < end, \
                f'the other side of {list(counts())} did not answer within {timeout} s'

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        """Call a service and wait for its response."""
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
        future = client.call_async(request)
        assert self.wait_for(future.done, timeout), f'{name} did not answer'
        self.node.destroy_client(client)
        return future.result()

    def set_parameters(self, node_name: str, **values):
        """Set parameters of a running node; return the list of SetParametersResult."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return self.call(SetParameters, f'/{node_name}/set_parameters', request).results

    def get_parameters(self, node_name: str, *names: str) -> dict:
        """Return {name: value} of parameters of a running node (None: not set)."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        values = self.call(GetParameters, f'/{node_name}/get_parameters',
                           GetParameters.Request(names=list(names))).values
        return {n: parameter_value_to_python(v) for n, v in zip(names, values)}

    @contextlib.contextmanager
    def parameters_restored(self, node_name: str, *names: str):
        """
        Restore parameters `names` of a running node when the block ends, even by a failure.

        A module's nodes outlive each test: a parameter a failing test changed and left
        would change the tests after it. Only values that differ are set back (a read-only
        parameter the block failed to change is left alone), and that must succeed.
        """
        before = self.get_parameters(node_name, *names)
        try:
            yield before
        finally:
            now = self.get_parameters(node_name, *names)
            changed = {n: v for n, v in before.items() if now[n] != v}
            if changed:
                results = self.set_parameters(node_name, **changed)
                assert all(r.successful for r in results), \
                    f'{node_name}: restoring {changed} failed: {[r.reason for r in results]}'

    def close(self):
        """Stop spinning and destroy the test node."""
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture(scope='module')
def ros(request):
    """Return a RosHarness for the module; rclpy is initialised for its lifetime."""
    import rclpy
    rclpy.init()
    harness = RosHarness(f'test_{request.module.__name__}')
    yield harness
    harness.close()
    rclpy.try_shutdown()


@pytest.fixture(scope='module')
def start_nodes(tmp_path_factory):
    """Start NodeSpecs as processes; at module end stop them and check clean exits."""
    log_dir = str(tmp_path_factory.mktemp('node_logs'))
    group = ProcessGroup(log_dir=log_dir)

    def start(*specs: NodeSpec):
        for spec in specs:
            group.start(spec)
        return group

    yield start
    codes = group.stop()
    for name, code in codes.items():
        log = open(os.path.join(log_dir, f'{name}.log')).read()
        assert code == 0, f'{name} exited {code}:\n{log[-3000:]}'
        assert 'Traceback' not in log, f'{name}:\n{log[-3000:]}'


def node_log(group: ProcessGroup, name: str) -> str:
    """Return what a node started by `start_nodes` has logged so far."""
    return open(os.path.join(group.log_dir, f'{name}.log')).read()


def flatten(params: dict, prefix: str = '') -> dict:
    """Return nested parameters as {'a.b.c': value}, the names ROS gives them."""
    flat = {}
    for k, v in params.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f'{prefix}{k}.'))
        else:
            flat[f'{prefix}{k}'] = v
    return flat


def diagnostics(arrays, node: str) -> dict:
    """
    Return the newest /diagnostics values of `node`, all its stages merged, as a dict.

    `arrays` is what RosHarness.collect gathered on /diagnostics ((receive time, array)
    pairs). A node publishes all its statuses ('<node FQN>: <stage>', hardware_id the FQN)
    in one array; `node` is its name, or its fully qualified name when it starts with '/'.
    """
    for _, arr in reversed(arrays):
        values = {}
        for status in arr.status:
            if _of_node(status, node):
                values.update({kv.key: kv.value for kv in status.values})
        if values:
            return values
    return {}


def diagnostic_status(arrays, node: str, stage: str):
    """
    Return the newest DiagnosticStatus '<node FQN>: <stage>' of `node`, or None.

    For a stage's level and message, which `diagnostics` leaves out; `arrays` and `node`
    as there.
    """
    for _, arr in reversed(arrays):
        for status in arr.status:
            if _of_node(status, node) and status.name.endswith(f': {stage}'):
                return status
    return None


def _of_node(status, node: str) -> bool:
    hw = status.hardware_id
    return hw == node if node.startswith('/') else hw.rsplit('/', 1)[-1] == node


# ---------------------------------------------------------------------- the real ROS tools
def _sigint_default():
    # A process started from a script's background job inherits SIGINT as ignored, and
    # `ros2 launch` then ignores Ctrl-C: give every child the default disposition.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Background:
    """A `ros2` process (launch, run) in its own session, its output in a log file."""

    def __init__(self, cmd: List[str], env: Dict[str, str], log_path: str):
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_sigint_default)
        self.returncode: Optional[int] = None

    def output(self) -> str:
        """Return everything the process has printed so far."""
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """Poll the output for `text` until `timeout` seconds pass or the process ends."""
        return RosHarness.wait_for(lambda: text in self.output() or self.proc.poll() is not None,
                                   timeout, 0.2) and text in self.output()

    def stop(self, timeout: float = 30.0, group: bool = False) -> int:
        """
        Send SIGINT, as Ctrl-C would, and return the exit code.

        To the process itself (`ros2 launch` must pass it on to its nodes), or with `group`
        to its whole process group as a terminal does. A process still running after
        `timeout` is killed with its group and the test fails.
        """
        if self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, signal.SIGINT)
            else:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self._log.close()
                pytest.fail(f'{" ".join(self.cmd[:3])} ignored SIGINT for {timeout} s; killed:'
                            f'\n{self.output()[-3000:]}')
        self._log.close()
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        """Last resort at teardown: kill the whole process group if still running."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


class RosTools:
    """The real ros2 CLI and launch_ros: how to run them, and what a test needs to know."""

    def __init__(self, kind: str, env: Dict[str, str], site: List[str], prefix=None):
        self.kind = kind        # 'system' (installed ROS) or 'vendor' (built from ../shared)
        self.env = env          # environment of every ros2 process (and of nodes under test)
        self.site = site        # import paths of launch, launch_ros, message_filters
        self.prefix = prefix
        self.started: List[Background] = []

    def ros2(self, *args: str, timeout: float = 60.0, check: bool = True):
        """Run `ros2 ARGS`; return the CompletedProcess (text). `check`: exit 0 expected."""
        run = subprocess.run(['ros2', *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout, preexec_fn=_sigint_default)
        if check:
            assert run.returncode == 0, (f'ros2 {" ".join(args)} exited {run.returncode}:\n'
                                         f'{run.stdout[-2000:]}\n{run.stderr[-2000:]}')
        return run

    def start(self, args: List[str], log_path: str) -> Background:
        """Start `ros2 ARGS` (launch or run) in the background; stopped at session end."""
        proc = Background(['ros2', *args], self.env, str(log_path))
        self.started.append(proc)
        return proc

    def node_list(self, spin_time: float = 5.0) -> List[str]:
        """Return the graph's node names as `ros2 node list` sees them."""
        return self.ros2('node', 'list', '--no-daemon', '--spin-time',
                         f'{spin_time:g}').stdout.split()

    def wait_for_nodes(self, names, timeout: float = 90.0) -> List[str]:
        """Poll `ros2 node list` until every name in `names` is there; return the list."""
        seen = []

        def present():
            # A short discovery time per call (2 s: a call then takes ~2.7 s, against ~6 s
            # with 5 s): the poll repeats it anyway until the nodes are there.
            seen[:] = self.node_list(spin_time=2.0)
            return set(names) <= set(seen)

        assert RosHarness.wait_for(present, timeout, 0.5), \
            f'nodes {sorted(set(names) - set(seen))} not in the graph after {timeout} s: {seen}'
        return seen

    def topic_counts(self) -> Dict[str, tuple]:
        """Return {topic: (publishers, subscribers)} from one `ros2 topic list -v`."""
        out = self.ros2('topic', 'list', '-v', '--no-daemon', '--spin-time', '5').stdout
        counts: Dict[str, list] = {}
        column = 0
        for line in out.splitlines():
            if line.startswith(('Published', 'Subscribed')):
                column = 0 if line.startswith('Published') else 1
            match = re.match(r'\s*\* (\S+) \[.*\] (\d+) ', line)
            if match:
                counts.setdefault(match[1], [0, 0])[column] = int(match[2])
        return {topic: tuple(c) for topic, c in counts.items()}

    def lifecycle(self, verb: str, *args: str, check: bool = True, timeout: float = 30.0):
        """
        Run `ros2 lifecycle VERB ARGS`; return the CompletedProcess.

        Through the CLI's daemon (a call takes 1-3 s here instead of 5-7 s with
        `--no-daemon --spin-time 5`). The daemon may not have discovered a node yet ('Node
        not found', before anything was sent to it): only then is the call repeated, until
        `timeout`.
        """
        end = time.monotonic() + timeout
        while True:
            run = self.ros2('lifecycle', verb, *args, check=False)
            if 'Node not found' not in run.stdout + run.stderr or time.monotonic() > end:
                break
            time.sleep(0.5)
        if check:
            assert run.returncode == 0, (f'ros2 lifecycle {verb} {" ".join(args)} exited '
                                         f'{run.returncode}:\n{run.stdout}\n{run.stderr}')
        return run

    def lifecycle_state(self, node: str) -> str:
        """Return the lifecycle state label of `node` from `ros2 lifecycle get`."""
        return self.lifecycle('get', node).stdout.split()[0]

    def lifecycle_set(self, node: str, transition: str) -> bool:
        """Run `ros2 lifecycle set NODE TRANSITION`; return whether it succeeded."""
        run = self.lifecycle('set', node, transition, check=False)
        return 'Transitioning successful' in run.stdout

    @staticmethod
    def _each(call, nodes) -> dict:
        """Return {node: call(node)}, the calls made concurrently (each waits on DDS)."""
        from concurrent.futures import ThreadPoolExecutor
        nodes = list(nodes)
        with ThreadPoolExecutor(max_workers=4) as pool:
            return dict(zip(nodes, pool.map(call, nodes)))

    def lifecycle_states(self, nodes) -> Dict[str, str]:
        """Return {node: state} from `ros2 lifecycle get`, asked of every node at once."""
        return self._each(self.lifecycle_state, nodes)

    def lifecycle_sequences(self, sequences: Dict[str, List[str]]) -> Dict[str, bool]:
        """
        Drive several nodes at once, each through its own transitions in order.

        Return {node: whether every transition succeeded} (a failed one ends that node's
        sequence). Each call of the CLI takes 1-3 s, mostly waiting on DDS, so nodes whose
        order among themselves does not matter are driven concurrently.
        """
        return self._each(
            lambda node: all(self.lifecycle_set(node, t) for t in sequences[node]), sequences)

    def param_dumps(self, nodes) -> Dict[str, dict]:
        """Return `param_dump` of several nodes, asked concurrently (each waits on DDS)."""
        return self._each(self.param_dump, nodes)

    def param_dump(self, node: str, timeout: float = 60.0) -> dict:
        """Return every parameter of `node` (flattened names) from `ros2 param dump`."""
        # Each call discovers the graph afresh (--no-daemon): on a loaded machine one call
        # printed nothing for a node that `ros2 node list` had just listed. Asked again.
        end, out = time.time() + timeout, ''
        while time.time() < end:
            out = self.ros2('param', 'dump', node, '--no-daemon', '--timeout', '30',
                            timeout=timeout, check=False).stdout
            doc = yaml.safe_load(out)
            if isinstance(doc, dict) and len(doc) == 1:
                (_, section), = doc.items()
                return flatten(section['ros__parameters'])
        raise AssertionError(f'ros2 param dump {node} gave no parameters: {out!r}')


def _sourced_env(setup: pathlib.Path) -> Dict[str, str]:
    """Return the environment after `source setup` in bash (this process's as the base)."""
    out = subprocess.run(['bash', '-c', f'source "{setup}" >/dev/null && env -0'],
                         capture_output=True, check=True, timeout=60).stdout
    return dict(item.split('=', 1) for item in out.decode().split('\0') if '=' in item)


@pytest.fixture(scope='session')
def ros_tools():
    """
    Provide `ros2` and launch_ros: the system's, or built from ../shared/vendor once per run.

    Skips only where neither exists. The build takes ~30 s the first time and is stamped,
    so later runs reuse it; a failing build is an error, not a skip.
    """
    try:
        import launch_ros  # noqa: F401 - a system ROS: its ros2 is on PATH
        tools = RosTools('system', dict(os.environ), [])
        assert shutil.which('ros2'), 'launch_ros imports but there is no ros2 on PATH'
    except ImportError:
        if not VENDOR_SCRIPT.exists():
            pytest.skip(f'no launch_ros installed and no {VENDOR_SCRIPT} to build it from')
        build = pathlib.Path(os.environ.get('LATE_FUSION_BUILD_DIR', ROOT / 'build'))
        prefix = build / 'ros-tools'
        t0 = time.monotonic()
        run = subprocess.run(['bash', str(VENDOR_SCRIPT), str(prefix)], capture_output=True,
                             text=True, timeout=900)
        assert run.returncode == 0, f'building the ROS tools failed:\n{run.stdout}{run.stderr}'
        print(f'\n[ros_tools] {run.stdout.strip().splitlines()[-1]} '
              f'({time.monotonic() - t0:.1f} s)', file=sys.stderr)
        py = f'python{sys.version_info.major}.{sys.version_info.minor}'
        tools = RosTools('vendor', _sourced_env(prefix / 'setup.bash'),
                         [str(prefix / 'install' / 'lib' / py / 'site-packages'),
                          str(prefix / 'pydeps')], prefix)
    yield tools
    for proc in tools.started:
        proc.kill()
    # The CLI starts one daemon per domain unless every call passes --no-daemon.
    tools.ros2('daemon', 'stop', check=False)


def yaml_parameters(path, role: str) -> dict:
    """
    Return the flattened parameters of section `/**/<role>` of a parameters file.

    For the fusion node, without the `modality_params` of modalities it does not fuse: it
    declares only those of its `modalities` (and says so at start-up).
    """
    with open(path) as f:
        section = yaml.safe_load(f)[f'/**/{role}']['ros__parameters']
    flat = flatten(section)
    fused = flat.get('modalities')
    if role == 'fusion' and fused:
        flat = {k: v for k, v in flat.items() if not k.startswith('modality_params.')
                or k.split('.')[1] in fused}
    return flat


def assert_parameters_applied(tools: RosTools, node: str, expected: dict,
                              actual: Optional[dict] = None):
    """Check with `ros2 param dump` (or its `actual` output) that `node` has `expected`."""
    actual = tools.param_dump(node) if actual is None else actual

    def same(a, b):
        if isinstance(b, float) and isinstance(a, (int, float)):
            return abs(a - b) <= 1e-9 * max(1.0, abs(b))
        return a == b

    wrong = {k: (v, actual.get(k, '<not declared>')) for k, v in expected.items()
             if k not in actual or not same(actual[k], v)}
    assert not wrong, f'{node}: parameter (expected, actual): {wrong}'


def echo_once(tools, topic: str, msg_type: str, condition: str = '', timeout: float = 90.0):
    """Return the first message on `topic` (as a dict) for which `condition` holds."""
    args = ['topic', 'echo', '--once', topic, msg_type]
    if condition:
        args[3:3] = ['--filter', condition]
    out = tools.ros2(*args, timeout=timeout).stdout
    msg = yaml.safe_load(out.split('\n---')[0])
    assert isinstance(msg, dict), f'ros2 topic echo printed no message:\n{out[-2000:]}'
    return msg


def assert_clean_sigint(launch, executables):
    """SIGINT to ros2 launch: exit 0, and every node process reported as finished cleanly."""
    code = launch.stop()
    out = launch.output()
    assert code == 0, f'ros2 launch exited {code}:\n{out[-4000:]}'
    started = set(re.findall(r'\[INFO\] \[([\w-]+)\]: process started with pid', out))
    clean = set(re.findall(r'\[INFO\] \[([\w-]+)\]: process has finished cleanly', out))
    assert sorted(re.sub(r'-\d+$', '', p) for p in started) == sorted(executables), out[-4000:]
    assert started == clean, f'not finished cleanly: {started - clean}\n{out[-4000:]}'
    assert 'Traceback' not in out, out[-4000:]
