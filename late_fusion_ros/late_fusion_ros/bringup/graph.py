# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
What the launch file starts, as plain data, shared by launch and the ROS-free launcher.

`launch/late_fusion.launch.py` turns these specs into launch_ros Node actions on a real ROS
install; `late_fusion_ros.bringup.launcher` turns the same specs into processes where launch_ros is
not installed (the demo and the tests), so both paths start exactly the same graph.

Parameters files are matched to nodes as rcl matches them (`/**/fusion` in any namespace,
`/*/fusion` one namespace deep, `/robot1/fusion` exactly, a bare `fusion` only in the root
namespace) and also by each node's *role*: a node started under another name, e.g. a
second vision encoder `vision_encoder_left`, still gets the section of its role
(`vision_encoder`) in its namespace. Both paths hand each node the parameters that apply
to it as one resolved file (`write_parameters`), and `unmatched_sections` reports every
section that applies to no node, instead of letting rcl ignore it silently.
"""

from dataclasses import dataclass, field
import os
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

PACKAGE = 'late_fusion_ros'
# Every role the bring-up may start: the sections of config/late_fusion.yaml.
ROLES = ('audio_encoder', 'vision_encoder', 'face_encoder', 'transcription', 'fusion')
# The name each executable gives its node in code (what `ros2 run` starts).
EXECUTABLE_NODE_NAMES = {'audio_encoder_node': 'audio_encoder',
                         'vision_encoder_node': 'vision_encoder', 'fusion_node': 'fusion',
                         'transcription_node': 'transcription',
                         'media_player_node': 'media_player'}


@dataclass
class NodeSpec:
    """
    One node to start: executable, node name, remappings and parameters.

    `role` names the parameters-file section the node takes whatever its name (default: the
    name); `namespace` is where it runs ('' is the root namespace). `params_files` are
    matched to the node as described in the module docstring; `parameters` override them.
    """

    executable: str
    name: str
    remappings: List[Tuple[str, str]] = field(default_factory=list)
    params_files: List[str] = field(default_factory=list)
    parameters: Dict[str, object] = field(default_factory=dict)
    role: str = ''
    namespace: str = ''

    def __post_init__(self):
        """Use the node name as the role unless one is given."""
        self.role = self.role or self.name

    @property
    def fqn(self) -> str:
        """Return the fully qualified node name, e.g. '/robot1/fusion'."""
        return node_fqn(self.namespace, self.name)


def default_params_file() -> str:
    """Return config/late_fusion.yaml from the install share (or the source tree)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        share = get_package_share_directory(PACKAGE)
    except Exception:  # noqa: BLE001 - not installed: running from the source tree
        share = os.path.join(os.path.dirname(__file__), '..', '..')
    return os.path.join(share, 'config', 'late_fusion.yaml')


def transcription_available() -> bool:
    """Return True when faster-whisper and the default Whisper model's wheel are installed."""
    from ..core.transcription import model_available
    return model_available()


