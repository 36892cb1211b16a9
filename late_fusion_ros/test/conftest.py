# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Shared fixtures for tests that start real nodes over real DDS.

`ros` is one rclpy context per test module with a test node spinning in the background
(SingleThreadedExecutor: the multi-threaded one busy-polls both cores of this machine).
`start_nodes` starts node executables as processes and stops them with SIGINT afterwards,
checking that each one exits 0 without a traceback.
"""

import os
import threading
import time

from late_fusion_ros.bringup import NodeSpec
from late_fusion_ros.launcher import ProcessGroup
import pytest


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
        from late_fusion_ros.ros_common import EMBEDDING_QOS
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


def diagnostics(arrays, node: str) -> dict:
    """
    Return the newest /diagnostics values of `node`, all its stages merged, as a dict.

    `arrays` is what RosHarness.collect gathered on /diagnostics ((receive time, array)
    pairs). A node publishes all its statuses ('<node FQN>: <stage>', hardware_id the FQN)
    in one array; `node` is its name, or its fully qualified name when it starts with '/'.
    """
    def mine(status):
        hw = status.hardware_id
        return hw == node if node.startswith('/') else hw.rsplit('/', 1)[-1] == node
    for _, arr in reversed(arrays):
        values = {}
        for status in arr.status:
            if mine(status):
                values.update({kv.key: kv.value for kv in status.values})
        if values:
            return values
    return {}
