# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""The nodes: one class per `<name>_node.py`, each run by the executable `<name>_node`."""
