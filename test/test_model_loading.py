"""The load path at real size: empty build, tensors read into their dtype/device, clean failures."""

import gc
import json
import shutil
import types
import weakref

import pytest
import torch
from safetensors.torch import load_file

from sa2va_i_ros.errors import CheckpointError, ModelLoadError, NumericsError
from sa2va_i_ros.grounding.engine import GroundingEngine, load_tokenizer
from sa2va_i_ros.model import device as device_mod
from sa2va_i_ros.model.checkpoint import build, load, materialise, stream
from sa2va_i_ros.model.checkpoint.config import read_config
from sa2va_i_ros.model.checkpoint.placement import placement
from sa2va_i_ros.model.sa2va_model import Sa2VAModel

QUERY = "the cup left of the bowl"
CPU = torch.device("cpu")


@pytest.fixture
def ckpt_copy(tiny_checkpoint, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, dst)
    return dst


def eager_engine(directory):
    """Today's way, kept as the reference: random-init build in float32, weights copied over."""
    cfg = read_config(directory)
    net = Sa2VAModel(cfg)
    report = load.load_weights(net, directory, str(directory))
    return GroundingEngine(net, load_tokenizer(directory, str(directory)), cfg, CPU, torch.float32, report)


def test_the_empty_build_holds_no_weights(tiny_checkpoint):
    net = Sa2VAModel(read_config(tiny_checkpoint), empty=True)
    params = dict(net.named_parameters())
    assert params and all(p.device.type == "meta" for p in params.values())
    # computed constants are real, as in the eager build
    assert net.language_model.model.rotary_emb.inv_freq.device.type == "cpu"


def test_the_empty_build_loads_to_the_eager_model_and_grounds_the_same(tiny_checkpoint, engine, frames):
    reference = eager_engine(tiny_checkpoint)
    ours, ref = engine.model.state_dict(), reference.model.state_dict()
    assert ours.keys() == ref.keys()
    for k in ref:
        assert ours[k].dtype == ref[k].dtype and torch.equal(ours[k], ref[k]), k
    for (n, a), (_, b) in zip(engine.model.named_buffers(), reference.model.named_buffers(), strict=True):
        assert torch.equal(a, b), n  # RoPE inv_freq included (non-persistent, computed at construction)
    layer = "memory_attention.layers.0.self_attn"
    assert torch.equal(engine.model.sam2.get_submodule(layer).freqs_cis,
                       reference.model.sam2.get_submodule(layer).freqs_cis)
    a, b = engine.ground(frames, QUERY), reference.ground(frames, QUERY)
    assert a.answer == b.answer
    torch.testing.assert_close(a.seg_embeddings, b.seg_embeddings, rtol=0, atol=0)
    assert (a.masks == b.masks).all()


def test_rope_frequencies_stay_float32_in_a_bfloat16_model(tiny_checkpoint):
    net, _ = build.load_model(read_config(tiny_checkpoint), tiny_checkpoint, "tiny", CPU, torch.bfloat16)
    assert net.language_model.model.embed_tokens.weight.dtype == torch.bfloat16
    rotary = net.language_model.model.rotary_emb
    assert rotary.inv_freq.dtype == torch.float32
    expected = 1.0 / rotary.config.rope_parameters["rope_theta"] ** (
        torch.arange(0, rotary.inv_freq.numel() * 2, 2, dtype=torch.float32) / (rotary.inv_freq.numel() * 2))
    torch.testing.assert_close(rotary.inv_freq, expected, rtol=1e-6, atol=0)


