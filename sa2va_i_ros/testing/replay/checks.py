"""What a replay must show: pure functions over a ``ReplayResult`` and the node's /diagnostics.

The node keeps up with the camera by tracking the newest frame and dropping
stale ones, and a new track's catch-up may thin frames to join the live
stream on time (docs/DESIGN.md): a frame after the query may have no output.
The observer takes the node's counts of dropped and thinned frames from its
last /diagnostics report (``node_counts``, once ``settled_report``), and
``check_replay`` requires every frame without an output to be accounted for
by them. Both the CI test and the launch test make these checks.
"""

from __future__ import annotations

import numpy as np

from sa2va_i_ros.testing.replay.options import QUERY
from sa2va_i_ros.testing.replay.result import ReplayResult, stamp_ns


def node_counts(values: dict) -> dict:
    """The counts check_replay reads from a /diagnostics output status (frames, requests, images)."""
    return {k: int(v) for k, v in values.items() if k.startswith(("frames_", "requests", "images_"))}


def node_settled(values: dict, last_stamp: int, objects: dict, masks: dict) -> bool:
    """Whether a /diagnostics output status says the node is done with the frame stamped ``last_stamp`` (it
    holds it or a newer one and its worker is idle, no output waits for depth) and its newest published
    output (objects and mask) has arrived here. Done does not mean right: the check judges the outputs."""
    try:
        newest, last_out = int(values["newest_stamp_ns"]), int(values["last_output_stamp_ns"])
        idle, pending = values["worker_idle"] == "True", int(values["outputs_pending"])
    except (KeyError, ValueError):
        return False
    return newest >= last_stamp and idle and pending == 0 and (last_out < 0 or (last_out in objects and
                                                                                last_out in masks))


QUIET_S = 1.0  # after the player ended, longer than a frame takes to reach the node's image callback


def settled_report(reports: list, last_played: int, player_end: float, objects: dict, masks: dict):
    """``(newest stamp, counts)`` of the node's report that it is done, or None while it is not.

    Done with the last played frame (``node_settled``); or, when that frame never
    reached it (the camera QoS is best effort, depth 2: DDS may lose any frame,
    the last one too), done with the last frame it DID receive: two consecutive
    reports, both received ``QUIET_S`` after the player ended, with the same
    ``images_received`` and ``newest_stamp_ns``, the later one settled on that
    newest frame. ``check_replay`` then requires the frames played after it to be
    frames the node reports it never received, and the last frame it received to
    have its output: the rule "the last frame has an output" is kept for every
    frame the node got.
    """
    for _, values in reversed(reports):
        if node_settled(values, last_played, objects, masks):
            return int(values["newest_stamp_ns"]), node_counts(values)
    if len(reports) < 2:
        return None
    (t0, before), (_, last) = reports[-2:]
    quiet = t0 > player_end + QUIET_S
    same = all(before.get(k) == last.get(k) for k in ("images_received", "newest_stamp_ns"))
    if quiet and same and node_settled(last, int(last.get("newest_stamp_ns", -1)), objects, masks):
        return int(last["newest_stamp_ns"]), node_counts(last)
    return None


