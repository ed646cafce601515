"""What a second load of the same checkpoint in the same process reuses (a lifecycle cleanup + configure).

Only things that are pure functions of files that do not change, and that
nobody mutates after they are built, are kept; the weights never are (a
cleanup gives their memory back):

* the tokenizer, keyed by the checkpoint directory and the size and
  modification time of every file in it but the weight shards. The project
  only reads a tokenizer (encode, decode, token ids) after building it; an
  edited or replaced tokenizer file changes the key and builds a new one.
  Kept: the last ``KEEP`` (a few MB each).
* SAM2's hydra config (``sam2_model.composed``): composed from the installed
  sam2 package's own yaml files and fixed overrides; hydra's ``instantiate``
  works on a deep copy of it, so the cached one stays as composed.

The network itself is built again on the meta device each time (about a
second at 1B size): a cached skeleton would cost as much to copy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

KEEP = 2
_lock = threading.Lock()
_tokenizers: OrderedDict[tuple, object] = OrderedDict()


def directory_stamp(directory: Path) -> tuple:
    """(name, size, mtime) of every file of the checkpoint but its weight shards."""
    stamp = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix != ".safetensors":
            st = path.stat()
            stamp.append((path.name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


def tokenizer(directory: Path, build: Callable[[], object]):
    """The tokenizer of ``directory``: built by ``build()`` the first time, then reused while its files stay."""
    key = (str(directory.resolve()), directory_stamp(directory))
    with _lock:
        if key in _tokenizers:
            _tokenizers.move_to_end(key)
            return _tokenizers[key]
    built = build()
    with _lock:
        _tokenizers[key] = built
        while len(_tokenizers) > KEEP:
            _tokenizers.popitem(last=False)
    return built


def clear() -> None:
    """Forget every kept tokenizer (tests; a process that wants the memory back)."""
    with _lock:
        _tokenizers.clear()
