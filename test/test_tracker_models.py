"""Tracker model choice: names, configs, strict loading of weight files and hub ids, clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse fixture)
from tracker_model_helpers import SAM2_NAMES, product_model, reference_model, tiny_weights

from sa2va_i_ros.testing.tiny_trackers import build_tiny_tracker, tiny_tracker_spec, write_tiny_tracker_weights
from sa2va_i_ros.tracking import TrackerChoice, TrackerModelError, tracker_sam2
from sa2va_i_ros.tracking.models import (
    SPEC_KEY,
    TRACKER_MODEL_NAMES,
    TRACKER_MODELS,
    load_tracker_model,
    read_weights,
    save_weights,
)


def _config_file(name: str) -> Path:
    import sam2

    return Path(sam2.__file__).parent / TRACKER_MODELS[name].config


def test_names_configs_and_hub_files_are_sam2s_own():
    from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

    assert TRACKER_MODEL_NAMES[0] == "checkpoint"
    assert set(TRACKER_MODELS) == {f"{v}_hiera_{s}" for v in ("sam2", "sam2.1") for s in ("t", "s", "b+", "l")}
    ours = {m.hub_id: (m.config, m.filename) for m in TRACKER_MODELS.values()}
    assert ours == HF_MODEL_ID_TO_FILENAMES
    for name in TRACKER_MODELS:
        assert _config_file(name).is_file()


@pytest.mark.parametrize("name", SAM2_NAMES)
def test_each_model_keeps_its_configs_settings(name):
    """Everything but the sizes comes from sam2's yaml (read here directly, not through hydra)."""
    yaml = OmegaConf.load(_config_file(name)).model
    model = product_model(name)
    for key in ("add_tpos_enc_to_obj_ptrs", "use_obj_ptrs_in_encoder", "only_obj_ptrs_in_the_past_for_eval",
                "multimask_output_for_tracking", "use_multimask_token_for_obj_ptr", "multimask_min_pt_num",
                "multimask_max_pt_num", "directly_add_no_mem_embed", "use_mask_input_as_output_without_sam",
                "sigmoid_scale_for_mem_enc", "sigmoid_bias_for_mem_enc", "num_maskmem", "fixed_no_obj_ptr"):
        assert getattr(model, key) == yaml[key], key
    for key in ("proj_tpos_enc_in_obj_ptrs", "use_signed_tpos_enc_to_obj_ptrs"):
        assert getattr(model, key) == yaml.get(key, False), key
    assert (model.no_obj_embed_spatial is not None) == yaml.get("no_obj_embed_spatial", False)
    assert model.max_cond_frames_in_attn == -1 and not model.binarize_mask_from_pts_for_mem_enc
    assert TRACKER_MODELS[name].version == ("2.1" if name.startswith("sam2.1") else "2.0")
    # SAM 2.1's additions, which the equivalence tests exercise (no_obj_embed_spatial, tpos projection)
    assert (model.no_obj_embed_spatial is not None) == (TRACKER_MODELS[name].version == "2.1")
    assert model.proj_tpos_enc_in_obj_ptrs == (TRACKER_MODELS[name].version == "2.1")
    assert model.sam_mask_decoder.dynamic_multimask_via_stability  # Sa2VA's decoder settings
    assert not model.training and model.image_size == tiny_tracker_spec(name).image_size


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_round_trip_through_the_product_path(tmp_path, suffix):
    model, spec = build_tiny_tracker("sam2.1_hiera_t", seed=5)
    path = save_weights(model, tmp_path / f"w{suffix}", spec)
    loaded = load_tracker_model(TrackerChoice("sam2.1_hiera_t", str(path)))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert read_weights(path)[1] == spec


def test_sam2_reads_our_pt_files_as_its_own():
    """sam2's own builder loads the tiny .pt strictly: the file has the official layout."""
    reference = reference_model("sam2.1_hiera_b+")
    ours = product_model("sam2.1_hiera_b+")
    for key, value in ours.state_dict().items():
        assert torch.equal(reference.state_dict()[key], value), key


def test_weights_of_another_size_are_refused_with_the_shapes(tmp_path):
    path = write_tiny_tracker_weights("sam2.1_hiera_t", tmp_path / "t.pt")
    data = torch.load(path, weights_only=True)
    data[SPEC_KEY] = tiny_tracker_spec("sam2.1_hiera_l").to_config()  # sizes of l, tensors of t
    torch.save(data, path)
    with pytest.raises(TrackerModelError, match=r"missing from the checkpoint: .*are these weights of this model"):
        load_tracker_model(TrackerChoice("sam2.1_hiera_l", str(path)))


