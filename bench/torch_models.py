#!/usr/bin/env python3
"""PyTorch side of bench/models.mjs: plain-PyTorch re-implementations of diffusers'
UNet2DModel and DiTTransformer2DModel (no diffusers needed), built from a diffusers
config.json with the same state-dict names, so a diffusers folder
(config.json + diffusion_pytorch_model.safetensors) loads with load_state_dict.

Modes (run with /usr/bin/python3, Debian's torch 1.13 + numpy 1.24):
  --check DIR                 golden self-check: DIR has inputs/outputs.safetensors
                              (../shared/golden/models/*); asserts max |diff| <= 1e-4
  --make-model unet|dit DIR   writes the issue-3 bench architectures as diffusers folders
                              (config.json like diffusers 0.38 writes it, weights re-initialized
                              with the golden README's scheme, fixed seed)
  --bench DIR [--threads N] [--batches 1,16,64] [--train-batches 16,64] [--repeats 5]
              [--min-ms 400] [--warmup 1] [--bf16]
                              times eval forward (no_grad) and a training step (forward + MSE to a
                              random target + backward + Adam step); prints JSON (medians, ms)
  --flops DIR [--size H,W]    analytic FLOPs of one forward per image, as JSON
  --export-onnx OUT.onnx DIR  exports the eval forward (dynamic batch axis), opset 17
  --make-io DIR BATCH OUT.safetensors
                              random inputs (sample, timestep, class_labels) + this forward's `out`
"""
import argparse
import contextlib
import json
import math
import os
import struct
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------- safetensors

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_NP_TO_ST = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


def read_safetensors(path):
    """Returns (dict name -> torch tensor, metadata dict). BF16 is widened to float32."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: truncated")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        buf = raw[base + b:base + e]
        shape = info["shape"]
        if info["dtype"] == "BF16":
            u16 = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u16.view(np.float32).reshape(shape)
        else:
            arr = np.frombuffer(buf, dtype=np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<")).reshape(shape)
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes tensors in sorted-name order, header padded with spaces to 8 bytes (like the
    golden writer and the safetensors package). Atomic: temporary file, then rename."""
    names = sorted(tensors)
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs, off = [], 0
    for name in names:
        arr = tensors[name].detach().cpu().contiguous().numpy()
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        data = arr.tobytes()
        header[name] = {"dtype": _NP_TO_ST[np.dtype(arr.dtype.str.replace(">", "<"))], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for data in blobs:
            f.write(data)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- shared pieces

def _act(name):
    if name in ("silu", "swish"):
        return nn.SiLU()
    if name == "gelu":
        return nn.GELU()
    if name == "mish":
        return nn.Mish()
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unsupported activation {name!r}")


def timestep_embedding(timesteps, dim, flip_sin_to_cos, downscale_freq_shift, scale=1.0, max_period=10000):
    """diffusers get_timestep_embedding: float32 exponent table, sin/cos in float32."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    exponent = exponent / (half - downscale_freq_shift)
    arg = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    arg = scale * arg
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm on a float32 input. PyTorch 1.13's CPU autocast hands group_norm bfloat16 activations with
    float32 weights and fails ("expected scalar type BFloat16 but found Float"); later versions run it in float32
    under autocast, as this does. Without autocast the input is float32 already: identical to nn.GroupNorm."""

    def forward(self, x):
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps)


class Timesteps(nn.Module):
    def __init__(self, num_channels, flip_sin_to_cos, downscale_freq_shift):
        super().__init__()
        self.num_channels, self.flip, self.shift = num_channels, flip_sin_to_cos, downscale_freq_shift

    def forward(self, t):
        return timestep_embedding(t, self.num_channels, self.flip, self.shift)


