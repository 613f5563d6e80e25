"""structure/costs.py: MACs are counted on stated inputs, and the public count on a pipeline reproduces the prune
report's totals (a transformer's MACs depend on the text length its pipeline feeds it)."""

from tiny_models import tiny_ddpm_pipeline
from tiny_transformers import tiny_sd3_pipeline

import diffprune
from diffprune.families import example_inputs
from diffprune.models.adapters import CalibrationSettings
from diffprune.structure.costs import count_macs, pipeline_cost_inputs


def test_count_macs_on_a_pipeline_reproduces_the_prune_reports_kept_fraction():
    pipeline = tiny_sd3_pipeline()  # its CLIP tokenizers' length, not the family's default text length
    result = diffprune.prune(
        pipeline,
        "magnitude",
        diffprune.Budget(keep_macs=0.6),
        calibration=CalibrationSettings(num_samples=2, num_inference_steps=2),
        show_progress=False,
    )
    before, after = diffprune.count_macs(pipeline), diffprune.count_macs(result.pipeline)
    assert [before, after] == [result.report["totals_before"]["macs"], result.report["totals_after"]["macs"]]
    assert after / before == result.report["kept_fraction"]["macs"]
    assert after.inputs_used == f"the pipeline's own cost inputs: {result.report['macs_counted_on']}"
    # the transformer alone is counted on its family's example inputs: another sequence length, another count
    alone = diffprune.count_macs(pipeline.transformer)
    assert alone.inputs_used.startswith("the family's example inputs") and alone != before


def test_count_macs_says_which_inputs_it_counted_on():
    pipeline = tiny_ddpm_pipeline()
    inputs = example_inputs(pipeline.unet, batch_size=2)
    given = count_macs(pipeline.unet, inputs)
    assert given.inputs_used == "the inputs given: sample 2x1x16x16, timestep 2"
    assert given == 2 * count_macs(pipeline.unet)  # batch 2 costs twice batch 1
    assert count_macs(pipeline) == count_macs(pipeline.unet, pipeline_cost_inputs(pipeline))
    assert count_macs(pipeline, inputs) == given and count_macs(pipeline, inputs).inputs_used == given.inputs_used
