"""Dataset readers on tiny fake trees of each layout, and COCO RLE decoding on hand-made encodings.

The tree builders here are reused by test_eval_tool.py.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sa2va_i_ros.offline.evaluation.datasets import DatasetError, load_dataset
from sa2va_i_ros.offline.evaluation.rle import RLEError, counts_from_string, decode_rle

SIZE = (24, 32)


# -- tree builders ---------------------------------------------------------------------------------
def labels(num_frames: int, size=SIZE, seed: int = 0) -> list[np.ndarray]:
    """Object 1: a square moving right; object 2: a bar that leaves after the first frames."""
    out = []
    for t in range(num_frames):
        lab = np.zeros(size, np.uint8)
        lab[4:12, 2 + 2 * t : 10 + 2 * t] = 1
        if t < 2:
            lab[16:20, 5 + seed : 25] = 2
        out.append(lab)
    return out


def write_frames(folder: Path, names: list[str], size=SIZE) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        rgb = np.full((*size, 3), 40 + 20 * k, np.uint8)
        Image.fromarray(rgb).save(folder / f"{name}.jpg")


def write_labels(folder: Path, names: list[str], maps: list[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, lab in zip(names, maps, strict=True):
        img = Image.fromarray(lab, mode="P")
        img.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * (256 * 3 - 9))
        img.save(folder / f"{name}.png")


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def palette_video(images: Path, annotations: Path | None, video: str, num_frames: int, seed: int = 0):
    names = [f"{k:05d}" for k in range(num_frames)]
    write_frames(images / video, names)
    maps = labels(num_frames, seed=seed)
    if annotations is not None:
        write_labels(annotations / video, names, maps)
    return names, maps


SYNTHETIC_EXPRESSIONS = {"0": {"exp": "the cup left of the bowl", "obj_id": "1"},
                         "1": {"exp": "the bowl", "obj_id": "2"},
                         "2": {"exp": "the red cup", "obj_id": "1"}}


def write_synthetic(root: Path, num_frames: int = 4) -> dict[str, list[np.ndarray]]:
    """The project's recording layout; returns the expected ground truth per "video/eid"."""
    names, maps = palette_video(root / "JPEGImages", root / "Annotations", "tabletop", num_frames)
    write_json(root / "meta_expressions.json",
               {"videos": {"tabletop": {"frames": names, "expressions": SYNTHETIC_EXPRESSIONS}}})
    return {f"tabletop/{eid}": [m == int(e["obj_id"]) for m in maps]
            for eid, e in SYNTHETIC_EXPRESSIONS.items()}


def write_ref_davis(root: Path) -> dict[str, list[np.ndarray]]:
    videos, expected = {}, {}
    for seed, video in enumerate(("camel", "bike-packing")):  # json order is not sorted order
        names, maps = palette_video(root / "valid" / "JPEGImages", root / "valid" / "Annotations", video, 3,
                                    seed)
        exps = {"0": {"exp": f"a rider {video}", "obj_id": "1"},
                "1": {"exp": f"a bike {video}", "obj_id": "2"}}
        videos[video] = {"frames": names, "expressions": exps}
        expected.update({f"{video}/{eid}": [m == int(e["obj_id"]) for m in maps] for eid, e in exps.items()})
    write_json(root / "meta_expressions" / "valid" / "meta_expressions.json", {"videos": videos})
    return expected


def write_ref_ytvos(root: Path) -> None:
    """valid: two videos without ground truth, one of them listed as a test video; train: one with."""
    valid = {}
    for video in ("0a1b", "ff00"):
        names, _ = palette_video(root / "valid" / "JPEGImages", None, video, 3)
        valid[video] = {"frames": names, "expressions": {"0": {"exp": f"a duck {video}"}}}
    write_json(root / "meta_expressions" / "valid" / "meta_expressions.json", {"videos": valid})
    write_json(root / "meta_expressions" / "test" / "meta_expressions.json",
               {"videos": {"ff00": valid["ff00"]}})
    names, _ = palette_video(root / "train" / "JPEGImages", root / "train" / "Annotations", "3e21", 3)
    write_json(root / "meta_expressions" / "train" / "meta_expressions.json",
               {"videos": {"3e21": {"frames": names, "expressions": {"0": {"exp": "a cat", "obj_id": "2"}}}}})


def encode_rle(mask: np.ndarray) -> dict:
    """pycocotools' encode + rleToString: column-major runs, 5-bit chunks, deltas from the 4th count on."""
    flat = np.asarray(mask, bool).T.ravel()
    counts, current, run = [], False, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    text = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = x != -1 if ch & 0x10 else x != 0
            text.append(chr((ch | 0x20 if more else ch) + 48))
    return {"size": list(mask.shape), "counts": "".join(text)}


