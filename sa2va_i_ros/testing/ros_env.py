"""Environment for every ROS process this project starts (tests, demo, benchmarks, CI).

The network rule: discovery stays on this machine (``ROS_AUTOMATIC_DISCOVERY_RANGE=
LOCALHOST``; ``ROS_LOCALHOST_ONLY`` is ignored by kilted), each run gets its own
``ROS_DOMAIN_ID`` so that concurrent runs never see each other, and Fast DDS uses
a profile with a 16 MB shared-memory segment and UDP bound to 127.0.0.1.

Domain ids are claimed with an exclusive ``flock`` on a file per id, held until
the claiming process exits, so two processes on one machine never share an id.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

# Fast DDS maps a domain to UDP ports 7400 + 250 * id; ids up to 101 stay below the
# Linux ephemeral range for every participant index we use.
_FIRST_ID, _LAST_ID = 1, 101
_held_locks: dict[int, int] = {}


def fastdds_profile() -> Path:
    """The project's Fast DDS profile (source tree, colcon install or pip install)."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "config" / "fastdds_localhost.xml"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("sa2va_i_ros")) / "config" / "fastdds_localhost.xml")
    except Exception:  # no ament index here: the source tree copy is the only candidate
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError("config/fastdds_localhost.xml not found beside the sources or in the ament index")


def claim_domain_id() -> int:
    """Claim a ROS domain id no other process on this machine holds; kept until exit."""
    if _held_locks:
        return next(iter(_held_locks))
    lock_dir = Path(tempfile.gettempdir()) / "sa2va_i_ros_domains"
    lock_dir.mkdir(exist_ok=True)
    start = _FIRST_ID + os.getpid() % (_LAST_ID - _FIRST_ID + 1)
    span = _LAST_ID - _FIRST_ID + 1
    for k in range(span):
        domain = _FIRST_ID + (start - _FIRST_ID + k) % span
        fd = os.open(lock_dir / f"{domain}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _held_locks[domain] = fd
        return domain
    raise RuntimeError(f"all ROS domain ids {_FIRST_ID}..{_LAST_ID} are held by other processes")


def local_ros_env(domain_id: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: os.environ) with the network rule applied."""
    env = dict(os.environ if base is None else base)
    env.update(
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_DOMAIN_ID=str(claim_domain_id() if domain_id is None else domain_id),
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
        FASTDDS_DEFAULT_PROFILES_FILE=str(fastdds_profile()),
    )
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.pop("ROS_STATIC_PEERS", None)
    return env


def apply_local_ros_env(domain_id: int | None = None) -> dict[str, str]:
    """Apply the network rule to this process (call before ``rclpy.init``)."""
    env = local_ros_env(domain_id)
    for key in ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS"):
        os.environ.pop(key, None)
    os.environ.update({k: env[k] for k in (
        "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "RMW_IMPLEMENTATION", "FASTDDS_DEFAULT_PROFILES_FILE")})
    return env
