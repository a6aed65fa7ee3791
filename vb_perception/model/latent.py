"""Bring your own base: instruction-tune a pretrained Stable-Diffusion-family text-to-image model.

``tune`` / ``distill`` with ``base: PATH`` (a local diffusers checkpoint folder with ``unet/``, ``vae/``,
``text_encoder/`` (CLIP) and ``tokenizer/``, safetensors weights) build a :class:`LatentGenerator`:

* the frozen VAE encodes the camera image and the target visualisation to latents; the UNet sees both, its first
  convolution widened from 4 to 8 input channels (the new half a copy of the old weights, both halves halved, as
  Marigold does, so the pretrained features survive);
* the prompt enters by cross-attention over the frozen CLIP's hidden states, followed by the same structured tokens
  as the bundled model (parsed colours as exact RGB Fourier features, roles, task code), whose output layer starts
  at zero so the pretrained UNet is undisturbed at step 0;
* the UNet predicts the clean target latent; the VAE decodes it to the RGB visualisation, which the codecs decode.

Saved as a folder: ``config.json`` (``"kind": "latent"``), ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``
and ``adapter.safetensors``. Loading never unpickles and never goes online.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from vb_perception.model.base import Generator
from vb_perception.model.conditioning import ConditionEncoder, PromptTokens, batch_tokens
from vb_perception.model.generator import CONFIG_NAME, FORMAT_VERSION, ModelError

__all__ = ["LATENT_KIND", "ClipText", "LatentConfig", "LatentGenerator"]

LATENT_KIND = "latent"
ADAPTER_NAME = "adapter.safetensors"
_PARTS = ("unet", "vae", "text_encoder", "tokenizer")


@dataclass(frozen=True)
class LatentConfig:
    """Inference settings of a latent model; the architecture lives in the diffusers / transformers sub-folders."""

    kind: str = LATENT_KIND
    resolution_px: int = 512  # processing size of the short image side (a multiple of 8 x the VAE factor)
    default_steps: int = 1
    num_train_timesteps: int = 1000
    base: str = ""  # the checkpoint it was tuned from (provenance only)
    model_version: str = "untrained"
    format_version: int = FORMAT_VERSION
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatentConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelError(f"config.json has unknown fields {unknown}; this vb_perception is too old for the model")
        return cls(**data)


class ClipText:
    """The frozen CLIP text encoder: per-prompt hidden states (cross-attention) and pooled vectors (tokens), cached."""

    def __init__(self, tokenizer: Any, model: Any, cache_size: int = 4096) -> None:
        self.tokenizer, self.model = tokenizer, model
        self.dim = int(model.config.hidden_size)
        self.max_length = int(min(tokenizer.model_max_length, model.config.max_position_embeddings))
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._cache_size = cache_size

    @torch.no_grad()
    def _lookup(self, texts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            device = next(self.model.parameters()).device
            batch = self.tokenizer(
                missing, padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
            )
            out = self.model(input_ids=batch["input_ids"].to(device))
            for text, hidden, pooled in zip(missing, out.last_hidden_state, out.pooler_output):
                self._cache[text] = (hidden, pooled)
        rows = []
        for t in texts:
            self._cache.move_to_end(t)
            rows.append(self._cache[t])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return rows

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Pooled vectors ``[N, dim]`` (the per-class / per-expression tokens)."""
        rows = self._lookup(list(texts))
        return torch.stack([r[1] for r in rows]) if rows else torch.zeros(0, self.dim)

    def hidden(self, texts: list[str]) -> torch.Tensor:
        """Hidden states ``[N, max_length, dim]`` (the whole prompt, for cross-attention)."""
        return torch.stack([r[0] for r in self._lookup(list(texts))])


def _quiet() -> None:
    """Library progress bars and cast warnings would drown our own progress output."""
    from diffusers.utils import logging as dl
    from transformers.utils import logging as tl

    for lib in (dl, tl):
        lib.set_verbosity_error()
        lib.disable_progress_bar()


