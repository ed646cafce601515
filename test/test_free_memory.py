"""A cleanup gives the weights' host memory back to the system, not only to the allocator."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import json, torch
    from sa2va_i_ros.ros.model_loading import free_memory

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    big = torch.ones(30 << 20, dtype=torch.uint8)  # freeing it lifts glibc's mmap threshold, as a load does
    del big
    weights, pins = [], []
    for _ in range(100):  # 400 MB of "weights" with small live objects between them, as a loaded network has
        weights.append(torch.ones(4 << 20, dtype=torch.uint8))
        pins.append(torch.ones(16 << 10, dtype=torch.uint8))
    loaded = rss_mb()
    del weights
    free_memory()
    print(json.dumps({"loaded": loaded, "after": rss_mb()}))
''')


def test_free_memory_hands_freed_weights_back_to_the_system():
    """glibc kept them in its heap (a whole model's RSS after a cleanup) before free_memory trimmed it."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["loaded"] - got["after"] > 0.8 * 400, got