def node_specs(audio_topic: str = 'audio_stamped', audio_info_topic: str = 'audio_info',
               image_topic: str = 'image', params_file: Optional[str] = None,
               use_sim_time: bool = False, extra_params: Optional[Dict] = None,
               face: bool = False, transcribe: bool = False,
               namespace: str = '', managed: bool = False,
               only: Optional[Sequence[str]] = None) -> List[NodeSpec]:
    """
    Return the nodes of late_fusion_ros wired onto the given driver topics.

    The encoders publish `audio/embedding` and `vision/embedding`, which are the topics the
    fusion node subscribes for its default modalities `audio` and `vision`. With `face`, a
    second vision encoder (the face/mouth-movement model) publishes `face/embedding` and the
    fusion node adds the `face` modality, whose cues the default speaking_to_robot
    strategy then uses. With `transcribe` the transcription node listens to the same
    microphone, publishes `speech/transcript` and `speech/embedding`, and the fusion node
    adds the `speech` modality. The launch file and the demo turn it on by default when
    transcription_available(); here it is opt-in, so that a caller's graph never changes
    with what happens to be installed. Relative topics resolve in `namespace`, as under
    `ros2 launch`. With `managed` every node starts unconfigured (its `autostart`
    parameter false) for a lifecycle manager, the launch file or `ros2 lifecycle` to drive;
    otherwise each node configures and activates itself. `only` keeps the nodes of those
    roles (e.g. ['vision_encoder'] on a GPU computer, the rest on the robot): the graph is
    the same, split across computers (ValueError for a role that is not in the graph).
    """
    files = [params_file or default_params_file()]
    params = {'use_sim_time': use_sim_time, **(extra_params or {})}
    specs = [
        NodeSpec('audio_encoder_node', 'audio_encoder',
                 # `audio_topic` serves either input: AudioDataStamped (default) or, with
                 # stamped:=false, headerless AudioData; the node subscribes only one.
                 [('audio_stamped', audio_topic), ('audio', audio_topic),
                  ('audio_info', audio_info_topic), ('embedding', 'audio/embedding')],
                 list(files), dict(params)),
        NodeSpec('vision_encoder_node', 'vision_encoder',
                 [('image', image_topic), ('embedding', 'vision/embedding')], list(files),
                 dict(params)),
        NodeSpec('fusion_node', 'fusion', [], list(files), dict(params)),
    ]
    modalities = ['audio', 'vision']
    if face:
        specs.insert(2, NodeSpec('vision_encoder_node', 'face_encoder',
                                 [('image', image_topic), ('embedding', 'face/embedding')],
                                 list(files), dict(params)))
        modalities.append('face')
        specs[-1].parameters['strategy_params.speaking_to_robot.vision'] = 'face'
    if transcribe:
        # The same microphone topics as the audio encoder; its own process, so that a
        # decode never competes with the VAD embeddings for one interpreter.
        specs.insert(-1, NodeSpec('transcription_node', 'transcription',
                                  [('audio_stamped', audio_topic), ('audio', audio_topic),
                                   ('audio_info', audio_info_topic),
                                   ('embedding', 'speech/embedding'),
                                   ('transcript', 'speech/transcript')],
                                  list(files), dict(params)))
        modalities.append('speech')
    if len(modalities) > 2:
        specs[-1].parameters['modalities'] = modalities
    for spec in specs:
        spec.namespace = namespace
        if managed:
            spec.parameters['autostart'] = False
    if only is not None:
        unknown = sorted(set(only) - {s.role for s in specs})
        if unknown:
            raise ValueError(f'nodes {unknown} are not in this graph (its nodes: '
                             f'{", ".join(s.role for s in specs)})')
        specs = [s for s in specs if s.role in only]
    return specs


# ---------------------------------------------------------------------- parameters files
def node_fqn(namespace: str, name: str) -> str:
    """Return '/<namespace>/<name>' with exactly one slash between tokens."""
    tokens = [t for t in f'{namespace or ""}/{name}'.split('/') if t]
    return '/' + '/'.join(tokens)


def key_matches(key: str, fqn: str) -> bool:
    """
    Return whether parameters-file key `key` applies to the node `fqn`, as in rcl.

    A key without a leading slash is absolute all the same (a bare `fusion` is `/fusion`,
    the root namespace only); `*` stands for exactly one token and `**` for any number,
    including none.
    """
    pattern = [t for t in key.split('/') if t]
    name = [t for t in fqn.split('/') if t]

    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(name)
        if pattern[i] == '**':
            return any(match(i + 1, k) for k in range(j, len(name) + 1))
        return j < len(name) and pattern[i] in ('*', name[j]) and match(i + 1, j + 1)

    return match(0, 0)


@dataclass
class Section:
    """One node section of a parameters file, its values kept as YAML nodes."""

    key: str            # the node key as written, e.g. '/**/fusion' or 'robot1/fusion'
    source: str         # the file it comes from
    params: Dict[str, yaml.Node]  # flattened name ('a.b.c') -> the value's YAML node


def read_sections(path: str) -> List[Section]:
    """
    Return the node sections of a ROS 2 parameters file, in file order.

    Values stay YAML nodes (scalars keep their text and quoting) so that a resolved file
    hands rcl exactly what the user wrote: rcl, not PyYAML, decides that `1e-6` is a
    double. Nested namespaces (`robot1: {fusion: {ros__parameters: ...}}`) are joined.
    """
    with open(path) as f:
        root = yaml.compose(f)
    sections: List[Section] = []

    def walk(node, prefix: str):
        if not isinstance(node, yaml.MappingNode):
            raise ValueError(f'{path}: {prefix or "top level"} is not a mapping of node names')
        for key_node, value in node.value:
            key = f'{prefix}/{key_node.value}' if prefix else str(key_node.value)
            if key_node.value == 'ros__parameters':
                sections.append(Section(prefix, path, _flatten(value, '', path)))
            else:
                walk(value, key)

    if root is not None:
        walk(root, '')
    return sections