def _load_parts(root: Path, what: str) -> tuple[Any, Any, Any, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    _quiet()
    absent = [p for p in _PARTS if not (root / p).is_dir()]
    if absent:
        raise ModelError(
            f"{root}: not a {what} (missing {', '.join(p + '/' for p in absent)}); expected a local diffusers "
            "checkpoint folder of a Stable-Diffusion-family model (unet/, vae/, text_encoder/, tokenizer/)"
        )
    try:
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", use_safetensors=True, local_files_only=True)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", use_safetensors=True, local_files_only=True)
        text = CLIPTextModel.from_pretrained(root / "text_encoder", use_safetensors=True, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{root}: could not load the {what} ({exc}); weights must be safetensors (convert .bin / .ckpt files "
            "with diffusers first: pickled weights are never loaded)"
        ) from exc
    return unet.float(), vae.float(), text.float(), tokenizer


class LatentGenerator(Generator):
    """A pretrained latent text-to-image UNet turned into a prompt-driven image-to-image generator."""

    uses_minilm = False
    cond_names = ("hidden", "text_emb", "colors", "roles", "task", "mask")
    denoises_latents = True
    clip_sample = False
    frozen_prefixes = ("vae.", "text_encoder.")

    def __init__(self, config: LatentConfig, unet: Any, vae: Any, text_encoder: Any, tokenizer: Any) -> None:
        super().__init__()
        if unet.config.in_channels != 2 * vae.config.latent_channels:
            raise ModelError(
                f"UNet takes {unet.config.in_channels} channels, expected {2 * vae.config.latent_channels} "
                "(target + image latents); build it with LatentGenerator.from_base"
            )
        self.config = config
        self.unet = unet
        self.vae = vae.requires_grad_(False).eval()
        self.text_encoder = text_encoder.requires_grad_(False).eval()
        self.tokenizer = tokenizer
        self.cond = ConditionEncoder(unet.config.cross_attention_dim, text_dim=text_encoder.config.hidden_size)
        self.clip = ClipText(tokenizer, self.text_encoder)
        self.latent_channels = int(vae.config.latent_channels)
        self.scaling = float(vae.config.scaling_factor)
        self.vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        return self.vae_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def train(self, mode: bool = True) -> LatentGenerator:
        super().train(mode)
        self.vae.eval()
        self.text_encoder.eval()
        return self

    # -------------------------------------------------------------------------------- construction

    @classmethod
    def from_base(cls, base: str | Path, config: LatentConfig | None = None) -> LatentGenerator:
        """Build from a text-to-image checkpoint folder: widen ``conv_in`` (4 -> 8 channels) Marigold-style."""
        root = Path(base)
        unet, vae, text, tokenizer = _load_parts(root, "base checkpoint")
        latent = vae.config.latent_channels
        if unet.config.in_channels != latent or unet.config.out_channels != latent:
            raise ModelError(
                f"{root}: the UNet maps {unet.config.in_channels} -> {unet.config.out_channels} channels but the VAE "
                f"has {latent} latent channels; pass a text-to-image base (not an inpainting or image-variation one)"
            )
        old = unet.conv_in
        new = torch.nn.Conv2d(2 * latent, old.out_channels, old.kernel_size, old.stride, old.padding)
        with torch.no_grad():
            new.weight.copy_(torch.cat([old.weight, old.weight], dim=1) * 0.5)
            new.bias.copy_(old.bias)
        unet.conv_in = new
        unet.register_to_config(in_channels=2 * latent)
        cfg = config or LatentConfig()
        model = cls(cfg if cfg.base else _replace(cfg, base=str(root)), unet, vae, text, tokenizer)
        with torch.no_grad():  # structured tokens start silent: the pretrained UNet sees only CLIP at step 0
            last = model.cond.out[-1]
            last.weight.zero_()
            last.bias.zero_()
        return model

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> LatentGenerator:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        root = Path(folder)
        try:
            config = LatentConfig.from_dict(json.loads((root / CONFIG_NAME).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ModelError(f"{root / CONFIG_NAME}: unreadable latent-model config ({exc})") from exc
        if config.format_version != FORMAT_VERSION:
            raise ModelError(f"{root}: model format {config.format_version}, this code reads {FORMAT_VERSION}")
        model = cls(config, *_load_parts(root, "latent vb_perception model"))
        try:
            state = load_file(str(root / ADAPTER_NAME))
            model.cond.load_state_dict({k: v.float() for k, v in state.items()})
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise ModelError(f"{root / ADAPTER_NAME}: missing or does not fit the model ({exc})") from exc
        return model.to(device).eval()

    def save_pretrained(self, folder: str | Path, dtype: torch.dtype = torch.float16) -> Path:
        """The UNet and adapter in ``dtype`` (fp16 by default); VAE and CLIP in fp32 (the SD VAE overflows in fp16)."""
        from safetensors.torch import save_file

        _quiet()
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        copy.deepcopy(self.unet).to("cpu", dtype).save_pretrained(out / "unet", safe_serialization=True)
        copy.deepcopy(self.vae).to("cpu").save_pretrained(out / "vae", safe_serialization=True)
        copy.deepcopy(self.text_encoder).to("cpu").save_pretrained(out / "text_encoder")
        self.tokenizer.save_pretrained(out / "tokenizer")
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.cond.state_dict().items()}
        save_file(state, str(out / ADAPTER_NAME), metadata={"format": "vb_perception", "version": str(FORMAT_VERSION)})
        (out / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        return out

    # -------------------------------------------------------------------------------- spaces

    def _encode(self, rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.vae.encode(rgb).latent_dist.mode() * self.scaling

    def prepare_image(self, image: torch.Tensor) -> torch.Tensor:
        return self._encode(image)

    def to_target_space(self, rgb: torch.Tensor) -> torch.Tensor:
        return self._encode(rgb)

    def from_target_space(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(x / self.scaling).sample

    def target_shape(self, prepared_image: torch.Tensor) -> tuple[int, ...]:
        return tuple(prepared_image.shape)

    # -------------------------------------------------------------------------------- network

    def conditioning(
        self, items: list[PromptTokens], text: Any = None, min_length: int = 0
    ) -> tuple[torch.Tensor, ...]:
        """CLIP hidden states of each prompt, then the structured tokens (``text`` is unused: CLIP is built in)."""
        hidden = self.clip.hidden([it.texts[0] for it in items]).to(self.device)
        return (hidden, *batch_tokens(items, self.clip, self.device, min_length=min_length))

    def forward(
        self,
        image: torch.Tensor,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        cond: tuple[torch.Tensor, ...],
        aux: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``image``: prepared image latents; ``noisy``: target latents; returns the clean target latents. ``aux`` is
        left empty: this model has no palette head."""
        hidden, emb, colors, roles, task, mask = cond
        tokens = torch.cat([hidden, self.cond(emb, colors, roles, task).to(hidden.dtype)], dim=1)
        full_mask = torch.cat([torch.ones(hidden.shape[:2], dtype=mask.dtype, device=mask.device), mask], dim=1)
        x = torch.cat([noisy, image], dim=1)
        return self.unet(x, timesteps, encoder_hidden_states=tokens, encoder_attention_mask=full_mask).sample


def _replace(cfg: LatentConfig, **changes: Any) -> LatentConfig:
    from dataclasses import replace

    return replace(cfg, **changes)
