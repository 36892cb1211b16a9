# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Benchmark of the managed nodes: transition times, memory per state, CPU when inactive.

Starts the whole graph as managed nodes (the launch file's `managed:=true autostart:=false`
graph, with the face encoder and transcription: every node kind), each its own process,
plus the demo's media player as the driver: a 1280x720 rgb8 reliable camera at 30 fps and a
48 kHz stereo microphone in 1024-frame chunks. Then drives every node through its lifecycle
with the standard services (lifecycle_msgs/srv/ChangeState, what `ros2 lifecycle set` and
a lifecycle manager call) and prints one row per node:

- configure and activate: the service round trip, and the node's own time in the
  transition (its /diagnostics `configure_seconds`, `activate_seconds`);
- RSS unconfigured, after configure (model loaded), after a run (before cleanup) and after
  cleanup;
- CPU share of one core while inactive and while active, both with the streams running.

    python bench/bench_lifecycle.py [--seconds 10]
"""

import argparse
import os
import sys
import time

from benchlib import (collect_diagnostics, exit_status, spin_in_background, table,
                      wait_for)

ORDER = ('fusion', 'audio_encoder', 'transcription', 'vision_encoder', 'face_encoder')


def cpu_seconds(pid):
    """Return the CPU time (user + system) a process has used so far, in seconds."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def rss_mib(pid):
    """Return a process's resident set size in MiB."""
    with open(f'/proc/{pid}/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS:')) / 1024


def cpu_shares(pids, seconds):
    """Return {name: share of one core} of every process over the next `seconds`."""
    start = {n: cpu_seconds(p) for n, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - t0
    return {n: (cpu_seconds(p) - start[n]) / took for n, p in pids.items()}


class Lifecycle:
    """ChangeState clients of every node, called from the benchmark's own node."""

    def __init__(self, node, names):
        """Create one client per node."""
        from lifecycle_msgs.srv import ChangeState, GetState
        self._node = node
        self._change = {n: node.create_client(ChangeState, f'/{n}/change_state')
                        for n in names}
        self._get = {n: node.create_client(GetState, f'/{n}/get_state') for n in names}

    def wait(self, timeout=120.0):
        """Wait until every node's lifecycle services answer."""
        for client in list(self._change.values()) + list(self._get.values()):
            if not client.wait_for_service(timeout_sec=timeout):
                raise RuntimeError(f'no service {client.srv_name}')

    def change(self, name, label):
        """Trigger transition `label` of node `name`; return the round trip in seconds."""
        from lifecycle_msgs.srv import ChangeState
        request = ChangeState.Request()
        request.transition.label = label
        t0 = time.perf_counter()
        future = self._change[name].call_async(request)
        if not wait_for(future.done, 120.0, 0.002) or not future.result().success:
            raise RuntimeError(f'{name}: {label} failed')
        return time.perf_counter() - t0

    def state(self, name):
        """Return the node's state label."""
        from lifecycle_msgs.srv import GetState
        future = self._get[name].call_async(GetState.Request())
        wait_for(future.done, 30.0, 0.01)
        return future.result().current_state.label


def main(argv=None):
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=10.0,
                        help='CPU measurement window per state')
    args = parser.parse_args(argv)
    import rclpy
    from late_fusion_ros.bringup import node_specs, NodeSpec
    from late_fusion_ros.bringup.launcher import ProcessGroup
    rclpy.init()
    node = rclpy.create_node('bench_lifecycle')
    executor = spin_in_background(node)
    diag = collect_diagnostics(node)
    specs = node_specs(face=True, transcribe=True, managed=True)
    import tempfile
    log_dir = os.environ.get('BENCH_LOG_DIR') or tempfile.mkdtemp(prefix='bench_lifecycle_')
    group = ProcessGroup(log_dir=log_dir)
    try:
        group.start(NodeSpec('media_player_node', 'media_player',
                             parameters={'fps': 30.0}))
        for spec in specs:
            group.start(spec)
        pids = {s.name: group.procs[s.name].pid for s in specs}
        names = [n for n in ORDER if n in pids]
        lifecycle = Lifecycle(node, names)
        lifecycle.wait()
        time.sleep(2.0)  # the processes finish importing their libraries
        rss = {n: {'unconfigured': rss_mib(pids[n])} for n in names}
        trip = {n: {} for n in names}
        for n in names:
            trip[n]['configure'] = lifecycle.change(n, 'configure')
            rss[n]['configured'] = rss_mib(pids[n])
        time.sleep(2.0)
        inactive = cpu_shares(pids, args.seconds)
        for n in names:  # the fusion node first: it is up before the encoders publish
            trip[n]['activate'] = lifecycle.change(n, 'activate')
        time.sleep(3.0)
        active = cpu_shares(pids, args.seconds)
        for n in names:
            lifecycle.change(n, 'deactivate')
        time.sleep(2.0)
        deactivated = cpu_shares(pids, args.seconds)
        for n in names:
            rss[n]['before cleanup'] = rss_mib(pids[n])
            lifecycle.change(n, 'cleanup')
            assert lifecycle.state(n) == 'unconfigured'
        time.sleep(1.0)
        for n in names:
            rss[n]['cleaned'] = rss_mib(pids[n])
        wait_for(lambda: all('configure_seconds' in diag.get(f'/{n}', {}) for n in names), 5)
        rows = []
        for n in names:
            own = diag.get(f'/{n}', {})
            rows.append([
                n, f"{trip[n]['configure']:.2f}", own.get('configure_seconds', '-'),
                f"{trip[n]['activate'] * 1e3:.0f}",
                f"{float(own.get('activate_seconds', 'nan')) * 1e3:.0f}",
                f"{rss[n]['unconfigured']:.0f}", f"{rss[n]['configured']:.0f}",
                f"{rss[n]['before cleanup']:.0f}", f"{rss[n]['cleaned']:.0f}",
                f'{100 * inactive[n]:.1f}', f'{100 * active[n]:.1f}',
                f'{100 * deactivated[n]:.1f}'])
        table(f'managed nodes, media player 1280x720 rgb8 at 30 fps + 48 kHz stereo '
              f'(CPU over {args.seconds:.0f} s per state; % of one core)',
              ['node', 'configure s', '(in node)', 'activate ms', '(in node)',
               'RSS unconf MiB', 'configured', 'before cleanup', 'after cleanup',
               'CPU inactive %',
               'active %', 'deactivated %'], rows)
        player = cpu_shares({'media_player': group.procs['media_player'].pid}, 3.0)
        print(f"(media player: {100 * player['media_player']:.0f} % of a core; node logs in "
              f'{log_dir})')
    finally:
        codes = group.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return exit_status(codes)


if __name__ == '__main__':
    sys.exit(main())
