"""Compact PyTorch implementation of the EDM diffusion networks that csm samples from.

csm reads diffusion models in its `edm-diffusion/1` safetensors format (docs/formats/edm-diffusion.md): the
`state_dict()` of an EDM preconditioner (VPPrecond, VEPrecond or EDMPrecond wrapping a
SongUNet or a DhariwalUNet) under EDM's own tensor names, plus a metadata entry `edm`
holding `{"class_name": ..., "init_kwargs": {...}}`. This module rebuilds such a network
in PyTorch so that csm's Swift implementation has an independent peer to be checked and
benchmarked against (tools/reference/check_edm_torch.py, tools/bench/bench_torch.py), and so that
checkpoint conversion (tools/reference/convert_edm_pkl.py) can be verified.

It is inference-only: dropout, label dropout and augmentation labels are accepted as
constructor arguments (so every file loads) but do nothing at sampling time. Everything
runs in float32; the sampler keeps its state in float64 like EDM's.

Typical use (with tools/reference/ on sys.path):

    import edm_torch
    net = edm_torch.load_edm("Datasets/fashion-mnist/fashion-mnist-edm-vp32.safetensors")
    with torch.inference_mode():
        images = edm_torch.edm_sampler(net, latents, class_labels, num_steps=18)

Layout notes that matter when porting (all mirrored below):
  * tensors are NCHW; a Conv2d weight is [out, in, k, k], a Linear weight is [out, in];
  * GroupNorm uses min(32, C // 4) groups;
  * the qkv projection of an attention block interleaves q, k and v per channel:
    channel (h * C_head + c) * 3 + j holds q (j = 0), k (j = 1) or v (j = 2) of
    channel c of head h;
  * up/down sampling first filters with the separable resample filter (outer product
    of `resample_filter`, normalised to sum 1; times 4 when upsampling) and then
    applies the 3x3 / 1x1 convolution, except for "fused" convolutions (NCSN++'s
    residual encoder), which convolve first and filter-downsample after.
"""

from __future__ import annotations

import json
import math
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.functional import silu

FORMAT = "edm-diffusion/1"


class EDMFileError(ValueError):
    """A model file is not a usable `edm-diffusion/1` file; the message names the file."""


# ---------------------------------------------------------------------------------------
# Layers


class Linear(torch.nn.Module):
    """y = x W^T + b, W of shape [out_features, in_features]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features) / math.sqrt(in_features))
        self.bias = torch.nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        x = x @ self.weight.t()
        if self.bias is not None:
            x = x.add_(self.bias)
        return x


def resample_kernel(taps: Iterable[float]) -> torch.Tensor:
    """The 2-D resampling kernel [1, 1, n, n]: outer product of the taps, normalised to sum 1."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    return (torch.outer(f, f) / f.sum().square()).reshape(1, 1, len(f), len(f))


