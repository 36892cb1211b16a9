# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Parameter declaration with descriptors, and the report of given-but-undeclared ones."""

from dataclasses import dataclass, field
from typing import Dict, List

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node


def declare(node: Node, name: str, default, description: str, *, read_only: bool = False,
            min_value=None, max_value=None, dynamic_typing: bool = False):
    """Declare a parameter with a ParameterDescriptor and return its value."""
    desc = ParameterDescriptor(description=description, read_only=read_only,
                               dynamic_typing=dynamic_typing)
    if min_value is not None or max_value is not None:
        if isinstance(default, float):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(min_value), to_value=float(max_value), step=0.0)]
        else:
            desc.integer_range = [IntegerRange(
                from_value=int(min_value), to_value=int(max_value), step=0)]
    return node.declare_parameter(name, default, desc).value


def report_undeclared(node: Node) -> List[str]:
    """
    Log the parameters `node` was given at start-up but does not declare; return them.

    rcl silently ignores a parameter no node declares, so a misspelt name in a parameters
    file (`max_agee`) would leave the default in force unnoticed. A node may explain a
    name it ignores on purpose with `unused_parameter_reason(name) -> str` (logged at
    info level instead of as a warning).
    """
    # rclpy keeps what the command line and parameters files gave the node only here (no
    # public accessor; the attribute exists in every release since Foxy).
    given = getattr(node, '_parameter_overrides', None) or {}
    unused = sorted(name for name in given if not node.has_parameter(name))
    explain = getattr(node, 'unused_parameter_reason', lambda name: '')
    reasons = {}
    for name in unused:
        reasons.setdefault(explain(name) or '', []).append(name)
    for reason, names in sorted(reasons.items()):
        if reason:
            node.get_logger().info(f'parameters not used ({reason}): {_compact(names)}')
        else:
            node.get_logger().warn(
                f'parameters given but not declared by this node, ignored: {_compact(names)} '
                f"(misspelt? 'ros2 param list {node.get_fully_qualified_name()}' lists "
                'the declared ones)')
    return unused


def _compact(names: List[str]) -> str:
    """Return 'a.b.{c, d}, e' for ['a.b.c', 'a.b.d', 'e']."""
    groups = {}
    for name in names:
        head, _, tail = name.rpartition('.')
        groups.setdefault(head, []).append(tail)
    return ', '.join(f'{head}.{{{", ".join(tails)}}}' if head and len(tails) > 1
                     else (f'{head}.{tails[0]}' if head else tails[0])
                     for head, tails in groups.items())


@dataclass
class ModelParameters:
    """What an encoder node is told about its model (see declare_model_parameters)."""

    modality: str
    encoder: str
    device: str
    threads: int
    files: Dict[str, str] = field(default_factory=dict)  # model_path/spec_path if given

    def make(self, factory, **kwargs):
        """Build the encoder: torch's thread count set, then factory(encoder, device, ...)."""
        import torch
        torch.set_num_threads(self.threads)
        return factory(self.encoder, device=self.device, **self.files, **kwargs)


def declare_model_parameters(node: Node, modality: str, encoder: str, encoders: str,
                             user_models: str, spec: str) -> ModelParameters:
    """
    Declare the model parameters every encoder node has, read-only; return their values.

    `modality` and `encoder` are the defaults, `encoders` lists the choices for the
    description, `user_models` names the encoders that read model_path and spec_path, and
    `spec` says what the spec file holds.
    """
    def d(*args, **kwargs):
        return declare(node, *args, read_only=True, **kwargs)
    chosen = ModelParameters(
        modality=d('modality', modality, 'Modality name put in each Embedding.'),
        encoder=d('encoder', encoder, f'Model: {encoders}, or plugin:<entry point name>.'),
        device=d('device', 'cpu', 'Torch device: cpu, cuda or cuda:N (falls back to cpu).'),
        threads=d('num_threads', 1, 'Torch intra-op threads for this encoder.', min_value=1,
                  max_value=64))
    for name, what in (('model_path', 'the model file'), ('spec_path', spec)):
        value = d(name, '', f'{user_models}: {what}.')
        if value:
            chosen.files[name] = value
    return chosen
