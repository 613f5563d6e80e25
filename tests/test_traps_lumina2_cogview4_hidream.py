"""Traps of single families: places where a naive cut, gate or denoiser call loads and runs but is wrong, each
shown wrong here next to diffprune's exact handling. One section per family."""

import copy
import dataclasses

import torch
from tiny_transformers import model_and_inputs
from torch import nn

from diffprune.families import family_of
from diffprune.structure.gates import gated, removal_values
from diffprune.structure.hooks import watch
from diffprune.structure.removal import RESIDUAL_BLOCK
from diffprune.structure.surgery import remove_units
from diffprune.structure.transformer_depth import bypassed
from diffprune.structure.units import find_units, is_depth_unit


def _output(model, inputs):
    with torch.no_grad():
        return model(**inputs).sample


# -- Lumina 2 ---------------------------------------------------------------------------------------------------


def test_lumina2_branches_are_gated_after_their_rmsnorms_where_a_half_gate_shows():
    from tiny_lumina2 import tiny_lumina2

    model, inputs = model_and_inputs(tiny_lumina2)
    units = {u.name: u for u in find_units(model, inputs)}
    attention, feed_forward = units["layers.1.attn"], units["layers.1.feed_forward"]
    assert (attention.gate_at, feed_forward.gate_at) == ("layers.1.norm2", "layers.1.ffn_norm2")
    original = _output(model, inputs)
    for unit in (attention, feed_forward):
        with torch.no_grad(), gated(model, [unit], torch.tensor([0.5])):
            half = model(**inputs).sample
        change = (half - original).abs().max()
        assert change > 0.05  # the gate after the norm acts for 0 < g < 1
        # A gate on the branch itself all but vanishes: the RMSNorm after it undoes the scale (its eps leaves a
        # trace only because these tiny random branches' outputs are small).
        on_branch = dataclasses.replace(unit, gate_at=None)
        with torch.no_grad(), gated(model, [on_branch], torch.tensor([0.5])):
            assert (model(**inputs).sample - original).abs().max() < 0.01 * change
    # Removing the branches is the gate at 0 (the norm of zeros is zeros).
    names = [attention.name, feed_forward.name, "context_refiner.0.attn", "noise_refiner.1.feed_forward"]
    units_list = list(units.values())
    with torch.no_grad(), gated(model, units_list, removal_values(units_list, names)):
        expected = model(**inputs).sample
    torch.testing.assert_close(_output(remove_units(model, names, units_list), inputs), expected, rtol=0, atol=0)


def test_lumina2_refiners_share_a_count_so_their_blocks_are_cut_in_place():
    from diffusers import Lumina2Transformer2DModel
    from tiny_lumina2 import tiny_lumina2

    model, inputs = model_and_inputs(tiny_lumina2)
    units = find_units(model, inputs)
    refiners = [u for u in units if u.kind == "refiner_block"]
    assert [u.name for u in refiners] == [f"{s}.{i}" for s in ("context_refiner", "noise_refiner") for i in (0, 1)]
    assert not any(is_depth_unit(u) for u in refiners)
    assert [u.name for u in units if is_depth_unit(u)] == ["layers.0", "layers.1", "layers.2"]
    with torch.no_grad(), bypassed(model, ["noise_refiner.0"]):
        expected = model(**inputs).sample
    cut = remove_units(model, ["noise_refiner.0"], units)
    torch.testing.assert_close(_output(cut, inputs), expected, rtol=0, atol=1e-6)
    assert cut.config.num_refiner_layers == 2 and type(cut).__name__ == "PrunedLumina2Transformer2DModel"
    # The naive depth cut lowers the shared count: the stock class then also loses a context-refiner block.
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    naive = Lumina2Transformer2DModel(**{**config, "num_refiner_layers": 1}).eval()
    state = {
        k: v for k, v in model.state_dict().items() if not k.startswith(("noise_refiner.0.", "context_refiner.1."))
    }
    state = {k.replace("noise_refiner.1.", "noise_refiner.0."): v for k, v in state.items()}
    naive.load_state_dict(state)
    assert not torch.allclose(_output(naive, inputs), expected, atol=1e-4)


def test_lumina2_prediction_is_the_velocity_at_lumina_time():
    from tiny_lumina2 import tiny_lumina2

    model, inputs = model_and_inputs(tiny_lumina2)
    family = family_of(model)

    class Pipeline:  # what predict reads off the pipeline: its scheduler's training length
        scheduler = type("Scheduler", (), {"config": type("Config", (), {"num_train_timesteps": 1000})()})()

    sigma = torch.tensor([0.9, 0.3])
    conditioning = {k: inputs[k] for k in ("encoder_hidden_states", "encoder_attention_mask")}
    with torch.no_grad():
        prediction = family.predict(Pipeline, model, inputs["hidden_states"], sigma * 1000, conditioning)
        raw = model(hidden_states=inputs["hidden_states"], timestep=1 - sigma, **conditioning).sample
    torch.testing.assert_close(prediction, -raw, rtol=0, atol=0)