def test_sam2_weights_for_a_sam21_model_are_refused(tmp_path):
    path = write_tiny_tracker_weights("sam2_hiera_t", tmp_path / "t20.pt")
    with pytest.raises(TrackerModelError, match="no_obj_embed_spatial"):
        load_tracker_model(TrackerChoice("sam2.1_hiera_t", str(path)))
    with pytest.raises(TrackerModelError, match="left over in the checkpoint: .*no_obj_embed_spatial"):
        load_tracker_model(TrackerChoice("sam2_hiera_t", str(tiny_weights("sam2.1_hiera_t"))))


def test_a_mis_shaped_tensor_is_named(tmp_path):
    model, spec = build_tiny_tracker("sam2.1_hiera_s")
    path = save_weights(model, tmp_path / "s.safetensors", spec)
    from safetensors.torch import load_file, save_file

    state = load_file(path)
    state["obj_ptr_proj.layers.0.weight"] = torch.zeros(3, 3)
    save_file(state, str(path), metadata={SPEC_KEY: __import__("json").dumps(spec.to_config())})
    with pytest.raises(TrackerModelError, match=r"wrong shape: obj_ptr_proj.layers.0.weight \(file \(3, 3\)"):
        load_tracker_model(TrackerChoice("sam2.1_hiera_s", str(path)))


class Payload:
    """Anything not a tensor: a pickle of it would run code on load."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_never_loaded(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"model": {"x": Payload()}}, fh, protocol=2)
    with pytest.raises(TrackerModelError, match="not a weights-only torch file"):
        load_tracker_model(TrackerChoice("sam2.1_hiera_t", str(path)))
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("content, match", [
    ({"state": {}}, r"expected sam2's checkpoint layout"),
    ({"model": {"a": [1, 2]}}, "holds entries that are not tensors"),
    ({"model": {}, SPEC_KEY: {"embed_dim": "8; import os"}}, "malformed sa2va_i_ros_sam2"),
    ({"model": {}, SPEC_KEY: {"_target_": 1}}, "malformed sa2va_i_ros_sam2"),
])
def test_malformed_files_are_clear_errors(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    torch.save(content, path)
    with pytest.raises(TrackerModelError, match=match):
        load_tracker_model(TrackerChoice("sam2.1_hiera_t", str(path)))


def test_choice_errors():
    with pytest.raises(TrackerModelError, match="unknown tracker model 'sam3'; choose one of checkpoint, sam2.1_"):
        TrackerChoice("sam3")
    with pytest.raises(TrackerModelError, match="only for a sam2 tracker model"):
        TrackerChoice("checkpoint", "w.pt")
    with pytest.raises(TrackerModelError, match="no such file"):
        load_tracker_model(TrackerChoice("sam2.1_hiera_t", "/nonexistent/w.pt"))


def test_a_directory_is_not_a_weights_file(tmp_path):
    with pytest.raises(TrackerModelError, match="found a directory"):
        load_tracker_model(TrackerChoice("sam2.1_hiera_t", str(tmp_path)))


def test_hub_download_uses_the_official_file_name(monkeypatch):
    import huggingface_hub

    asked = []

    def fake_download(repo_id, filename, local_files_only=False):
        asked.append((repo_id, filename))
        return str(tiny_weights("sam2.1_hiera_t"))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    model = load_tracker_model(TrackerChoice("sam2.1_hiera_t"))  # no weights: the official repository
    assert asked == [("facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt")]
    load_tracker_model(TrackerChoice("sam2.1_hiera_t", "someone/finetuned-sam2"))
    assert asked[-1] == ("someone/finetuned-sam2", "sam2.1_hiera_tiny.pt")
    assert model.image_size == tiny_tracker_spec("sam2.1_hiera_t").image_size


def test_offline_hub_is_a_clear_error(monkeypatch):
    import huggingface_hub

    def offline(repo_id, filename, local_files_only=False):
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TrackerModelError, match=r"cannot get sam2.1_hiera_small.pt .*offline mode is on"):
        load_tracker_model(TrackerChoice("sam2.1_hiera_s"))


def test_checkpoint_choice_is_the_checkpoints_own_sam2():
    own = object()
    assert tracker_sam2(TrackerChoice(), own) is own
    loaded = tracker_sam2(TrackerChoice("sam2_hiera_l", str(tiny_weights("sam2_hiera_l"))), own)
    assert loaded is not own and loaded.image_size == tiny_tracker_spec("sam2_hiera_l").image_size
