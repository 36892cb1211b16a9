# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Command-line tools: bags, the offline run, timeline, monitor, training and the demo."""
