# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Separate computers on one machine: Linux network namespaces joined by a virtual switch.

Each host is a network namespace with its own loopback and one Ethernet link (`eth0`, one
end of a veth pair) to a bridge that lives in a namespace of its own (the switch), so a
host's link can be cut and restored (`link(host, up)`) and its traffic counted on its own
interface, as on a robot's Wi-Fi or Ethernet. Processes start inside a host with
`ip netns exec`. Nothing leaves these namespaces: the hosts have no route but their own
subnet (and, unless disabled, multicast on their link), and the names carry the creating
process's id, so concurrent runs never meet.

Fast DDS is made to talk as between real computers: only UDP (FASTDDS_BUILTIN_TRANSPORTS
=UDPv4), because the namespaces share /dev/shm and one hostname, so its shared-memory
transport would otherwise carry the data around the link under test; and discovery over
the subnet (ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET, as on a robot), not localhost only.

Needs root (CAP_NET_ADMIN) and iproute2; `available()` says why not.
"""

import json
import os
import shutil
import subprocess
import sys
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))


def available() -> str:
    """Return '' where namespaces can be made here, else the reason they cannot."""
    if shutil.which('ip') is None:
        return 'no `ip` command (iproute2) to make network namespaces'
    if os.geteuid() != 0:
        return 'making network namespaces needs root (CAP_NET_ADMIN)'
    probe = f'lfprobe{os.getpid()}'
    run = subprocess.run(['ip', 'netns', 'add', probe], capture_output=True, text=True)
    if run.returncode != 0:
        return f'`ip netns add` failed: {run.stderr.strip()}'
    subprocess.run(['ip', 'netns', 'del', probe], capture_output=True)
    return ''


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(['ip', *args], capture_output=True, text=True)
    if check and run.returncode != 0:
        raise RuntimeError(f'ip {" ".join(args)}: {run.stderr.strip()}')
    return run


class Hosts:
    """
    Hosts (network namespaces) on one subnet, each linked to a shared virtual switch.

    `names` are the hosts, e.g. ('robot', 'offload'); host k gets 10.<a>.<b>.(k+1)/24 on its
    `eth0`. With `multicast` False the hosts have no multicast route, as on networks (Wi-Fi,
    containers) where DDS's multicast discovery never arrives.
    """

    _made_here = 0  # Hosts made by this process so far: each set gets its own names

    def __init__(self, names, multicast: bool = True):
        """Make the namespaces, the switch and the links; `close()` removes them."""
        Hosts._made_here += 1
        tag = (os.getpid() * 7 + Hosts._made_here) % 100000
        self.names = list(names)
        self.ns = {n: f'lf{tag}-{n}' for n in self.names}
        self._switch = f'lf{tag}-switch'
        subnet = f'10.{100 + tag % 100}.{tag // 100 % 250}'
        self.address = {n: f'{subnet}.{k + 1}' for k, n in enumerate(self.names)}
        self.multicast = multicast
        self._made: List[str] = []
        try:
            self._make()
        except Exception:
            self.close()
            raise

    def _make(self) -> None:
        _ip('netns', 'add', self._switch)
        self._made.append(self._switch)
        _ip('-n', self._switch, 'link', 'add', 'br0', 'type', 'bridge')
        _ip('-n', self._switch, 'link', 'set', 'br0', 'up')
        for k, name in enumerate(self.names):
            ns = self.ns[name]
            _ip('netns', 'add', ns)
            self._made.append(ns)
            # The veth pair is made in the host's namespace; its far end moves to the switch.
            _ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', f'p{k}')
            _ip('-n', ns, 'link', 'set', f'p{k}', 'netns', self._switch)
            _ip('-n', self._switch, 'link', 'set', f'p{k}', 'master', 'br0')
            _ip('-n', self._switch, 'link', 'set', f'p{k}', 'up')
            _ip('-n', ns, 'addr', 'add', f'{self.address[name]}/24', 'dev', 'eth0')
            _ip('-n', ns, 'link', 'set', 'lo', 'up')
            _ip('-n', ns, 'link', 'set', 'eth0', 'up')
            if self.multicast:
                _ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')

    def _port(self, host: str) -> str:
        return f'p{self.names.index(host)}'

    def link(self, host: str, up: bool) -> None:
        """Cut (`up` False) or restore a host's link at the switch, as a pulled cable."""
        _ip('-n', self._switch, 'link', 'set', self._port(host), 'up' if up else 'down')

    def counters(self, host: str) -> Dict[str, int]:
        """Return {'rx_bytes', 'tx_bytes', 'rx_packets', 'tx_packets'} of a host's eth0."""
        import json
        info = json.loads(_ip('-n', self.ns[host], '-s', '-j', 'link', 'show', 'eth0').stdout)
        stats = info[0]['stats64']
        return {'rx_bytes': stats['rx']['bytes'], 'tx_bytes': stats['tx']['bytes'],
                'rx_packets': stats['rx']['packets'], 'tx_packets': stats['tx']['packets']}

    def prefix(self, host: str) -> List[str]:
        """Return the command prefix that runs a program on `host`."""
        return ['ip', 'netns', 'exec', self.ns[host]]

    def env(self, base: Optional[Dict[str, str]] = None, **extra: str) -> Dict[str, str]:
        """
        Return the environment of a process on a host: DDS as between real computers.

        Discovery over the subnet and UDP only (see the module docstring); `extra` adds or
        overrides variables (e.g. ROS_STATIC_PEERS, ROS_DISCOVERY_SERVER).
        """
        env = dict(os.environ if base is None else base)
        env.update(ROS_AUTOMATIC_DISCOVERY_RANGE='SUBNET', FASTDDS_BUILTIN_TRANSPORTS='UDPv4')
        env.pop('ROS_STATIC_PEERS', None)
        env.update(extra)
        return env

    def pids(self, host: str) -> List[int]:
        """Return the ids of the processes running in a host's namespace."""
        out = _ip('netns', 'pids', self.ns[host], check=False).stdout
        return [int(p) for p in out.split()]

    def close(self) -> None:
        """Kill what still runs inside the hosts and remove every namespace made."""
        import signal
        for ns in self._made:
            for pid in _ip('netns', 'pids', ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for ns in reversed(self._made):
            _ip('netns', 'del', ns, check=False)
        self._made = []


class Probe:
    """probe.py on a host; its JSON lines read back as records."""

    def __init__(self, net, host, path, *args):
        """Start the listener on `host`, writing to `path`."""
        self.path = str(path)
        self._out = open(self.path, 'w')
        self.proc = subprocess.Popen(
            net.prefix(host) + [sys.executable, os.path.join(HERE, 'probe.py'), *args],
            env=net.env_for(host), stdout=self._out, stderr=subprocess.STDOUT)

    def records(self, kind=None):
        """Return every record so far (of `kind`: fusion, embedding or diagnostics)."""
        out = []
        with open(self.path) as f:
            for line in f:
                if line.startswith('{') and line.endswith('\n'):
                    record = json.loads(line)
                    if kind is None or record['kind'] == kind:
                        out.append(record)
        return out

    def fusion_status(self, stage='input'):
        """Return the fusion node's newest /diagnostics status of `stage`, or None."""
        for r in reversed(self.records('diagnostics')):
            if r['name'].endswith(f'fusion: {stage}'):
                return r
        return None

    def stop(self):
        """End the listener."""
        self.proc.send_signal(2)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._out.close()


class Network:
    """Hosts, one ProcessGroup per host (its `ip netns exec` prefix and environment)."""

    def __init__(self, names, log_dir, multicast=True, **env):
        """Make the hosts; `env` adds variables to every process (discovery settings)."""
        os.makedirs(log_dir, exist_ok=True)
        self.hosts = Hosts(names, multicast)
        self.log_dir = log_dir
        self.extra = dict(env)
        self.groups = {}
        self.probes = []

    def prefix(self, host):
        """Return the command prefix of `host`."""
        return self.hosts.prefix(host)

    def env_for(self, host):
        """Return the environment of a process on `host`."""
        return self.hosts.env(**self.extra)

    def start(self, host, *specs):
        """Start node specs on `host` (late_fusion_ros.bringup NodeSpecs)."""
        from late_fusion_ros.bringup.launcher import ProcessGroup
        group = self.groups.get(host)
        if group is None:
            group = self.groups[host] = ProcessGroup(
                env=self.env_for(host), log_dir=os.path.join(self.log_dir, host),
                prefix=self.prefix(host))
        for spec in specs:
            group.start(spec)

    def probe(self, host, *args):
        """Start a listener on `host` (probe.py arguments)."""
        probe = Probe(self, host, os.path.join(self.log_dir, f'probe_{host}.jsonl'), *args)
        self.probes.append(probe)
        return probe

    def pid(self, host, name):
        """Return the pid of node `name` on `host`."""
        return self.groups[host].procs[name].pid

    def close(self):
        """Stop every process (SIGINT; all must exit 0) and remove the hosts."""
        for probe in self.probes:
            probe.stop()
        codes = {}
        try:
            for host, group in self.groups.items():
                codes.update({f'{host}/{k}': v for k, v in group.stop(timeout=20).items()})
        finally:
            self.hosts.close()
        return codes
