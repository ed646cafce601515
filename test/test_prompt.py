"""The prompt string and its token ids, pinned to Sa2VA's construction."""

import pytest

from sa2va_i_ros.model import prompt

CTX = "<IMG_CONTEXT>"


def test_prompt_string_for_two_frames_is_exactly_sa2va_s():
    text = prompt.build_prompt("the cup left of the bowl", 2, prompt.get_template("qwen_chat"))
    frame = "<img>" + CTX * 256 + "</img>"
    assert text == ("<|im_start|>user\n" + frame + "\n" + frame + "\nPlease segment the cup left of the bowl."
                    "<|im_end|>\n<|im_start|>assistant\n")


def test_question_mark_variant_only_when_asked_and_query_has_one():
    template = prompt.get_template("qwen-chat")  # Sa2VA replaces '-' by '_'
    assert "Please segment is it red?." in prompt.build_prompt("is it red?", 1, template)
    text = prompt.build_prompt("which is red?", 1, template, question_mark_variant=True)
    assert text.endswith("</img>\n which is red? Please respond with a segmentation mask.<|im_end|>\n"
                         "<|im_start|>assistant\n")
    assert "Please segment the cup." in prompt.build_prompt("the cup", 1, template, question_mark_variant=True)


def test_braces_in_the_query_are_kept_verbatim():
    assert "Please segment the {cup}." in prompt.build_prompt("the {cup}", 1, prompt.get_template("qwen_chat"))


def test_other_templates_and_unknown_template():
    assert prompt.get_template("internlm2_chat").stop_words == ("<|im_end|>",)
    assert prompt.build_prompt("x", 1, prompt.get_template("phi3_chat")).startswith("<|user|>\n<img>")
    with pytest.raises(KeyError, match="not one Sa2VA ships"):
        prompt.get_template("vicuna")


def test_token_ids_of_the_prompt(engine):
    tok = engine.tokenizer
    text = prompt.build_prompt("the cup", 2, engine.cfg.template)
    ids = tok.encode(text)
    t = tok.convert_tokens_to_ids
    frame = [t("<img>")] + [t(CTX)] * 256 + [t("</img>")]
    expected = ([t("<|im_start|>")] + tok.encode("user") + [t("Ċ")] + frame + [t("Ċ")] + frame + [t("Ċ")]
                + tok.encode("Please segment the cup.") + [t("<|im_end|>"), t("Ċ"), t("<|im_start|>")]
                + tok.encode("assistant") + [t("Ċ")])
    assert ids == expected
    assert ids.count(t(CTX)) == 512 and ids[-1] == t("Ċ")
    # ids of the added tokens follow the official order: InternVL's, then Sa2VA's
    assert [t(x) for x in ("<img>", "</img>", CTX)] == [t("<img>"), t("<img>") + 1, t("<img>") + 2]
    assert t("[SEG]") == t("</box>") + 1 and t("<p>") == t("[SEG]") + 1
