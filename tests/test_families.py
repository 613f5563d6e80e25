"""The family contract, for every registered diffusion-transformer family (diffprune/families, fixtures in
tiny_families.py): units are the blocks of the declared stacks and the branches inside them; a cut of whole blocks
equals the original with those blocks bypassed, and one of blocks and branches equals the gated model with
those gates at 0; costs fall; saved cuts reload without diffprune (depth cuts with the stock class, in-place cuts
with the folder's own code) to the same output; a bf16 model is cut in bf16; and the adapter calls the
denoiser exactly as the family's pipelines do."""

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from tiny_families import FAMILY_FIXTURES
from tiny_transformers import model_and_inputs

from diffprune.families import DEPTH, all_families, family_of
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.models.generation import final_latents
from diffprune.structure.costs import count_macs, count_parameters, pipeline_cost_inputs
from diffprune.structure.gates import gated, removal_values
from diffprune.structure.removal import RESIDUAL_BRANCH, TWO_STREAM_BRANCH
from diffprune.structure.surgery import remove_units
from diffprune.structure.transformer_depth import bypassed, depth_units, removable_blocks
from diffprune.structure.units import find_units

FAMILIES = sorted(FAMILY_FIXTURES)
PIPELINES = [(family, name) for family in FAMILIES for name in FAMILY_FIXTURES[family].pipelines]


def _sample(output):
    """The prediction as one tensor: Z-Image returns a list of per-sample predictions."""
    sample = output.sample
    return torch.stack(sample) if isinstance(sample, list) else sample


def _whole_blocks(units):
    return [u for u in units if u.gate_form not in (RESIDUAL_BRANCH, TWO_STREAM_BRANCH)]


def _every_other_block(units):
    """Every other removable block of each stack (a depth cut where the stack allows one)."""
    return [u.name for u in _whole_blocks(units)][::2]


def _blocks_and_branches(units):
    """The second removable block, and every other branch outside it: blocks before and after a removed one."""
    block = _whole_blocks(units)[1]
    branches = [u for u in units if u.gate_form in (RESIDUAL_BRANCH, TWO_STREAM_BRANCH)]
    return [block.name] + [u.name for u in branches[::2] if not block.contains(u)]


def test_every_registered_transformer_family_has_a_contract_fixture():
    registered = {family.name for family in all_families().values() if family.is_transformer}
    assert registered == set(FAMILY_FIXTURES)


@pytest.mark.parametrize("family", FAMILIES)
def test_units_are_the_removable_blocks_of_each_stack_and_the_branches_inside_blocks(family):
    model, inputs = model_and_inputs(FAMILY_FIXTURES[family].model)
    units = find_units(model, inputs)
    declared = family_of(model)
    fixed = declared.fixed_blocks(model)
    expected_blocks = [
        f"{stack.attribute}.{index}"
        for stack in declared.stacks
        if stack.cut is not None
        for index in range(len(getattr(model, stack.attribute)))
        if f"{stack.attribute}.{index}" not in fixed
    ]
    assert [u.name for u in _whole_blocks(units)] == expected_blocks
    assert {u.kind for u in units if u.name not in expected_blocks} == FAMILY_FIXTURES[family].branch_kinds
    assert all(u.params > 0 and u.macs > 0 for u in units)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_cut_of_whole_blocks_equals_bypassing_them(family):
    model, inputs = model_and_inputs(FAMILY_FIXTURES[family].model)
    units = find_units(model, inputs)
    names = _every_other_block(units)
    with torch.no_grad():
        original = _sample(model(**inputs))
        with bypassed(model, names):
            expected = _sample(model(**inputs))
        cut = remove_units(model, names, units)
        result = _sample(cut(**inputs))
    assert not torch.allclose(original, expected)  # the bypassed blocks did something
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-6)
    blocks = removable_blocks(model)
    if all(blocks[name].cut == DEPTH for name in names):  # a depth cut is the stock class with fewer blocks
        assert type(cut) is type(model)
    else:  # blocks addressed by position are replaced in place: the Pruned* class
        assert type(cut).__name__ == f"Pruned{type(model).__name__}"
    assert count_parameters(cut) < count_parameters(model) and count_macs(cut, inputs) < count_macs(model, inputs)
    torch.testing.assert_close(_sample(model(**inputs)), original, rtol=0, atol=0)  # the input is untouched


