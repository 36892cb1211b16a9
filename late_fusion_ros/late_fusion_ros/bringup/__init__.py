# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The bring-up: which nodes the launch file starts, with what, and how to start them.

`graph` describes the graph as plain data (NodeSpec: executable, name, remappings,
parameters) and resolves parameters files per node; the launch file turns those specs into
launch_ros actions, and `launcher` into processes where launch_ros is missing (the demo,
fusion_offline's graph and the tests), so every path starts the same graph.
"""

from .graph import (applies, default_params_file, EXECUTABLE_NODE_NAMES, key_matches,
                    node_fqn, node_specs, NodeSpec, PACKAGE, read_sections,
                    resolved_parameters, ROLES, ros_args, Section, transcription_available,
                    unmatched_sections, write_parameters)

__all__ = ['applies', 'default_params_file', 'EXECUTABLE_NODE_NAMES', 'key_matches',
           'node_fqn', 'node_specs', 'NodeSpec', 'PACKAGE', 'read_sections',
           'resolved_parameters', 'ROLES', 'ros_args', 'Section', 'transcription_available',
           'unmatched_sections', 'write_parameters']