class GaussianFourierProjection(nn.Module):
    """UNet2DModel's fourier time embedding (log σ, weight frozen, sin then cos)."""

    def __init__(self, embedding_size, scale=16.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(embedding_size) * scale, requires_grad=False)

    def forward(self, x):
        x_proj = torch.log(x)[:, None] * self.weight[None, :] * 2 * np.pi
        return torch.cat([torch.sin(x_proj), torch.cos(x_proj)], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels, dim, act="silu"):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, dim)
        self.act = _act(act)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class AttentionCore(nn.Module):
    """softmax(q kᵀ · scale) v over [B, heads, N, d] (a module of its own so FLOP hooks see it).
    Same math as diffusers' AttnProcessor (torch 1.13 has no SDPA)."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, q, k, v):
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        return torch.matmul(scores.softmax(dim=-1), v)


class Attention(nn.Module):
    """diffusers Attention, self-attention only. UNet blocks use it on [B, C, H, W] with a
    GroupNorm and a residual; DiT on [B, N, D] without either."""

    def __init__(self, query_dim, heads, dim_head, bias=True, out_bias=True, norm_num_groups=None, eps=1e-5,
                 residual_connection=False, rescale_output_factor=1.0, dropout=0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.residual_connection = residual_connection
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = (GroupNorm(num_channels=query_dim, num_groups=norm_num_groups, eps=eps, affine=True)
                           if norm_num_groups is not None else None)
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(query_dim, inner, bias=bias)
        self.to_v = nn.Linear(query_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim, bias=out_bias), nn.Dropout(dropout)])
        self.core = AttentionCore(dim_head ** -0.5)

    def forward(self, x):
        residual = x
        four_d = x.ndim == 4
        if four_d:
            b, c, h, w = x.shape
            x = x.reshape(b, c, h * w).transpose(1, 2)
        if self.group_norm is not None:
            x = self.group_norm(x.transpose(1, 2)).transpose(1, 2)
        n = x.shape[1]
        split = lambda t: t.reshape(-1, n, self.heads, self.dim_head).transpose(1, 2)
        q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
        o = self.core(q, k, v).transpose(1, 2).reshape(-1, n, self.heads * self.dim_head)
        o = self.to_out[1](self.to_out[0](o))
        if four_d:
            o = o.transpose(1, 2).reshape(b, c, h, w)
        if self.residual_connection:
            o = o + residual
        return o / self.rescale_output_factor


# ----------------------------------------------------------------------------- UNet2DModel

class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, temb_channels, groups, eps, act="silu", dropout=0.0,
                 time_embedding_norm="default", output_scale_factor=1.0):
        super().__init__()
        self.time_embedding_norm = time_embedding_norm
        self.output_scale_factor = output_scale_factor
        self.norm1 = GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        if temb_channels is not None:
            proj = out_channels * (2 if time_embedding_norm == "scale_shift" else 1)
            if time_embedding_norm not in ("default", "scale_shift"):
                raise ValueError(f"unsupported resnet_time_scale_shift {time_embedding_norm!r}")
            self.time_emb_proj = nn.Linear(temb_channels, proj)
        else:
            self.time_emb_proj = None
        self.norm2 = GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nonlinearity = _act(act)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x, temb):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        if self.time_emb_proj is not None:
            temb = self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        if self.time_embedding_norm == "scale_shift":
            scale, shift = torch.chunk(temb, 2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + temb if temb is not None else h)
        h = self.conv2(self.dropout(self.nonlinearity(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.output_scale_factor


class Downsample2D(nn.Module):
    """Strided 3×3 conv (weights at `.conv`, as diffusers' name="op" gives)."""

    def __init__(self, channels, padding=1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest ×2, then 3×3 conv."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _unet_attention(channels, head_dim, groups, eps, scale):
    return Attention(channels, heads=channels // head_dim, dim_head=head_dim, bias=True, norm_num_groups=groups,
                     eps=eps, residual_connection=True, rescale_output_factor=scale)


class DownBlock(nn.Module):
    """DownBlock2D (attn=False) / AttnDownBlock2D (attn=True)."""

    def __init__(self, attn, num_layers, cin, cout, temb, groups, eps, act, dropout, tsn, head_dim, add_down,
                 down_padding):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, temb, groups, eps, act, dropout, tsn)
                                      for i in range(num_layers)])
        if attn:
            self.attentions = nn.ModuleList([_unet_attention(cout, head_dim, groups, eps, 1.0) for _ in range(num_layers)])
        else:
            self.attentions = None
        self.downsamplers = nn.ModuleList([Downsample2D(cout, down_padding)]) if add_down else None

    def forward(self, x, temb):
        skips = ()
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x)
            skips += (x,)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips += (x,)
        return x, skips


class UpBlock(nn.Module):
    """UpBlock2D (attn=False) / AttnUpBlock2D (attn=True)."""

    def __init__(self, attn, num_layers, cin, cprev, cout, temb, groups, eps, act, dropout, tsn, head_dim, add_up):
        super().__init__()
        res = []
        for i in range(num_layers):
            skip_c = cin if i == num_layers - 1 else cout
            res.append(ResnetBlock2D((cprev if i == 0 else cout) + skip_c, cout, temb, groups, eps, act, dropout, tsn))
        self.resnets = nn.ModuleList(res)
        if attn:
            self.attentions = nn.ModuleList([_unet_attention(cout, head_dim, groups, eps, 1.0) for _ in range(num_layers)])
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_up else None

    def forward(self, x, skips, temb):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips[-1]], dim=1), temb)
            skips = skips[:-1]
            if self.attentions is not None:
                x = self.attentions[i](x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class UNetMidBlock2D(nn.Module):
    def __init__(self, c, temb, groups, attn_groups, eps, act, dropout, tsn, head_dim, scale, add_attention):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, temb, groups, eps, act, dropout, tsn, scale) for _ in range(2)])
        self.attentions = nn.ModuleList([_unet_attention(c, head_dim, attn_groups, eps, scale)]) if add_attention else None

    def forward(self, x, temb):
        x = self.resnets[0](x, temb)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x, temb)


