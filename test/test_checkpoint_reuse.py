"""A second load in the same process: what it reuses (tokenizer, SAM2's hydra config) and what it never skips."""

import json
import shutil

import pytest
import torch

from sa2va_i_ros.model.checkpoint import reuse
from sa2va_i_ros.model.checkpoint.config import read_config
from sa2va_i_ros.model.checkpoint.tokenizer import load_tokenizer
from sa2va_i_ros.model.sa2va_model import Sa2VAModel


@pytest.fixture
def ckpt_copy(tiny_checkpoint, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, dst)
    reuse.clear()
    yield dst
    reuse.clear()


def test_a_second_load_reuses_the_tokenizer_while_its_files_stay(ckpt_copy):
    first = load_tokenizer(ckpt_copy, "tiny")
    assert load_tokenizer(ckpt_copy, "tiny") is first
    cfg_file = ckpt_copy / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["model_max_length"] = 1234  # an edited tokenizer file: built again, with the edit
    cfg_file.write_text(json.dumps(cfg))
    second = load_tokenizer(ckpt_copy, "tiny")
    assert second is not first and second.model_max_length == 1234


def test_sam2_config_is_composed_once_per_process(tiny_checkpoint, monkeypatch):
    import hydra

    from sa2va_i_ros.model import sam2_model

    cfg = read_config(tiny_checkpoint)
    sam2_model.composed.cache_clear()
    calls = []
    compose = hydra.compose
    monkeypatch.setattr(hydra, "compose", lambda *a, **k: calls.append(k) or compose(*a, **k))
    one = sam2_model.build_sam2(cfg.sam2)
    two = sam2_model.build_sam2(cfg.sam2)
    assert len(calls) == 1
    assert one is not two and [k for k, _ in one.named_parameters()] == [k for k, _ in two.named_parameters()]


@pytest.mark.parametrize("method", ["normal_", "uniform_"])
def test_the_empty_build_runs_no_initialiser_on_meta_parameters(tiny_checkpoint, monkeypatch, method):
    """Initialising a meta tensor computes nothing; the empty build skips it (it ran hundreds before)."""
    cfg = read_config(tiny_checkpoint)
    on_meta, on_real = [], []
    original = getattr(torch.Tensor, method)

    def spy(self, *args, **kwargs):
        (on_meta if self.device.type == "meta" else on_real).append(tuple(self.shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, method, spy)
    Sa2VAModel(cfg, empty=True)
    assert on_meta == []
    Sa2VAModel(cfg)  # the eager build (tiny test checkpoints are written from it) still initialises
    assert on_real