def _flatten(node, prefix: str, path: str) -> Dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise ValueError(f'{path}: ros__parameters of a node must be a mapping')
    flat: Dict[str, yaml.Node] = {}
    for key_node, value in node.value:
        name = f'{prefix}.{key_node.value}' if prefix else str(key_node.value)
        if isinstance(value, yaml.MappingNode):
            flat.update(_flatten(value, name, path))
        else:
            flat[name] = value
    return flat


def applies(section: Section, spec: NodeSpec) -> bool:
    """Return whether `section` configures `spec`: by its name or by its role."""
    return (key_matches(section.key, spec.fqn)
            or key_matches(section.key, node_fqn(spec.namespace, spec.role)))


def resolved_parameters(spec: NodeSpec) -> Dict[str, yaml.Node]:
    """Return every parameter `spec` gets: its files' matching sections, then `parameters`."""
    params: Dict[str, yaml.Node] = {}
    for path in spec.params_files:
        for section in read_sections(path):
            if applies(section, spec):
                params.update(section.params)
    if spec.parameters:
        # Python values become YAML nodes the same way a user would have written them.
        params.update(_flatten(yaml.compose(yaml.safe_dump(spec.parameters)), '', 'spec'))
    return params


def write_parameters(spec: NodeSpec, directory: str) -> str:
    """
    Write `spec`'s resolved parameters as a parameters file in `directory`; return its path.

    The file is keyed `/**` (one file per node), so it configures the node whatever name
    and namespace remapping gives it in the end.
    """
    params = resolved_parameters(spec)

    def mapping(items):
        return yaml.MappingNode('tag:yaml.org,2002:map', [
            (yaml.ScalarNode('tag:yaml.org,2002:str', k), v) for k, v in items],
            flow_style=False)

    doc = mapping([('/**', mapping([('ros__parameters', mapping(params.items()))]))])
    os.makedirs(directory, exist_ok=True)
    fqn = spec.fqn.strip('/').replace('/', '.')
    path = os.path.join(directory, f'{fqn}.params.yaml')
    with open(path, 'w') as f:
        f.write(f'# {spec.fqn} ({spec.role}): resolved by late_fusion_ros.bringup from '
                f'{", ".join(spec.params_files) or "no file"}\n')
        yaml.serialize(doc, f)
    return path


def unmatched_sections(specs: Sequence[NodeSpec], roles: Sequence[str] = ROLES) -> List[str]:
    """
    Return one line per parameters-file section that configures none of `specs`.

    A section for a role that is not started this time (e.g. `face_encoder` without
    face:=true) is fine; a section that would configure no node of this package in this
    namespace (a typo, a bare `fusion:` while the nodes run in /robot1, a section for
    /robot2 while this graph is /robot1) is reported.
    """
    lines = []
    seen = set()
    namespaces = sorted({s.namespace for s in specs})
    for spec in specs:
        for path in spec.params_files:
            if path in seen:
                continue
            seen.add(path)
            for section in read_sections(path):
                if any(applies(section, s) for s in specs) or any(
                        key_matches(section.key, node_fqn(ns, role))
                        for ns in namespaces for role in roles):
                    continue
                started = ', '.join(s.fqn for s in specs)
                hint = ''
                if '/' not in section.key:
                    hint = ('; a bare node name is a node in the root namespace only: write '
                            f"'/**/{section.key}' for every namespace")
                lines.append(f"{path}: section '{section.key}' configures none of the nodes "
                             f'started ({started}); its parameters are not used{hint}')
    return lines


def ros_args(spec: NodeSpec, params_file: Optional[str] = None) -> List[str]:
    """
    Return the `--ros-args ...` command-line arguments that start `spec`.

    `params_file` is the node's resolved parameters (`write_parameters`); without it the
    spec's files and parameters are passed as they are, which rcl matches by name only.
    """
    args = ['--ros-args', '-r', f'__node:={spec.name}']
    if spec.namespace.strip('/'):
        namespace = node_fqn(spec.namespace, '')
        args += ['-r', f'__ns:={namespace}']
    for src, dst in spec.remappings:
        args += ['-r', f'{src}:={dst}']
    if params_file:
        return args + ['--params-file', params_file]
    for f in spec.params_files:
        args += ['--params-file', f]
    for key, value in spec.parameters.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, (list, tuple)):
            value = '[' + ','.join(str(v) for v in value) + ']'  # YAML flow sequence
        args += ['-p', f'{key}:={value}']
    return args
