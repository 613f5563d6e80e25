"""Tiny Qwen-Image: the denoiser with the real block layout at tiny widths, and QwenImagePipeline built offline as
it ships (Qwen2.5-VL text encoder with a byte-level Qwen2 tokenizer, the 3D-causal Qwen-Image VAE, Qwen-Image's
flow-matching scheduler config), shrunk to 16x16 images."""

import torch
from diffusers import QwenImageTransformer2DModel

TEXT_DIM = 16
BATCH = 2


def tiny_qwenimage_transformer(zero_cond_t: bool = False):
    return QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        axes_dims_rope=(2, 2, 4),
        zero_cond_t=zero_cond_t,
    )


def tiny_qwenimage(zero_cond_t: bool = False):
    """The denoiser and the inputs QwenImagePipeline hands it: packed 2x2 latents of a 4x4 token grid, prompt
    states of two lengths with their padding mask, timestep = sigma, img_shapes."""
    model = tiny_qwenimage_transformer(zero_cond_t)

    def inputs(generator):
        mask = torch.ones(BATCH, 6, dtype=torch.long)
        mask[1, 4:] = 0  # the second prompt is shorter: padded, as the pipeline pads a batch to its longest
        return dict(
            hidden_states=torch.randn(BATCH, 16, 16, generator=generator),
            encoder_hidden_states=torch.randn(BATCH, 6, TEXT_DIM, generator=generator) * mask[..., None],
            encoder_hidden_states_mask=mask,
            timestep=torch.tensor([0.1, 0.7]),
            img_shapes=[[(1, 4, 4)]] * BATCH,
        )

    return model, inputs


# Qwen-Image's system prompt, word by word: the tokenizer merges each into one token, so the prefix the pipeline
# drops (`prompt_template_encode_start_idx`, 34 tokens) is exactly the system prompt, as with the real vocabulary.
QWEN_TEMPLATE_WORDS = ["system", "user", "assistant", "Describe"] + [
    " " + word
    for word in (
        "the image by detailing color shape size texture quantity text spatial relationships of objects and background"
    ).split()
]
QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_qwen2_tokenizer(words=QWEN_TEMPLATE_WORDS, chat_template: str | None = None):
    """A byte-level Qwen2 tokenizer built in memory (transformers 5: vocab=dict, merges=list): every byte, each of
    `words` as one token (merged left to right), and Qwen's chat special tokens."""
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_chars = bytes_to_unicode()
    vocab = {char: index for index, char in enumerate(byte_chars.values())}
    merges = []
    for word in words:
        symbols = [byte_chars[byte] for byte in word.encode()]
        merged = symbols[0]
        for symbol in symbols[1:]:
            if merged + symbol not in vocab:
                merges.append((merged, symbol))
                vocab[merged + symbol] = len(vocab)
            merged += symbol
    for token in QWEN_SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, model_max_length=131072)
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS[1:]})
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def qwenimage_scheduler():
    """Qwen-Image's scheduler config (exponential dynamic shifting, terminal shift 0.02)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=0.9,
        base_image_seq_len=256,
        max_image_seq_len=8192,
        shift_terminal=0.02,
        time_shift_type="exponential",
    )


def tiny_qwenimage_pipeline():
    from diffusers import AutoencoderKLQwenImage, QwenImagePipeline
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    tokenizer = tiny_qwen2_tokenizer()
    special = dict(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": TEXT_DIM,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            **special,
        },
        vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    vae = AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 2],
        num_res_blocks=1,
        temperal_downsample=[False],
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    ).eval()
    pipeline = QwenImagePipeline(
        scheduler=qwenimage_scheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=tiny_qwenimage_transformer().eval(),
    )
    pipeline.default_sample_size = 8  # 16x16 images: 8x8 latents, 4x4 packed tokens
    return pipeline
