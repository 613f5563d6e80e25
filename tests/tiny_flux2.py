"""Tiny FLUX.2: the denoiser with the real layout (double-stream blocks, single-stream parallel blocks, model-level
modulation, 4-axis RoPE, guidance embedding) at tiny widths, and Flux2KleinPipeline built offline as it ships
(Qwen3 with a Qwen2 tokenizer and chat template, hidden states of layers 9, 18 and 27 stacked, the FLUX.2
autoencoder with its batch-norm latent statistics, flow-matching Euler), shrunk to 16x16 images."""

import torch
from diffusers import Flux2Transformer2DModel

BATCH, TEXT_TOKENS, TEXT_DIM = 2, 5, 24
GRID = 4  # 4x4 latent tokens

# Qwen3's chat template, abridged to what Flux2KleinPipeline renders: user turns, the generation prompt, and the
# empty thinking block that `enable_thinking=False` adds.
QWEN3_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def tiny_flux2_transformer(num_layers: int = 3, num_single_layers: int = 4, guidance_embeds: bool = True):
    return Flux2Transformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        timestep_guidance_channels=16,
        axes_dims_rope=(2, 2, 2, 2),
        guidance_embeds=guidance_embeds,
    )


def tiny_flux2():
    """The denoiser and the inputs Flux2Pipeline hands it: latent tokens with (time, row, column, layer) ids, text
    states with (0, 0, 0, position) ids, timestep = sigma, the embedded guidance scale."""
    model = tiny_flux2_transformer()

    def inputs(generator):
        rows, cols = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
        zeros = torch.zeros(GRID * GRID, dtype=torch.long)
        text_zeros = torch.zeros(TEXT_TOKENS, dtype=torch.long)
        return dict(
            hidden_states=torch.randn(BATCH, GRID * GRID, 16, generator=generator),
            encoder_hidden_states=torch.randn(BATCH, TEXT_TOKENS, TEXT_DIM, generator=generator),
            timestep=torch.tensor([0.1, 0.7]),
            img_ids=torch.stack([zeros, rows.flatten(), cols.flatten(), zeros], dim=1),
            txt_ids=torch.stack([text_zeros, text_zeros, text_zeros, torch.arange(TEXT_TOKENS)], dim=1),
            guidance=torch.tensor([4.0, 4.0]),
        )

    return model, inputs


def tiny_flux2_vae():
    from diffusers import AutoencoderKLFlux2

    return AutoencoderKLFlux2(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    ).eval()


def tiny_flux2_klein_pipeline():
    """FLUX.2 [klein] base (not step-distilled: classifier-free guidance as a second call with an empty prompt;
    no guidance embedding)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline
    from tiny_qwenimage import tiny_qwen2_tokenizer
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    tokenizer = tiny_qwen2_tokenizer(words=["user", "assistant"], chat_template=QWEN3_CHAT_TEMPLATE)
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_DIM // 3,
            intermediate_size=16,
            num_hidden_layers=27,  # the pipeline stacks the hidden states of layers 9, 18 and 27
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=4,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipeline = Flux2KleinPipeline(
        scheduler=scheduler,
        vae=tiny_flux2_vae(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=tiny_flux2_transformer(num_layers=2, num_single_layers=3, guidance_embeds=False).eval(),
        is_distilled=False,
    )
    pipeline.default_sample_size = 8  # 16x16 images: 8x8 latents, 4x4 patchified tokens
    return pipeline