@pytest.mark.parametrize("family", FAMILIES)
def test_a_cut_of_blocks_and_branches_equals_gating_them_off(family):
    model, inputs = model_and_inputs(FAMILY_FIXTURES[family].model)
    units = find_units(model, inputs)
    names = _blocks_and_branches(units)
    with torch.no_grad():
        original = _sample(model(**inputs))
        with gated(model, units, removal_values(units, names)):
            expected = _sample(model(**inputs))
        cut = remove_units(model, names, units)
        result = _sample(cut(**inputs))
    assert not torch.allclose(original, expected)  # the removed units did something
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-6)
    assert type(cut).__name__ == f"Pruned{type(model).__name__}" and isinstance(cut, type(model))
    assert count_parameters(cut) < count_parameters(model) and count_macs(cut, inputs) < count_macs(model, inputs)
    # A depth-cut block went, so only the in-place units are recorded, by their paths after renumbering.
    in_place = [
        name for name in names if removable_blocks(model).get(name, None) is None or name not in depth_units(model)
    ]
    assert len(cut.config.removed_units) == len(in_place)
    replacements = ("ZeroBranch", "ZeroStreams", "Bypass", "TwoStreamBypass")
    assert all(type(cut.get_submodule(name)).__name__ in replacements for name in cut.config.removed_units)
    torch.testing.assert_close(_sample(model(**inputs)), original, rtol=0, atol=0)  # the input is untouched


@pytest.mark.parametrize("family", FAMILIES)
def test_a_bf16_model_is_cut_in_bf16_and_equals_its_gated_self(family):
    model, inputs = model_and_inputs(FAMILY_FIXTURES[family].model, dtype=torch.bfloat16)
    units = find_units(model, inputs)
    for names in (_every_other_block(units), _blocks_and_branches(units)):
        with torch.no_grad(), gated(model, units, removal_values(units, names)):
            expected = _sample(model(**inputs))
        cut = remove_units(model, names, units)
        assert {p.dtype for p in cut.parameters()} == {torch.bfloat16}
        with torch.no_grad():
            torch.testing.assert_close(_sample(cut(**inputs)), expected, rtol=0, atol=0)


# Runs in a fresh interpreter that cannot import diffprune: a depth cut loads with its stock class, an in-place
# cut only through the folder's own code (the stock class refuses it with loading instructions).
WITHOUT_DIFFPRUNE = """
import json, pickle, sys
sys.modules["diffprune"] = None
import diffusers, torch
from diffusers import AutoModel
from safetensors.torch import load_file

cases = json.loads(sys.argv[1])
for case in cases:
    stock = getattr(diffusers, case["stock_class"])
    if case["stock"]:
        model = stock.from_pretrained(case["folder"]).eval()
        assert type(model) is stock
    else:
        try:
            stock.from_pretrained(case["folder"])
            raise SystemExit("the stock class loaded an in-place cut")
        except ValueError as error:
            assert "trust_remote_code" in str(error), error
        model = AutoModel.from_pretrained(case["folder"], trust_remote_code=True).eval()
        code = type(model).__mro__[1].__module__  # the class's helpers come from the folder's diffprune.py
        assert code.startswith("diffusers_modules"), code
    tensors = load_file(case["tensors"])
    inputs = {key.removeprefix("input."): value for key, value in tensors.items() if key.startswith("input.")}
    with open(case["extra"], "rb") as file:  # non-tensor inputs as they were (tuples stay tuples)
        inputs.update(pickle.load(file))
    with torch.no_grad():
        output = model(**inputs).sample
        output = torch.stack(output) if isinstance(output, list) else output
    torch.testing.assert_close(output, tensors["expected"], rtol=0, atol=1e-6)
print("ok", len(cases))
"""


