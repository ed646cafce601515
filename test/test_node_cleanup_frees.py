"""A lifecycle cleanup gives the model back: nothing keeps the loaded network alive once cleanup returned."""

from __future__ import annotations

import weakref

from node_harness import NodeHarness


def test_cleanup_leaves_no_reference_to_the_model(tiny_checkpoint):
    """The worker and its loop hold each other, so the network lives until a collection runs after the last
    outside reference is gone; before, the node collected while it still held the closed worker (the model's
    memory stayed until Python's next automatic collection: 4.9 GB after a cleanup of the 1B layout)."""
    h = NodeHarness(tiny_checkpoint, name="cleanup_frees")
    try:
        h.start()
        engine = weakref.ref(h.node.session.engine)
        assert engine() is not None
        assert h.node.trigger_deactivate().name == "SUCCESS"
        assert h.node.trigger_cleanup().name == "SUCCESS"
        assert engine() is None, "the engine outlived the cleanup"
    finally:
        h.close()
