"""``make demo``: the main job end to end on an embedded default.

Generates the synthetic tabletop bag, starts the segment node (the launch
file's parameters file) with a tiny random-weight Sa2VA-i checkpoint, replays
the bag into it, asks "the cup left of the bowl" mid-stream and writes
``demo_out/summary.json`` and overlay images of a few frames.

    python -m sa2va_i_ros.tools.demo [--model M] [--device cuda] [--out demo_out]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from PIL import Image

NOTE = ("NOTE: the embedded checkpoint has RANDOM weights: the plumbing (bag -> node -> masks, stamps, "
        "tracking) is real, the masks are not meaningful.\n"
        "      Real model on a GPU machine: ros2 launch sa2va_i_ros segment.launch.py model:=kumuji/Sa2VA-i-1B "
        "device:=cuda  (or: python -m sa2va_i_ros.tools.demo --model kumuji/Sa2VA-i-1B --device cuda)")


def summarise(result, bag_stamps: list[int], model: str) -> dict:
    from sa2va_i_ros.ros.conversions import stamp_to_ns

    reply = result.reply
    sampled = [stamp_to_ns(s) for s in reply.sampled_stamps] if reply else []
    window_end = max(sampled) if sampled else 0
    later = [s for s in bag_stamps if s > window_end]
    headers_are_bag_frames = all(stamp_to_ns(m.header.stamp) in set(bag_stamps)
                                 for m in (*result.masks.values(), *result.objects.values()))
    every_later_frame = all(s in result.masks and s in result.objects for s in later)
    lat, live = result.latencies_ms(), result.latencies_ms(live_only=True)
    return {
        "model": model,
        "frames_replayed": len(bag_stamps),
        "frames_seen_by_observer": len(result.camera_headers),
        "query": "the cup left of the bowl",
        "success": bool(reply and reply.success),
        "message": reply.message if reply else "no reply",
        "answer": reply.answer if reply else "",
        "track_id": reply.track_id if reply else 0,
        "window_frames": reply.window_frames if reply else 0,
        "sampled_indices": list(reply.sampled_indices) if reply else [],
        "sampled_stamps_ns": sampled,
        "frames_after_query": len(later),
        "frames_without_output": [bag_stamps.index(t) for t in later
                                  if t not in result.masks or t not in result.objects],
        "masks_published": len(result.masks),
        "objects_published": len(result.objects),
        "stamps_match": bool(headers_are_bag_frames and every_later_frame and later),
        "latency_ms_p50": round(statistics.median(lat), 2) if lat else None,
        "latency_ms_p95": round(lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
        "live_latency_ms_p50": round(statistics.median(live), 2) if live else None,
        "latency_note": "camera frame seen by the observer -> its objects message; frames that arrived during "
                        "grounding wait for the catch-up, 'live' ones arrived after the reply",
        "timing_ms": {k: round(getattr(reply.timing, k), 1) for k in
                      ("preprocess_ms", "language_ms", "decode_ms", "propagate_ms", "total_ms")} if reply else {},
        "events": [{"track_id": e.track_id, "event": int(e.event)} for e in result.events],
        "note": "random weights: masks are not meaningful" if "tiny" in model or "demo_out" in model else "",
    }


def main(argv=None) -> int:
    from sa2va_i_ros.core.checkpoint.tiny import write_tiny_checkpoint
    from sa2va_i_ros.ros.conversions import image_to_rgb
    from sa2va_i_ros.synthetic.gt import read_gt
    from sa2va_i_ros.tools import make_bag
    from sa2va_i_ros.tools.replay_run import ReplayOptions, run_replay

    p = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: a tiny random one in OUT/checkpoint)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="demo_out", type=Path)
    args = p.parse_args(argv)
    print(NOTE, flush=True)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model is None:
        model = str(out / "checkpoint_tiny_random")
        if not (Path(model) / "config.json").is_file():
            print(f"[demo] writing a tiny random-weight Sa2VA-i checkpoint to {model}", flush=True)
            write_tiny_checkpoint(model)
    bag = out / "recording" / "tabletop_mcap"
    if not bag.exists():
        print("[demo] generating the synthetic tabletop recording", flush=True)
        if make_bag.main([str(out / "recording"), "--storage", "mcap"]) != 0:
            return 1
    gt = read_gt(out / "recording" / "gt")
    print(f"[demo] replaying {len(gt.stamps_ns)} frames into the node; the query comes after 20", flush=True)
    result = run_replay(ReplayOptions(bag=bag, model=Path(model), query_after=20, want_overlay=True,
                                      params={"device": args.device, "image_qos": "reliable",
                                              "image_queue_depth": 100}))
    summary = summarise(result, list(gt.stamps_ns), model)
    for k, stamp in enumerate(sorted(result.overlays)[:: max(1, len(result.overlays) // 4)][:4]):
        Image.fromarray(image_to_rgb(result.overlays[stamp])).save(out / f"overlay_{k}_{stamp}.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("frames_replayed", "answer", "masks_published", "stamps_match",
                                              "latency_ms_p50", "latency_ms_p95")}, indent=2))
    print(f"[demo] wrote {out / 'summary.json'} and {len(list(out.glob('overlay_*.png')))} overlay images")
    print(NOTE, flush=True)
    ok = summary["success"] and summary["stamps_match"] and result.node_returncode == 0
    if not ok:
        print(result.node_log[-3000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
