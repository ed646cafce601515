"""Checkpoint layout and strict loading, through the path a real checkpoint takes."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sa2va_i_ros.errors import CheckpointError, StrictLoadError, UnsupportedModelError
from sa2va_i_ros.grounding.engine import GroundingEngine
from sa2va_i_ros.model.checkpoint.config import read_config
from sa2va_i_ros.model.checkpoint.load import load_weights, resolve
from sa2va_i_ros.model.sa2va_model import Sa2VAModel
from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint

SHARD_LM = "model-00001-of-00002.safetensors"
SHARD_SAM = "model-00002-of-00002.safetensors"

# Official tensor names (Sa2VA convert_to_hf.py: 'mllm.model.' dropped, '.gamma' -> '.g_weight').
OFFICIAL_NAMES = [
    "vision_model.embeddings.class_embedding",
    "vision_model.embeddings.patch_embedding.weight",
    "vision_model.embeddings.position_embedding",
    "vision_model.encoder.layers.0.attn.qkv.weight",
    "vision_model.encoder.layers.0.attn.proj.weight",
    "vision_model.encoder.layers.0.mlp.fc1.weight",
    "vision_model.encoder.layers.0.norm1.weight",
    "vision_model.encoder.layers.0.ls1",
    "mlp1.0.weight", "mlp1.1.weight", "mlp1.3.weight",
    "language_model.model.embed_tokens.weight",
    "language_model.model.layers.0.self_attn.q_proj.bias",
    "language_model.lm_head.weight",
    "text_hidden_fcs.0.weight", "text_hidden_fcs.2.weight",
    "grounding_encoder.sam2_model.image_encoder.trunk.patch_embed.proj.weight",
    "grounding_encoder.sam2_model.memory_encoder.fuser.layers.0.g_weight",
    "grounding_encoder.sam2_model.sam_mask_decoder.conv_s0.weight",
    "grounding_encoder.sam2_model.sam_mask_decoder_modified.conv_s0.weight",
    "grounding_encoder.sam2_model.no_mem_embed",
    "grounding_encoder.sam2_model.maskmem_tpos_enc",
    "grounding_encoder.sam2_model.no_obj_ptr",
]


def disk_tensors(directory):
    out = {}
    for f in sorted(directory.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


@pytest.fixture
def ckpt_copy(tiny_checkpoint, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, dst)
    return dst


def load(directory, **kw):
    model = Sa2VAModel(read_config(directory))
    load_weights(model, directory, str(directory), **kw)
    return model


def test_tiny_checkpoint_has_the_official_layout(tiny_checkpoint):
    cfg = json.loads((tiny_checkpoint / "config.json").read_text())
    for key in ("vision_config", "llm_config", "template", "select_layer", "downsample_ratio", "ps_version",
                "force_image_size", "auto_map"):
        assert key in cfg
    assert cfg["model_type"] == "sa2va_chat" and cfg["template"] == "qwen_chat"
    assert cfg["llm_config"]["architectures"] == ["Qwen2ForCausalLM"]
    index = json.loads((tiny_checkpoint / "model.safetensors.index.json").read_text())["weight_map"]
    for name in OFFICIAL_NAMES:
        assert name in index, name
    assert not any(".gamma" in n or n.startswith("mllm.") for n in index)
    tok = json.loads((tiny_checkpoint / "tokenizer_config.json").read_text())
    added = {v["content"] for v in tok["added_tokens_decoder"].values()}
    assert {"[SEG]", "<IMG_CONTEXT>", "<img>", "</img>"} <= added


def test_loaded_parameters_equal_the_tensors_on_disk(tiny_checkpoint):
    model = load(tiny_checkpoint)
    disk = disk_tensors(tiny_checkpoint)
    params = model.state_dict()
    qkv = disk["vision_model.encoder.layers.0.attn.qkv.weight"]
    d = qkv.shape[0] // 3
    layer = "vision_tower.encoder.layer.0.attention."
    torch.testing.assert_close(params[layer + "q_proj.weight"], qkv[:d].float(), rtol=0, atol=0)
    torch.testing.assert_close(params[layer + "k_proj.weight"], qkv[d:2 * d].float(), rtol=0, atol=0)
    torch.testing.assert_close(params[layer + "v_proj.weight"], qkv[-d:].float(), rtol=0, atol=0)
    pairs = {
        "vision_tower.embeddings.cls_token": "vision_model.embeddings.class_embedding",
        "vision_tower.encoder.layer.0.lambda_1": "vision_model.encoder.layers.0.ls1",
        "multi_modal_projector.linear_2.weight": "mlp1.3.weight",
        "sam2.memory_encoder.fuser.layers.0.gamma":
            "grounding_encoder.sam2_model.memory_encoder.fuser.layers.0.g_weight",
        "sam2.sam_mask_decoder.conv_s0.weight": "grounding_encoder.sam2_model.sam_mask_decoder.conv_s0.weight",
        "finetuned_decoder.conv_s0.weight": "grounding_encoder.sam2_model.sam_mask_decoder_modified.conv_s0.weight",
    }
    for ours, official in pairs.items():
        torch.testing.assert_close(params[ours], disk[official].float(), rtol=0, atol=0)
    # the two decoders are different tensors: confusing them would be caught
    assert not torch.equal(params["sam2.sam_mask_decoder.conv_s0.weight"],
                           params["finetuned_decoder.conv_s0.weight"])


def _rewrite_shard(directory, shard, edit):
    path = directory / shard
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def test_a_missing_tensor_is_named(ckpt_copy):
    name = "grounding_encoder.sam2_model.sam_mask_decoder_modified.iou_token.weight"
    _rewrite_shard(ckpt_copy, SHARD_SAM, lambda t: t.pop(name))
    with pytest.raises(StrictLoadError, match="missing from the checkpoint: finetuned_decoder.iou_token.weight"):
        load(ckpt_copy)


def test_an_extra_tensor_is_named(ckpt_copy):
    _rewrite_shard(ckpt_copy, SHARD_LM, lambda t: t.__setitem__("mlp1.9.weight", torch.zeros(2)))
    with pytest.raises(StrictLoadError, match=r"left over in the checkpoint: mlp1\.9\.weight"):
        load(ckpt_copy)


def test_a_wrong_shape_is_named(ckpt_copy):
    _rewrite_shard(ckpt_copy, SHARD_LM, lambda t: t.__setitem__("text_hidden_fcs.2.bias", torch.zeros(7)))
    with pytest.raises(StrictLoadError, match="with a wrong shape: text_hidden_fcs.2.bias"):
        load(ckpt_copy)


def test_corrupt_safetensors_gives_a_clear_error(ckpt_copy):
    data = (ckpt_copy / SHARD_SAM).read_bytes()
    (ckpt_copy / SHARD_SAM).write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load(ckpt_copy)


def test_missing_files_give_clear_errors(ckpt_copy, tmp_path):
    (ckpt_copy / SHARD_SAM).unlink()
    with pytest.raises(CheckpointError, match="shard"):
        load(ckpt_copy)
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        resolve(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        read_config(empty)


def test_pickle_checkpoints_are_never_loaded(ckpt_copy):
    for f in ckpt_copy.glob("model*"):
        f.unlink()
    (ckpt_copy / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="pickle files are never loaded"):
        load(ckpt_copy)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("llm_config") and c.update(text_config={}), "Qwen2.5-VL / Qwen3-VL"),
    (lambda c: c["llm_config"].update(architectures=["Phi3ForCausalLM"]), "Phi3ForCausalLM is not supported"),
    (lambda c: c.update(template="vicuna"), "not one Sa2VA ships"),
    (lambda c: c.update(use_llm_lora=128), "LoRA"),
])
def test_unsupported_models_fail_at_once_naming_the_model(ckpt_copy, edit, message):
    cfg = json.loads((ckpt_copy / "config.json").read_text())
    edit(cfg)
    (ckpt_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError, match=message) as err:
        GroundingEngine.load(str(ckpt_copy))
    assert str(ckpt_copy) in str(err.value)


def test_unknown_model_type_and_bad_json(ckpt_copy):
    (ckpt_copy / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UnsupportedModelError, match="not a Sa2VA checkpoint"):
        read_config(ckpt_copy)
    (ckpt_copy / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_config(ckpt_copy)


def test_plain_sa2va_needs_the_original_sam2_decoder(tmp_path):
    plain = write_tiny_checkpoint(tmp_path / "plain", sa2va_i=False)
    with safe_open(str(plain / SHARD_SAM), "pt") as f:
        assert not any("sam_mask_decoder_modified" in k for k in f.keys())  # noqa: SIM118
    with pytest.raises(CheckpointError, match="plain Sa2VA checkpoint.*ORIGINAL SAM 2.0 decoder"):
        load(plain)
    with pytest.raises(CheckpointError, match="does not exist"):
        load(plain, original_sam2=tmp_path / "missing.safetensors")
    model = load(plain, original_sam2=plain / "sam2_original.safetensors")
    disk = disk_tensors(plain)
    original = load_file(str(plain / "sam2_original.safetensors"))
    params = model.state_dict()
    # in a plain Sa2VA file, sam_mask_decoder is the finetuned decoder ...
    torch.testing.assert_close(params["finetuned_decoder.conv_s1.weight"],
                               disk["grounding_encoder.sam2_model.sam_mask_decoder.conv_s1.weight"].float())
    # ... and the original comes from the SAM 2.0 checkpoint the user names
    torch.testing.assert_close(params["sam2.sam_mask_decoder.conv_s1.weight"],
                               original["sam_mask_decoder.conv_s1.weight"].float())


def test_tied_lm_head_may_be_absent(ckpt_copy):
    cfg = json.loads((ckpt_copy / "config.json").read_text())
    cfg["llm_config"]["tie_word_embeddings"] = True
    (ckpt_copy / "config.json").write_text(json.dumps(cfg))
    _rewrite_shard(ckpt_copy, SHARD_LM, lambda t: t.pop("language_model.lm_head.weight"))
    index = json.loads((ckpt_copy / "model.safetensors.index.json").read_text())
    index["weight_map"].pop("language_model.lm_head.weight")
    (ckpt_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    model = load(ckpt_copy)
    lm = model.language_model
    assert lm.lm_head.weight.data_ptr() == lm.model.embed_tokens.weight.data_ptr()


def test_original_sam2_from_a_converted_torch_checkpoint(tmp_path):
    """sa2va-i-convert-sam2: a sam2 .pt (weights only) -> safetensors the loader takes as the original decoder."""
    from sa2va_i_ros.cli import convert_sam2

    plain = write_tiny_checkpoint(tmp_path / "plain", sa2va_i=False)
    original = load_file(str(plain / "sam2_original.safetensors"))
    torch.save({"model": original}, tmp_path / "sam2_hiera_large.pt")
    assert convert_sam2.main([str(tmp_path / "sam2_hiera_large.pt"), str(tmp_path / "sam2.safetensors")]) == 0
    model = load(plain, original_sam2=tmp_path / "sam2.safetensors")
    torch.testing.assert_close(model.state_dict()["sam2.sam_mask_decoder.iou_token.weight"],
                               original["sam_mask_decoder.iou_token.weight"].float())
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert convert_sam2.main([str(tmp_path / "bad.pt"), str(tmp_path / "x.safetensors")]) == 2


def test_hub_ids_honour_offline_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(CheckpointError, match="offline mode is on and it is not in the local cache"):
        resolve("kumuji/Sa2VA-i-1B")


@pytest.mark.slow
def test_every_tensor_the_official_code_writes_fills_one_parameter(tmp_path):
    """Key names, shapes and config.json as the OFFICIAL Sa2VAChatModel.save_pretrained wrote them.

    Not our writer's inverted tables: the names come from test/fixtures/official_sa2va_i
    (the official class saving a Hiera-L checkpoint). Each must fill exactly one of our
    parameters with the right shape (a fused qkv three), and together they fill all.
    """
    from official_oracle import FIXTURES

    from sa2va_i_ros.model.checkpoint import keys

    official = json.loads((FIXTURES / "official_keys.json").read_text())["tensors"]
    shutil.copy(FIXTURES / "official_config.json", tmp_path / "config.json")
    cfg = read_config(tmp_path)
    assert cfg.template.name == "qwen_chat" and cfg.sam2.image_size == 1024 and cfg.sam2.stages == (2, 6, 36, 4)
    ours = {k: tuple(v.shape) for k, v in Sa2VAModel(cfg).state_dict().items()}  # (sam2's Hiera cannot build on meta)
    filled = {}
    modified = keys.is_sa2va_i(set(official))
    for name, info in official.items():
        targets = keys.expand(name, modified)
        assert targets, f"the official tensor {name} fills none of our parameters"
        shape = tuple(info["shape"])
        if len(targets) == 3:  # fused InternViT qkv
            shape = (shape[0] // 3, *shape[1:])
        for target in targets:
            assert target not in filled, f"{name} and {filled.get(target)} both fill {target}"
            assert ours.get(target) == shape, (name, target, ours.get(target), shape)
            filled[target] = name
    assert set(filled) == set(ours)