def write_mevis(root: Path, split: str = "valid_u", with_masks: bool = True) -> dict[str, list[np.ndarray]]:
    """Two objects (anno 7 and 9); expressions: one object, both (the union), none (empty anno list).
    The json lists frames out of order to check the pairing of masks with frame names."""
    base = root / split
    names = [f"{k:05d}" for k in range(4)]
    write_frames(base / "JPEGImages" / "vid1", names)
    maps = labels(4)
    listed = [names[k] for k in (2, 0, 1, 3)]
    mask_dict = {str(anno): [encode_rle(maps[int(n)] == obj) if (maps[int(n)] == obj).any() else None
                             for n in listed] for anno, obj in ((7, 1), (9, 2))}
    exps = {"0": {"exp": "the moving square", "obj_id": [1], "anno_id": [7]},
            "1": {"exp": "all things", "obj_id": [1, 2], "anno_id": [7, 9]},
            "2": {"exp": "nothing", "obj_id": [], "anno_id": []}}
    write_json(base / "meta_expressions.json", {"videos": {"vid1": {"frames": listed, "expressions": exps}}})
    if with_masks:
        write_json(base / "mask_dict.json", mask_dict)
    return {"vid1/0": [m == 1 for m in maps], "vid1/1": [m > 0 for m in maps],
            "vid1/2": [np.zeros(SIZE, bool) for _ in maps]}


def check_ground_truth(expressions, expected: dict[str, list[np.ndarray]]) -> None:
    assert sorted(e.key for e in expressions) == sorted(expected)
    for e in expressions:
        gt = e.gt_masks()
        assert len(gt) == len(e.frames) == len(expected[e.key])
        for got, want in zip(gt, expected[e.key], strict=True):
            assert got.dtype == bool and np.array_equal(got, want), e.key


# -- RLE -------------------------------------------------------------------------------------------
def test_rle_hand_made_strings():
    # 2x3, column-major [0,0 | 1,1 | 0,1]: counts [2, 2, 1, 1]; the 4th is stored as 1 - 2 = -1 -> 'O'.
    assert counts_from_string("221O") == [2, 2, 1, 1]
    assert np.array_equal(decode_rle({"size": [2, 3], "counts": "221O"}), [[0, 1, 0], [0, 1, 1]])
    # 40 needs two characters ('X' = 8 | continuation, '1' = 1 << 5); the 4th count 3 is 3 - 40 = -37 -> "kN".
    assert counts_from_string("3X12kN") == [3, 40, 2, 3]
    mask = decode_rle({"size": [8, 6], "counts": b"3X12kN"})
    flat = mask.T.ravel()
    assert mask.shape == (8, 6) and flat[:3].sum() == 0 and flat[3:43].all() and not flat[43:45].any()
    assert flat[45:].all()
    assert encode_rle(mask)["counts"] == "3X12kN"


def test_rle_uncompressed_counts_and_round_trip():
    assert np.array_equal(decode_rle({"size": [2, 3], "counts": [2, 2, 1, 1]}), [[0, 1, 0], [0, 1, 1]])
    assert decode_rle({"size": [3, 2], "counts": [0, 6]}).all()  # starts with a zero-length run of 0s
    rng = np.random.default_rng(0)
    for shape in ((1, 1), (5, 7), (33, 20)):
        for density in (0.0, 0.1, 0.5, 1.0):
            mask = rng.random(shape) < density
            assert np.array_equal(decode_rle(encode_rle(mask)), mask), (shape, density)


@pytest.mark.parametrize("rle", [{"size": [2, 3], "counts": [2, 2, 1]},  # 5 pixels for 6
                                 {"size": [2, 3], "counts": "X"},  # ends inside a count
                                 {"size": [2, 3], "counts": "22 1"},  # not an RLE character
                                 {"size": [2, 3], "counts": [2, -2, 6]},
                                 {"counts": "221O"}])
def test_rle_corrupt(rle):
    with pytest.raises(RLEError):
        decode_rle(rle)


# -- readers ---------------------------------------------------------------------------------------
def test_synthetic_layout(tmp_path):
    expected = write_synthetic(tmp_path)
    exps = load_dataset("synthetic", tmp_path)
    assert [(e.video, e.eid, e.text) for e in exps] == [("tabletop", k, v["exp"]) for k, v in
                                                        SYNTHETIC_EXPRESSIONS.items()]
    assert exps[0].frame_names == ["00000", "00001", "00002", "00003"]
    assert exps[0].frames[0] == tmp_path / "JPEGImages" / "tabletop" / "00000.jpg"
    check_ground_truth(exps, expected)
    frames = exps[0].load_frames()
    assert len(frames) == 4 and frames[0].shape == (*SIZE, 3) and frames[0].dtype == np.uint8
    with pytest.raises(DatasetError, match="no splits"):
        load_dataset("synthetic", tmp_path, "valid")


def test_ref_davis17_layout(tmp_path):
    expected = write_ref_davis(tmp_path)
    exps = load_dataset("ref-davis17", tmp_path)
    check_ground_truth(exps, expected)
    assert exps[0].text == "a rider camel"  # videos in the json's order