class Conv2d(torch.nn.Module):
    """Square convolution ("same" padding) with optional 2x up- or downsampling.

    `kernel = 0` means no convolution at all: the layer only resamples. The resampling
    filter is a registered buffer (`resample_filter`) only when the layer resamples.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True,
                 up: bool = False, down: bool = False, resample_filter=(1, 1), fused_resample: bool = False):
        super().__init__()
        if up and down:
            raise ValueError("Conv2d cannot both upsample and downsample")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.down = down
        self.fused_resample = fused_resample
        if kernel:
            fan_in = in_channels * kernel * kernel
            self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel) / math.sqrt(fan_in))
            self.bias = torch.nn.Parameter(torch.zeros(out_channels)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("resample_filter", resample_kernel(resample_filter) if (up or down) else None)

    def forward(self, x):
        w, b, f = self.weight, self.bias, self.resample_filter
        w_pad = w.shape[-1] // 2 if w is not None else 0
        f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0

        if self.fused_resample and self.up and w is not None:
            # Upsample with padding that already accounts for the convolution, then convolve (no padding).
            x = F.conv_transpose2d(x, (f * 4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels,
                                   stride=2, padding=w_pad + f_pad)
            x = F.conv2d(x, w)
        elif self.fused_resample and self.down and w is not None:
            # Convolve with extra padding, then filter and take every second pixel.
            x = F.conv2d(x, w, padding=w_pad + f_pad)
            x = F.conv2d(x, f.tile([self.out_channels, 1, 1, 1]), groups=self.out_channels, stride=2)
        else:
            if self.up:
                # Depthwise transposed convolution with 4 * filter: [1,1] is nearest-neighbour 2x.
                x = F.conv_transpose2d(x, (f * 4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels,
                                       stride=2, padding=f_pad)
            if self.down:
                # Depthwise filter with stride 2: [1,1] is 2x2 average pooling.
                x = F.conv2d(x, f.tile([self.in_channels, 1, 1, 1]), groups=self.in_channels,
                             stride=2, padding=f_pad)
            if w is not None:
                x = F.conv2d(x, w, padding=w_pad)
        if b is not None:
            x = x.add_(b.reshape(1, -1, 1, 1))
        return x


class GroupNorm(torch.nn.Module):
    """Group normalisation with min(num_groups, C // min_channels_per_group) groups."""

    def __init__(self, num_channels: int, num_groups: int = 32, min_channels_per_group: int = 4, eps: float = 1e-5):
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(num_channels))
        self.bias = torch.nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return F.group_norm(x, num_groups=self.num_groups, weight=self.weight, bias=self.bias, eps=self.eps)


class UNetBlock(torch.nn.Module):
    """Residual block with optional up/downsampling and multi-head self-attention.

    x -> GN -> SiLU -> conv0 (resampling) -> + embedding (shift, or adaptive scale & shift)
      -> GN -> SiLU -> conv1 -> + skip(x) -> * skip_scale
      [-> + proj(attention(GN(x))) -> * skip_scale]
    """

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, up: bool = False, down: bool = False,
                 attention: bool = False, num_heads: int | None = None, channels_per_head: int = 64,
                 skip_scale: float = 1.0, eps: float = 1e-5, resample_filter=(1, 1), resample_proj: bool = False,
                 adaptive_scale: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        if not attention:
            self.num_heads = 0
        else:
            self.num_heads = num_heads if num_heads is not None else out_channels // channels_per_head
        self.skip_scale = skip_scale
        self.adaptive_scale = adaptive_scale

        self.norm0 = GroupNorm(in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, kernel=3, up=up, down=down, resample_filter=resample_filter)
        self.affine = Linear(emb_channels, out_channels * (2 if adaptive_scale else 1))
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, kernel=3)

        self.skip = None
        if out_channels != in_channels or up or down:
            kernel = 1 if (resample_proj or out_channels != in_channels) else 0
            self.skip = Conv2d(in_channels, out_channels, kernel=kernel, up=up, down=down,
                               resample_filter=resample_filter)

        if self.num_heads:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, kernel=1)
            self.proj = Conv2d(out_channels, out_channels, kernel=1)

    def forward(self, x, emb):
        orig = x
        x = self.conv0(silu(self.norm0(x)))

        params = self.affine(emb).unsqueeze(2).unsqueeze(3)
        if self.adaptive_scale:
            scale, shift = params.chunk(chunks=2, dim=1)  # first half scales, second half shifts
            x = silu(torch.addcmul(shift, self.norm1(x), scale + 1))
        else:
            x = silu(self.norm1(x.add_(params)))

        x = self.conv1(x)
        x = x.add_(self.skip(orig) if self.skip is not None else orig)
        x = x * self.skip_scale

        if self.num_heads:
            n, c, h, w = x.shape
            # [N, 3C, H, W] -> per head [C_head, 3, HW]: q, k, v interleaved per channel.
            q, k, v = self.qkv(self.norm2(x)).reshape(n * self.num_heads, c // self.num_heads, 3, h * w).unbind(2)
            scores = torch.bmm(q.transpose(1, 2), k / math.sqrt(k.shape[1]))  # [N*heads, HW_q, HW_k]
            weights = scores.softmax(dim=2)
            a = torch.bmm(v, weights.transpose(1, 2))  # [N*heads, C_head, HW_q]
            x = self.proj(a.reshape(n, c, h, w)).add_(x)
            x = x * self.skip_scale
        return x


class PositionalEmbedding(torch.nn.Module):
    """[cos(x f_i), sin(x f_i)], f_i = (1/max_positions)^(i / (C/2 - endpoint))."""

    def __init__(self, num_channels: int, max_positions: int = 10000, endpoint: bool = False):
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = max_positions
        self.endpoint = endpoint

    def forward(self, x):
        half = self.num_channels // 2
        freqs = torch.arange(half, dtype=torch.float32, device=x.device) / (half - (1 if self.endpoint else 0))
        freqs = (1 / self.max_positions) ** freqs
        x = torch.outer(x, freqs)
        return torch.cat([x.cos(), x.sin()], dim=1)


class FourierEmbedding(torch.nn.Module):
    """[cos(2 pi x f_i), sin(2 pi x f_i)] with stored random frequencies `freqs` (NCSN++)."""

    def __init__(self, num_channels: int, scale: float = 16):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x):
        x = torch.outer(x, 2 * np.pi * self.freqs)
        return torch.cat([x.cos(), x.sin()], dim=1)