# -- CogView4 ---------------------------------------------------------------------------------------------------


def _block_streams(model, inputs, block="transformer_blocks.1"):
    """(image, text) that `block` returns in one forward."""
    seen = []
    with torch.no_grad(), watch(model, {block: None}, lambda _, call: seen.append(call.output)):
        model(**inputs)
    return seen[0]


def test_cogview4_one_feed_forward_serves_both_streams_and_its_gate_and_cut_act_on_both_calls():
    from tiny_cogview4 import tiny_cogview4

    model, inputs = model_and_inputs(tiny_cogview4)
    units = find_units(model, inputs)
    name = "transformer_blocks.1.ff"
    assert {u.name: u.kind for u in units}[name] == "feed_forward"
    calls = []
    with torch.no_grad(), watch(model, {name: None}, lambda _, call: calls.append(call.inputs[0].shape[1])):
        model(**inputs)
    assert calls == [16, 16]  # image tokens (4x4 patches), then the 16 text tokens
    image, text = _block_streams(model, inputs)
    with torch.no_grad(), gated(model, units, removal_values(units, {name})):
        gated_image, gated_text = _block_streams(model, inputs)
    # Both streams lose the feed-forward: a gate on the first call only would leave the text stream as it was.
    assert not torch.allclose(gated_image, image, atol=1e-4) and not torch.allclose(gated_text, text, atol=1e-4)
    cut_image, cut_text = _block_streams(remove_units(model, [name], units), inputs)
    torch.testing.assert_close((cut_image, cut_text), (gated_image, gated_text), rtol=0, atol=0)
    with torch.no_grad(), gated(model, units, 0.5 + 0.5 * removal_values(units, {name})):
        half_image, half_text = _block_streams(model, inputs)
    torch.testing.assert_close(half_text - text, 0.5 * (gated_text - text), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(half_image - image, 0.5 * (gated_image - image), rtol=1e-4, atol=1e-5)


def test_cogview4_conditioning_of_prompts_of_different_lengths_stacks_in_any_order():
    from tiny_cogview4 import tiny_cogview4_pipeline

    from diffprune.models.adapters import CalibrationSettings, adapter_for

    pipeline = tiny_cogview4_pipeline()
    prompts = ["a", "bbbbbbbbbb ccccccccc dddddddd"]  # padded to 16 and to 32 tokens when encoded alone
    alone = [pipeline.encode_prompt([p], do_classifier_free_guidance=False)[0].shape[1] for p in prompts]
    assert alone[0] != alone[1]
    adapter = adapter_for(pipeline, CalibrationSettings(num_samples=2, prompts=prompts, show_progress=False))
    first, second, both = adapter.conditioning([0]), adapter.conditioning([1]), adapter.conditioning([0, 1])
    with torch.no_grad():
        together = pipeline.encode_prompt(prompts, do_classifier_free_guidance=False)[0]
    torch.testing.assert_close(both["encoder_hidden_states"], together, rtol=0, atol=0)
    torch.testing.assert_close(first["encoder_hidden_states"][0], together[0], rtol=0, atol=0)
    torch.testing.assert_close(second["encoder_hidden_states"][0], together[1], rtol=0, atol=0)


# -- HiDream ----------------------------------------------------------------------------------------------------


def _hidream():
    from tiny_hidream import tiny_hidream

    return model_and_inputs(tiny_hidream)


def _naive_depth_cut(model, removed):
    """What a cut that only drops blocks and lowers the counts makes: runs, with every other per-block state as
    it was."""
    naive = copy.deepcopy(model)
    counts = {"double_stream_blocks": "num_layers", "single_stream_blocks": "num_single_layers"}
    for attribute, indices in removed.items():
        blocks = getattr(naive, attribute)
        setattr(naive, attribute, nn.ModuleList(b for i, b in enumerate(blocks) if i not in indices))
        naive.register_to_config(**{counts[attribute]: len(blocks) - len(indices)})
    return naive


def test_hidream_depth_cut_drops_the_blocks_projections_and_llama_layers_where_a_naive_cut_is_wrong():
    model, inputs = _hidream()
    units = find_units(model, inputs)
    names = ["double_stream_blocks.0", "single_stream_blocks.1"]  # blocks 0 and 3 counted over both stacks
    with torch.no_grad(), bypassed(model, names):
        expected = model(**inputs).sample
    naive = _naive_depth_cut(model, {"double_stream_blocks": [0], "single_stream_blocks": [1]})
    assert not torch.allclose(_output(naive, inputs), expected, atol=1e-4)  # runs, but reads the wrong text
    cut = remove_units(model, names, units)
    assert type(cut) is type(model)
    torch.testing.assert_close(_output(cut, inputs), expected, rtol=0, atol=1e-6)
    assert cut.config.llama_layers == [model.config.llama_layers[i] for i in (1, 2, 4)]
    kept = [model.caption_projection[i] for i in (1, 2, 4, 5)]  # block 1's, 2's, 4's, then T5's
    assert all(torch.equal(a.linear.weight, b.linear.weight) for a, b in zip(cut.caption_projection, kept, strict=True))


def test_hidream_last_block_stays_because_its_llama_states_start_every_double_blocks_text():
    model, inputs = _hidream()
    last = "single_stream_blocks.2"
    assert family_of(model).fixed_blocks(model) == {last}
    assert last not in {u.name for u in find_units(model, inputs)}
    with torch.no_grad(), watch(model, {last: RESIDUAL_BLOCK}, lambda _, call: call.rebuild(call.inputs)):
        bypass = model(**inputs).sample
    # Dropping it with its projection and Llama layer (as for any other block) changes the double blocks' text.
    naive = _naive_depth_cut(model, {"single_stream_blocks": [2]})
    naive.caption_projection = nn.ModuleList(p for i, p in enumerate(naive.caption_projection) if i != 4)
    naive.register_to_config(llama_layers=model.config.llama_layers[:4])
    assert not torch.allclose(_output(naive, inputs), bypass, atol=1e-4)


def test_hidream_joint_attention_called_positionally_is_removed_on_both_streams():
    model, inputs = _hidream()
    units = find_units(model, inputs)
    name = "double_stream_blocks.1.block.attn1"  # called as attn1(image, masks, text, image_rotary_emb=...)
    assert {u.name: u.kind for u in units}[name] == "joint_attention"
    with torch.no_grad(), gated(model, units, removal_values(units, {name})):
        expected = model(**inputs).sample
    cut = remove_units(model, [name], units)
    torch.testing.assert_close(_output(cut, inputs), expected, rtol=0, atol=0)


def _hidream_conditioning(inputs):
    return {
        "encoder_hidden_states_t5": inputs["encoder_hidden_states_t5"],
        "encoder_hidden_states_llama3": inputs["encoder_hidden_states_llama3"].transpose(0, 1),  # batch first
        "pooled_embeds": inputs["pooled_embeds"],
    }


def test_hidream_losses_reach_the_routed_experts_and_a_training_model_predicts_in_the_latents_layout():
    model, inputs = _hidream()
    family = family_of(model)
    noisy, timesteps = inputs["hidden_states"], inputs["timesteps"]
    conditioning = _hidream_conditioning(inputs)
    expert = model.double_stream_blocks[0].block.ff_i.experts
    # The stock eval path computes the routed experts under no_grad: no gradient reaches them.
    model.zero_grad()
    model(**inputs).sample.square().mean().backward()
    assert all(p.grad is None for p in expert.parameters())
    with torch.no_grad():
        reference = family.predict(None, model, noisy, timesteps, conditioning)
    torch.testing.assert_close(reference, -model(**inputs).sample.detach(), rtol=0, atol=0)
    prediction = family.predict(None, model, noisy, timesteps, conditioning)
    torch.testing.assert_close(prediction.detach(), reference, rtol=1e-4, atol=1e-5)  # the same mixture
    prediction.square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in expert.parameters())
    assert not any(m.training for m in model.modules())  # the modes come back
    model.train()
    with torch.no_grad():
        training = family.predict(None, model, noisy, timesteps, conditioning)
    assert training.shape == noisy.shape
    torch.testing.assert_close(training, reference, rtol=1e-4, atol=1e-5)
    # Built with force_inference_output, the experts run without gradients even in training mode.
    config = {key: value for key, value in model.config.items() if not key.startswith("_")}
    forced = type(model)(**{**config, "force_inference_output": True})
    forced.load_state_dict(model.state_dict())
    forced.train()
    prediction = family.predict(None, forced, noisy, timesteps, conditioning)
    torch.testing.assert_close(prediction.detach(), reference, rtol=1e-4, atol=1e-5)
    prediction.square().mean().backward()
    assert any(p.grad is not None for p in forced.double_stream_blocks[0].block.ff_i.experts.parameters())
    assert all(m._force_inference_output for m in forced.modules() if hasattr(m, "_force_inference_output"))
