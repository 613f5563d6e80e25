"""Tiny Chroma: the denoiser with the real layout (double- and single-stream stacks, the approximator that makes
every block's modulation from its slot) at tiny widths, and ChromaPipeline built offline as it ships (T5 with its
tokenizer and mask, FLUX's autoencoder scaling, flow-matching Euler with dynamic shifting), shrunk to 16x16 images."""

import torch
from diffusers import ChromaTransformer2DModel

TEXT_DIM = 16
TEXT_TOKENS = 6
BATCH = 2
GRID = 4  # 4x4 packed latent tokens


def tiny_chroma_transformer(num_layers: int = 3, num_single_layers: int = 4):
    return ChromaTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        axes_dims_rope=(2, 2, 4),
        approximator_num_channels=16,
        approximator_hidden_dim=32,
        approximator_layers=2,
    )


def chroma_mask(text_lengths, image_tokens: int) -> torch.Tensor:
    """ChromaPipeline's attention mask: each prompt's tokens and its first padding token, then every image token."""
    text = torch.stack([(torch.arange(TEXT_TOKENS) <= length).float() for length in text_lengths])
    return torch.cat([text, torch.ones(len(text_lengths), image_tokens)], dim=1)


def tiny_chroma():
    """The denoiser and the inputs ChromaPipeline hands it: packed 2x2 latents, T5 states with the extended mask,
    timestep = sigma, position ids of the grid and zero text ids."""
    model = tiny_chroma_transformer()
    rows, cols = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
    image_ids = torch.stack([torch.zeros(GRID * GRID), rows.flatten(), cols.flatten()], dim=1)

    def inputs(generator):
        return dict(
            hidden_states=torch.randn(BATCH, GRID * GRID, 16, generator=generator),
            encoder_hidden_states=torch.randn(BATCH, TEXT_TOKENS, TEXT_DIM, generator=generator),
            timestep=torch.tensor([0.1, 0.7]),
            img_ids=image_ids,
            txt_ids=torch.zeros(TEXT_TOKENS, 3),
            attention_mask=chroma_mask([5, 3], GRID * GRID),
        )

    return model, inputs


def tiny_t5_tokenizer():
    """A T5 (unigram) tokenizer built in memory (transformers 5: vocab=[(piece, score)]): letters, digits, and
    word-initial letters and digits."""
    from transformers import T5Tokenizer

    characters = "abcdefghijklmnopqrstuvwxyz0123456789"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in characters + ",."] + [("\u2581" + c, -2.5) for c in characters]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def tiny_chroma_pipeline():
    from diffusers import ChromaPipeline, FlowMatchEulerDiscreteScheduler
    from tiny_models import tiny_vae
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tokenizer = tiny_t5_tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(  # FLUX.1's, which Chroma (a FLUX.1-schnell derivative) keeps
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipeline = ChromaPipeline(
        scheduler=scheduler,
        vae=tiny_vae(scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=tiny_chroma_transformer(num_layers=2, num_single_layers=3).eval(),
    )
    pipeline.default_sample_size = 8  # 16x16 images: 8x8 latents, 4x4 packed tokens
    return pipeline