UNET_DEFAULTS = dict(
    sample_size=None, in_channels=3, out_channels=3, center_input_sample=False, time_embedding_type="positional",
    time_embedding_dim=None, freq_shift=0, flip_sin_to_cos=True,
    down_block_types=["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    mid_block_type="UNetMidBlock2D", up_block_types=["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    block_out_channels=[224, 448, 672, 896], layers_per_block=2, mid_block_scale_factor=1, downsample_padding=1,
    downsample_type="conv", upsample_type="conv", dropout=0.0, act_fn="silu", attention_head_dim=8,
    norm_num_groups=32, attn_norm_num_groups=None, norm_eps=1e-5, resnet_time_scale_shift="default",
    add_attention=True, class_embed_type=None, num_class_embeds=None, num_train_timesteps=None,
)


class UNet2DModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = dict(UNET_DEFAULTS)
        cfg.update({k: v for k, v in config.items() if k in UNET_DEFAULTS})
        self.config = cfg
        ch = list(cfg["block_out_channels"])
        if len(cfg["down_block_types"]) != len(ch) or len(cfg["up_block_types"]) != len(ch):
            raise ValueError("down/up block types must match block_out_channels")
        if cfg["downsample_type"] != "conv" or cfg["upsample_type"] != "conv":
            raise ValueError("this PyTorch reference supports conv down/upsamplers only (the bench models use them)")
        temb = cfg["time_embedding_dim"] or ch[0] * 4
        groups, eps, act, drop = cfg["norm_num_groups"], cfg["norm_eps"], cfg["act_fn"], cfg["dropout"]
        tsn = cfg["resnet_time_scale_shift"]
        head = lambda c: cfg["attention_head_dim"] if cfg["attention_head_dim"] is not None else c

        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        tet = cfg["time_embedding_type"]
        if tet == "positional":
            self.time_proj = Timesteps(ch[0], cfg["flip_sin_to_cos"], cfg["freq_shift"])
            tin = ch[0]
        elif tet == "fourier":
            self.time_proj = GaussianFourierProjection(ch[0], scale=16)
            tin = 2 * ch[0]
        elif tet == "learned":
            self.time_proj = nn.Embedding(cfg["num_train_timesteps"], ch[0])
            tin = ch[0]
        else:
            raise ValueError(f"unsupported time_embedding_type {tet!r}")
        self.time_embedding = TimestepEmbedding(tin, temb)
        cet = cfg["class_embed_type"]
        if cet is None and cfg["num_class_embeds"] is not None:
            self.class_embedding = nn.Embedding(cfg["num_class_embeds"], temb)
        elif cet == "timestep":
            self.class_embedding = TimestepEmbedding(tin, temb)
        elif cet == "identity":
            self.class_embedding = nn.Identity()
        elif cet is None:
            self.class_embedding = None
        else:
            raise ValueError(f"unsupported class_embed_type {cet!r}")

        self.down_blocks = nn.ModuleList()
        out_c = ch[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            in_c, out_c = out_c, ch[i]
            if kind not in ("DownBlock2D", "AttnDownBlock2D"):
                raise ValueError(f"this PyTorch reference does not support block type {kind!r}")
            self.down_blocks.append(DownBlock(kind == "AttnDownBlock2D", cfg["layers_per_block"], in_c, out_c, temb,
                                              groups, eps, act, drop, tsn, head(out_c), i < len(ch) - 1,
                                              cfg["downsample_padding"]))
        if cfg["mid_block_type"] is None:
            self.mid_block = None
        else:
            attn_groups = cfg["attn_norm_num_groups"]
            if attn_groups is None:
                attn_groups = groups if tsn == "default" else None
            self.mid_block = UNetMidBlock2D(ch[-1], temb, groups, attn_groups, eps, act, drop, tsn, head(ch[-1]),
                                            cfg["mid_block_scale_factor"], cfg["add_attention"])
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(ch))
        out_c = rev[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, out_c = out_c, rev[i]
            in_c = rev[min(i + 1, len(ch) - 1)]
            if kind not in ("UpBlock2D", "AttnUpBlock2D"):
                raise ValueError(f"this PyTorch reference does not support block type {kind!r}")
            self.up_blocks.append(UpBlock(kind == "AttnUpBlock2D", cfg["layers_per_block"] + 1, in_c, prev, out_c,
                                          temb, groups, eps, act, drop, tsn, head(out_c), i < len(ch) - 1))
        gout = groups if groups is not None else min(ch[0] // 4, 32)
        self.conv_norm_out = GroupNorm(gout, ch[0], eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, sample, timestep, class_labels=None):
        cfg = self.config
        if cfg["center_input_sample"]:
            sample = 2 * sample - 1.0
        t = timestep
        if not torch.is_tensor(t):
            t = torch.tensor([t], dtype=torch.float32)
        if t.ndim == 0:
            t = t[None]
        if t.shape[0] == 1 and sample.shape[0] != 1:
            t = t.expand(sample.shape[0])
        emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("class_labels should be provided when doing class conditioning")
            if cfg["class_embed_type"] == "timestep":
                class_labels = self.time_proj(class_labels)
            emb = emb + self.class_embedding(class_labels).to(sample.dtype)
        x = self.conv_in(sample)
        skips = (x,)
        for blk in self.down_blocks:
            x, s = blk(x, emb)
            skips += s
        if self.mid_block is not None:
            x = self.mid_block(x, emb)
        for blk in self.up_blocks:
            n = len(blk.resnets)
            x = blk(x, skips[-n:], emb)
            skips = skips[:-n]
        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        if cfg["time_embedding_type"] == "fourier":
            x = x / t.reshape(-1, 1, 1, 1)
        return x


# ----------------------------------------------------------------------------- DiTTransformer2DModel

def sincos_pos_embed_2d(dim, grid_h, grid_w, base_size, interpolation_scale=1.0):
    """diffusers get_2d_sincos_pos_embed(output_type="pt"): positions in float32, tables in float64,
    [sincos(w-coordinate), sincos(h-coordinate)] per token (row-major over h, w), as float32."""
    gh = torch.arange(grid_h, dtype=torch.float32) / (grid_h / base_size) / interpolation_scale
    gw = torch.arange(grid_w, dtype=torch.float32) / (grid_w / base_size) / interpolation_scale
    grid = torch.stack(torch.meshgrid(gw, gh, indexing="xy"), dim=0)  # [2, H, W]: w coordinate, h coordinate
    grid = grid.reshape(2, 1, grid_w, grid_h)

    def one_d(d, pos):
        omega = torch.arange(d // 2, dtype=torch.float64) / (d / 2.0)
        omega = 1.0 / 10000 ** omega
        out = torch.outer(pos.reshape(-1).double(), omega)
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    emb = torch.cat([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], dim=1)
    return emb.float().unsqueeze(0)


class PatchEmbed(nn.Module):
    def __init__(self, sample_size, patch, cin, dim):
        super().__init__()
        self.patch, self.dim = patch, dim
        self.base_size = sample_size // patch
        self.proj = nn.Conv2d(cin, dim, kernel_size=patch, stride=patch)
        self._pos_cache = {}

    def pos_embed(self, h, w):
        key = (h, w)
        if key not in self._pos_cache:
            self._pos_cache[key] = sincos_pos_embed_2d(self.dim, h, w, self.base_size)
        return self._pos_cache[key]

    def forward(self, x):
        h, w = int(x.shape[-2]) // self.patch, int(x.shape[-1]) // self.patch  # python ints (constant in ONNX)
        x = self.proj(x).flatten(2).transpose(1, 2)
        return x + self.pos_embed(h, w).to(x.dtype)


class LabelEmbedding(nn.Module):
    def __init__(self, num_classes, dim, dropout_prob):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + (dropout_prob > 0), dim)
        self.num_classes, self.dropout_prob = num_classes, dropout_prob

    def forward(self, labels):
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        return self.embedding_table(labels)


class CombinedTimestepLabelEmbeddings(nn.Module):
    def __init__(self, num_classes, dim, class_dropout_prob=0.1):
        super().__init__()
        self.time_proj = Timesteps(256, True, 1)
        self.timestep_embedder = TimestepEmbedding(256, dim)
        self.class_embedder = LabelEmbedding(num_classes, dim, class_dropout_prob)

    def forward(self, t, labels, dtype):
        return self.timestep_embedder(self.time_proj(t).to(dtype)) + self.class_embedder(labels)


class AdaLayerNormZero(nn.Module):
    def __init__(self, dim, num_embeddings):
        super().__init__()
        self.emb = CombinedTimestepLabelEmbeddings(num_embeddings, dim)
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, 6 * dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x, t, labels):
        e = self.linear(self.silu(self.emb(t, labels, x.dtype)))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = e.chunk(6, dim=1)
        x = self.norm(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        return x, gate_msa, shift_mlp, scale_mlp, gate_mlp


class GELUProj(nn.Module):
    def __init__(self, cin, cout, approximate):
        super().__init__()
        self.proj = nn.Linear(cin, cout)
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(self.proj(x), approximate=self.approximate)


class FeedForward(nn.Module):
    def __init__(self, dim, activation_fn, dropout=0.0, mult=4):
        super().__init__()
        if activation_fn not in ("gelu", "gelu-approximate"):
            raise ValueError(f"this PyTorch reference does not support activation_fn {activation_fn!r}")
        inner = dim * mult
        self.net = nn.ModuleList([GELUProj(dim, inner, "tanh" if activation_fn == "gelu-approximate" else "none"),
                                  nn.Dropout(dropout), nn.Linear(inner, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class DiTBlock(nn.Module):
    """BasicTransformerBlock with norm_type="ada_norm_zero" (self-attention + FF only)."""

    def __init__(self, dim, heads, head_dim, dropout, act, num_embeds, bias, affine, eps):
        super().__init__()
        self.norm1 = AdaLayerNormZero(dim, num_embeds)
        self.attn1 = Attention(dim, heads, head_dim, bias=bias, out_bias=True, dropout=dropout)
        self.norm3 = nn.LayerNorm(dim, eps, affine)
        self.ff = FeedForward(dim, act, dropout)

    def forward(self, x, t, labels):
        n, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(x, t, labels)
        x = gate_msa.unsqueeze(1) * self.attn1(n) + x
        n = self.norm3(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return gate_mlp.unsqueeze(1) * self.ff(n) + x


DIT_DEFAULTS = dict(
    num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=None, num_layers=28, dropout=0.0,
    norm_num_groups=32, attention_bias=True, sample_size=32, patch_size=2, activation_fn="gelu-approximate",
    num_embeds_ada_norm=1000, upcast_attention=False, norm_type="ada_norm_zero", norm_elementwise_affine=False,
    norm_eps=1e-5,
)


class DiTTransformer2DModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = dict(DIT_DEFAULTS)
        cfg.update({k: v for k, v in config.items() if k in DIT_DEFAULTS})
        self.config = cfg
        if cfg["norm_type"] != "ada_norm_zero" or cfg["num_embeds_ada_norm"] is None:
            raise ValueError("DiTTransformer2DModel here needs norm_type ada_norm_zero and num_embeds_ada_norm (class-conditional DiT)")
        dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        self.inner_dim = dim
        self.patch = cfg["patch_size"]
        self.out_channels = cfg["out_channels"] or cfg["in_channels"]
        self.pos_embed = PatchEmbed(cfg["sample_size"], self.patch, cfg["in_channels"], dim)
        self.transformer_blocks = nn.ModuleList([
            DiTBlock(dim, cfg["num_attention_heads"], cfg["attention_head_dim"], cfg["dropout"], cfg["activation_fn"],
                     cfg["num_embeds_ada_norm"], cfg["attention_bias"], cfg["norm_elementwise_affine"], cfg["norm_eps"])
            for _ in range(cfg["num_layers"])])
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.proj_out_1 = nn.Linear(dim, 2 * dim)
        self.proj_out_2 = nn.Linear(dim, self.patch * self.patch * self.out_channels)

    def forward(self, sample, timestep, class_labels=None):
        if class_labels is None:
            raise ValueError("DiT needs class_labels (use num_embeds_ada_norm for the null class)")
        t = timestep
        if not torch.is_tensor(t):
            t = torch.tensor([t], dtype=torch.float32)
        if t.ndim == 0:
            t = t[None]
        p = self.patch
        h, w = int(sample.shape[-2]) // p, int(sample.shape[-1]) // p
        x = self.pos_embed(sample)
        for blk in self.transformer_blocks:
            x = blk(x, t, class_labels)
        cond = self.transformer_blocks[0].norm1.emb(t, class_labels, x.dtype)
        shift, scale = self.proj_out_1(F.silu(cond)).chunk(2, dim=1)
        x = self.norm_out(x) * (1 + scale[:, None]) + shift[:, None]
        x = self.proj_out_2(x)
        x = x.reshape(-1, h, w, p, p, self.out_channels).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(-1, self.out_channels, h * p, w * p)


# ----------------------------------------------------------------------------- loading, configs

def load_config(d):
    with open(os.path.join(d, "config.json")) as f:
        return json.load(f)


def build(config):
    cls = config.get("_class_name")
    if cls == "UNet2DModel":
        return UNet2DModel(config)
    if cls == "DiTTransformer2DModel":
        return DiTTransformer2DModel(config)
    raise ValueError(f"unsupported _class_name {cls!r}")


def load_model(d):
    model = build(load_config(d))
    sd, _ = read_safetensors(os.path.join(d, "diffusion_pytorch_model.safetensors"))
    sd = {k: v.float() for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    return model.eval()


def needs_labels(model):
    return isinstance(model, DiTTransformer2DModel) or (
        isinstance(model, UNet2DModel) and model.class_embedding is not None)


def num_classes(model):
    if isinstance(model, DiTTransformer2DModel):
        return model.config["num_embeds_ada_norm"]
    return model.config["num_class_embeds"] or 1


BENCH_CONFIGS = {
    # issue 3: base 64 channels, multipliers 1,2,2, 2 resnets per level, attention at 14×14 (level 1 of 28→14→7)
    # and in the mid block (7×7), head dim 32, 1×28×28.
    "unet": {
        "_class_name": "UNet2DModel", "_diffusers_version": "0.38.0", "act_fn": "silu", "add_attention": True,
        "attention_head_dim": 32, "attn_norm_num_groups": None, "block_out_channels": [64, 128, 128],
        "center_input_sample": False, "class_embed_type": None,
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"], "downsample_padding": 1,
        "downsample_type": "conv", "dropout": 0.0, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 1,
        "layers_per_block": 2, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2D", "norm_eps": 1e-05,
        "norm_num_groups": 32, "num_class_embeds": None, "num_train_timesteps": None, "out_channels": 1,
        "resnet_time_scale_shift": "default", "sample_size": 28, "time_embedding_dim": None,
        "time_embedding_type": "positional", "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
        "upsample_type": "conv",
    },
    # patch 2, hidden 256 = 4 heads × 64, depth 6, 1×28×28 (196 tokens), 10 classes (+ null class)
    "dit": {
        "_class_name": "DiTTransformer2DModel", "_diffusers_version": "0.38.0", "activation_fn": "gelu-approximate",
        "attention_bias": True, "attention_head_dim": 64, "dropout": 0.0, "in_channels": 1,
        "norm_elementwise_affine": False, "norm_eps": 1e-05, "norm_num_groups": 32, "norm_type": "ada_norm_zero",
        "num_attention_heads": 4, "num_embeds_ada_norm": 10, "num_layers": 6, "out_channels": None,
        "patch_size": 2, "sample_size": 28, "upcast_attention": False,
    },
}
BENCH_SEEDS = {"unet": 3001, "dit": 3002}


def reinit_(model, seed):
    """The golden README's scheme: Embedding ~ N(0, 0.5²); GroupNorm/LayerNorm weight ~ 1 + N(0, 0.1²);
    other ≥2-D ~ N(0, 1/fan_in), fan_in = numel/shape[0]; other 1-D ~ N(0, 0.05²). Module order."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod_name, mod in model.named_modules():
            for pname, p in mod.named_parameters(recurse=False):
                if isinstance(mod, nn.Embedding):
                    p.copy_(torch.randn(p.shape, generator=g) * 0.5)
                elif isinstance(mod, (nn.GroupNorm, nn.LayerNorm)) and pname == "weight":
                    p.copy_(1 + torch.randn(p.shape, generator=g) * 0.1)
                elif p.ndim >= 2:
                    fan_in = p.numel() // p.shape[0]
                    p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def make_model(kind, out_dir):
    cfg = BENCH_CONFIGS[kind]
    model = build(cfg)
    reinit_(model, BENCH_SEEDS[kind])
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    write_safetensors(os.path.join(out_dir, "diffusion_pytorch_model.safetensors"), model.state_dict(),
                      {"format": "pt"})
    n = sum(p.numel() for p in model.parameters())
    return {"dir": out_dir, "class": cfg["_class_name"], "parameters": n, "tensors": len(model.state_dict())}


# ----------------------------------------------------------------------------- FLOPs

def count_flops(model, sample_shape):
    """Multiply-adds ×2 of one forward for batch 1: Conv2d, Linear and the two attention matmuls
    (q·kᵀ and p·v: 4·heads·N²·d). Elementwise work (norms, activations, softmax) is not counted."""
    total = {"conv": 0, "linear": 0, "attention": 0}

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total["conv"] += 2 * out.numel() * k

    def linear_hook(m, inp, out):
        total["linear"] += 2 * (out.numel() // m.out_features) * m.in_features * m.out_features

    def attn_hook(m, inp, out):
        q, k, v = inp
        total["attention"] += 2 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.shape[3]
        total["attention"] += 2 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * v.shape[3]

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, AttentionCore):
            hooks.append(m.register_forward_hook(attn_hook))
    try:
        x, t, y = make_inputs(model, 1, sample_shape, seed=0)
        with torch.no_grad():
            model(x, t, y)
    finally:
        for h in hooks:
            h.remove()
    total["total"] = total["conv"] + total["linear"] + total["attention"]
    return total


# ----------------------------------------------------------------------------- bench

def sample_shape_of(model):
    c = model.config
    s = c["sample_size"]
    s = s if isinstance(s, (list, tuple)) else [s, s]
    return [c["in_channels"], s[0], s[1]]


def make_inputs(model, batch, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn([batch] + list(shape), generator=g)
    t = torch.rand(batch, generator=g) * 999
    y = torch.randint(0, num_classes(model), (batch,), generator=g) if needs_labels(model) else None
    return x, t, y


def _time(fn, warmup, repeats, min_ms):
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    once = (time.perf_counter() - t0) * 1e3
    iters = max(1, int(math.ceil(min_ms / max(once, 1e-3))))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        samples.append((time.perf_counter() - t0) * 1e3 / iters)
    samples.sort()
    return {"ms": samples[len(samples) // 2], "min_ms": samples[0], "samples": samples, "iters": iters}


def bench(model_dir, threads, batches, train_batches, repeats, min_ms, warmup, bf16=False):
    """bf16: forward and training step under torch.autocast("cpu", bfloat16) (oneDNN bf16 matmuls), the peer of
    fastdiff's matmul precision "medium"."""
    torch.set_num_threads(threads)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    model = load_model(model_dir)
    shape = sample_shape_of(model)
    out = {"torch": torch.__version__, "threads": threads, "bf16": bf16, "model": load_config(model_dir)["_class_name"],
           "parameters": sum(p.numel() for p in model.parameters()), "sample_shape": shape,
           "forward": {}, "train": {}}
    model.eval()
    for b in batches:
        x, t, y = make_inputs(model, b, shape, seed=b)

        def fwd():
            with torch.no_grad(), autocast():
                return model(x, t, y)
        out["forward"][str(b)] = _time(fwd, warmup, repeats, min_ms)
    if train_batches:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        for b in train_batches:
            x, t, y = make_inputs(model, b, shape, seed=100 + b)
            target = torch.randn(x.shape, generator=torch.Generator().manual_seed(200 + b))

            def step():
                with autocast():
                    loss = F.mse_loss(model(x, t, y).float(), target)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                return loss
            out["train"][str(b)] = _time(step, warmup, repeats, min_ms)
    return out


# ----------------------------------------------------------------------------- ONNX

class _OnnxWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.labels = needs_labels(model)

    def forward(self, sample, timestep, class_labels=None):
        return self.model(sample, timestep, class_labels if self.labels else None)


def export_onnx(model_dir, out_path, batch=2, opset=17):
    model = load_model(model_dir)
    # torch 1.13 exports a LayerNorm without affine parameters (DiT) as an opset-17 LayerNormalization with an
    # empty scale input, which its own checker rejects: give those norms constant ones/zeros for the export.
    for m in model.modules():
        if isinstance(m, nn.LayerNorm) and m.weight is None:
            m.register_buffer("_one", torch.ones(m.normalized_shape), persistent=False)
            m.register_buffer("_zero", torch.zeros(m.normalized_shape), persistent=False)
            m.forward = (lambda mod: lambda x: F.layer_norm(x, mod.normalized_shape, mod._one, mod._zero, mod.eps))(m)
    shape = sample_shape_of(model)
    x, t, y = make_inputs(model, batch, shape, seed=7)
    w = _OnnxWrapper(model).eval()
    names = ["sample", "timestep"] + (["class_labels"] if w.labels else [])
    args = (x, t, y) if w.labels else (x, t)
    axes = {n: {0: "batch"} for n in names + ["out"]}
    with torch.no_grad():
        w(*args)  # fills the DiT position-table cache, so the table is a constant in the graph
    tmp = f"{out_path}.tmp{os.getpid()}"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(w, args, tmp, input_names=names, output_names=["out"], dynamic_axes=axes,
                          opset_version=opset, do_constant_folding=True)
    os.replace(tmp, out_path)
    return {"onnx": out_path, "inputs": names, "opset": opset, "bytes": os.path.getsize(out_path)}


# ----------------------------------------------------------------------------- golden check

def golden_check(case_dir, tol=1e-4):
    model = load_model(case_dir)
    inputs, _ = read_safetensors(os.path.join(case_dir, "inputs.safetensors"))
    outputs, _ = read_safetensors(os.path.join(case_dir, "outputs.safetensors"))
    with torch.no_grad():
        got = model(inputs["sample"].float(), inputs["timestep"], inputs.get("class_labels"))
    ref = outputs["sample"]
    diff = (got - ref).abs().max().item()
    res = {"case": os.path.basename(case_dir.rstrip("/")), "max_abs_diff": diff, "max_abs_ref": ref.abs().max().item(),
           "parameters": sum(p.numel() for p in model.parameters()), "ok": diff <= tol}
    inter_path = os.path.join(case_dir, "intermediates.safetensors")
    if os.path.exists(inter_path):  # also compare the module outputs that map 1:1 onto ours
        inter, _ = read_safetensors(inter_path)
        mods = dict(model.named_modules())
        seen = {}
        hooks = []

        def mk(name):
            def hook(m, i, o):
                if torch.is_tensor(o):
                    seen.setdefault(name, o.detach().clone())
            return hook
        for name in inter:
            if name in mods and not isinstance(mods[name], (DownBlock, AdaLayerNormZero)):
                hooks.append(mods[name].register_forward_hook(mk(name)))
        with torch.no_grad():
            model(inputs["sample"].float(), inputs["timestep"], inputs.get("class_labels"))
        for h in hooks:
            h.remove()
        worst = max(((seen[n] - inter[n]).abs().max().item(), n) for n in seen) if seen else (0.0, None)
        res["intermediates_compared"] = len(seen)
        res["intermediates_worst"] = {"name": worst[1], "max_abs_diff": worst[0]}
        res["ok"] = res["ok"] and worst[0] <= tol
    return res


def make_io(model_dir, batch, out_path, seed=11):
    """Random inputs for `batch` and this implementation's output, one safetensors file
    (sample, timestep [float32], class_labels [int64, if the model takes them], out)."""
    model = load_model(model_dir)
    x, t, y = make_inputs(model, batch, sample_shape_of(model), seed=seed)
    with torch.no_grad():
        out = model(x, t, y)
    tensors = {"sample": x, "timestep": t, "out": out}
    if y is not None:
        tensors["class_labels"] = y
    write_safetensors(out_path, tensors)
    return {"io": out_path, "batch": batch, "out_shape": list(out.shape)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="DIR")
    ap.add_argument("--make-model", nargs=2, metavar=("KIND", "DIR"))
    ap.add_argument("--bench", metavar="DIR")
    ap.add_argument("--flops", metavar="DIR")
    ap.add_argument("--size", default=None, help="H,W for --flops (default: sample_size)")
    ap.add_argument("--export-onnx", nargs=2, metavar=("OUT", "DIR"))
    ap.add_argument("--make-io", nargs=3, metavar=("DIR", "BATCH", "OUT"))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--train-batches", default="16,64")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="--bench under torch.autocast(cpu, bfloat16)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-ms", type=float, default=400.0, help="each repeat runs ≥ this long (iterations chosen)")
    a = ap.parse_args()
    ints = lambda s: [int(v) for v in s.split(",") if v.strip()]
    torch.set_num_threads(a.threads)
    if a.check:
        res = golden_check(a.check)
        print(json.dumps(res))
        sys.exit(0 if res["ok"] else 1)
    elif a.make_model:
        print(json.dumps(make_model(*a.make_model)))
    elif a.bench:
        print(json.dumps(bench(a.bench, a.threads, ints(a.batches), ints(a.train_batches), a.repeats, a.min_ms,
                               a.warmup, a.bf16)))
    elif a.flops:
        model = load_model(a.flops)
        shape = sample_shape_of(model)
        if a.size:
            shape = [shape[0]] + ints(a.size)
        res = count_flops(model, shape)
        res.update(sample_shape=shape, parameters=sum(p.numel() for p in model.parameters()))
        print(json.dumps(res))
    elif a.export_onnx:
        print(json.dumps(export_onnx(a.export_onnx[1], a.export_onnx[0])))
    elif a.make_io:
        print(json.dumps(make_io(a.make_io[0], int(a.make_io[1]), a.make_io[2])))
    else:
        ap.print_help()
        sys.exit(2)


if __name__ == "__main__":
    main()
