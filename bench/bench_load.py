"""Loading a real-size checkpoint: peak host memory over size on disk, and time, ours vs today's way.

The checkpoint is a random-weight model in the official layout with the real
dimensions of Sa2VA-i-1B (InternViT-300M, Qwen2.5-0.5B, SAM 2.0 Hiera-L, both
mask decoders), bfloat16 shards, written once into bench/.cache. Each way runs
in its own fresh process and loads into bfloat16 on the CPU (the host-memory
side of a GPU load; this machine has no GPU):

* ours: ``checkpoint.build.load_model`` (empty build, tensors streamed into
  their final dtype), what ``GroundingEngine.load`` runs;
* reference ("today's way", the code before this change): the network built with
  random float32 weights, each tensor copied in from the memory-mapped shard,
  then the whole model cast to bfloat16 (``bench.reference_loading``).

Then the anchor a user compares against (``versus_transformers``): the project's
whole load (``GroundingEngine.load``: config, network, tokenizer) against
transformers' own ``from_pretrained`` of the equivalent native models, the same
tensors re-keyed (``bench.transformers_anchor``), in float32 (the CPU default)
and bfloat16, interleaved fresh processes, medians; and the node's configure,
cold and after a lifecycle cleanup (``bench.load_node``).

Memory = peak RSS during the load minus RSS before it (after imports), over the
bytes of the shards. ``load8b`` does the same for the Sa2VA-8B dimensions
(InternLM2-7B language model), with the language model cut to a few of its 32
layers so that it fits this machine (labelled in the results).

    python -m bench.bench_load [--family 1b|8b]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import load_node, transformers_anchor
from bench.bench_streaming import proc_status_mb

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
LAYERS_8B = 4  # of 32: the rest of the network at its real size
ROUNDS = 3  # interleaved runs per side in the comparison with transformers


def config_1b() -> dict:
    """config.json of a Sa2VA-i-1B-sized model (InternVL2.5-1B: InternViT-300M + Qwen2.5-0.5B)."""
    from sa2va_i_ros.model.sam2_model import Sam2Spec
    from sa2va_i_ros.testing.tiny_sa2va import build_tokenizer, official_config

    cfg = official_config(build_tokenizer(), Sam2Spec(), vision_dims=dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
        llm_dims=dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                      intermediate_size=4864), vocab_size=151936)
    cfg.pop("sa2va_i_ros_sam2")  # SAM 2.0 Hiera-L, as every official checkpoint
    return cfg


def config_8b(layers: int = LAYERS_8B) -> dict:
    """config.json of a Sa2VA-8B-sized model (InternViT-300M + internlm2_5-7b-chat), ``layers`` LM layers."""
    from sa2va_i_ros.testing.tiny_internlm2 import official_config_internlm2

    cfg = official_config_internlm2(vision_dims=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                                     intermediate_size=4096),
                                    llm_dims=dict(hidden_size=4096, num_hidden_layers=layers, num_attention_heads=32,
                                                  num_key_value_heads=8, intermediate_size=14336),
                                    vocab_size=92553)
    cfg.pop("sa2va_i_ros_sam2")
    return cfg


def ensure_model(family: str) -> Path:
    directory = CACHE / f"load_{family}_v1"
    if (directory / "model.safetensors.index.json").is_file():
        return directory
    from sa2va_i_ros.testing.official_layout import write_random_checkpoint

    if family == "1b":
        from sa2va_i_ros.testing.tiny_sa2va import build_tokenizer, write_tokenizer_files

        write_tokenizer_files(build_tokenizer(), _mkdir(directory))
        write_random_checkpoint(directory, config_1b())
    else:
        from sa2va_i_ros.testing.tiny_internlm2 import write_internlm2_tokenizer

        write_internlm2_tokenizer(_mkdir(directory))
        write_random_checkpoint(directory, config_8b())
    return directory


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def measure(which: str, directory: Path) -> dict:
    """Runs in a child process: imports first, then one measured load into bfloat16 on the CPU."""
    import torch
    import transformers  # noqa: F401  (imported before the clock on every side)

    from bench import reference_loading
    from sa2va_i_ros.model.checkpoint.build import load_model
    from sa2va_i_ros.model.checkpoint.config import read_config
    from sa2va_i_ros.model.checkpoint.load import tensor_files

    cfg = read_config(directory)
    disk = sum(f.stat().st_size for f in tensor_files(directory, "bench"))
    which, _, dtype_name = which.partition(":")
    dtype = getattr(torch, dtype_name or "bfloat16")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = proc_status_mb("VmRSS")
    t0 = time.perf_counter()
    if which == "ours":
        net, _ = load_model(cfg, directory, "bench", torch.device("cpu"), dtype)
    elif which == "engine":  # the whole project load, as GroundingEngine.load (which allows bfloat16 on GPUs only)
        from sa2va_i_ros.grounding.engine import GroundingEngine
        from sa2va_i_ros.model.checkpoint.tokenizer import load_tokenizer

        cfg = read_config(directory)
        net, report = load_model(cfg, directory, str(directory), torch.device("cpu"), dtype)
        GroundingEngine(net, load_tokenizer(directory, str(directory)), cfg, torch.device("cpu"), dtype, report)
    elif which == "transformers":
        _, *nets = transformers_anchor.load_native(transformers_anchor.ensure_native(directory), dtype)
        net = torch.nn.ModuleList(nets)
    else:
        net = reference_loading.load_todays_way(cfg, directory, dtype)
    seconds = time.perf_counter() - t0
    peak = proc_status_mb("VmHWM")
    params = sum(p.numel() for p in net.parameters())
    return {"seconds": seconds, "peak_mb": peak - before, "rss_before_mb": before, "disk_mb": disk / 2**20,
            "params": params}


def _child(which: str, directory: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.bench_load", "--child", which, str(directory)],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_load {which} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _warm_page_cache(directory: Path) -> None:
    """Read the shards once so that both ways find them in the page cache (disk speed is not measured)."""
    for f in sorted(directory.glob("*.safetensors")):
        with open(f, "rb") as fh:
            while fh.read(64 << 20):
                pass


def versus_transformers(directory: Path, out: dict, rounds: int = ROUNDS) -> dict:
    """``load.seconds_ratio_vs_transformers`` (float32, the CPU default) and ``..._bf16``: medians of interleaved runs.

    Each run is a fresh process: the project's whole load (``GroundingEngine.load``:
    config, network, tokenizer) against transformers' tokenizer +
    ``from_pretrained`` of the native models (``bench.transformers_anchor``), torch
    and transformers imported before the clock on both sides.
    """
    native = transformers_anchor.ensure_native(directory)
    for dtype, suffix in (("float32", ""), ("bfloat16", "_bf16")):
        runs: dict[str, list[dict]] = {"engine": [], "transformers": []}
        for _ in range(rounds):
            for which in runs:
                _warm_page_cache(native / "internvl" if which == "transformers" else directory)
                runs[which].append(_child(f"{which}:{dtype}", directory))
        ours, theirs = ({k: statistics.median(r[k] for r in runs[w]) for k in ("seconds", "peak_mb")}
                        for w in ("engine", "transformers"))
        out[f"load.seconds{suffix}_project"] = round(ours["seconds"], 2)
        out[f"load.seconds{suffix}_transformers"] = round(theirs["seconds"], 2)
        out[f"load.seconds_ratio_vs_transformers{suffix}"] = round(ours["seconds"] / theirs["seconds"], 3)
        out[f"load.peak_rss_ratio_vs_transformers{suffix}"] = round(ours["peak_mb"] / theirs["peak_mb"], 3)
        out[f"load.runs{suffix}"] = {w: [round(r["seconds"], 2) for r in rs] for w, rs in runs.items()}
    out["load.conditions"] = (f"{rounds} interleaved fresh processes per side and dtype, medians; shards in the page "
                              f"cache; load average {os.getloadavg()[0]:.1f} at the end")
    return out


def run(out: dict | None = None, with_reference: bool = True) -> dict:
    """The 1B figures (``load.*``): ours and today's way, ours and transformers', cold and re-configure."""
    out = {} if out is None else out
    directory = ensure_model("1b")
    versus_transformers(directory, out)
    load_node.run(directory, out)
    _warm_page_cache(directory)
    ours = _child("ours", directory)
    out["load.model"] = (f"random weights, official layout, Sa2VA-i-1B dimensions ({ours['params'] / 1e9:.2f} B "
                         f"parameters), bfloat16 shards {ours['disk_mb']:.0f} MB; loaded into bfloat16 on the CPU")
    out["load.peak_rss_ratio"] = round(ours["peak_mb"] / ours["disk_mb"], 3)
    out["load.seconds"] = round(ours["seconds"], 2)
    if with_reference:
        _warm_page_cache(directory)
        ref = _child("reference", directory)
        out["load.reference_peak_rss_ratio"] = round(ref["peak_mb"] / ref["disk_mb"], 3)
        out["load.reference_seconds"] = round(ref["seconds"], 2)
    return out


def run_8b(out: dict | None = None) -> dict:
    """The 8B figures (``load8b.*``): ours only (today's way could not load InternLM2)."""
    out = {} if out is None else out
    directory = ensure_model("8b")
    _warm_page_cache(directory)
    ours = _child("ours", directory)
    out["load8b.model"] = (f"random weights, official layout, Sa2VA-8B dimensions, the InternLM2 language model cut "
                           f"to {LAYERS_8B} of 32 layers ({ours['params'] / 1e9:.2f} B parameters), bfloat16 shards "
                           f"{ours['disk_mb']:.0f} MB; loaded into bfloat16 on the CPU")
    out["load8b.peak_rss_ratio"] = round(ours["peak_mb"] / ours["disk_mb"], 3)
    out["load8b.seconds"] = round(ours["seconds"], 2)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("WHICH", "MODEL"))
    parser.add_argument("--family", choices=("1b", "8b"), default="1b")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]))))
    else:
        print(json.dumps(run() if args.family == "1b" else run_8b(), indent=2))