def test_saved_cuts_reload_without_diffprune_to_the_same_output(tmp_path):
    cases = []
    for family in FAMILIES:
        model, inputs = model_and_inputs(FAMILY_FIXTURES[family].model)
        units = find_units(model, inputs)
        selections = {"blocks": _every_other_block(units), "blocks-and-branches": _blocks_and_branches(units)}
        for selection, names in selections.items():
            cut = remove_units(model, names, units)
            stock = type(cut) is type(model)
            folder = tmp_path / f"{family}-{selection}"
            cut.save_pretrained(folder)
            if not stock:  # AutoModel finds the folder's own code
                assert json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"].startswith(
                    "diffprune."
                )
            with torch.no_grad():
                expected = _sample(cut(**inputs))
            if not stock:  # diffprune's own class reloads it too, without the folder's code
                with torch.no_grad():
                    reloaded = _sample(type(cut).from_pretrained(folder)(**inputs))
                torch.testing.assert_close(reloaded, expected, rtol=0, atol=0)
            tensors = {f"input.{k}": v.contiguous() for k, v in inputs.items() if torch.is_tensor(v)}
            save_file({**tensors, "expected": expected.contiguous()}, tmp_path / f"{folder.name}.safetensors")
            extra = tmp_path / f"{folder.name}.pickle"
            extra.write_bytes(pickle.dumps({k: v for k, v in inputs.items() if not torch.is_tensor(v)}))
            cases.append(
                {
                    "stock_class": type(model).__name__,
                    "stock": stock,
                    "folder": str(folder),
                    "tensors": str(tmp_path / f"{folder.name}.safetensors"),
                    "extra": str(extra),
                }
            )
    assert any(case["stock"] for case in cases) and not all(case["stock"] for case in cases)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_DIFFPRUNE, json.dumps(cases)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith(f"ok {len(cases)}")


def _first_denoiser_call(pipeline, fixture):
    """(main input, timestep, prediction) of the first denoiser call of the pipeline's own sampling loop."""
    calls = []
    hook = pipeline.transformer.register_forward_hook(
        lambda module, args, kwargs, output: calls.append((args, kwargs, output)), with_kwargs=True
    )
    generators = [torch.Generator().manual_seed(index) for index in range(len(fixture.prompts))]
    try:
        pipeline.set_progress_bar_config(disable=True)
        final_latents(pipeline, list(fixture.prompts), generators, 2, fixture.guidance_scale)
    finally:
        hook.remove()
    args, kwargs, output = calls[0]
    hidden_states = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
    timestep = kwargs.get("timestep", kwargs.get("timesteps", args[1] if len(args) > 1 else None))  # HiDream: timesteps
    prediction = output[0] if isinstance(output, tuple) else output.sample
    return hidden_states, timestep, prediction


@pytest.mark.parametrize(("family", "pipeline_name"), PIPELINES)
def test_the_adapter_calls_the_denoiser_as_the_pipeline_does(family, pipeline_name):
    fixture = FAMILY_FIXTURES[family].pipelines[pipeline_name]
    pipeline = fixture.build()
    hidden_states, timestep, expected = _first_denoiser_call(pipeline, fixture)
    if expected.shape[1] == 2 * hidden_states.shape[1] and expected.ndim == 4:  # learnt variance: the noise half
        expected = expected.chunk(2, dim=1)[0]
    calibration = CalibrationSettings(num_samples=2, num_inference_steps=2, prompts=list(fixture.prompts))
    adapter = adapter_for(pipeline, calibration)
    timestep = fixture.to_diffprune_timestep(torch.as_tensor(timestep).expand(hidden_states.shape[0]))
    expected = fixture.to_diffprune_prediction(expected)
    with torch.no_grad():
        prediction = adapter.predict(pipeline.transformer, hidden_states, timestep, adapter.conditioning([0, 1]))
    torch.testing.assert_close(prediction, expected, rtol=0, atol=1e-6)


