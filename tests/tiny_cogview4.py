"""A tiny CogView4 denoiser and pipeline, built offline with the stock classes (random weights, seeded): the real
block layout (two-stream blocks called positionally, a joint attention returning both streams, one feed-forward
shared by both streams, SDXL-style size conditions) at tiny widths, and the pipeline as it ships (GLM-4's
second-to-last hidden states, prompts left-padded to a multiple of 16 tokens; flow-matching Euler with
CogView4's linear dynamic shift; an 8x VAE) at 64x64 images."""

import torch
from diffusers import CogView4Transformer2DModel

BATCH, TEXT_TOKENS, TEXT_DIM = 2, 16, 16


def tiny_cogview4(sample_size: int = 8):
    model = CogView4Transformer2DModel(
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=4,
        attention_head_dim=8,
        num_attention_heads=2,
        text_embed_dim=TEXT_DIM,
        time_embed_dim=16,
        condition_dim=8,
        pos_embed_max_size=16,
        sample_size=sample_size,
        rope_axes_dim=(16, 16),
    )

    def inputs(generator):
        size = torch.tensor([[64.0, 64.0], [64.0, 64.0]])
        return dict(
            hidden_states=torch.randn(BATCH, 4, 8, 8, generator=generator),
            encoder_hidden_states=torch.randn(BATCH, TEXT_TOKENS, TEXT_DIM, generator=generator),
            timestep=torch.tensor([100.0, 700.0]),
            original_size=size,
            target_size=size.clone(),
            crop_coords=torch.zeros(BATCH, 2),
        )

    return model, inputs


def tiny_cogview4_pipeline():
    """CogView4-6B as it ships: a GLM-4 text encoder (GlmModel), FlowMatchEulerDiscreteScheduler with dynamic
    shifting of the linear kind (base_shift 0.25, max_shift 0.75), an 8x VAE, at tiny widths. The tokenizer is
    the tests' tiny CLIP one: the pipeline only needs ids and a pad token."""
    from diffusers import CogView4Pipeline, FlowMatchEulerDiscreteScheduler
    from tiny_models import tiny_tokenizer, tiny_vae
    from transformers import GlmConfig, GlmModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    glm = GlmModel(
        GlmConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_DIM,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=128,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    transformer, _ = tiny_cogview4()
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.25,
        max_shift=0.75,
        base_image_seq_len=256,
        time_shift_type="linear",
    )
    return CogView4Pipeline(
        tokenizer=tokenizer,
        text_encoder=glm,
        vae=tiny_vae(levels=4),
        transformer=transformer.eval(),
        scheduler=scheduler,
    )