def check_replay(result: ReplayResult, bag_stamps: list[int], frame_id: str, k: list[float],
                 depths: dict[int, np.ndarray], num_frames: int = 5, query: str = QUERY) -> list[str]:
    """Everything a replay must show; returns the problems found (empty: all good).

    The reply succeeds; the sampled stamps are bag stamps at the uniform indices of
    the buffered window (bag frames ending at the newest buffered one, less those
    the node reports it never received);
    every later bag frame has an objects message and a mask with exactly its
    header, or is one of the frames the node reports it dropped as stale or
    thinned; the last frame has one (the last the node received, when the last
    played frames never reached it: ``settled_report``) and some were tracked
    live; nothing is
    invented; object points lie inside the camera frustum, on masked pixels, at
    the depth of those pixels.
    """
    from sa2va_i_ros.model.sampling import sample_indices

    problems: list[str] = []
    reply = result.reply
    if reply is None or not reply.success:
        return [f"the segment request failed: {getattr(reply, 'message', 'no reply')}"]
    from sa2va_i_ros.ros.conversions import stamp_to_ns

    sampled = [stamp_to_ns(s) for s in reply.sampled_stamps]
    if not set(sampled) <= set(bag_stamps):
        return ["sampled stamps are not stamps of the bag"]
    indices = list(reply.sampled_indices)
    if indices != sample_indices(reply.window_frames, num_frames):
        problems.append(f"sampled indices {indices} are not the uniform ones")
    played = set(result.camera_headers)  # the player may have been stopped before the bag's end
    counts = result.node_counts
    # image frames the node never received (best-effort image QoS with queue depth 2, as in production)
    unreceived = max(0, len(played) - counts.get("images_received", len(played)))
    # the newest frame the node received (settled_report): the frames played after it never reached it
    newest = result.node_newest if result.node_newest >= 0 else max(played, default=-1)
    after_newest = [s for s in played if s > newest]
    if len(after_newest) > unreceived:
        problems.append(f"{len(after_newest)} frames were played after the node's newest frame, but it reports "
                        f"only {unreceived} not received")
    unreceived = max(0, unreceived - len(after_newest))  # not received, before the node's newest frame
    # The window is the node's buffered frames: consecutive bag frames except those it never received.
    # Between two sampled frames the bag holds at least as many frames as the window, and every bag frame
    # the window lacks is one the node did not receive.
    positions = [bag_stamps.index(stamp) for stamp in sampled]
    skipped = [(positions[k + 1] - positions[k]) - (indices[k + 1] - indices[k]) for k in range(len(indices) - 1)]
    if any(gap < 0 for gap in skipped) or sum(skipped) > unreceived:
        problems.append(f"sampled stamps are not the window's frames at the sampled indices (bag positions "
                        f"{positions}, window indices {indices}, {unreceived} frames not received)")
    # the newest window frame: exactly known when every frame was received, else within the unreceived slack
    end_first = positions[-1] + (reply.window_frames - 1 - indices[-1])
    end_last = end_first + max(0, unreceived - sum(skipped))
    later = [s for s in bag_stamps[end_last + 1:] if s in played and s <= newest]
    if not later:
        problems.append("no bag frame came after the grounding window")
    missing = [s for s in later if s not in result.objects or s not in result.masks]
    # frames the node dropped as stale, thinned, or never received
    accounted = counts.get("frames_dropped_stale", 0) + counts.get("frames_thinned", 0) + unreceived
    if not counts:
        problems.append("no /diagnostics from the node after the replay")
    elif len(missing) > accounted:
        problems.append(f"{len(missing)} frames after the window have no output, but the node reports only "
                        f"{accounted} dropped, thinned or not received: "
                        f"{[bag_stamps.index(s) for s in missing][:10]}")
    if later and later[-1] not in result.objects:
        problems.append("the last frame has no output: the node never caught up with the stream"
                        if newest == max(played, default=-1) else
                        "the last frame the node received has no output: it never caught up with the stream")
    outputs = sorted(result.objects)
    if counts and counts.get("frames_live", 0) < 1:
        problems.append("no frame was tracked live")
    for stamp in later:
        if stamp not in result.objects or stamp not in result.masks:
            continue
        for msg in (result.objects[stamp], result.masks[stamp]):
            if msg.header.frame_id != frame_id or stamp_ns(msg.header) != stamp:
                problems.append(f"frame {bag_stamps.index(stamp)}: output header differs from the frame's")
        objects = result.objects[stamp].objects
        if len(objects) != 1 or objects[0].track_id != reply.track_id or objects[0].query != query:
            problems.append(f"frame {bag_stamps.index(stamp)}: objects message does not hold the one track")
    if not set(result.objects) <= set(bag_stamps):
        problems.append("an objects message carries a stamp that is not in the bag")
    if [s for s in outputs if s > bag_stamps[end_last]] != [s for s in later if s in result.objects]:
        problems.append("outputs of frames before the window end were published after the reply")
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    checked = 0
    for stamp, cloud in result.points.items():
        pts = np.frombuffer(bytes(cloud.data), [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")])
        if not len(pts) or stamp not in result.masks:
            continue
        m = result.masks[stamp]
        mask = np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width)
        u = np.rint(pts["x"] * fx / pts["z"] + cx).astype(int)
        v = np.rint(pts["y"] * fy / pts["z"] + cy).astype(int)
        inside = (pts["z"] > 0) & (u >= 0) & (u < m.width) & (v >= 0) & (v < m.height)
        if not inside.all():
            problems.append(f"object points outside the camera frustum at {stamp}")
            continue
        if not (mask[v, u] == 255).all():
            problems.append(f"object points off the mask at {stamp}")
        if not np.allclose(pts["z"], depths[stamp][v, u], atol=1e-3):
            problems.append(f"object points not at the depth of their pixels at {stamp}")
        checked += 1
    if checked < 5:
        problems.append(f"object points checked on only {checked} frames")
    return problems


def check_markers(result: ReplayResult, bag_stamps: list[int], frame_id: str, query: str = QUERY) -> list[str]:
    """~/markers: every marker carries a bag frame's header; the track's label names its query and id, and
    with depth a sphere and a box accompany it; the label arrives for the frames after the grounding window."""
    from visualization_msgs.msg import Marker

    problems = []
    reply = result.reply
    labelled = set()
    for array in result.markers:
        for m in array.markers:
            if m.header.frame_id != frame_id or stamp_ns(m.header) not in bag_stamps:
                problems.append(f"marker {m.ns}/{m.id} carries a header that is no bag frame's")
            if m.ns == "labels" and m.action == Marker.ADD:
                if m.id != reply.track_id or not m.text.startswith(f"{query} #{reply.track_id}"):
                    problems.append(f"label {m.text!r} does not name the track")
                labelled.add(stamp_ns(m.header))
        kinds = {(m.ns, m.action) for m in array.markers}
        if ("labels", Marker.ADD) in kinds and ("centroids", Marker.ADD) not in kinds \
                and ("centroids", Marker.DELETE) not in kinds:
            problems.append("a label without its centroid marker (added, or deleted for want of depth)")
    later = {s for s in result.objects if s in bag_stamps}
    if not later or not later <= labelled:
        problems.append(f"{len(later - labelled)} frames with objects have no label marker")
    if not any(m.ns == "centroids" and m.action == Marker.ADD for a in result.markers for m in a.markers):
        problems.append("no centroid sphere on any frame (depth is on)")
    return problems