def test_each_part_gets_its_dtype(tiny_checkpoint):
    cfg = read_config(tiny_checkpoint)
    net, report = build.load_model(cfg, tiny_checkpoint, "tiny", CPU, torch.bfloat16, lm_dtype=torch.float32)
    assert net.vision_tower.embeddings.cls_token.dtype == torch.bfloat16
    assert net.sam2.sam_mask_decoder.iou_token.weight.dtype == torch.bfloat16
    assert net.finetuned_decoder.iou_token.weight.dtype == torch.bfloat16
    assert net.language_model.model.embed_tokens.weight.dtype == torch.float32
    assert net.text_hidden_fcs[0].weight.dtype == torch.float32
    assert net.language_model.model.rotary_emb.inv_freq.dtype == torch.float32
    disk = load_file(str(tiny_checkpoint / "model-00002-of-00002.safetensors"))
    name = "grounding_encoder.sam2_model.sam_mask_decoder.iou_token.weight"
    assert torch.equal(net.sam2.sam_mask_decoder.iou_token.weight, disk[name])  # bf16 on disk: bit-exact
    assert report["lm_dtype"] == "float32" and report["bytes_on_disk"] > 0


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 26])
def test_chunked_reads_equal_the_safetensors_library(tiny_checkpoint, chunk):
    file = tiny_checkpoint / "model-00001-of-00002.safetensors"
    reference = load_file(str(file))
    entries = stream.read_header(file, "tiny")
    name = "vision_model.encoder.layers.0.attn.qkv.weight"
    qkv, d = entries[name], entries[name].shape[0] // 3
    with stream.open_for_reading(file) as f:
        for key in ("mlp1.1.weight", "mlp1.1.bias", "vision_model.embeddings.class_embedding"):
            e = entries[key]
            out = torch.empty(e.shape, dtype=torch.float32)  # converted from bfloat16 on the way
            stream.copy_rows(f, e, out, [(0, e.rows, 0)], chunk_bytes=chunk)
            torch.testing.assert_close(out, reference[key].float(), rtol=0, atol=0)
        same = torch.empty(qkv.shape, dtype=qkv.dtype)  # same dtype: read in place
        stream.copy_rows(f, qkv, same, [(0, qkv.rows, 0)], chunk_bytes=chunk)
        assert torch.equal(same, reference[name])
        v = torch.empty((d, *qkv.shape[1:]), dtype=torch.float32)
        stream.copy_rows(f, qkv, v, [(2 * d, d, 0)], chunk_bytes=chunk)
        torch.testing.assert_close(v, reference[name][2 * d:].float(), rtol=0, atol=0)


def test_a_shard_cut_inside_its_data_is_refused(ckpt_copy):
    shard = ckpt_copy / "model-00001-of-00002.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        GroundingEngine.load(str(ckpt_copy))


def test_config_fields_outside_the_whitelist_never_reach_transformers(ckpt_copy):
    cfg = json.loads((ckpt_copy / "config.json").read_text())
    cfg["llm_config"].update(attn_implementation="flash_attention_2", _attn_implementation="flash_attention_2",
                             torch_dtype="float16", use_flash_attn=True, pretraining_tp=4)
    cfg["vision_config"].update(attn_implementation="flash_attention_2", use_flash_attn=True)
    (ckpt_copy / "config.json").write_text(json.dumps(cfg))
    engine = GroundingEngine.load(str(ckpt_copy))
    assert engine.model.language_model.config._attn_implementation == "sdpa"
    assert engine.model.vision_tower.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("major, expected", [(7, "float16"), (8, "bfloat16"), (9, "bfloat16")])
def test_auto_dtype_asks_the_gpu_for_bfloat16(monkeypatch, major, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: types.SimpleNamespace(major=major))
    monkeypatch.setattr(torch.version, "hip", None)
    assert device_mod.resolve_auto("auto", "auto") == ("cuda", expected)
    assert device_mod.resolve_auto("cuda:1", "auto") == ("cuda:1", expected)
    assert device_mod.resolve_auto("cpu", "auto") == ("cpu", "float32")
    assert device_mod.resolve_auto("auto", "float32") == ("cuda", "float32")


def test_float16_keeps_the_language_model_in_float32(tiny_checkpoint):
    assert device_mod.language_model_dtype(torch.float16) == torch.float32
    assert device_mod.language_model_dtype(torch.bfloat16) == torch.bfloat16
    cfg = read_config(tiny_checkpoint)
    net, _ = build.load_model(cfg, tiny_checkpoint, "tiny", CPU, torch.float16,
                              lm_dtype=device_mod.language_model_dtype(torch.float16))
    assert net.language_model.lm_head.weight.dtype == torch.float32
    assert net.multi_modal_projector.linear_1.weight.dtype == torch.float16