# ---------------------------------------------------------------------------------------
# U-Nets


class SongUNet(torch.nn.Module):
    """DDPM++ / NCSN++ U-Net (EDM's `SongUNet`), constructor arguments and defaults as in EDM."""

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0,
                 model_channels=128, channel_mult=(1, 2, 2, 2), channel_mult_emb=4, num_blocks=4,
                 attn_resolutions=(16,), dropout=0.10, label_dropout=0,
                 embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
                 decoder_type="standard", resample_filter=(1, 1)):
        if embedding_type not in ("fourier", "positional"):
            raise ValueError(f"SongUNet: embedding_type must be 'fourier' or 'positional', not {embedding_type!r}")
        if encoder_type not in ("standard", "skip", "residual"):
            raise ValueError(f"SongUNet: encoder_type must be 'standard', 'skip' or 'residual', not {encoder_type!r}")
        if decoder_type not in ("standard", "skip"):
            raise ValueError(f"SongUNet: decoder_type must be 'standard' or 'skip', not {decoder_type!r}")
        super().__init__()
        emb_channels = model_channels * channel_mult_emb
        noise_channels = model_channels * channel_mult_noise
        block_kwargs = dict(emb_channels=emb_channels, num_heads=1, skip_scale=math.sqrt(0.5), eps=1e-6,
                            resample_filter=resample_filter, resample_proj=True, adaptive_scale=False)

        # Mapping network: noise embedding (+ label, + augmentation) -> two SiLU layers.
        if embedding_type == "positional":
            self.map_noise = PositionalEmbedding(noise_channels, endpoint=True)
        else:
            self.map_noise = FourierEmbedding(noise_channels)
        self.map_label = Linear(label_dim, noise_channels) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_channels, bias=False) if augment_dim else None
        self.map_layer0 = Linear(noise_channels, emb_channels)
        self.map_layer1 = Linear(emb_channels, emb_channels)

        # Encoder. `enc_roles` lists (name, role) in execution order.
        self.enc = torch.nn.ModuleDict()
        self.enc_roles = []
        cout = in_channels
        caux = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels
                self._add(self.enc, self.enc_roles, f"{res}x{res}_conv", "conv", Conv2d(cin, cout, kernel=3))
            else:
                self._add(self.enc, self.enc_roles, f"{res}x{res}_down", "block",
                          UNetBlock(cout, cout, down=True, **block_kwargs))
                if encoder_type == "skip":
                    self._add(self.enc, self.enc_roles, f"{res}x{res}_aux_down", "aux_down",
                              Conv2d(caux, caux, kernel=0, down=True, resample_filter=resample_filter))
                    self._add(self.enc, self.enc_roles, f"{res}x{res}_aux_skip", "aux_skip",
                              Conv2d(caux, cout, kernel=1))
                if encoder_type == "residual":
                    self._add(self.enc, self.enc_roles, f"{res}x{res}_aux_residual", "aux_residual",
                              Conv2d(caux, cout, kernel=3, down=True, resample_filter=resample_filter,
                                     fused_resample=True))
                    caux = cout
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self._add(self.enc, self.enc_roles, f"{res}x{res}_block{idx}", "block",
                          UNetBlock(cin, cout, attention=(res in attn_resolutions), **block_kwargs))
        skips = [self.enc[name].out_channels for name, role in self.enc_roles if not role.startswith("aux")]

        # Decoder. Blocks whose input is wider than the running activation consume a skip.
        self.dec = torch.nn.ModuleDict()
        self.dec_roles = []
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self._add(self.dec, self.dec_roles, f"{res}x{res}_in0", "block",
                          UNetBlock(cout, cout, attention=True, **block_kwargs))
                self._add(self.dec, self.dec_roles, f"{res}x{res}_in1", "block",
                          UNetBlock(cout, cout, **block_kwargs))
            else:
                self._add(self.dec, self.dec_roles, f"{res}x{res}_up", "block",
                          UNetBlock(cout, cout, up=True, **block_kwargs))
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                attn = idx == num_blocks and res in attn_resolutions
                self._add(self.dec, self.dec_roles, f"{res}x{res}_block{idx}", "skip_block",
                          UNetBlock(cin, cout, attention=attn, **block_kwargs))
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < len(channel_mult) - 1:
                    self._add(self.dec, self.dec_roles, f"{res}x{res}_aux_up", "aux_up",
                              Conv2d(out_channels, out_channels, kernel=0, up=True, resample_filter=resample_filter))
                self._add(self.dec, self.dec_roles, f"{res}x{res}_aux_norm", "aux_norm", GroupNorm(cout, eps=1e-6))
                self._add(self.dec, self.dec_roles, f"{res}x{res}_aux_conv", "aux_conv",
                          Conv2d(cout, out_channels, kernel=3))

    @staticmethod
    def _add(modules, roles, name, role, module):
        modules[name] = module
        roles.append((name, role))

    def forward(self, x, noise_labels, class_labels, augment_labels=None):
        # Mapping. SongUNet swaps the two halves of the embedding: it feeds [sin, cos].
        emb = self.map_noise(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)
        if self.map_label is not None:
            emb = emb + self.map_label(class_labels * math.sqrt(self.map_label.in_features))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = silu(self.map_layer0(emb))
        emb = silu(self.map_layer1(emb))

        # Encoder.
        skips = []
        aux = x
        for name, role in self.enc_roles:
            module = self.enc[name]
            if role == "aux_down":
                aux = module(aux)
            elif role == "aux_skip":
                x = skips[-1] = x + module(aux)
            elif role == "aux_residual":
                x = skips[-1] = aux = (x + module(aux)) / math.sqrt(2)
            elif role == "conv":
                x = module(x)
                skips.append(x)
            else:
                x = module(x, emb)
                skips.append(x)

        # Decoder: the output is the sum of the aux_conv heads (one per level for 'skip').
        aux = None
        tmp = None
        for name, role in self.dec_roles:
            module = self.dec[name]
            if role == "aux_up":
                aux = module(aux)
            elif role == "aux_norm":
                tmp = module(x)
            elif role == "aux_conv":
                tmp = module(silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if role == "skip_block":
                    x = torch.cat([x, skips.pop()], dim=1)
                x = module(x, emb)
        return aux


class DhariwalUNet(torch.nn.Module):
    """ADM U-Net (EDM's `DhariwalUNet`), constructor arguments and defaults as in EDM."""

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0,
                 model_channels=192, channel_mult=(1, 2, 3, 4), channel_mult_emb=4, num_blocks=3,
                 attn_resolutions=(32, 16, 8), dropout=0.10, label_dropout=0):
        super().__init__()
        emb_channels = model_channels * channel_mult_emb
        block_kwargs = dict(emb_channels=emb_channels, channels_per_head=64)  # adaptive scale, eps 1e-5, [1,1]

        self.map_noise = PositionalEmbedding(model_channels)  # endpoint=False, no half swap
        self.map_augment = Linear(augment_dim, model_channels, bias=False) if augment_dim else None
        self.map_layer0 = Linear(model_channels, emb_channels)
        self.map_layer1 = Linear(emb_channels, emb_channels)
        self.map_label = Linear(label_dim, emb_channels, bias=False) if label_dim else None

        self.enc = torch.nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, kernel=3)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block_kwargs)
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=(res in attn_resolutions),
                                                                **block_kwargs)
        skips = [module.out_channels for module in self.enc.values()]

        self.dec = torch.nn.ModuleDict()
        self.dec_takes_skip = {}
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **block_kwargs)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **block_kwargs)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **block_kwargs)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=(res in attn_resolutions),
                                                                **block_kwargs)
                self.dec_takes_skip[f"{res}x{res}_block{idx}"] = True
        self.out_norm = GroupNorm(cout)
        self.out_conv = Conv2d(cout, out_channels, kernel=3)

    def forward(self, x, noise_labels, class_labels, augment_labels=None):
        emb = self.map_noise(noise_labels)
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = silu(self.map_layer0(emb))
        emb = self.map_layer1(emb)  # the label is added before the second SiLU, unscaled
        if self.map_label is not None:
            emb = emb + self.map_label(class_labels)
        emb = silu(emb)

        skips = []
        for module in self.enc.values():
            x = module(x, emb) if isinstance(module, UNetBlock) else module(x)
            skips.append(x)
        for name, module in self.dec.items():
            if self.dec_takes_skip.get(name, False):
                x = torch.cat([x, skips.pop()], dim=1)
            x = module(x, emb)
        return self.out_conv(silu(self.out_norm(x)))


