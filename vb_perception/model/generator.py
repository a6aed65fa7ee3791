"""The generator: one prompt-driven image-to-image diffusion model (diffusers ``UNet2DConditionModel``).

Marigold-style, the camera image is concatenated to the noisy target; the prompt's tokens
(:mod:`.conditioning`) enter by cross-attention and its task code through the timestep embedding. The UNet predicts
the clean target (``prediction_type="sample"``), so one step from pure noise already gives an answer (Lotus /
E2E-FT style) and more DDIM steps, or several seeds, give refinements and spread (uncertainty); the sampler is
shared with the latent model (:mod:`.base`).

Checkpoints are a folder: ``config.json`` (architecture and defaults, stored with the weights) and
``model.safetensors`` (fp16). Never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from vb_perception.errors import VbPerceptionError
from vb_perception.model.base import Generator
from vb_perception.model.conditioning import (
    CAMERA_DIM,
    ROLE_BACKGROUND,
    ROLE_INSTANCE,
    ROLE_TARGET,
    TASK_CODES,
    ConditionEncoder,
    PromptTokens,
    batch_tokens,
    camera_features,
)
from vb_perception.model.text import TextEncoder

SEMANTIC_CODE, REFERRING_CODE = TASK_CODES.index("semantic"), TASK_CODES.index("referring")
INSTANCES_CODE = TASK_CODES.index("instances")
DEPTH_CODE = TASK_CODES.index("depth/hilbert")

__all__ = ["GeneratorConfig", "ModelError", "VBGenerator"]

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
FORMAT_VERSION = 1


class ModelError(VbPerceptionError):
    """A model folder is missing, incomplete, of another format, or holds weights that do not fit."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture and inference defaults; saved as ``config.json`` next to the weights."""

    resolution_px: int = 64  # processing size of the short image side (a multiple of 8)
    block_out_channels: tuple[int, ...] = (32, 64, 128, 192)
    down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D")
    layers_per_block: int = 1
    #: diffusers' ``attention_head_dim`` argument, which (a naming quirk diffusers keeps) it reads as the *number of
    #: heads* in every attention block: 32 gives heads of 3 to 8 channels at our widths. Used unless
    #: ``attention_head_channels`` is set.
    attention_head_dim: int = 32
    #: 0, or the channels of one attention head: each block then gets ``channels // attention_head_channels`` heads
    #: (32: 3, 5 and 8 heads at 96, 160 and 256 channels), about 10 % less training time than 32 heads of 3-8.
    attention_head_channels: int = 0
    cond_dim: int = 256
    norm_num_groups: int = 16
    num_train_timesteps: int = 1000
    #: 0, or 6: the background and first requested colour as constant input planes next to image and noise, so
    #: every pixel sees the palette from the first layer (colours also reach the UNet as cross-attention tokens).
    palette_channels: int = 0
    #: 1, or 2: the UNet runs at half resolution on pixel-unshuffled input (4x the channels) and pixel-shuffles its
    #: output back: about 3x fewer FLOPs at the same output size (DepthToSpace / SpaceToDepth in ONNX and TensorRT).
    space_to_depth: int = 1
    #: 0, or the width of per-pixel palette features. For semantic and referring prompts the predicted target is a
    #: softmax mixture of the *requested* colours (background + one per class); for instance-segmentation prompts,
    #: of the background and the fixed instance slot colours. Logits = pixel features . projected prompt tokens, so
    #: the colours come out exact wherever the model is sure; depth and normals use the free RGB output. Trained
    #: with cross-entropy and Dice on the logits next to the decoded-value losses (instances: after slot matching).
    palette_head_dim: int = 0
    #: The depth path head: one more output channel, a correction ``c``. For depth prompts in the paper's encoding
    #: the output is drawn exactly on the cube walk at the curved value ``f = decode(free RGB) + c``. Grown onto a
    #: checkpoint with zero weights, it starts as the same model; the decoded-value loss then reaches every depth
    #: directly instead of only along the edge nearest to the predicted colour, and no colour between two edges is
    #: left to the decoder's projection.
    depth_head: bool = False
    #: The camera's focal length (in units of the image's short side, when the caller knows it: camera_info) enters
    #: the timestep embedding through diffusers' ``time_cond_proj_dim`` projection, like the task code; unknown
    #: cameras get a learned vector of their own. Grown onto a checkpoint with a zero projection (the same model).
    focal_conditioning: bool = False
    #: 0, or the width of the full-resolution refinement: three 3x3 convolutions on the camera image next to the
    #: UNet's (pixel-shuffled) output, added back to that output. A space-to-depth UNet sees the image at 1/4
    #: resolution, and its outputs come out soft at object edges; the refinement puts the image's own edges next
    #: to them at full resolution. Its last convolution starts at zero, so it is grown onto a checkpoint as the
    #: same model (``with_refine``).
    refine_channels: int = 0
    default_steps: int = 1
    model_version: str = "untrained"
    format_version: int = FORMAT_VERSION
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"config.json has unknown fields {unknown}; this vb_perception is too old for the model")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