def test_out_of_memory_while_loading_is_a_clean_error_and_frees_the_model(tiny_checkpoint, monkeypatch):
    built = []
    original = materialise.allocate

    def allocate(model, where):
        built.append(weakref.ref(model))
        calls = iter(range(10**9))

        def failing_empty(shape, dtype, dev):
            if next(calls) == 40:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return torch.empty(shape, dtype=dtype, device=dev)

        monkeypatch.setattr(materialise, "empty", failing_empty)
        original(model, where)

    monkeypatch.setattr(materialise, "allocate", allocate)
    with pytest.raises(ModelLoadError, match="loading failed: out of memory .*Tried to allocate") as err:
        GroundingEngine.load(str(tiny_checkpoint))
    gc.collect()
    assert built and built[0]() is None  # the error, still held here, does not keep the half-built model
    assert err.value.__cause__ is None


def test_an_import_error_while_building_is_a_clean_error(tiny_checkpoint, monkeypatch):
    import sa2va_i_ros.model.sa2va_model as sa2va_model

    def broken(*args, **kwargs):
        raise ImportError("No module named 'flash_attn'")

    monkeypatch.setattr(sa2va_model, "build_sam2", broken)
    with pytest.raises(ModelLoadError, match="a package is missing .*flash_attn"):
        GroundingEngine.load(str(tiny_checkpoint))


def test_a_broken_tokenizer_is_a_clean_error(ckpt_copy):
    (ckpt_copy / "vocab.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="tokenizer"):
        GroundingEngine.load(str(ckpt_copy))


def test_inf_in_the_language_model_is_reported_not_decoded(tiny_checkpoint, frames):
    engine = GroundingEngine.load(str(tiny_checkpoint))
    with torch.no_grad():
        engine.model.text_hidden_fcs[0].weight[0, 0] = float("inf")
    with pytest.raises(NumericsError, match="inf/NaN"):
        engine.ground(frames, QUERY)


def test_placement_puts_the_language_model_on_its_devices():
    meta = torch.device("meta")
    where = placement(CPU, torch.float16, torch.float32, [CPU, CPU, meta, meta])
    assert where("vision_tower.encoder.layer.0.attention.q_proj.weight") == (CPU, torch.float16)
    assert where("sam2.no_mem_embed") == (CPU, torch.float16)
    assert where("language_model.model.embed_tokens.weight") == (CPU, torch.float32)
    assert where("language_model.model.layers.1.mlp.up_proj.weight") == (CPU, torch.float32)
    assert where("language_model.model.layers.2.mlp.up_proj.weight") == (meta, torch.float32)
    assert where("language_model.model.norm.weight") == (meta, torch.float32)
    assert where("language_model.lm_head.weight") == (meta, torch.float32)
    assert where("text_hidden_fcs.0.weight") == (CPU, torch.float32)


def test_layers_are_split_in_contiguous_blocks():
    from sa2va_i_ros.model.checkpoint.placement import split_layers

    a, b, c = (torch.device(f"cuda:{i}") for i in range(3))
    assert split_layers(4, [a, b]) == [a, a, b, b]
    assert split_layers(5, [a, b]) == [a, a, a, b, b] or split_layers(5, [a, b]) == [a, a, b, b, b]
    assert split_layers(48, [a, b, c]) == [a] * 16 + [b] * 16 + [c] * 16
    assert split_layers(10, [a, b], weights=[3, 1]) == [a] * 8 + [b] * 2  # e.g. free memory 3:1
    assert split_layers(2, [a, b, c]) == [a, b]  # more devices than layers: the last get none
    assert split_layers(3, [a], weights=[5]) == [a] * 3
    with pytest.raises(ValueError):
        split_layers(4, [])
    with pytest.raises(ValueError):
        split_layers(4, [a, b], weights=[1, 0])


def test_device_hooks_carry_hidden_states_across_devices():
    """Half the layers on another device (meta here, no GPUs): only the hooks make the forward run."""
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from sa2va_i_ros.model.checkpoint.placement import add_device_hooks, split_layers

    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, attn_implementation="sdpa")
    lm = LlamaForCausalLM(cfg).eval()
    devices = split_layers(4, [CPU, torch.device("meta")])
    for layer, dev in zip(lm.model.layers, devices, strict=True):
        layer.to(dev)
    lm.model.norm.to("meta")
    lm.lm_head.to("meta")
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(RuntimeError, match="device"):
        lm(ids)
    add_device_hooks(lm, devices)
    cache = DynamicCache()
    with torch.no_grad():
        out = lm.model(input_ids=ids, past_key_values=cache, use_cache=True)
        logits = lm.lm_head(out.last_hidden_state)
        lm.model(input_ids=torch.tensor([[4]]), past_key_values=cache, use_cache=True)
    assert logits.shape == (1, 3, 50) and logits.device.type == "meta"
    assert [layer.keys.device.type for layer in cache.layers] == ["cpu", "cpu", "meta", "meta"]
    assert cache.get_seq_length() == 4


