"""How tensors travel from a safetensors file into the model: mapped windows, no staging copy, reader threads."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from sa2va_i_ros.errors import CheckpointError
from sa2va_i_ros.model.checkpoint import stream


@pytest.fixture
def shard(tmp_path):
    g = torch.Generator().manual_seed(3)
    tensors = {f"t{i}": torch.randn(37 + i, 5 + i, generator=g).to(torch.bfloat16) for i in range(9)}
    tensors["scalar"] = torch.tensor(2.5, dtype=torch.bfloat16)
    tensors["ints"] = torch.arange(11, dtype=torch.int64)
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    return path


def test_a_cast_read_allocates_no_staging_buffer(shard, monkeypatch):
    """bfloat16 on disk into float32: the destination is filled from the mapped file, no host copy between
    (the earlier reader allocated a uint8 staging buffer per chunk and converted from it)."""
    entry = stream.read_header(shard, "t")["t8"]
    out = torch.empty(entry.shape, dtype=torch.float32)
    allocated = []
    empty = torch.empty

    def spy(*args, **kwargs):
        allocated.append(kwargs.get("dtype"))
        return empty(*args, **kwargs)

    monkeypatch.setattr(torch, "empty", spy)
    with stream.open_for_reading(shard) as f:
        stream.copy_rows(f, entry, out, [(0, entry.rows, 0)], chunk_bytes=64)
    monkeypatch.undo()
    assert allocated == []
    assert torch.equal(out, load_file(str(shard))["t8"].float())


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_reader_threads_fill_every_tensor_exactly(shard, threads):
    entries = stream.read_header(shard, "t")
    reference = load_file(str(shard))
    outs = {k: torch.empty(e.shape, dtype=torch.float32 if e.dtype.is_floating_point else e.dtype)
            for k, e in entries.items()}
    stream.read_all([(e, outs[k], [(0, e.rows, 0)]) for k, e in entries.items()], threads=threads)
    for k, out in outs.items():
        assert torch.equal(out, reference[k].to(out.dtype)), k


def test_a_file_cut_after_its_header_was_read_is_an_error_not_a_crash(shard):
    """A mapped read past the end of a file is SIGBUS: the reader checks the size first."""
    entries = stream.read_header(shard, "t")
    data = shard.read_bytes()
    shard.write_bytes(data[:-40])  # cut inside the last tensor's bytes
    outs = {k: torch.empty(e.shape, dtype=e.dtype) for k, e in entries.items()}
    with pytest.raises(CheckpointError, match="cut short"):
        stream.read_all([(e, outs[k], [(0, e.rows, 0)]) for k, e in entries.items()], threads=2)
