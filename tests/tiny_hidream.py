"""A tiny HiDream-I1 denoiser and pipeline, built offline with the stock classes (random weights, seeded): the
real block layout (wrapped double- and single-stream blocks, mixture-of-experts feed-forwards, one text
projection per block plus T5's, a Llama layer per block, T5 and Llama widths equal as in HiDream-I1) at tiny
widths, and the pipeline as it ships with its four text encoders (CLIP-L and CLIP-G with projections, T5,
Llama-3.1 as a causal LM with every hidden layer), UniPC over flow sigmas with flow_shift 3 (HiDream-I1-Full),
an 8x VAE with the FLUX VAE's scaling, at 64x64 images."""

import torch
from diffusers import HiDreamImageTransformer2DModel

BATCH, TEXT_TOKENS, TEXT_DIM, POOLED_DIM, LLAMA_LAYERS = 2, 6, 16, 8, 3
# One Llama layer per block (2 double + 3 single), each different from its neighbours', as HiDream-I1's
# `llama_layers` lists one layer per block.
BLOCK_LLAMA_LAYERS = [0, 2, 1, 0, 2]


def tiny_hidream():
    model = HiDreamImageTransformer2DModel(
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        num_single_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        caption_channels=[TEXT_DIM, TEXT_DIM],  # [T5, Llama]: both 4096 in HiDream-I1
        text_emb_dim=POOLED_DIM,
        num_routed_experts=4,
        num_activated_experts=2,
        axes_dims_rope=(4, 2, 2),
        max_resolution=(8, 8),
        llama_layers=BLOCK_LLAMA_LAYERS,
    )

    def inputs(generator):
        return dict(
            hidden_states=torch.randn(BATCH, 4, 8, 8, generator=generator),
            timesteps=torch.tensor([100.0, 700.0]),
            encoder_hidden_states_t5=torch.randn(BATCH, TEXT_TOKENS, TEXT_DIM, generator=generator),
            encoder_hidden_states_llama3=torch.randn(LLAMA_LAYERS, BATCH, TEXT_TOKENS, TEXT_DIM, generator=generator),
            pooled_embeds=torch.randn(BATCH, POOLED_DIM, generator=generator),
        )

    return model, inputs


def tiny_hidream_pipeline():
    """HiDream-I1-Full as it ships: CLIP-L and CLIP-G (CLIPTextModelWithProjection, pooled and projected, 128
    positions), T5 (T5EncoderModel), Llama-3.1 (LlamaForCausalLM, every hidden layer; the pipeline pads with its
    end-of-text token), UniPCMultistepScheduler over flow sigmas (flow_shift 3), the FLUX VAE's scaling and
    shift, all at tiny widths. The tokenizers are the tests' tiny CLIP one (the pipeline only needs ids, a mask
    and the tokenizers' lengths: 128 for T5 and Llama, as the real ones give with the call's
    max_sequence_length)."""
    from diffusers import HiDreamImagePipeline, UniPCMultistepScheduler
    from tiny_models import tiny_clip_text_config, tiny_tokenizer, tiny_vae
    from tiny_transformers import _tiny_t5
    from transformers import CLIPTextModelWithProjection, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)

    def tokenizer(length: int = 12):
        built = tiny_tokenizer()
        built.model_max_length = length
        return built

    def clip():
        config = tiny_clip_text_config(
            tokenizer(), 8, intermediate_size=16, projection_dim=POOLED_DIM // 2, max_position_embeddings=128
        )
        return CLIPTextModelWithProjection(config).eval()

    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer()),
            hidden_size=TEXT_DIM,
            intermediate_size=32,
            num_hidden_layers=LLAMA_LAYERS,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=128,
            attn_implementation="eager",  # the pipeline asks for attentions
        )
    ).eval()
    transformer, _ = tiny_hidream()
    scheduler = UniPCMultistepScheduler(
        num_train_timesteps=1000, flow_shift=3.0, prediction_type="flow_prediction", use_flow_sigmas=True
    )
    pipeline = HiDreamImagePipeline(
        scheduler=scheduler,
        vae=tiny_vae(levels=4, scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=clip(),
        tokenizer=tokenizer(),
        text_encoder_2=clip(),
        tokenizer_2=tokenizer(),
        text_encoder_3=_tiny_t5(len(tokenizer())),
        tokenizer_3=tokenizer(128),
        text_encoder_4=llama,
        tokenizer_4=tokenizer(128),
        transformer=transformer.eval(),
    )
    pipeline.default_sample_size = 8  # 64x64 images: 8x8 latents, 4x4 patches
    return pipeline