def test_ref_davis17_from_sa2va_mask_dict_pkl(tmp_path):
    """Sa2VA's bundle: no Annotations, ground truth in valid/mask_dict.pkl under a running anno id over
    sorted videos then sorted expression ids; counts are bytes, as pycocotools returns them."""
    expected = write_ref_davis(tmp_path)
    shutil.rmtree(tmp_path / "valid" / "Annotations")
    pickled = {str(n): [{**encode_rle(m), "counts": encode_rle(m)["counts"].encode()} if m.any() else None
                        for m in expected[key]] for n, key in enumerate(sorted(expected))}
    path = tmp_path / "valid" / "mask_dict.pkl"
    path.write_bytes(pickle.dumps(pickled))
    check_ground_truth(load_dataset("ref-davis17", tmp_path), expected)
    path.write_bytes(pickle.dumps({"0": [Path("x")]}))  # a class reference: refused, nothing is run
    with pytest.raises(DatasetError, match="only plain data is read"):
        load_dataset("ref-davis17", tmp_path)
    path.unlink()
    with pytest.raises(DatasetError, match=r"valid/Annotations is missing"):
        load_dataset("ref-davis17", tmp_path)


def test_ref_youtube_vos_valid_has_no_ground_truth_and_drops_test_videos(tmp_path):
    write_ref_ytvos(tmp_path)
    exps = load_dataset("ref-youtube-vos", tmp_path)
    assert [e.key for e in exps] == ["0a1b/0"]
    assert exps[0].gt_masks() is None
    train = load_dataset("ref-youtube-vos", tmp_path, "train")
    check_ground_truth(train, {"3e21/0": [m == 2 for m in labels(3)]})


def test_mevis_ground_truth_is_the_union_of_anno_ids(tmp_path):
    expected = write_mevis(tmp_path)
    exps = load_dataset("mevis", tmp_path)
    assert exps[0].frame_names == ["00000", "00001", "00002", "00003"]  # sorted, masks follow their names
    check_ground_truth(exps, expected)


def test_mevis_valid_without_masks_is_server_scored(tmp_path):
    write_mevis(tmp_path, split="valid", with_masks=False)
    assert all(e.gt_masks() is None for e in load_dataset("mevis", tmp_path, "valid"))
    write_mevis(tmp_path, split="valid_u", with_masks=False)
    with pytest.raises(DatasetError, match=r"valid_u/mask_dict\.json is missing"):
        load_dataset("mevis", tmp_path)


# -- broken layouts name the path ------------------------------------------------------------------
def test_missing_paths_are_named(tmp_path):
    with pytest.raises(DatasetError, match="is missing"):
        load_dataset("synthetic", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"meta_expressions/valid/meta_expressions\.json is missing"):
        load_dataset("ref-davis17", tmp_path)
    write_synthetic(tmp_path)
    (tmp_path / "JPEGImages" / "tabletop" / "00002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"tabletop/00002\.jpg is missing \(frames of video tabletop\)"):
        load_dataset("synthetic", tmp_path)
    write_frames(tmp_path / "JPEGImages" / "tabletop", ["00002"])
    (tmp_path / "Annotations" / "tabletop" / "00001.png").unlink()
    with pytest.raises(DatasetError, match=r"Annotations/tabletop/00001\.png is missing"):
        load_dataset("synthetic", tmp_path)


def test_corrupt_files_are_reported(tmp_path):
    write_synthetic(tmp_path)
    meta = tmp_path / "meta_expressions.json"
    meta.write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable expressions file"):
        load_dataset("synthetic", tmp_path)
    meta.write_text(json.dumps({"videos": {"tabletop": {"frames": ["00000"], "expressions": {"0": {}}}}}))
    with pytest.raises(DatasetError, match="needs an 'exp' text"):
        load_dataset("synthetic", tmp_path)
    bad_id = {"0": {"exp": "x", "obj_id": "one"}}
    meta.write_text(json.dumps({"videos": {"tabletop": {"frames": ["00000"], "expressions": bad_id}}}))
    with pytest.raises(DatasetError, match="'obj_id' must be"):
        load_dataset("synthetic", tmp_path)
    meta.write_text(json.dumps({"videos": {"tabletop": {"frames": ["00000"],
                                                        "expressions": {"0": {"exp": "x", "obj_id": "1"}}}}}))
    Image.new("RGB", SIZE[::-1]).save(tmp_path / "Annotations" / "tabletop" / "00000.png")
    exps = load_dataset("synthetic", tmp_path)
    with pytest.raises(DatasetError, match="expected a palette PNG"):
        exps[0].gt_masks()


def test_mevis_mask_dict_must_match_the_frames(tmp_path):
    write_mevis(tmp_path)
    path = tmp_path / "valid_u" / "mask_dict.json"
    masks = json.loads(path.read_text())
    masks["7"] = masks["7"][:3]
    path.write_text(json.dumps(masks))
    with pytest.raises(DatasetError, match="anno_id 7"):
        load_dataset("mevis", tmp_path)
    masks["7"] = [{"size": [24, 32], "counts": [5]}] * 4
    path.write_text(json.dumps(masks))
    exps = load_dataset("mevis", tmp_path)
    with pytest.raises(DatasetError, match="anno_id 7, frame 0"):
        exps[0].gt_masks()