def attention_heads(config: GeneratorConfig) -> int | tuple[int, ...]:
    """The heads per attention block, as diffusers' ``attention_head_dim`` argument takes them."""
    hc = config.attention_head_channels
    if not hc:
        return config.attention_head_dim
    bad = [c for c in config.block_out_channels if c % hc]
    if hc < 0 or bad:
        raise ModelError(
            f"attention_head_channels {hc} does not divide the block widths {bad}; use a divisor of every entry of "
            f"block_out_channels {list(config.block_out_channels)}, or 0"
        )
    return tuple(c // hc for c in config.block_out_channels)


def palette_planes(colors: torch.Tensor, roles: torch.Tensor, size: Any) -> torch.Tensor:
    """``[B, 6, H, W]`` in [-1, 1]: the background colour and the first requested colour of each prompt, constant
    over the image (zeros for prompts without them: depth, normals; instances have only a background)."""

    def first(role: int) -> torch.Tensor:
        hit = (roles == role).to(colors.dtype)  # [B, L]
        idx = hit.argmax(dim=1)  # first token with that role (0 when none: masked out below)
        picked = torch.gather(colors, 1, idx[:, None, None].expand(-1, 1, 3))[:, 0]  # [B, 3] in [0, 1]
        return (picked * 2.0 - 1.0) * hit.amax(dim=1, keepdim=True)

    vec = torch.cat([first(ROLE_BACKGROUND), first(ROLE_TARGET)], dim=1)  # [B, 6]
    return vec[:, :, None, None].expand(-1, -1, int(size[0]), int(size[1]))


class VBGenerator(Generator):
    """Pixel-space UNet + condition encoder. ``forward`` predicts clean RGB targets in [-1, 1]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        from diffusers import UNet2DConditionModel
        from diffusers.models.attention_processor import AttnProcessor

        self.config = config
        #: training only (``train.depth_soft_gradient``): the depth path head's projection of its free RGB onto the
        #: walk passes a soft gradient (``torch_ops.rgb_to_curve``); outputs are the same either way
        self.depth_soft_gradient = 0.0
        s2 = config.space_to_depth**2
        if config.space_to_depth not in (1, 2, 4):
            raise ModelError(f"space_to_depth must be 1, 2 or 4, not {config.space_to_depth}")
        self.unet = UNet2DConditionModel(
            sample_size=config.resolution_px // config.space_to_depth,
            in_channels=(6 + config.palette_channels) * s2,
            out_channels=(3 + config.palette_head_dim + int(config.depth_head)) * s2,
            layers_per_block=config.layers_per_block,
            block_out_channels=config.block_out_channels,
            down_block_types=config.down_block_types,
            up_block_types=config.up_block_types,
            cross_attention_dim=config.cond_dim,
            attention_head_dim=attention_heads(config),
            norm_num_groups=config.norm_num_groups,
            num_class_embeds=len(TASK_CODES),
            time_cond_proj_dim=CAMERA_DIM if config.focal_conditioning else None,
        )
        # The plain bmm attention: on CPU it trains faster than torch's flash-attention kernel (bench in README).
        self.unet.set_attn_processor(AttnProcessor())
        self.cond = ConditionEncoder(config.cond_dim)
        self.has_palette_head = bool(config.palette_head_dim)
        if self.has_palette_head:
            self.palette_key = torch.nn.Linear(config.cond_dim, config.palette_head_dim)
        if config.refine_channels:
            outputs, width = 3 + config.palette_head_dim + int(config.depth_head), config.refine_channels
            self.refine = torch.nn.Sequential(
                torch.nn.Conv2d(3 + outputs, width, 3, padding=1),
                torch.nn.SiLU(),
                torch.nn.Conv2d(width, width, 3, padding=1),
                torch.nn.SiLU(),
                torch.nn.Conv2d(width, outputs, 3, padding=1),
            )
            torch.nn.init.zeros_(self.refine[-1].weight)  # starts as the model without it
            torch.nn.init.zeros_(self.refine[-1].bias)

    @property
    def size_multiple(self) -> int:
        return max(8, 2 ** (len(self.unet.config.block_out_channels) - 1) * self.config.space_to_depth)

    @property
    def cond_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return Generator.cond_names + (("camera",) if self.config.focal_conditioning else ())

    def forward(
        self,
        image: torch.Tensor,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        cond: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        aux: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``image``, ``noisy``: ``[B, 3, H, W]`` in [-1, 1]; ``timesteps [B]``; ``cond`` from :func:`batch_tokens`.
        ``aux``, when given, receives the palette head's ``logits [B, L, H, W]``, ``valid [B, L]`` (background,
        class and instance-slot tokens), ``is_class [B, L]`` (class and slot tokens), ``uses_palette [B]`` and
        ``is_instances [B]`` (for its training losses). ``cond`` of a ``focal_conditioning`` model ends with the
        camera features (:func:`~.conditioning.camera_features`); without them the camera counts as unknown."""
        emb, colors, roles, task, mask = cond[:5]
        camera = None
        if self.config.focal_conditioning:
            camera = cond[5] if len(cond) > 5 else camera_features([None] * emb.shape[0], emb.device)
        tokens = self.cond(emb, colors, roles, task)
        planes = [noisy, image]
        if self.config.palette_channels:
            planes.append(palette_planes(colors, roles, image.shape[-2:]))
        x = torch.cat(planes, dim=1)  # [B, 6 (+ 6), H, W]
        s = self.config.space_to_depth
        if s > 1:
            x = torch.nn.functional.pixel_unshuffle(x, s)
        out = self.unet(
            x,
            timesteps,
            encoder_hidden_states=tokens,
            class_labels=task,
            encoder_attention_mask=mask,
            timestep_cond=camera,
        ).sample
        if s > 1:
            out = torch.nn.functional.pixel_shuffle(out, s)
        if self.config.refine_channels:
            out = out + self.refine(torch.cat([out, image], dim=1))
        heads = 3 + self.config.palette_head_dim
        if self.config.palette_head_dim:
            result = self._palette_mix(out[:, :heads], tokens[:, 1:], colors, roles, task, aux)
        else:
            result = out[:, :3]
        if not self.config.depth_head:
            return result
        return self._depth_path(out[:, :3], out[:, heads], result, task, aux)

    def _depth_path(
        self,
        free: torch.Tensor,
        correction: torch.Tensor,
        mixed: torch.Tensor,
        task: torch.Tensor,
        aux: dict[str, torch.Tensor] | None,
    ) -> torch.Tensor:
        from vb_perception.codecs import torch_ops

        free01 = (free.clamp(-1.0, 1.0) + 1.0) * 0.5
        soft = self.depth_soft_gradient if self.training else 0.0
        f = (torch_ops.rgb_to_curve(free01, channel_dim=1, soft_gradient=soft) + correction).clamp(0.0, 1.0)
        on_path = torch_ops.curve_to_rgb(f, channel_dim=1) * 2.0 - 1.0
        is_depth = task == DEPTH_CODE
        if aux is not None:
            aux.update(depth_curve=f, is_depth=is_depth, depth_free=free)
        d = is_depth.to(free.dtype)[:, None, None, None]
        return d * on_path + (1.0 - d) * mixed

    def _palette_mix(
        self,
        out: torch.Tensor,
        tokens: torch.Tensor,
        colors: torch.Tensor,
        roles: torch.Tensor,
        task: torch.Tensor,
        aux: dict[str, torch.Tensor] | None,
    ) -> torch.Tensor:
        free, feat = out[:, :3], out[:, 3:]
        keys = self.palette_key(tokens)  # [B, L, D]
        logits = torch.einsum("bdhw,bld->blhw", feat, keys) * (feat.shape[1] ** -0.5)
        is_class = (roles == ROLE_TARGET) | (roles == ROLE_INSTANCE)
        valid = (roles == ROLE_BACKGROUND) | is_class  # [B, L]
        logits = logits.masked_fill(~valid[:, :, None, None], -1e4)
        mix = torch.einsum("blhw,blc->bchw", logits.softmax(dim=1), colors * 2.0 - 1.0)
        instances = task == INSTANCES_CODE
        uses = (task == SEMANTIC_CODE) | (task == REFERRING_CODE) | instances  # [B]
        if aux is not None:
            aux.update(logits=logits, valid=valid, is_class=is_class, uses_palette=uses, is_instances=instances)
        u = uses.to(out.dtype)[:, None, None, None]
        return u * mix + (1.0 - u) * free

    def conditioning(
        self, items: list[PromptTokens], text: TextEncoder, min_length: int = 0
    ) -> tuple[torch.Tensor, ...]:
        return batch_tokens(items, text, self.device, camera=self.config.focal_conditioning, min_length=min_length)

    def with_palette_channels(self, channels: int) -> VBGenerator:
        """A copy with ``channels`` palette input planes; new input weights start at zero, so it computes exactly
        what this model computes until training uses them (how an existing checkpoint gains the planes)."""
        from dataclasses import replace

        if channels < self.config.palette_channels:
            raise ModelError(f"cannot drop palette channels ({self.config.palette_channels} -> {channels})")
        return self._grown(replace(self.config, palette_channels=channels), {"unet.conv_in.weight": 1})

    def with_depth_head(self) -> VBGenerator:
        """A copy with the depth path head. Its correction channel's weights start at zero, so the copy decodes to
        the same depths as this model until trained; only its depth colours are snapped onto the walk."""
        from dataclasses import replace

        if self.config.depth_head:
            return self
        # zero output rows for the new channel's sub-pixels
        return self._grown(replace(self.config, depth_head=True), {"unet.conv_out.weight": 0, "unet.conv_out.bias": 0})

    def with_focal_conditioning(self) -> VBGenerator:
        """A copy that takes the camera's focal length. Its projection starts at zero, so the copy computes exactly
        what this model computes, for known and unknown cameras alike, until trained."""
        from dataclasses import replace

        if self.config.focal_conditioning:
            return self
        return self._grown(replace(self.config, focal_conditioning=True), {})

    def with_refine(self, channels: int) -> VBGenerator:
        """A copy with the full-resolution refinement of width ``channels``. Its first two convolutions start at
        their random initialisation and its last at zero (all-zero layers would get no gradient: the SiLU of zero is
        zero), so the copy computes exactly what this model computes until trained."""
        from dataclasses import replace

        if self.config.refine_channels == channels:
            return self
        if self.config.refine_channels:
            raise ModelError(f"the model already has a refinement of width {self.config.refine_channels}")
        return self._grown(replace(self.config, refine_channels=channels), {}, fresh=("refine.",))

    def with_attention_head_channels(self, channels: int) -> VBGenerator:
        """A copy whose attention blocks split their channels into heads of ``channels`` (0: diffusers'
        ``attention_head_dim`` heads). Same weights, but not the same function: attention then mixes other channel
        groups, so the copy needs training before it matches this model."""
        from dataclasses import replace

        if self.config.attention_head_channels == channels:
            return self
        return self._grown(replace(self.config, attention_head_channels=channels), {})

    def _grown(self, config: GeneratorConfig, axes: dict[str, int], fresh: tuple[str, ...] = ()) -> VBGenerator:
        """A model of ``config`` with this model's weights; the weights named in ``axes`` are larger there and are
        zero-padded at the end of their axis, and weights it lacks start at zero (how a checkpoint gains inputs or
        outputs without changing), except those under the ``fresh`` prefixes, which keep their initialisation."""
        new = VBGenerator(config).to(self.device)
        state, shapes = self.state_dict(), new.state_dict()
        state.update(
            {k: v if k.startswith(fresh) else torch.zeros_like(v) for k, v in shapes.items() if k not in state}
        )
        for name, axis in axes.items():
            grown = torch.zeros_like(shapes[name])
            grown.narrow(axis, 0, state[name].shape[axis]).copy_(state[name])
            state[name] = grown
        new.load_state_dict(state)
        return new

    # ------------------------------------------------------------------------------------------ persistence

    def save_pretrained(self, folder: str | Path, dtype: torch.dtype = torch.float16) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (``dtype``, fp16 by default) into ``folder``."""
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "vb_perception", "version": str(FORMAT_VERSION)})
        (out / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        return out

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> VBGenerator:
        """Load a model folder (safetensors only). Raises :class:`ModelError` with what is wrong and what to do."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        root = Path(folder)
        if not (root / CONFIG_NAME).is_file() or not (root / WEIGHTS_NAME).is_file():
            raise ModelError(
                f"{root}: not a vb_perception model folder (needs {CONFIG_NAME} and {WEIGHTS_NAME}); "
                "pass the folder written by `vb-perception tune` or the bundled models/vb-mini"
            )
        try:
            config = GeneratorConfig.from_dict(json.loads((root / CONFIG_NAME).read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ModelError(f"{root / CONFIG_NAME}: unreadable config ({exc})") from exc
        if config.format_version != FORMAT_VERSION:
            raise ModelError(f"{root}: model format {config.format_version}, this code reads {FORMAT_VERSION}")
        model = cls(config)
        try:
            state = load_file(str(root / WEIGHTS_NAME))
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{root / WEIGHTS_NAME}: not a readable safetensors file ({exc})") from exc
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        bad = sorted(k for k in set(expected) & set(state) if state[k].shape != expected[k].shape)
        if missing or unexpected or bad:
            raise ModelError(
                f"{root}: weights do not fit the config ({len(missing)} missing, {len(unexpected)} unexpected, "
                f"{len(bad)} of another shape, e.g. {(missing + unexpected + bad)[:3]}); the folder mixes two models"
            )
        model.load_state_dict({k: v.float() for k, v in state.items()})
        return model.to(device).eval()
