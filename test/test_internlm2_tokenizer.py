"""The native InternLM2 tokenizer: ids equal sentencepiece's own, chunk by chunk, as InternLM2Tokenizer.

The reference is built here from ``sentencepiece`` itself on models trained
offline with each normaliser setting: [BOS] + for each text chunk between added
tokens ``sp.encode(chunk)``, the added token's id between chunks, which is what
the remote slow ``InternLM2Tokenizer`` does (``_tokenize`` is ``sp.encode``; the
base class splits on added and special tokens). ``test_internlm2_official_fixture``
compares with that remote class itself, run locally.
"""

import json
import re
from pathlib import Path

import pytest
import sentencepiece

from sa2va_i_ros.model import prompt
from sa2va_i_ros.model.checkpoint.tokenizer import internlm2_tokenizer, load_tokenizer, normalizer_spec
from sa2va_i_ros.testing.tiny_internlm2 import CHAT_TOKENS, write_internlm2_tokenizer
from sa2va_i_ros.testing.tiny_sa2va import INTERNVL_TOKENS, SA2VA_TOKENS

TEXTS = [
    prompt.build_prompt("the cup left of the bowl", 2, prompt.get_template("internlm2_chat")),
    prompt.build_prompt("Which one is closest?", 1, prompt.get_template("internlm2_chat"), question_mark_variant=True),
    "Sure, [SEG].", "Sure, [SEG].<|im_end|>", "  leading and  double  spaces  ", "trailing space \n", " \n x \n ",
    "tabs\tand\nnewlines\n\n", "café 東京 ﬁ ① Ｆｕｌｌ 😀 zzqx", "", " ", "a", "x<|im_end|> y", "123456 7.5",
    "a  <p> b </p>  c", "<s> and </s> and <unk>", "[UNUSED_TOKEN_141] is a placeholder", "def f(x):\n    return x",
]
SETTINGS = [dict(), dict(add_dummy_prefix=True), dict(remove_extra_whitespaces=True),
            dict(add_dummy_prefix=True, remove_extra_whitespaces=True),
            dict(normalization="nmt_nfkc", add_dummy_prefix=True, remove_extra_whitespaces=True)]


def reference_ids(directory, text):
    """[BOS] + sentencepiece per chunk, special and added tokens by their ids (InternLM2Tokenizer's way)."""
    sp = sentencepiece.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    config = json.loads((directory / "tokenizer_config.json").read_text())
    added = {t["content"]: int(i) for i, t in config["added_tokens_decoder"].items()}
    pattern = re.compile("(" + "|".join(re.escape(a) for a in sorted(added, key=len, reverse=True)) + ")")
    ids = [sp.bos_id()]
    for chunk in pattern.split(text):
        if chunk:
            ids += [added[chunk]] if chunk in added else sp.encode(chunk)
    return ids


@pytest.fixture(scope="module", params=SETTINGS, ids=lambda s: ",".join(s) or "default")
def tokenizer_dir(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("internlm2_tok")
    write_internlm2_tokenizer(directory, **request.param)
    return directory, request.param


def test_the_normaliser_flags_are_read_from_the_model_file(tokenizer_dir):
    directory, flags = tokenizer_dir
    spec = normalizer_spec((directory / "tokenizer.model").read_bytes())
    assert spec["add_dummy_prefix"] == flags.get("add_dummy_prefix", False)
    assert spec["remove_extra_whitespaces"] == flags.get("remove_extra_whitespaces", False)
    assert spec["name"] == flags.get("normalization", "identity")
    assert bool(spec["precompiled_charsmap"]) == (spec["name"] != "identity")


def test_ids_equal_sentencepiece_chunk_by_chunk(tokenizer_dir):
    directory, _ = tokenizer_dir
    tok = internlm2_tokenizer(directory)
    for text in TEXTS:
        assert tok.encode(text) == reference_ids(directory, text), repr(text)


def test_added_tokens_sit_at_their_exact_ids(tokenizer_dir):
    directory, flags = tokenizer_dir
    tok = load_tokenizer(directory, "tiny")  # through the class named in tokenizer_config.json
    sp = sentencepiece.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    size = sp.get_piece_size()
    chat_ids = [sp.piece_to_id(f"[UNUSED_TOKEN_{n}]") for n in range(141, 147)]
    assert [tok.convert_tokens_to_ids(t) for t in CHAT_TOKENS] == chat_ids  # over the placeholders, as 92538..
    assert [tok.convert_tokens_to_ids(t) for t in INTERNVL_TOKENS + SA2VA_TOKENS] == list(range(size, size + 14))
    assert len(tok) == size + 14
    assert (tok.bos_token_id, tok.eos_token_id) == (1, 2)
    ids = tok.encode("Sure, [SEG].")
    assert ids[0] == 1 and ids[-1] != 2  # BOS, no EOS
    if not flags:  # (decoding is display only: a dummy prefix shows as spaces, stripped spaces are gone)
        assert tok.decode(ids[1:]) == "Sure, [SEG]."


FIXTURES = Path(__file__).parent / "fixtures" / "internlm2_tokenizer"


@pytest.mark.parametrize("setting", ["default", "dummy_prefix", "remove_whitespace", "both"])
def test_ids_equal_the_official_internlm2_tokenizer(setting):
    """Against the remote InternLM2Tokenizer itself, run locally (fixtures/internlm2_tokenizer/README.md)."""
    texts = json.loads((FIXTURES / "texts.json").read_text())
    official = json.loads((FIXTURES / setting / "ids_official.json").read_text())
    tok = load_tokenizer(FIXTURES / setting, setting)
    ours = [tok.encode(t) for t in texts]
    assert ours == official["slow"]
    differ = {i for i in range(len(texts)) if ours[i] != official["fast"][i]}
    placeholder = texts.index("[UNUSED_TOKEN_141] is a placeholder")
    if "remove" in setting or setting == "both":  # the fast converter ignores remove_extra_whitespaces
        assert placeholder in differ and texts.index("  leading and  double  spaces  ") in differ
    else:
        assert differ == {placeholder}