MODEL_TYPES = {"SongUNet": SongUNet, "DhariwalUNet": DhariwalUNet}


# ---------------------------------------------------------------------------------------
# Preconditioning: D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)


class _Precond(torch.nn.Module):
    """Shared part of the preconditioners; subclasses define `coefficients(sigma)`."""

    default_model_type = "SongUNet"

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, model_type=None, **model_kwargs):
        super().__init__()
        model_type = model_type or self.default_model_type
        if model_type not in MODEL_TYPES:
            raise ValueError(f"unknown model_type {model_type!r}; supported: {sorted(MODEL_TYPES)}")
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        self.use_fp16 = use_fp16  # recorded only: this implementation always computes in float32
        self.model = MODEL_TYPES[model_type](img_resolution=img_resolution, in_channels=img_channels,
                                             out_channels=img_channels, label_dim=label_dim, **model_kwargs)

    def forward(self, x, sigma, class_labels=None):
        """Denoise x [N, C, H, W] at noise level sigma (scalar or [N]); returns float32."""
        x = x.to(torch.float32)
        sigma = torch.as_tensor(sigma, device=x.device).to(torch.float32).reshape(-1, 1, 1, 1)
        if self.label_dim == 0:
            class_labels = None
        elif class_labels is None:
            class_labels = torch.zeros([1, self.label_dim], device=x.device)
        else:
            class_labels = class_labels.to(torch.float32).reshape(-1, self.label_dim)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        F_x = self.model(c_in * x, c_noise.flatten(), class_labels=class_labels)
        return c_skip * x + c_out * F_x

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)


