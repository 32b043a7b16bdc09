"""SAM-style ViTDet image encoder: 16 px patches, windowed + global attention, 256-ch neck."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from train.configs import EncoderConfig
from train.model.kernel_probe import probe_once
from train.model.layers import LayerNorm2d, Mlp, call_block, interpolate_grid


def rel_pos_table(q_size: int, k_size: int, table: torch.Tensor) -> torch.Tensor:
    """Relative position embeddings [q_size, k_size, C] taken from ``table`` [2L-1, C].

    The table is linearly resized when it was learned for another length (SAM's rule).
    """
    n = 2 * max(q_size, k_size) - 1
    if table.shape[0] != n:
        table = F.interpolate(table.t().unsqueeze(0).float(), size=n, mode="linear")[0].t().to(table.dtype)
    q = torch.arange(q_size, device=table.device)[:, None] * max(k_size / q_size, 1.0)
    k = torch.arange(k_size, device=table.device)[None, :] * max(q_size / k_size, 1.0)
    return table[((q - k) + (k_size - 1) * max(q_size / k_size, 1.0)).long()]


def _rel_pos_bias(q: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor, h: int, w: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query, SAM's bias over key rows [B, heads, L, h] and over key columns [B, heads, L, w]."""
    b, nh, n, d = q.shape
    rq = q.reshape(b, nh, h, w, d)
    bh = torch.einsum("bnhwc,hkc->bnhwk", rq, rel_pos_table(h, h, rel_h).to(q.dtype)).reshape(b, nh, n, h)
    bw = torch.einsum("bnhwc,wkc->bnhwk", rq, rel_pos_table(w, w, rel_w).to(q.dtype)).reshape(b, nh, n, w)
    return bh, bw


# FlexAttention runs SAM's attention at its own head dim, adding the bias in the kernel; the
# key-dim form below triples the head dim of a global block (64 + 64 + 64 for a 1024 px
# page), and with it the attention's work. It needs a compiled kernel, built once per shape,
# so it can serve where shapes repeat and nothing needs its backward: frozen SAM (stage 2) on
# CUDA, global blocks only (windows are short, and their extra dims few). Opt-in
# (TrainArgs.sam_flex_attention): on an H200 with torch 2.11 its kernel took nine times the
# key-dim form's time (docs/gpu.md run 3).
FLEX_MIN_TOKENS = 1024
FLEX_CHUNKS = (4, 1)  # images per kernel call: any batch in at most two shapes (compilations)
_FLEX_OK: dict[str, bool] = {}  # per device: the probe's answer


@functools.cache
def _flex_fn():
    """The compiled flex_attention (built on first use)."""
    from torch.nn.attention.flex_attention import flex_attention

    # One graph per (images, heads, tokens, head dim, dtype): raise dynamo's default limit
    # of 8 graphs per function, which a run over several modes would pass.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(flex_attention, dynamic=False)


def _flex_chunk(fn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bh: torch.Tensor, bw: torch.Tensor,
                w: int) -> torch.Tensor:
    """One chunk of images through the compiled kernel (contiguous inputs: the kernel
    compiled for a shape then serves every chunk of that shape)."""
    bh, bw = bh.contiguous(), bw.contiguous()

    def score_mod(score, b, hd, qi, ki):
        return score + bh[b, hd, qi, ki // w] + bw[b, hd, qi, ki % w]

    return fn(q.contiguous(), k.contiguous(), v.contiguous(), score_mod=score_mod)


_FLEX_WARM: set[tuple] = set()  # (heads, tokens, head dim, grid, dtype, device) whose chunk shapes are built


@torch.compiler.disable  # its own static-shape kernels, also from inside a compiled SAM block
def flex_rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor,
                           rel_w: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """:func:`rel_pos_attention` through FlexAttention: the bias is added to each score in
    the kernel (``bh[query, key // w] + bw[query, key % w]``), so the head dim stays d.

    The batch goes through in chunks of :data:`FLEX_CHUNKS` images, so the compiled kernel
    sees at most two batch shapes per image size. Both are built at the first call
    for an image size, so a later batch with another remainder does not compile mid-run
    (inside a benchmark's measured steps, say)."""
    bh, bw = _rel_pos_bias(q, rel_h, rel_w, h, w)
    fn = _flex_fn()
    key = (*q.shape[1:], h, w, q.dtype, q.device)  # the grid sets the bias tables' shapes
    if key not in _FLEX_WARM:
        for c in FLEX_CHUNKS:  # distinct tensors: the compiled code is specialised on aliasing too
            zq, zk, zv = (q.new_zeros((c, *q.shape[1:])) for _ in range(3))
            _flex_chunk(fn, zq, zk, zv, bh.new_zeros((c, *bh.shape[1:])), bw.new_zeros((c, *bw.shape[1:])), w)
        _FLEX_WARM.add(key)
    outs, i = [], 0
    while i < q.shape[0]:
        c = next(c for c in FLEX_CHUNKS if c <= q.shape[0] - i)
        outs.append(_flex_chunk(fn, q[i:i + c], k[i:i + c], v[i:i + c], bh[i:i + c], bw[i:i + c], w))
        i += c
    return torch.cat(outs)


def flex_attention_ok(device: torch.device | str) -> bool:
    """Probe once per device that the compiled FlexAttention runs and matches the key-dim
    form (called by the trainer before training, outside any compiled graph); a failing or
    disagreeing kernel is logged and the key-dim form is used from then on."""
    def compare(dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # SAM's head dim and one image: a shape the kernel supports everywhere, one compilation.
        gen = torch.Generator().manual_seed(0)
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
        q, k, v = (torch.randn(1, 2, 256, 64, generator=gen).to(dev, dt) for _ in range(3))
        th, tw = (torch.randn(31, 64, generator=gen).to(dev, dt) for _ in range(2))
        bh, bw = _rel_pos_bias(q, th, tw, 16, 16)  # one chunk, not flex_rel_pos_attention's two shapes
        return _flex_chunk(_flex_fn(), q, k, v, bh, bw, 16), rel_pos_attention(q, k, v, th, tw, 16, 16)

    return probe_once(_FLEX_OK, device, "FlexAttention", "SAM's key-dim attention", compare)


def rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor,
                      h: int, w: int) -> torch.Tensor:
    """SDPA over an h x w grid with SAM's decomposed relative position bias, never building
    the [L, L] bias.

    SAM adds ``q_i . Rh[y_i - y_j] + q_i . Rw[x_i - x_j]`` to the logit of query i and key j.
    Per query that is a vector over key rows (bh, length h) plus one over key columns (bw,
    length w), so appending ``[bh, bw] / scale`` to each query and the one-hot of its row and
    column to each key makes ``scale * (q' . k')`` exactly SAM's biased logit. Memory stays
    O(L (d + h + w)) instead of O(L^2) per head (a 1280 px page has L = 6400), and SDPA may
    pick a fused kernel (flash takes head dims up to 256), which an additive mask rules out.
    q, k, v: [B, heads, h*w, d]; returns [B, heads, h*w, d].
    """
    b, nh, n, d = q.shape
    scale = d ** -0.5
    bh, bw = _rel_pos_bias(q, rel_h, rel_w, h, w)
    eye_h = torch.eye(h, dtype=q.dtype, device=q.device)
    eye_w = torch.eye(w, dtype=q.dtype, device=q.device)
    keys = torch.cat([eye_h.repeat_interleave(w, dim=0), eye_w.repeat(h, 1)], dim=1)  # [n, h + w]
    pad = -(d + h + w) % 8  # fused kernels want head dims in multiples of 8
    q2 = F.pad(torch.cat([q, bh / scale, bw / scale], dim=-1), (0, pad))
    k2 = F.pad(torch.cat([k, keys.expand(b, nh, n, h + w)], dim=-1), (0, pad))
    v2 = F.pad(v, (0, h + w + pad))  # SDPA's fused kernels want one head dim for q, k and v
    return F.scaled_dot_product_attention(q2, k2, v2, scale=scale)[..., :d]


def mask_rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor,
                           rel_w: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """SAM's own form of :func:`rel_pos_attention`: the decomposed bias summed into an
    [L, L] additive mask. Kept as the reference the key-dim form is tested and timed
    against (tests/test_model.py, bench/bench_sam_attention.py); the model never calls it."""
    b, nh, n, _d = q.shape
    bh, bw = _rel_pos_bias(q, rel_h, rel_w, h, w)
    bias = (bh[..., :, None] + bw[..., None, :]).reshape(b, nh, n, n)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


class SamAttention(nn.Module):
    """Multi-head attention over a [B, H, W, C] grid with SAM's decomposed rel-pos bias."""

    def __init__(self, dim: int, heads: int, rel_pos: bool, rel_len: int):
        super().__init__()
        self.heads = heads
        # Set by OCRModel.set_sam_flex_attention once flex_attention_ok passed on the device.
        self.flex = False
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos = rel_pos
        if rel_pos:
            hd = dim // heads
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_len - 1, hd))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_len - 1, hd))

    def use_flex(self, q: torch.Tensor) -> bool:
        """Whether attention on queries ``q`` [B, heads, L, d] takes FlexAttention: switched
        on, a sequence of at least FLEX_MIN_TOKENS, and no autograd (SAM frozen)."""
        return self.flex and q.shape[2] >= FLEX_MIN_TOKENS and not torch.is_grad_enabled()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        nh, hd = self.heads, c // self.heads
        qkv = self.qkv(x).reshape(b, h * w, 3, nh, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [b, nh, L, hd]
        if self.rel_pos:
            attend = flex_rel_pos_attention if self.use_flex(q) else rel_pos_attention
            out = attend(q, k, v, self.rel_pos_h, self.rel_pos_w, h, w)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


def window_partition(x: torch.Tensor, win: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split [B, H, W, C] into [B*nW, win, win, C] windows, zero-padding H, W to multiples."""
    b, h, w, c = x.shape
    ph, pw = (win - h % win) % win, (win - w % win) % win
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.reshape(b, hp // win, win, wp // win, win, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, win, win, c), (hp, wp)


def window_unpartition(x: torch.Tensor, win: int, padded: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`, cropping the padding."""
    hp, wp = padded
    h, w = size
    b = x.shape[0] // ((hp // win) * (wp // win))
    x = x.reshape(b, hp // win, wp // win, win, win, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w].contiguous()


class SamBlock(nn.Module):
    """Pre-LN transformer block; ``window`` > 0 restricts attention to windows."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, window: int, rel_pos: bool, rel_len: int):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SamAttention(dim, heads, rel_pos, window if window else rel_len)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.window:
            size = y.shape[1:3]
            y, padded = window_partition(y, self.window)
            y = window_unpartition(self.attn(y), self.window, padded, size)
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class SamEncoder(nn.Module):
    """Patch embedding + absolute positions + ViTDet blocks + neck: [B,3,S,S] -> [B,out,S/16,S/16]."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d, p = cfg.sam_width, cfg.patch_size
        grid = cfg.sam_img_size // p
        self.pos_antialias = cfg.pos_antialias
        self.patch_embed = nn.Conv2d(3, d, kernel_size=p, stride=p)
        self.pos_embed = nn.Parameter(torch.zeros(grid, grid, d))
        glob = set(cfg.sam_global_blocks)
        self.blocks = nn.ModuleList(
            SamBlock(d, cfg.sam_heads, cfg.sam_mlp_ratio, 0 if i in glob else cfg.sam_window, cfg.sam_rel_pos, grid)
            for i in range(cfg.sam_depth)
        )
        self.grad_checkpointing = False
        o = cfg.sam_out_chans
        self.neck = nn.Sequential(
            nn.Conv2d(d, o, 1, bias=False), LayerNorm2d(o), nn.Conv2d(o, o, 3, padding=1, bias=False), LayerNorm2d(o)
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels).permute(0, 2, 3, 1)  # [B, h, w, d]
        x = x + interpolate_grid(self.pos_embed, x.shape[1], x.shape[2], self.pos_antialias).to(x.dtype)
        for blk in self.blocks:
            if not torch.compiler.is_compiling():
                # For compiled blocks (OCRModel.compile_blocks): the number of images is a
                # dynamic size from the first compile, the grid and width stay static (one
                # graph per image size; see compile_blocks for why).
                torch._dynamo.maybe_mark_dynamic(x, 0)
                for d in (1, 2, 3):
                    torch._dynamo.mark_static(x, d)
            x = call_block(blk, x, checkpoint=self.grad_checkpointing)
        return self.neck(x.permute(0, 3, 1, 2))