def test_a_language_model_spread_over_devices_grounds_the_same(tiny_checkpoint, engine, frames):
    spread = GroundingEngine.load(str(tiny_checkpoint), lm_devices="cpu,cpu")
    assert spread.load_report["lm_devices"] == ["cpu", "cpu"]
    a, b = spread.ground(frames, QUERY), engine.ground(frames, QUERY)
    assert a.token_ids == b.token_ids
    torch.testing.assert_close(a.seg_embeddings, b.seg_embeddings, rtol=0, atol=0)
    with pytest.raises(ValueError, match="device"):
        GroundingEngine.load(str(tiny_checkpoint), lm_devices="cpu,tpu:x")


@pytest.mark.gpu
def test_a_language_model_spread_over_two_gpus(tiny_checkpoint, engine, frames):
    """Needs two CUDA devices (never run on this project's machines so far)."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    spread = GroundingEngine.load(str(tiny_checkpoint), device="cuda:0", dtype="float32", lm_devices="cuda:0,cuda:1")
    layers = spread.model.language_model.model.layers
    assert {p.device.index for p in layers[0].parameters()} == {0}
    assert {p.device.index for p in layers[-1].parameters()} == {1}
    a, b = spread.ground(frames, QUERY), engine.ground(frames, QUERY)
    assert a.token_ids == b.token_ids
    torch.testing.assert_close(a.seg_embeddings, b.seg_embeddings, rtol=1e-4, atol=1e-4)


def test_the_hub_revision_reaches_the_download(tiny_checkpoint, monkeypatch):
    import huggingface_hub

    asked = []

    def snapshot_download(repo_id, revision=None, **kwargs):
        asked.append((repo_id, revision))
        return str(tiny_checkpoint)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    engine = GroundingEngine.load("kumuji/Sa2VA-i-1B", revision="9e1f368")
    assert asked == [("kumuji/Sa2VA-i-1B", "9e1f368")] and engine.cfg.name == "kumuji/Sa2VA-i-1B"


def test_a_float32_checkpoint_is_cast_while_it_is_read(ckpt_copy, tiny_checkpoint):
    """SaSaSa2VA-26B-style float32 shards load straight into bfloat16 (cast chunk by chunk)."""
    from safetensors.torch import save_file

    for shard in ckpt_copy.glob("model-*.safetensors"):
        save_file({k: v.float() for k, v in load_file(str(shard)).items()}, str(shard), metadata={"format": "pt"})
    cfg = read_config(ckpt_copy)
    wide, _ = build.load_model(cfg, ckpt_copy, "fp32", CPU, torch.bfloat16)
    narrow, _ = build.load_model(read_config(tiny_checkpoint), tiny_checkpoint, "bf16", CPU, torch.bfloat16)
    a, b = wide.state_dict(), narrow.state_dict()
    assert all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in b)


def test_a_tied_lm_head_gets_its_input_where_it_lives():
    """Tied to the embeddings (main device), lm_head is not moved to the last layer's device, nor its input."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from sa2va_i_ros.model.checkpoint.placement import add_device_hooks

    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    lm = LlamaForCausalLM(cfg).eval()
    assert lm.lm_head.weight is lm.model.embed_tokens.weight
    lm.model.layers[1].to("meta")
    lm.model.norm.to("meta")
    add_device_hooks(lm, [CPU, torch.device("meta")])
    with torch.no_grad():
        assert lm.lm_head(torch.randn(1, 3, 32)).device.type == "cpu"
        assert lm.model.norm(torch.randn(1, 3, 32)).device.type == "meta"
