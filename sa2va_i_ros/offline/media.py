"""Reading videos and frame folders, writing masks and overlay videos (for the CLIs).

Frame folders (JPEG/PNG, sorted by name) need only Pillow; video files need
PyAV (``pip install av``), imported only when a video is read or written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sa2va_i_ros.offline.evaluation.datasets import read_frames as read_image_files

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _av():
    try:
        import av
    except ImportError as exc:
        raise SystemExit("reading or writing video files needs PyAV: pip install av "
                         "(or pass a folder of frames)") from exc
    return av


def frame_paths(folder: Path) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def read_frames(source: str | Path, max_frames: int | None = None) -> tuple[list[np.ndarray], list[str], float]:
    """RGB uint8 frames, their names (for output files) and the frame rate (0 for folders)."""
    source = Path(source)
    if not source.exists():
        raise ValueError(f"{source} does not exist")
    if source.is_dir():
        paths = frame_paths(source)[:max_frames]
        return read_image_files(paths), [p.stem for p in paths], 0.0
    av = _av()
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 0)
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"{source}: no video frames decoded")
    return frames, [f"{i:05d}" for i in range(len(frames))], fps


def write_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """H.264 (or MPEG-4 when this FFmpeg build lacks it) mp4 of RGB frames."""
    av = _av()
    height, width = frames[0].shape[:2]
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=max(1, round(fps or 10)))
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: stream.height, : stream.width]),
                                               format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
