"""Qwen2-VL config parsing. Every number comes from the checkpoint's config.json.

Transformers has written this file in two layouts over time: text fields at the top level (the layout of the
public Qwen2-VL-2B-Instruct checkpoint) or under "text_config" (transformers >= 4.5x), and the M-RoPE split
as rope_scaling.mrope_section or rope_parameters.mrope_section. We accept all of them and write the legacy one.
"""
import json
from dataclasses import dataclass, field, asdict


@dataclass
class TextConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e6
    mrope_section: list = field(default_factory=lambda: [16, 24, 24])
    tie_word_embeddings: bool = True

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads


@dataclass
class VisionConfig:
    depth: int
    embed_dim: int
    num_heads: int
    hidden_size: int            # output width of the merger = the decoder's hidden size
    mlp_ratio: float = 4.0
    in_channels: int = 3
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    hidden_act: str = "quick_gelu"
    rope_theta: float = 10000.0

    @property
    def head_dim(self):
        return self.embed_dim // self.num_heads


@dataclass
class Qwen2VLConfig:
    text: TextConfig
    vision: VisionConfig
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653

    @staticmethod
    def from_dict(d):
        t = dict(d.get("text_config") or {})
        for k, v in d.items():            # legacy layout: text fields at the top level
            t.setdefault(k, v)
        rope = t.get("rope_scaling") or t.get("rope_parameters") or {}
        text = TextConfig(
            hidden_size=t["hidden_size"], num_hidden_layers=t["num_hidden_layers"],
            num_attention_heads=t["num_attention_heads"],
            num_key_value_heads=t.get("num_key_value_heads", t["num_attention_heads"]),
            intermediate_size=t["intermediate_size"], vocab_size=t["vocab_size"],
            rms_norm_eps=t.get("rms_norm_eps", 1e-6),
            rope_theta=rope.get("rope_theta", t.get("rope_theta", 1e6)),
            mrope_section=list(rope.get("mrope_section", [16, 24, 24])),
            tie_word_embeddings=d.get("tie_word_embeddings", t.get("tie_word_embeddings", False)))
        v = d["vision_config"]
        vision = VisionConfig(
            depth=v["depth"], embed_dim=v["embed_dim"], num_heads=v["num_heads"],
            hidden_size=v.get("hidden_size", text.hidden_size), mlp_ratio=v.get("mlp_ratio", 4.0),
            in_channels=v.get("in_channels", v.get("in_chans", 3)), patch_size=v.get("patch_size", 14),
            temporal_patch_size=v.get("temporal_patch_size", 2),
            spatial_merge_size=v.get("spatial_merge_size", 2), hidden_act=v.get("hidden_act", "quick_gelu"),
            rope_theta=(v.get("rope_parameters") or {}).get("rope_theta", 10000.0))
        ids = {k: d.get(k, t.get(k)) for k in ("image_token_id", "video_token_id",
                                              "vision_start_token_id", "vision_end_token_id")}
        return Qwen2VLConfig(text, vision, **{k: v for k, v in ids.items() if v is not None})

    @staticmethod
    def load(path):
        with open(path) as f:
            return Qwen2VLConfig.from_dict(json.load(f))

    def to_hf_dict(self):
        """The legacy HF layout (as in Qwen2-VL-2B-Instruct's config.json)."""
        t = asdict(self.text)
        sec = t.pop("mrope_section")
        d = {"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
             "hidden_act": "silu", "torch_dtype": "float32", "attention_dropout": 0.0,
             "max_position_embeddings": 32768, "use_sliding_window": False,
             "rope_scaling": {"type": "mrope", "mrope_section": sec}, **t,
             "image_token_id": self.image_token_id, "video_token_id": self.video_token_id,
             "vision_start_token_id": self.vision_start_token_id,
             "vision_end_token_id": self.vision_end_token_id}
        v = asdict(self.vision)
        v["in_chans"] = v["in_channels"]
        if float(v["mlp_ratio"]).is_integer():       # the real config writes an int (HF 5 checks the type)
            v["mlp_ratio"] = int(v["mlp_ratio"])
        d["vision_config"] = v
        return d
