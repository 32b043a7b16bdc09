"""The whole model: DeepEncoder vision embeddings spliced into the MoE decoder's input."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.configs import TILED_MODES, ModelConfig, with_vocab
from train.model import flops as fl
from train.model.decoder import Decoder, KVCache, right_padded
from train.model.deepencoder import DeepEncoder
from train.model.generation import NgramBlocker
from train.model.moe import MoE
from train.model.sam import SamAttention, SamBlock
from train.model.vision_inputs import VisionInput, num_image_tokens

IGNORE_INDEX = -100
# Stage 2 carries these from stage 1 only when the decoder widths agree.
_WIDTH_BOUND = ("projector.", "image_newline", "view_separator")


@dataclass
class ModelOutput:
    """loss = mean CE over labels != -100 (+ aux); logits [B, T, V]; aux = weighted balance loss."""

    loss: torch.Tensor | None
    logits: torch.Tensor
    aux_loss: torch.Tensor | None


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv2d)):
        nn.init.normal_(module.weight, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


class OCRModel(nn.Module):
    """DeepEncoder + decoder. Stage 1 pairs the encoder with ``cfg.stage1_decoder``."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, image_token_id: int, stage: int = 2):
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"stage={stage}: valid stages are 1 (compact decoder) and 2 (MoE decoder)")
        if not 0 <= image_token_id < vocab_size:
            raise ValueError(f"image_token_id={image_token_id}: must be in 0..vocab_size-1={vocab_size - 1}")
        self.cfg, self.stage, self.image_token_id = cfg, stage, image_token_id
        self.dec_cfg = with_vocab(cfg.stage1_decoder if stage == 1 else cfg.decoder, vocab_size)
        self.encoder = DeepEncoder(cfg.encoder, self.dec_cfg.width)
        self.decoder = Decoder(self.dec_cfg)
        self.apply(_init_weights)
        for m in self.modules():
            if isinstance(m, MoE):
                nn.init.normal_(m.w_gate_up, std=0.02)
                nn.init.normal_(m.w_down, std=0.02)
        for p in (self.encoder.sam.pos_embed, self.encoder.clip.pos_embed, self.encoder.clip.class_embedding):
            nn.init.normal_(p, std=0.02)

    # -- inputs ----------------------------------------------------------------
    def check_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     vision: list[VisionInput | None]) -> bool:
        """Raise unless every row has as many image placeholders as its image's mode needs;
        return whether the batch is right-padded only (plain causal attention is then exact).

        Reads values, so on CUDA tensors it waits for the device: the trainer calls it on the
        batch while it is still on the host and passes the result to :meth:`forward`.
        """
        if len(vision) != input_ids.shape[0]:
            raise ValueError(f"vision has {len(vision)} entries for a batch of {input_ids.shape[0]} rows")
        have = (input_ids == self.image_token_id).sum(dim=1).tolist()
        enc = self.cfg.encoder
        for b, v in enumerate(vision):
            want = 0 if v is None else num_image_tokens(v.mode, enc, v.grid)
            if have[b] != want:
                raise ValueError(f"row {b}: {have[b]} image placeholder tokens (id {self.image_token_id}) but "
                                 f"{'no image' if v is None else f'mode {v.mode!r} grid {v.grid}'} needs {want}")
        return right_padded(attention_mask.bool())

    def embed_inputs(self, input_ids: torch.Tensor, vision: list[VisionInput | None]) -> torch.Tensor:
        """Token embeddings with each row's image placeholders replaced, in order, by its vision tokens.

        Each image's count comes from its own mode and tiling, so rows may mix modes; the
        counts are :meth:`check_inputs`' to check.
        """
        embeds = self.decoder.embed(input_ids)
        is_img = input_ids == self.image_token_id
        rows = [v for v in vision if v is not None]
        if not rows:
            return embeds
        vis = torch.cat(self.encoder(rows)).to(embeds.dtype)
        # Each vision row's flat position, found by a scatter of fixed size: masked_scatter's
        # backward (masked_select) has a data-dependent size and waits for the device, and a
        # gather by running count has an accumulating scatter for gradient, which sorts on CUDA
        # (4 ms a step on an H200, docs/gpu.md run 3). index_copy's gradients are a gather and
        # an index_fill. Text positions all land in a spare last slot, which is dropped.
        flat_img = is_img.flatten()
        n = vis.shape[0]
        dest = torch.where(flat_img, (flat_img.cumsum(0) - 1).clamp(max=n), n)
        pos = dest.new_zeros(n + 1).scatter_(0, dest, torch.arange(dest.numel(), device=dest.device))[:n]
        return embeds.flatten(0, 1).index_copy(0, pos, vis).view_as(embeds)

    # -- training forward ----------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, vision: list[VisionInput | None],
                labels: torch.Tensor | None = None, causal: bool | None = None) -> ModelOutput:
        """Logits for every position; with ``labels`` (aligned with input_ids, shifted here) the loss.

        ``causal`` is :meth:`check_inputs`' answer for this batch, computed on the host; None
        checks here (a device sync on CUDA).
        """
        if causal is None:
            causal = self.check_inputs(input_ids, attention_mask, vision)
        embeds = self.embed_inputs(input_ids, vision)
        valid = attention_mask.bool()
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
        logits, aux = self.decoder(embeds, positions, valid, causal=causal)
        if aux is not None:
            aux = aux * self.dec_cfg.aux_loss_coef
        loss = None
        if labels is not None:
            target = labels[:, 1:].flatten()
            # Sum / count (not "mean") so a micro-batch without any label gives 0, not NaN.
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), target, ignore_index=IGNORE_INDEX,
                                   reduction="sum") / (target != IGNORE_INDEX).sum().clamp(min=1)
            if aux is not None:
                loss = loss + aux
        return ModelOutput(loss, logits, aux)

    # -- generation ----------------------------------------------------------
    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, vision: list[VisionInput | None],
                 max_new_tokens: int, eos_token_id: int, no_repeat_ngram_size: int = 20,
                 use_cache: bool = True) -> list[list[int]]:
        """Greedy decoding of a left-padded batch; new tokens per row, EOS excluded.

        ``use_cache=False`` recomputes the whole sequence every step (a reference for tests).
        """
        bsz, t0 = input_ids.shape
        valid = attention_mask.bool()
        prompts = [input_ids[b][valid[b]].tolist() for b in range(bsz)]
        blocker = NgramBlocker(no_repeat_ngram_size, prompts)
        causal = self.check_inputs(input_ids, attention_mask, vision)
        embeds = self.embed_inputs(input_ids, vision)
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
        cache = KVCache(self.dec_cfg, bsz, t0 + max_new_tokens) if use_cache else None
        logits, _ = self.decoder(embeds, positions, valid, cache, causal=causal)
        out: list[list[int]] = [[] for _ in range(bsz)]
        done = [False] * bsz
        next_pos = positions[:, -1:] + 1
        for _ in range(max_new_tokens):
            step = blocker.apply(logits[:, -1].float())
            tok = step.argmax(dim=-1)
            toks = tok.tolist()
            for b in range(bsz):
                if done[b]:
                    continue
                if toks[b] == eos_token_id:
                    done[b] = True
                else:
                    out[b].append(toks[b])
                    blocker.push(b, toks[b])
            if all(done):
                break
            new = self.decoder.embed(tok[:, None])
            valid = torch.cat([valid, valid.new_ones(bsz, 1)], dim=1)
            if cache is not None:
                logits, _ = self.decoder(new, next_pos, valid, cache)
            else:
                embeds = torch.cat([embeds, new], dim=1)
                positions = torch.cat([positions, next_pos], dim=1)
                logits, _ = self.decoder(embeds, positions, valid)
            next_pos = next_pos + 1
        return out

    def set_grad_checkpointing(self, on: bool = True) -> None:
        """Recompute each SAM, CLIP and decoder block in backward instead of storing its
        activations (about one more forward pass; what lets the paper config train on one GPU)."""
        for part in (self.encoder.sam, self.encoder.clip, self.decoder):
            part.grad_checkpointing = on

    def set_sam_flex_attention(self, on: bool = True) -> None:
        """Run SAM's long (global) attention through FlexAttention when SAM runs without
        autograd (frozen in stage 2, and inference). Call only once
        ``train.model.sam.flex_attention_ok`` passed on the model's device."""
        for m in self.encoder.sam.modules():
            if isinstance(m, SamAttention):
                m.flex = on

    def blocks(self) -> list[nn.Module]:
        """Every transformer block: SAM's, CLIP's and the decoder's, in that order."""
        return [*self.encoder.sam.blocks, *self.encoder.clip.blocks, *self.decoder.blocks]

    def compile_blocks(self, **compile_kwargs) -> int:
        """``torch.compile`` each transformer block in place; returns how many.

        The blocks hold nearly all the work. Compiling them one by one, rather than the
        whole forward, keeps the per-batch host logic (grouping views by size, splicing
        vision tokens into rows) out of the graphs: a whole-model graph specialises on
        the number of images and their modes, so every new batch make-up (a token budget
        varies the batch size, a multi-mode run mixes modes) compiles the model again.
        Blocks of one kind share their graphs, and state-dict keys stay as they are.

        Shapes are dynamic from the first compile (``dynamic=True`` unless given): every
        batch brings another length and often another size, and dimensions found to vary
        one at a time would otherwise each cost a recompilation. SAM's blocks take only the
        number of images as dynamic (SamEncoder marks the sizes) and compile once per image
        size: with the grid symbolic too, the backward of its relative-position attention
        fails (torch 2.13, stage 1, where SAM trains), and a few fixed sizes are what a run
        sees anyway.
        """
        compile_kwargs.setdefault("dynamic", True)
        # SAM keeps a graph per block kind, image size and grad mode: a run of every mode
        # passes dynamo's default of 8 per function, after which it runs SAM eager.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        blocks = self.blocks()
        for blk in blocks:
            blk.compile(**{**compile_kwargs, "dynamic": None} if isinstance(blk, SamBlock) else compile_kwargs)
        return len(blocks)

    # -- stages --------------------------------------------------------------
    def freeze_for_stage2(self) -> None:
        """Freeze SAM and the compressor (stage 2 trains CLIP, projector and decoder)."""
        for p in (*self.encoder.sam.parameters(), *self.encoder.compressor.parameters()):
            p.requires_grad_(False)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The DeepEncoder's weights (SAM, compressor, CLIP, projector, newline, separator)."""
        return {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}

    def load_encoder_state_dict(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Load encoder weights from another stage; returns the keys skipped.

        Projector, image_newline and view_separator depend on the decoder width and are
        skipped (kept freshly initialised) when the shapes differ; any other mismatch or a
        missing key is an error.
        """
        own = self.encoder.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"encoder state dict: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
        load, skipped = {}, []
        for k, v in state.items():
            if v.shape == own[k].shape:
                load[k] = v
            elif k.startswith(_WIDTH_BOUND):
                skipped.append(k)
            else:
                raise ValueError(f"encoder state dict: {k} has shape {tuple(v.shape)}, "
                                 f"this model needs {tuple(own[k].shape)}")
        self.encoder.load_state_dict(load, strict=False)
        return skipped

    # -- accounting ----------------------------------------------------------
    def num_params(self, active: bool = False, part: str = "all") -> int:
        """Parameter count of ``part`` ("all", "encoder", "decoder").

        ``active``: for the decoder, what one token uses: everything except the input
        embedding (a lookup) and the routed experts a token does not visit (top_k of n_routed).
        """
        parts = {"all": self, "encoder": self.encoder, "decoder": self.decoder}
        if part not in parts:
            raise ValueError(f"part={part!r}: valid parts are {sorted(parts)}")
        seen, total = set(), 0
        for p in parts[part].parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        if active and part != "encoder":
            dec = self.decoder
            if dec.lm_head.weight is not dec.embed.weight:
                total -= dec.embed.weight.numel()
            for m in dec.modules():
                if isinstance(m, MoE):
                    routed = m.w_gate_up.numel() + m.w_down.numel()
                    total -= routed - routed * m.top_k // m.n_routed
        return total

    def encoder_flops(self, mode: str, grid: tuple[int, int] | None = None) -> int:
        """Training FLOPs to encode one image in ``mode``: 3x forward for trainable parts
        (forward + backward), 1x for frozen SAM/compressor (no gradient flows through them).
        A tiled mode needs the image's ``grid`` ((0, 0): a page without tiles).
        """
        enc, width = self.cfg.encoder, self.dec_cfg.width
        sizes = [enc.image_size(mode)]
        if mode in TILED_MODES:
            nw, nh = grid if grid is not None else (-1, -1)
            if (nw, nh) != (0, 0) and (nw < 1 or nh < 1):
                raise ValueError(f"encoder_flops: {mode} needs a tiling grid (nw, nh) >= (1, 1), or (0, 0) "
                                 f"for no tiles, got {grid}")
            sizes += [enc.tile_side(mode)] * (nw * nh)
        sam_mult = 3 if any(p.requires_grad for p in self.encoder.sam.parameters()) else 1
        comp_mult = 3 if any(p.requires_grad for p in self.encoder.compressor.parameters()) else 1
        total = 0
        for s in sizes:
            total += sam_mult * fl.sam_flops(enc, s) + comp_mult * fl.compressor_flops(enc, s)
            total += 3 * (fl.clip_flops(enc, s) + fl.projector_flops(enc, s, width))
        return total

    def flops_per_token(self, seq_len: int) -> int:
        """Decoder training FLOPs per token: 6 x active params + attention (PaLM); add encoder_flops per image."""
        return fl.decoder_train_flops_per_token(self.dec_cfg, seq_len)
