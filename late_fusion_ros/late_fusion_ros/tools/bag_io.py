# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
rosbag2 files for the bag tools, read and written with the `rosbags` library.

rosbag2 itself (`ros2 bag`) has no wheel, and `rosbags` reads and writes the real format:
MCAP (the default storage since ROS 2 Iron) and sqlite3, metadata.yaml version 9 (Jazzy and
newer), message definitions embedded (MCAP schemas with encoding `ros2msg`, as
rosbag2_storage_mcap writes them, which is what Foxglove needs) and each topic's offered
QoS profiles. What this module adds is the ROS side rosbags cannot know: the message
definitions of the *installed* interface packages (what `ros2 bag record` embeds, from
`share/<package>/msg/*.msg`), rclpy QoS profiles to and from the bag's, and one error type
with a one-line message for every way a bag can be unreadable. No rclpy import here.
"""

import importlib
import os
from pathlib import Path
import re
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

STORAGES = ('mcap', 'sqlite3')
# rmw's "infinite" duration, as rosbag2 writes it into offered_qos_profiles.
_INFINITE_NS = (1 << 63) - 1
_TYPE = re.compile(r'^([A-Za-z_][\w]*)/(msg|srv|action)/([A-Za-z_]\w*)$')


class BagError(Exception):
    """A bag that cannot be read or written; str() is one line for the user."""


# ---------------------------------------------------------------------- message types

def split_type(msgtype: str) -> Tuple[str, str, str]:
    """Split 'pkg/msg/Name' into its parts; BagError for anything else."""
    match = _TYPE.match(msgtype)
    if not match:
        raise BagError(f"'{msgtype}' is not a ROS 2 message type name (package/msg/Name)")
    return match.group(1), match.group(2), match.group(3)


def message_class(msgtype: str):
    """
    Return the installed Python class of `msgtype` ('pkg/msg/Name'), as rclpy uses it.

    BagError when the interface package is not installed here (the message can then be
    neither published nor deserialized by rclpy).
    """
    package, kind, name = split_type(msgtype)
    try:
        return getattr(importlib.import_module(f'{package}.{kind}'), name)
    except (ImportError, AttributeError):
        raise BagError(f'message type {msgtype} is not installed here (no Python module '
                       f'{package}.{kind}.{name}); build or install {package}') from None


def _share_definition(msgtype: str) -> Optional[str]:
    """Return the text of share/<pkg>/msg/<Name>.msg of the installed package, or None."""
    package, kind, name = split_type(msgtype)
    try:
        from ament_index_python.packages import (get_package_share_directory,
                                                 PackageNotFoundError)
    except ImportError:  # pragma: no cover - every ROS environment has it
        return None
    try:
        path = os.path.join(get_package_share_directory(package), kind, f'{name}.msg')
    except (PackageNotFoundError, ValueError, LookupError):
        return None
    return Path(path).read_text() if os.path.isfile(path) else None


def _dependencies(fielddef) -> List[str]:
    """Return the message types a rosbags field definition refers to."""
    from rosbags.typesys.base import Nodetype
    out = []
    for _, (kind, detail) in fielddef[1]:
        if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            kind, detail = detail[0]
        if kind == Nodetype.NAME:
            out.append(detail)
    return out


def typestore_for(msgtypes: Iterable[str]):
    """
    Return a rosbags Typestore that knows `msgtypes` and every type they contain.

    Definitions come from the installed interface packages (share/<pkg>/msg/<Name>.msg, the
    source `ros2 bag record` embeds), so a bag describes the types as they are on this
    machine; a type without an installed .msg falls back to rosbags' copy of the newest
    ROS 2 distribution. BagError names a type found in neither.
    """
    from rosbags.typesys import get_types_from_msg, get_typestore, Stores
    from rosbags.typesys.base import TypesysError
    fallback = get_typestore(Stores.LATEST)
    found: Dict[str, tuple] = {}
    pending = list(msgtypes)
    while pending:
        msgtype = pending.pop()
        if msgtype in found:
            continue
        text = _share_definition(msgtype)
        if text is not None:
            try:
                fielddef = get_types_from_msg(text, msgtype)[msgtype]
            except TypesysError as err:
                raise BagError(f'cannot parse the installed definition of {msgtype}: '
                               f'{err}') from None
        elif msgtype in fallback.fielddefs:
            fielddef = fallback.fielddefs[msgtype]
        else:
            raise BagError(f'no message definition of {msgtype}: its package is not '
                           'installed here')
        found[msgtype] = fielddef
        pending.extend(d for d in _dependencies(fielddef) if d not in found)
    store = get_typestore(Stores.EMPTY)
    store.register(found)
    return store


# ---------------------------------------------------------------------- QoS

def bag_qos(profile):
    """Return rosbags' Qos for an rclpy QoSProfile (e.g. a publisher's offered profile)."""
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)

    def duration(value) -> 'QosTime':
        ns = min(int(value.nanoseconds), _INFINITE_NS)
        return QosTime(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)
    # The enums of rmw, rclpy and rosbags share their values.
    return Qos(history=QosHistory(int(profile.history)), depth=int(profile.depth),
               reliability=QosReliability(int(profile.reliability)),
               durability=QosDurability(int(profile.durability)),
               deadline=duration(profile.deadline), lifespan=duration(profile.lifespan),
               liveliness=QosLiveliness(int(profile.liveliness)),
               liveliness_lease_duration=duration(profile.liveliness_lease_duration),
               avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))


# ---------------------------------------------------------------------- writing

class BagWriter:
    """
    A new rosbag2 bag (directory with metadata.yaml and one .mcap or .db3 file).

    Topics are added with their type (definition and RIHS01 hash from `typestore_for`, or
    the hash the publisher announced) and the QoS profiles their publishers offered;
    messages are written as serialized CDR with a receipt timestamp in nanoseconds.
    `compress` zstd-compresses MCAP chunks (readers decompress them transparently; it is
    what `ros2 bag record -s mcap --storage-preset-profile zstd_fast` does) or, for sqlite3,
    each message (rosbag2's message compression mode).

    The file is created on first use: sqlite3 connections belong to the thread that made
    them, so a writer thread that adds, writes and closes owns the whole bag.
    """

    def __init__(self, path: str, storage: str = 'mcap', compress: bool = False):
        """Prepare the bag at `path` (which must not exist); BagError if it cannot be."""
        import sqlite3
        from rosbags.rosbag2 import Writer, WriterError
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
        if storage not in STORAGES:
            raise BagError(f'storage must be one of {", ".join(STORAGES)}, not {storage!r}')
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f'{path} exists already; a bag is never overwritten')
        if not self.path.parent.is_dir() or not os.access(self.path.parent, os.W_OK):
            raise BagError(f'cannot create {path}: {self.path.parent} is not a writable '
                           'directory')
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
        if compress:
            mode = CompressionMode.STORAGE if storage == 'mcap' else CompressionMode.MESSAGE
            self._writer.set_compression(mode, CompressionFormat.ZSTD)
        self._errors = (WriterError, OSError, sqlite3.Error)
        self._opened = False
        self._connections = {}
        self._canonical = {}
        self.counts: Dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence = (),
                  typestore=None, canonical: bool = False) -> None:
        """
        Add `topic` of `msgtype`; `offered_qos` are rclpy QoSProfiles of its publishers.

        With `canonical`, every message written is re-encoded with zeroed CDR padding: rclpy's
        serialize_message leaves the alignment padding bytes uninitialised, so two
        serializations of equal messages differ in a few bytes. Off for recording (a bag
        keeps what was received), on for fusion_offline's byte-identical outputs.
        """
        store = typestore if typestore is not None else typestore_for([msgtype])
        self._open()
        try:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=store,
                offered_qos_profiles=[bag_qos(q) for q in offered_qos])
        except self._errors as err:
            raise BagError(f'cannot add {topic} to {self.path}: {err}') from None
        if canonical:
            self._canonical[topic] = (store, msgtype)
        self.counts[topic] = 0

    def _open(self) -> None:
        if not self._opened:
            try:
                self._writer.open()
            except self._errors as err:
                raise BagError(f'cannot create {self.path}: {err}') from None
            self._opened = True

    def has_topic(self, topic: str) -> bool:
        """Return True once `topic` was added."""
        return topic in self._connections

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Write one serialized message of an added topic received at `timestamp_ns`."""
        if topic in self._canonical:
            store, msgtype = self._canonical[topic]
            data = store.serialize_cdr(store.deserialize_cdr(data, msgtype), msgtype)
        try:
            self._writer.write(self._connections[topic], int(timestamp_ns), data)
        except self._errors as err:
            raise BagError(f'cannot write to {self.path}: {err}') from None
        self.counts[topic] += 1

    def close(self) -> None:
        """Write the index and metadata.yaml: only a closed bag can be read."""
        if self._writer is None:
            return
        self._open()  # a bag with no topic is still a bag
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except self._errors as err:
            raise BagError(f'cannot finish {self.path}: {err}') from None

    def __enter__(self):
        """Return self."""
        return self

    def __exit__(self, *exc):
        """Close the bag (also on an exception: what was written stays readable)."""
        self.close()


# ---------------------------------------------------------------------- reading

def _reader_errors():
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError
    from rosbags.serde import SerdeError
    from rosbags.typesys.base import TypesysError
    return (AnyReaderError, ReaderError, SerdeError, TypesysError, OSError, ValueError,
            KeyError, EOFError)


class BagReader:
    """
    A rosbag2 bag opened for reading: a directory (metadata.yaml) or a bare .mcap/.db3 file.

    Wraps rosbags' AnyReader: bags with embedded definitions (MCAP, sqlite3 since Iron)
    deserialize with their own types; older sqlite3 bags (Humble's `ros2 bag record`) with
    the installed definitions. Every failure, at open or half-way through a truncated file,
    is a BagError with one line.
    """

    def __init__(self, path: str):
        """Open the bag at `path`; BagError if it is not a readable rosbag2 bag."""
        from rosbags.highlevel import AnyReader
        from rosbags.rosbag2 import Reader
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f'{path}: no such bag')
        errors = _reader_errors()
        try:
            with Reader(self.path) as probe:
                types = {c.msgtype for c in probe.connections}
                bare = any(not c.msgdef.data for c in probe.connections)
            store = None
            if bare:  # no embedded definitions: use the installed ones
                try:
                    store = typestore_for(types)
                except BagError:
                    store = None  # topics of unknown types can still be played raw
            self._reader = AnyReader([self.path], default_typestore=store)
            self._reader.open()
        except BagError:
            raise
        except errors as err:
            hint = ''
            if 'magic' in str(err).lower():  # a recorder that died never wrote the end
                hint = '; an MCAP file cut short can be repaired with `mcap recover`'
            raise BagError(f'{path}: not a readable rosbag2 bag ({_one_line(err)}){hint}'
                           ) from None
        self.connections = list(self._reader.connections)

    @property
    def topics(self) -> Dict[str, str]:
        """Return {topic: message type}."""
        return {c.topic: c.msgtype for c in self.connections}

    @property
    def start_ns(self) -> int:
        """Return the first receipt time in nanoseconds."""
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        """Return the last receipt time in nanoseconds."""
        return int(self._reader.end_time)

    def offered_qos(self, topic: str) -> list:
        """Return the rosbags Qos profiles recorded for `topic` (empty when none were)."""
        for c in self.connections:
            if c.topic == topic:
                return list(getattr(c.ext, 'offered_qos_profiles', []) or [])
        return []

    def messages(self, topics: Optional[Iterable[str]] = None, start_ns: Optional[int] = None
                 ) -> Iterator[Tuple[str, str, int, bytes]]:
        """Yield (topic, msgtype, receipt ns, CDR bytes) in receipt order; BagError if cut."""
        wanted = None if topics is None else set(topics)
        conns = [c for c in self.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        try:
            for conn, timestamp, data in self._reader.messages(connections=conns,
                                                               start=start_ns):
                yield conn.topic, conn.msgtype, timestamp, data
        except _reader_errors() as err:
            raise BagError(f'{self.path}: cannot read further ({_one_line(err)}); the bag '
                           'is truncated or damaged') from None

    def deserialize(self, data: bytes, msgtype: str):
        """Deserialize CDR bytes with the bag's own types (rosbags message objects)."""
        try:
            return self._reader.deserialize(data, msgtype)
        except _reader_errors() as err:
            raise BagError(f'{self.path}: cannot deserialize a {msgtype} message '
                           f'({_one_line(err)})') from None

    def close(self) -> None:
        """Close the files."""
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                reader.close()
            except _reader_errors():
                pass

    def __enter__(self):
        """Return self."""
        return self

    def __exit__(self, *exc):
        """Close the bag."""
        self.close()


def _one_line(err: BaseException) -> str:
    text = ' '.join(str(err).split()) or type(err).__name__
    return text if len(text) < 300 else text[:297] + '...'


def default_bag_name(prefix: str = 'rosbag2') -> str:
    """Return a new bag name like `ros2 bag record` makes: rosbag2_YYYY_MM_DD-HH_MM_SS."""
    import time
    return time.strftime(f'{prefix}_%Y_%m_%d-%H_%M_%S')
