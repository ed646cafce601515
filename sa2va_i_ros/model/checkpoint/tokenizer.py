"""The checkpoint's tokenizer through transformers' own classes; never remote code.

InternVL/Qwen2 checkpoints name a transformers class in tokenizer_config.json
and load with it. InternLM2 checkpoints (Sa2VA-8B/26B) name the remote
``InternLM2Tokenizer``, whose ids are: BOS (1), then for each text chunk
between added tokens ``sentencepiece.encode(chunk)`` with the model's own
normaliser, and the added tokens' ids between chunks. ``internlm2_tokenizer``
builds a native ``LlamaTokenizer`` (tokenizers BPE, byte fallback) with the
same ids: vocabulary and merges from ``tokenizer.model`` (merges ranked by
piece score, as sentencepiece's BPE merges), the normaliser flags read from
the model file (``add_dummy_prefix``, ``remove_extra_whitespaces``, the
precompiled character map), applied per chunk as sentencepiece does, and the
added tokens registered at their exact ids (those inside the sentencepiece
vocabulary replace its placeholder pieces, as InternLM2's own converter does).
"""

from __future__ import annotations

import json
from pathlib import Path

from sa2va_i_ros.errors import CheckpointError

INTERNLM2_CLASSES = ("InternLM2Tokenizer", "InternLM2TokenizerFast")


def load_tokenizer(directory: Path, name: str):
    """The checkpoint's tokenizer (the class comes from tokenizer_config.json, not config.json's auto_map).

    Reused while its files stay the same (``reuse.tokenizer``: a cleanup + configure does not build it again).
    """
    from sa2va_i_ros.model.checkpoint import reuse

    return reuse.tokenizer(directory, lambda: _build_tokenizer(directory, name))


def _build_tokenizer(directory: Path, name: str):
    import transformers

    try:
        config = json.loads((directory / "tokenizer_config.json").read_text())
        cls_name = config.get("tokenizer_class")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise CheckpointError(f"{name}: unreadable tokenizer_config.json ({exc})") from exc
    if cls_name in INTERNLM2_CLASSES:
        try:
            return internlm2_tokenizer(directory, config)
        except CheckpointError:
            raise
        except Exception as exc:  # sentencepiece / tokenizers errors have no common base class
            raise CheckpointError(f"{name}: cannot build its InternLM2 tokenizer ({exc})") from exc
    cls = getattr(transformers, str(cls_name), None) or getattr(transformers, str(cls_name).removesuffix("Fast"), None)
    if cls is None:
        raise CheckpointError(f"{name}: tokenizer class {cls_name!r} is not part of transformers "
                              "(it would need the checkpoint's remote code, which is never run)")
    try:
        return cls.from_pretrained(str(directory))
    except Exception as exc:  # tokenizer errors have no common base class
        raise CheckpointError(f"{name}: cannot load its tokenizer ({exc})") from exc


# -- sentencepiece's model file: the few normaliser fields we need -------------------------------

def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of one protobuf message (values: int or bytes)."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def normalizer_spec(model_bytes: bytes) -> dict:
    """``normalizer_spec`` of a sentencepiece ModelProto (field 3), with the proto2 defaults."""
    spec = {"name": "", "precompiled_charsmap": b"", "add_dummy_prefix": True, "remove_extra_whitespaces": True,
            "escape_whitespaces": True}
    names = {1: "name", 2: "precompiled_charsmap", 3: "add_dummy_prefix", 4: "remove_extra_whitespaces",
             5: "escape_whitespaces"}
    for number, _, value in _fields(model_bytes):
        if number != 3:
            continue
        for field, _, v in _fields(value):
            key = names.get(field)
            if key == "name":
                spec[key] = v.decode()
            elif key == "precompiled_charsmap":
                spec[key] = bytes(v)
            elif key:
                spec[key] = bool(v)
    return spec