# QwenImage's call trims the prompt's tokens to the prompt's own length, so no fixed length is its call's; its cost
# inputs keep a typical prompt's (77) tokens.
PROMPT_LENGTH_TEXT = {"qwenimage"}


@pytest.mark.parametrize(("family", "pipeline_name"), PIPELINES)
def test_cost_and_timing_inputs_have_the_shapes_of_the_pipelines_own_call(family, pipeline_name):
    """MACs, the prune budget and the timed denoiser forward use pipeline_cost_inputs: their tensors have the shapes
    of the pipeline's own denoiser calls (T5 padding to max_sequence_length, SD3's CLIP + T5 tokens), so what is
    counted and timed is what the pipeline runs."""
    fixture = FAMILY_FIXTURES[family].pipelines[pipeline_name]
    pipeline = fixture.build()
    calls = []
    hook = pipeline.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append({**({"hidden_states": args[0]} if args else {}), **kwargs}),
        with_kwargs=True,
    )
    try:
        pipeline.set_progress_bar_config(disable=True)
        final_latents(
            pipeline, list(fixture.prompts[:1]), [torch.Generator().manual_seed(0)], 2, fixture.guidance_scale
        )
    finally:
        hook.remove()
    called = {key: value for key, value in calls[0].items() if isinstance(value, torch.Tensor)}
    inputs = pipeline_cost_inputs(pipeline, called["hidden_states"].shape[0])
    shared = [
        key for key in called if isinstance(inputs.get(key), torch.Tensor) and inputs[key].ndim == called[key].ndim
    ]
    assert "hidden_states" in shared
    if family in PROMPT_LENGTH_TEXT:
        shared = [key for key in shared if key != "encoder_hidden_states"]
    assert {key: tuple(inputs[key].shape) for key in shared} == {key: tuple(called[key].shape) for key in shared}


# Families whose pipelines guide in one batched call [unconditional; conditional]. DiT is left out: its tiny
# model embeds 10 classes, and DiTPipeline's null class is a fixed 1000 (the ImageNet models' num_classes, which
# is what encode_negative gives them).
BATCHED_GUIDANCE = [
    (family, name)
    for family, name in PIPELINES
    if family != "dit" and {f.name: f for f in all_families().values()}[family].guidance == "batched"
]


@pytest.mark.parametrize(("family", "pipeline_name"), BATCHED_GUIDANCE)
def test_the_unconditional_input_is_the_pipelines_own_unconditional_half(family, pipeline_name):
    """encode_negative (what the guided objective pairs with each prompt) equals the unconditional half of the
    pipeline's first guided denoiser call."""
    fixture = FAMILY_FIXTURES[family].pipelines[pipeline_name]
    pipeline = fixture.build()
    pipeline.set_progress_bar_config(disable=True)
    calls = []
    hook = pipeline.transformer.register_forward_hook(
        lambda module, args, kwargs, output: calls.append(kwargs), with_kwargs=True
    )
    prompts = list(fixture.prompts)
    generators = [torch.Generator().manual_seed(index) for index in range(len(prompts))]
    try:
        final_latents(pipeline, prompts, generators, 2, 4.0)
    finally:
        hook.remove()
    adapter = adapter_for(pipeline, CalibrationSettings(num_samples=2, num_inference_steps=2, prompts=prompts))
    negative = adapter.unconditional_conditioning([0, 1])
    assert negative
    for key, value in negative.items():
        given = calls[0][key]
        if given.shape[0] != 2 * len(prompts):  # HiDream's Llama states are layer first; the conditioning batch first
            given = given.transpose(0, 1)
        assert given.shape[0] == 2 * len(prompts), key  # guidance doubled the batch
        torch.testing.assert_close(given[: len(prompts)], value, rtol=0, atol=1e-6, msg=key)
