# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The Fast DDS setting for processes that publish camera frames and audio together.

Fast DDS sends all of a participant's data through one shared-memory segment, 512 KiB by
default. A 1280x720 rgb8 frame does not fit: the overflow is dropped silently and repaired
by resends, and the audio published by the same process waits behind the repairs, up to
hundreds of ms (README, Across machines, has the measurement). `config/
fastdds_large_frames.xml` gives the participant a 32 MiB segment. The players that publish
both from one process (bag_play, the demo's media player) load it unless the user chose
their own Fast DDS configuration; `ros2 bag play` users set the variable themselves.
"""

import os
from typing import Dict, MutableMapping, Optional

PROFILE = 'fastdds_large_frames.xml'
# What a user sets to choose Fast DDS's configuration: then it is theirs, left alone.
USER_SETTINGS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                 'FASTDDS_BUILTIN_TRANSPORTS')


def profile_path() -> str:
    """Return the installed config/fastdds_large_frames.xml (or the source tree's)."""
    from .graph import default_params_file
    return os.path.join(os.path.dirname(default_params_file()), PROFILE)


def profile_variable(env: MutableMapping[str, str] = os.environ) -> Optional[str]:
    """
    Return the environment variable naming Fast DDS's profiles file, None if not Fast DDS.

    Fast DDS 3 (rmw_fastrtps 9, Kilted and newer) reads FASTDDS_DEFAULT_PROFILES_FILE and
    warns about the old name; Fast DDS 2 (Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE only.
    """
    rmw = env.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') or 'rmw_fastrtps_cpp'
    if not rmw.startswith('rmw_fastrtps'):
        return None
    try:
        from ament_index_python.packages import get_package_share_directory
        with open(os.path.join(get_package_share_directory('rmw_fastrtps_cpp'),
                               'package.xml')) as f:
            text = f.read()
        major = int(text.split('<version>', 1)[1].split('.', 1)[0])
    except (ImportError, LookupError, OSError, IndexError, ValueError):
        return 'FASTDDS_DEFAULT_PROFILES_FILE'
    return 'FASTDDS_DEFAULT_PROFILES_FILE' if major >= 9 else 'FASTRTPS_DEFAULT_PROFILES_FILE'


def use_large_frames_profile(env: MutableMapping[str, str] = os.environ) -> Dict[str, str]:
    """
    Point `env` (default: this process's, before rclpy.init) at the large-frames profile.

    Nothing changes where the user configured Fast DDS (a profiles file or the builtin
    transports) or uses another RMW. Returns what was set.
    """
    if any(env.get(name) for name in USER_SETTINGS):
        return {}
    variable = profile_variable(env)
    path = profile_path()
    if variable is None or not os.path.isfile(path):
        return {}
    env[variable] = path
    return {variable: path}
