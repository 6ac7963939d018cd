"""The Qwen2-VL chat template, rendered without Jinja (it is fixed; the checkpoint's copy says the same).

messages: [{"role": "system"|"user"|"assistant", "content": str | [{"type": "image"} | {"type": "text", "text": str}]}]
A default system message is inserted when the first message is not a system one. Each image becomes
<|vision_start|><|image_pad|><|vision_end|>; expand_image_pads() then repeats <|image_pad|> once per merged
image token (grid_t * grid_h * grid_w / merge^2), as HF's processor does.
"""

DEFAULT_SYSTEM = "You are a helpful assistant."
IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


def render(messages, add_generation_prompt=True):
    out = []
    for i, m in enumerate(messages):
        if i == 0 and m["role"] != "system":
            out.append(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n")
        out.append(f"<|im_start|>{m['role']}\n")
        c = m["content"]
        if isinstance(c, str):
            out.append(c)
        else:
            for part in c:
                if part.get("type") == "image" or "image" in part:
                    out.append(IMAGE_PLACEHOLDER)
                elif "text" in part:
                    out.append(part["text"])
        out.append("<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


def expand_image_pads(text, grid_thws, merge_size):
    """Replace the k-th <|image_pad|> by prod(grid_thws[k]) / merge^2 copies."""
    parts = text.split("<|image_pad|>")
    if len(parts) - 1 != len(grid_thws):
        raise ValueError(f"{len(parts) - 1} image placeholders for {len(grid_thws)} images")
    out = [parts[0]]
    for (t, h, w), rest in zip(grid_thws, parts[1:]):
        out.append("<|image_pad|>" * (int(t) * int(h) * int(w) // merge_size ** 2))
        out.append(rest)
    return "".join(out)
