"""The chat prompt exactly as Sa2VA's ``predict_forward`` builds it for a video.

Per distinct sampled frame: ``<img>`` + 256 x ``<IMG_CONTEXT>`` + ``</img>``,
frames joined by newlines (the string is built as ``(frame + "\\n") * n`` then
``.strip()``-ped), substituted for ``<image>`` in the question, and the whole
wrapped in the template's INSTRUCTION. No system prompt. Templates and stop words
are the ones of Sa2VA's ``hf/models/templates.py`` for the families it ships.
"""

from __future__ import annotations

from dataclasses import dataclass

IMG_START = "<img>"
IMG_END = "</img>"
IMG_CONTEXT = "<IMG_CONTEXT>"
SEG_TOKEN = "[SEG]"
IMAGE_PLACEHOLDER = "<image>"
# (448 / 14)^2 patches, pixel shuffle 0.5 -> 256 tokens per frame.
TOKENS_PER_FRAME = 256

# Sa2VA-i's evaluation question (SI evaluation/dataset/refVOS.py).
SA2VA_I_QUESTION = "<image>\nPlease segment {}."
# The original Sa2VA uses this one when the expression contains "?" (BD refVOS.py).
SA2VA_QUESTION_MARK = "<image>\n {} Please respond with a segmentation mask."


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    instruction: str
    stop_words: tuple[str, ...]


TEMPLATES = {
    t.name: t
    for t in (
        ChatTemplate("qwen_chat", "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
                     ("<|im_end|>", "<|endoftext|>")),
        ChatTemplate("internlm2_chat", "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
                     ("<|im_end|>",)),
        ChatTemplate("phi3_chat", "<|user|>\n{input}<|end|>\n<|assistant|>\n", ("<|end|>",)),
    )
}


def get_template(name: str) -> ChatTemplate:
    """The template named in config.json (Sa2VA replaces '-' with '_')."""
    key = name.replace("-", "_")
    if key not in TEMPLATES:
        raise KeyError(f"chat template {name!r} is not one Sa2VA ships for its models "
                       f"(known: {', '.join(sorted(TEMPLATES))})")
    return TEMPLATES[key]


def question(query: str, question_mark_variant: bool = False) -> str:
    """The user text for a referring expression.

    Sa2VA-i always asks "Please segment {query}."; with ``question_mark_variant``
    a query containing "?" gets the original Sa2VA's wording instead.
    """
    if question_mark_variant and "?" in query:
        return SA2VA_QUESTION_MARK.format(query)
    return SA2VA_I_QUESTION.format(query)


def image_tokens(num_frames: int) -> str:
    frame = f"{IMG_START}{IMG_CONTEXT * TOKENS_PER_FRAME}{IMG_END}\n"
    return (frame * num_frames).strip()


def build_prompt(query: str, num_frames: int, template: ChatTemplate,
                 question_mark_variant: bool = False) -> str:
    """The full prompt string for ``num_frames`` distinct frames."""
    text = question(query, question_mark_variant).replace(IMAGE_PLACEHOLDER, image_tokens(num_frames))
    return template.instruction.format(input=text, round=1, bot_name="BOT")
