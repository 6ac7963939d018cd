"""Rotary position embeddings: Qwen2-VL's multimodal M-RoPE (decoder) and 2-D rotary (vision tower).

Layouts (the engine's): q [B, S, H, d], k [B, S, G, d]; position_ids [3, B, S] = (temporal, height, width).
"""
import torch


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] over the last dim (the "half split" rotary convention HF uses)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def inv_freq(dim, theta):
    # The exponent is built from int64 then cast, exactly as HF does, so f32 bits match.
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def mrope_cos_sin(position_ids, head_dim, theta, mrope_section):
    """position_ids [3, B, S] -> cos, sin [B, S, head_dim].

    Each axis gets its own angle table; then the head_dim/2 frequency slots are split into sections
    (e.g. [16, 24, 24]) and slot range i takes its angles from axis i (temporal, height, width). The table
    is duplicated for the two rotary halves, and the section split is applied to both halves.
    """
    if 2 * sum(mrope_section) != head_dim:
        raise ValueError(f"mrope_section {list(mrope_section)} must sum to head_dim / 2 = {head_dim // 2}")
    f = inv_freq(head_dim, theta)                                     # [d/2]
    freqs = position_ids[..., None].float() * f                       # [3, B, S, d/2]
    emb = torch.cat((freqs, freqs), dim=-1)                           # [3, B, S, d]
    cos, sin = emb.cos(), emb.sin()
    sections = list(mrope_section) * 2
    cos = torch.cat([c[i % 3] for i, c in enumerate(cos.split(sections, dim=-1))], dim=-1)
    sin = torch.cat([s[i % 3] for i, s in enumerate(sin.split(sections, dim=-1))], dim=-1)
    return cos, sin                                                   # [B, S, d]


def apply_rotary(x, cos, sin):
    """x [B, S, H, d]; cos/sin [B, S, d] (or [S, d] for the vision tower, x [S, H, d])."""
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    return x * cos + rotate_half(x) * sin


def vision_rotary(grid_thw, head_dim, spatial_merge_size, theta=10000.0):
    """2-D rotary for the vision tower -> cos, sin [N_patches, head_dim].

    Patch order is the image processor's: 2x2 merge windows contiguous (see preprocess.patchify). The first
    half of the rotary dims rotates with the patch row, the second with the patch column.
    """
    dim = head_dim // 2
    f = inv_freq(dim, theta)                                          # [d/4]
    m = spatial_merge_size
    pos = []
    for t, h, w in grid_thw.tolist():
        hpos = torch.arange(h)[:, None].expand(h, w)
        wpos = torch.arange(w)[None, :].expand(h, w)
        # [h, w] -> [h/m, m, w/m, m] -> [h/m, w/m, m, m] : merge windows contiguous
        hpos = hpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
        wpos = wpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
        pos.append(torch.stack([hpos, wpos], dim=-1).repeat(t, 1))
    pos = torch.cat(pos, dim=0)                                       # [N, 2]
    table = torch.outer(torch.arange(int(grid_thw[:, 1:].max()), dtype=f.dtype), f)   # [max_hw, d/4]
    freqs = table[pos].flatten(1)                                     # [N, d/2]
    emb = torch.cat((freqs, freqs), dim=-1)                           # [N, d]
    return emb.cos(), emb.sin()


def get_rope_index(input_ids, grid_thw, cfg):
    """M-RoPE positions for one sequence (1-D input_ids) -> (position_ids [3, S], delta).

    Text tokens: the same position on all three axes, counting on from the previous maximum + 1.
    Image tokens (the run of image_token_id after each <|vision_start|>): (t, row, col) of the MERGED grid,
    each offset by the position where the image starts. delta = max position + 1 - S, so decode step
    positions are (tokens so far) + delta on all axes.
    """
    ids = input_ids.tolist()
    m = cfg.vision.spatial_merge_size
    pieces, st, img = [], 0, 0
    i = 0
    cur = 0  # next start position
    while i < len(ids):
        if ids[i] == cfg.image_token_id:
            t, h, w = [int(x) for x in grid_thw[img]]
            h, w = h // m, w // m
            ti = torch.arange(t)[:, None].expand(t, h * w).flatten()
            hi = torch.arange(h)[None, :, None].expand(t, h, w).flatten()
            wi = torch.arange(w)[None, None, :].expand(t, h, w).flatten()
            pieces.append(torch.stack([ti, hi, wi]) + cur)
            cur = int(pieces[-1].max()) + 1
            i += t * h * w
            img += 1
        else:
            j = i
            while j < len(ids) and ids[j] != cfg.image_token_id:
                j += 1
            pieces.append(torch.arange(j - i)[None].expand(3, j - i) + cur)
            cur += j - i
            i = j
    pos = torch.cat(pieces, dim=1) if pieces else torch.zeros(3, 0, dtype=torch.long)
    delta = (int(pos.max()) + 1 - len(ids)) if len(ids) else 0
    return pos, delta
