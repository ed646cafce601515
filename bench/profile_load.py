"""Where the time of one project load goes, section by section (time.perf_counter), in a fresh process.

Runs the steps of ``GroundingEngine.load`` one after the other on the bench's
Sa2VA-i-1B-size checkpoint (``bench_load.ensure_model``) and prints seconds
per section, then the same sections for a second load in the same process
(what a lifecycle cleanup + configure pays). ``--cprofile`` prints cProfile's
top functions of the first load instead.

    python -m bench.profile_load [--dtype float32|bfloat16] [--cprofile]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def sections(directory: Path, dtype_name: str) -> dict[str, float]:
    import torch

    out: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        out[name] = round(out.get(name, 0.0) + now - clock[0], 3)
        clock[0] = now

    import sam2  # noqa: F401  (hydra's config module)

    from sa2va_i_ros.grounding.engine import GroundingEngine
    from sa2va_i_ros.model.checkpoint import materialise, placement, stream
    from sa2va_i_ros.model.checkpoint.config import read_config
    from sa2va_i_ros.model.checkpoint.load import _plan, layout_of, read_tensor_names, tensor_files
    from sa2va_i_ros.model.checkpoint.tokenizer import load_tokenizer
    from sa2va_i_ros.model.sa2va_model import Sa2VAModel

    lap("imports (project, sam2, hydra, transformers model classes)")
    dtype = getattr(torch, dtype_name)
    cfg = read_config(directory)
    lap("config.json")
    from hydra import compose

    from sa2va_i_ros.model.sam2_model import SA2VA_OVERRIDES, SAM2_CONFIG

    compose(config_name=SAM2_CONFIG, overrides=list(SA2VA_OVERRIDES))
    lap("hydra compose of the SAM2 config alone (also inside the next section)")
    net = Sa2VAModel(cfg, empty=True)
    lap("network on meta (vision, projector, LM, SAM2, decoders)")
    disk = read_tensor_names(tensor_files(directory, "p"), "p")
    plan = _plan(net.parameter_names(), disk, layout_of(net, set(disk)), None,
                 {"language_model.lm_head.weight"} if net.tied_lm_head else set())
    lap("safetensors headers + strict key plan")
    materialise.allocate(net, placement.placement(torch.device("cpu"), dtype, dtype, None))
    lap("allocate (empty tensors in the target dtype)")
    params = net.state_dict(keep_vars=True)
    stream.read_all([(t, params[target].data, pieces) for t, found in plan for target, pieces in found])
    lap("read tensors into place (read, dtype cast, first touch of the memory)")
    tok = load_tokenizer(directory, "p")
    lap("tokenizer")
    GroundingEngine(net, tok, cfg, torch.device("cpu"), dtype, {})
    lap("engine init")
    return out


def main() -> None:
    from bench.bench_load import ensure_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    directory = ensure_model("1b")
    t0 = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    print(json.dumps({"import torch + transformers": round(time.perf_counter() - t0, 3)}))
    if args.cprofile:
        import cProfile
        import pstats

        from sa2va_i_ros.grounding.engine import GroundingEngine

        prof = cProfile.Profile()
        prof.runcall(GroundingEngine.load, str(directory), dtype=args.dtype)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
        return
    for run in ("first load", "second load, same process"):
        t = time.perf_counter()
        out = sections(directory, args.dtype)
        out["total"] = round(time.perf_counter() - t, 3)
        print(json.dumps({run: out}, indent=1))


if __name__ == "__main__":
    main()
