"""A tiny Lumina-Image 2.0 denoiser and pipeline, built offline with the stock classes (random weights, seeded):
the real block layout (two refiner stacks sharing one count, the main stack, RMSNorms after each branch,
grouped-query attention) at tiny widths, and the pipeline as it ships (Gemma-2 behind the system prompt,
flow-matching Euler with shift 6, an 8x VAE with 16x16 patches) at 64x64 images."""

import torch
from diffusers import Lumina2Transformer2DModel

BATCH, TEXT_TOKENS, TEXT_DIM = 2, 5, 16


def tiny_lumina2(sample_size: int = 8):
    model = Lumina2Transformer2DModel(
        sample_size=sample_size,
        patch_size=2,
        in_channels=4,
        hidden_size=32,
        num_layers=3,
        num_refiner_layers=2,
        num_attention_heads=4,
        num_kv_heads=2,
        multiple_of=16,
        axes_dim_rope=(4, 2, 2),
        axes_lens=(300, 16, 16),
        cap_feat_dim=TEXT_DIM,
    )

    def inputs(generator):
        return dict(
            hidden_states=torch.randn(BATCH, 4, 8, 8, generator=generator),
            timestep=torch.tensor([0.1, 0.7]),  # Lumina's time: 0 is noise, 1 the image
            encoder_hidden_states=torch.randn(BATCH, TEXT_TOKENS, TEXT_DIM, generator=generator),
            # prompts of different lengths, padded: the joint blocks then run with an attention mask
            encoder_attention_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
        )

    return model, inputs


def tiny_lumina2_pipeline():
    """Lumina-Image 2.0 as it ships: Gemma-2 (its second-to-last hidden states, prompts padded to 256 tokens
    behind the system prompt), FlowMatchEulerDiscreteScheduler with shift 6, the FLUX VAE's scaling and shift,
    at tiny widths. The tokenizer is the tests' tiny CLIP one: the pipeline only needs ids and a mask."""
    from diffusers import FlowMatchEulerDiscreteScheduler, Lumina2Pipeline
    from tiny_models import tiny_tokenizer, tiny_vae
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    gemma = Gemma2Model(
        Gemma2Config(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_DIM,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=512,
            attn_implementation="eager",
        )
    ).eval()
    transformer, _ = tiny_lumina2()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=6.0, use_dynamic_shifting=False)
    return Lumina2Pipeline(
        transformer=transformer.eval(),
        scheduler=scheduler,
        vae=tiny_vae(levels=4, scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=gemma,
        tokenizer=tokenizer,
    )