class VPPrecond(_Precond):
    """Variance-preserving preconditioning; c_noise = (M - 1) t(sigma)."""

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, beta_d=19.9, beta_min=0.1,
                 M=1000, epsilon_t=1e-5, model_type="SongUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.beta_d = beta_d
        self.beta_min = beta_min
        self.M = M
        self.epsilon_t = epsilon_t
        self.sigma_min = float(self.sigma(epsilon_t))  # evaluated in float32, as EDM does
        self.sigma_max = float(self.sigma(1))

    def sigma(self, t):
        t = torch.as_tensor(t)
        return ((0.5 * self.beta_d * (t ** 2) + self.beta_min * t).exp() - 1).sqrt()

    def sigma_inv(self, sigma):
        sigma = torch.as_tensor(sigma)
        return ((self.beta_min ** 2 + 2 * self.beta_d * (1 + sigma ** 2).log()).sqrt() - self.beta_min) / self.beta_d

    def coefficients(self, sigma):
        return 1, -sigma, 1 / (sigma ** 2 + 1).sqrt(), (self.M - 1) * self.sigma_inv(sigma)


class VEPrecond(_Precond):
    """Variance-exploding preconditioning; c_noise = ln(sigma / 2)."""

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, sigma_min=0.02, sigma_max=100,
                 model_type="SongUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max

    def coefficients(self, sigma):
        return 1, sigma, 1, (0.5 * sigma).log()