def _normalizer(spec: dict):
    """sentencepiece's normalisation of one chunk, as a tokenizers normaliser."""
    from tokenizers import Regex, normalizers

    steps = []
    if spec["precompiled_charsmap"]:
        steps.append(normalizers.Precompiled(spec["precompiled_charsmap"]))
    if spec["remove_extra_whitespaces"]:  # only ' ' counts (not tabs or newlines)
        steps += [normalizers.Replace(Regex(r"\A +"), ""), normalizers.Replace(Regex(r" +\z"), ""),
                  normalizers.Replace(Regex(" {2,}"), " ")]
    if spec["add_dummy_prefix"]:
        steps.append(normalizers.Prepend("▁"))
    if spec["escape_whitespaces"]:
        steps.append(normalizers.Replace(" ", "▁"))
    return normalizers.Sequence(steps)


def internlm2_tokenizer(directory: Path, config: dict | None = None):
    """A native tokenizer whose ids equal the remote ``InternLM2Tokenizer``'s (see the module doc)."""
    import sentencepiece
    from tokenizers import AddedToken, Tokenizer, decoders
    from tokenizers.models import BPE
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    model_file = directory / "tokenizer.model"
    if not model_file.is_file():
        raise CheckpointError(f"{directory}: an InternLM2 tokenizer needs tokenizer.model, which is missing")
    config = config if config is not None else json.loads((directory / "tokenizer_config.json").read_text())
    data = model_file.read_bytes()
    sp = sentencepiece.SentencePieceProcessor(model_proto=data)
    size = sp.get_piece_size()
    added = _added_tokens(directory, config)
    pieces = [sp.id_to_piece(i) for i in range(size)]
    for i, token in added.items():
        if i < size:
            pieces[i] = token["content"]  # InternLM2's converter: added tokens replace the placeholder pieces
    vocab = {p: i for i, p in enumerate(pieces)}
    if len(vocab) != size:
        raise CheckpointError(f"{directory}: tokenizer.model repeats pieces")
    special = {i for i in range(size) if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)} | set(added)
    scores = {pieces[i]: sp.get_score(i) for i in range(size) if i not in special}
    merges = generate_merges(vocab, scores, skip_tokens={pieces[i] for i in special if i < size})
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=pieces[sp.unk_id()], fuse_unk=True,
                            byte_fallback=True, dropout=None))
    backend.normalizer = _normalizer(normalizer_spec(data))
    backend.pre_tokenizer = None
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tokens = [AddedToken(t["content"], special=t.get("special", True), normalized=False,
                         lstrip=t.get("lstrip", False), rstrip=t.get("rstrip", False),
                         single_word=t.get("single_word", False)) for _, t in sorted(added.items())]
    backend.add_special_tokens(tokens)
    specials = {k: config.get(k) or default for k, default in
                (("bos_token", pieces[sp.bos_id()]), ("eos_token", pieces[sp.eos_id()]),
                 ("unk_token", pieces[sp.unk_id()]), ("pad_token", pieces[sp.eos_id()]))}
    specials = {k: v["content"] if isinstance(v, dict) else v for k, v in specials.items()}
    tok = LlamaTokenizer(tokenizer_object=backend, add_bos_token=config.get("add_bos_token", True),
                         add_eos_token=config.get("add_eos_token", False), clean_up_tokenization_spaces=False,
                         legacy=False, add_prefix_space=False, **specials)
    tok._tokenizer.normalizer = backend.normalizer  # the class must not swap in its own
    tok._tokenizer.pre_tokenizer = None
    wrong = {t["content"]: (i, tok.convert_tokens_to_ids(t["content"])) for i, t in added.items()
             if tok.convert_tokens_to_ids(t["content"]) != i}
    if wrong:
        raise CheckpointError(f"{directory}: added tokens did not land at their ids: {wrong}")
    return tok


def _added_tokens(directory: Path, config: dict) -> dict[int, dict]:
    """id -> token of tokenizer_config.json's ``added_tokens_decoder`` plus added_tokens.json."""
    added = {int(i): dict(t) for i, t in (config.get("added_tokens_decoder") or {}).items()}
    extra = directory / "added_tokens.json"
    if extra.is_file():
        for content, i in json.loads(extra.read_text()).items():
            added.setdefault(int(i), {"content": content, "special": True})
    return added
