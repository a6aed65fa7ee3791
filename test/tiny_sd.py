"""A tiny randomly initialised Stable-Diffusion-family checkpoint folder, built in a test (no downloads).

Same layout and classes as a real one (diffusers UNet2DConditionModel + AutoencoderKL, transformers CLIPTextModel
and a tokenizer), a few thousand parameters each, safetensors weights.
"""

from __future__ import annotations

from pathlib import Path

WORDS = "generate a metric depth map of this image estimate the surface normals segment in red each is colored".split()


def make_tiny_sd(root: Path) -> Path:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    ).save_pretrained(root / "unet", safe_serialization=True)
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=32,
    ).save_pretrained(root / "vae", safe_serialization=True)
    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2} | {w: i + 3 for i, w in enumerate(dict.fromkeys(WORDS))}
    CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=2,
        )
    ).save_pretrained(root / "text_encoder")
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]", model_max_length=16
    ).save_pretrained(root / "tokenizer")
    return root