class EDMPrecond(_Precond):
    """EDM preconditioning (sigma_data scaling); c_noise = ln(sigma) / 4. Default model: DhariwalUNet."""

    default_model_type = "DhariwalUNet"

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, sigma_min=0, sigma_max=float("inf"),
                 sigma_data=0.5, model_type="DhariwalUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.sigma_data = sigma_data

    def coefficients(self, sigma):
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        return c_skip, c_out, c_in, sigma.log() / 4


PRECONDITIONERS = {"VPPrecond": VPPrecond, "VEPrecond": VEPrecond, "EDMPrecond": EDMPrecond}


# ---------------------------------------------------------------------------------------
# Files


def build_network(class_name: str, init_kwargs: dict) -> _Precond:
    """Construct a (randomly initialised) preconditioner from EDM's class name and init_kwargs."""
    if class_name not in PRECONDITIONERS:
        raise ValueError(f"unsupported class_name {class_name!r}; supported: {sorted(PRECONDITIONERS)}")
    return PRECONDITIONERS[class_name](**init_kwargs)


def read_metadata(path: str) -> dict:
    """The `__metadata__` of a safetensors file, with `edm` (and `class_names`) parsed from JSON."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - report any parse failure against the file
        raise EDMFileError(f"{path}: not a readable safetensors file ({e})") from e
    if meta.get("format") != FORMAT:
        raise EDMFileError(f"{path}: metadata 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
    if "edm" not in meta:
        raise EDMFileError(f"{path}: metadata has no 'edm' entry (class_name + init_kwargs)")
    try:
        edm = json.loads(meta["edm"])
    except json.JSONDecodeError as e:
        raise EDMFileError(f"{path}: metadata 'edm' is not valid JSON ({e})") from e
    if not isinstance(edm, dict) or "class_name" not in edm or not isinstance(edm.get("init_kwargs", {}), dict):
        raise EDMFileError(f"{path}: metadata 'edm' must be an object with 'class_name' and 'init_kwargs'")
    meta["edm"] = edm
    if "class_names" in meta:
        try:
            meta["class_names"] = json.loads(meta["class_names"])
        except json.JSONDecodeError as e:
            raise EDMFileError(f"{path}: metadata 'class_names' is not valid JSON ({e})") from e
    return meta


def load_edm(path: str, device: str | torch.device = "cpu") -> _Precond:
    """Build the network described by an `edm-diffusion/1` file and load its tensors (strictly).

    Every tensor of the file must be used and every parameter/buffer of the network must be
    present. Stored resample filters must equal the ones derived from the configuration.
    Weights of any floating dtype (F32, F16, BF16) are converted to float32.
    """
    from safetensors import safe_open

    meta = read_metadata(path)
    edm = meta["edm"]
    try:
        net = build_network(edm["class_name"], dict(edm.get("init_kwargs", {})))
    except (TypeError, ValueError) as e:
        raise EDMFileError(f"{path}: cannot build {edm['class_name']} from its init_kwargs: {e}") from e

    with safe_open(path, framework="pt") as f:
        stored = {name: f.get_tensor(name) for name in f.keys()}
    expected = net.state_dict()
    missing = sorted(set(expected) - set(stored))
    unused = sorted(set(stored) - set(expected))
    if missing or unused:
        raise EDMFileError(f"{path}: tensors do not match the network described by its metadata; "
                           f"missing {missing[:8]}{'...' if len(missing) > 8 else ''} ({len(missing)}), "
                           f"unused {unused[:8]}{'...' if len(unused) > 8 else ''} ({len(unused)})")
    state = {}
    for name, ref in expected.items():
        t = stored[name]
        if not t.is_floating_point():
            raise EDMFileError(f"{path}: tensor {name} has non-float dtype {t.dtype}")
        if tuple(t.shape) != tuple(ref.shape):
            raise EDMFileError(f"{path}: tensor {name} has shape {list(t.shape)}, expected {list(ref.shape)}")
        t = t.to(torch.float32)
        if name.endswith("resample_filter") and not torch.allclose(t, ref, rtol=0, atol=1e-3):
            raise EDMFileError(f"{path}: tensor {name} differs from the filter given by 'resample_filter'")
        state[name] = t
    net.load_state_dict(state, strict=True)
    net.class_names = meta.get("class_names")
    return net.eval().requires_grad_(False).to(device)


# ---------------------------------------------------------------------------------------
# Sampler


def sigma_steps(net, num_steps=18, sigma_min=0.002, sigma_max=80, rho=7) -> torch.Tensor:
    """EDM's noise levels t_0 > ... > t_{N-1} > t_N = 0 (float64), clipped to the network's range."""
    sigma_min = max(sigma_min, net.sigma_min)
    sigma_max = min(sigma_max, net.sigma_max)
    i = torch.arange(num_steps, dtype=torch.float64)
    # num_steps = 1 gives the single level sigma_max (EDM itself would divide by zero).
    frac = i / (num_steps - 1) if num_steps > 1 else i
    t = (sigma_max ** (1 / rho) + frac * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([net.round_sigma(t), torch.zeros(1, dtype=torch.float64)])


def edm_sampler(net, latents, class_labels=None, num_steps=18, sigma_min=0.002, sigma_max=80, rho=7):
    """EDM's deterministic 2nd-order Heun sampler (Algorithm 2 with S_churn = 0).

    latents ~ N(0, I) of shape [N, C, H, W]; class_labels [N, label_dim] (may be mixed,
    real-valued vectors). Returns float64 images in [-1, 1] (unclipped). Uses
    2 * num_steps - 1 network evaluations: the last step (to sigma = 0) is a plain Euler step.
    """
    t_steps = sigma_steps(net, num_steps, sigma_min, sigma_max, rho).to(latents.device)
    x_next = latents.to(torch.float64) * t_steps[0]
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        x_cur = x_next
        denoised = net(x_cur, t_cur, class_labels).to(torch.float64)
        d_cur = (x_cur - denoised) / t_cur
        x_next = x_cur + (t_next - t_cur) * d_cur
        if i < num_steps - 1:
            denoised = net(x_next, t_next, class_labels).to(torch.float64)
            d_prime = (x_next - denoised) / t_next
            x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def dpm_solver_2m(net, latents, class_labels=None, num_steps=12, sigma_min=0.002, sigma_max=80, rho=7):
    """DPM-Solver++(2M) (Lu et al. 2022) on EDM's schedule, in the log-SNR time
    t = -log(sigma): one network evaluation per noise level, a first-order (data
    prediction) step first and last, otherwise the previous denoised output extrapolated
    linearly in t. Returns float64 images (unclipped) after num_steps evaluations.
    """
    t_steps = sigma_steps(net, num_steps, sigma_min, sigma_max, rho).to(latents.device)
    x = latents.to(torch.float64) * t_steps[0]
    old_denoised = None
    for i in range(num_steps):
        sigma, sigma_next = t_steps[i], t_steps[i + 1]
        denoised = net(x, sigma, class_labels).to(torch.float64)
        if sigma_next == 0:
            x = denoised
            break
        t, t_next = -torch.log(sigma), -torch.log(sigma_next)
        h = t_next - t
        if old_denoised is None:
            estimate = denoised
        else:
            r = (t - (-torch.log(t_steps[i - 1]))) / h
            estimate = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = torch.exp(-h) * x - torch.expm1(-h) * estimate
        old_denoised = denoised
    return x
