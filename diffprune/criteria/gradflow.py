"""Gradient-flow soft masks (after Wan et al., "Pruning for Sparse Diffusion Models based on Gradient
Flow", ICASSP 2025), on diffprune's gates.

Each candidate unit's gate becomes a continuous mask m in [0, 1]. Unmarked masks follow the gradient flow
of the energy
    E(m) = L(m) + lambda * relu(C(m) / C_total - keep)^2
(projected gradient descent, step size eta), where L is the objective (objectives.py: by default the guided
prediction and guidance direction relative to the original's, on the sampler's own path) and C(m) the
expected cost (MACs or params) of the masked model. Pruning is progressive and soft: at each of K stages,
after a warm-up (the guided objective has zero gradient at m = 1), units are marked and their masks decay to
0 along a cosine ramp instead of dropping at once. Marking rules (default "energy", measured better than the
paper's gradient-flow criterion on digits-t2i: docs/methods.md):
  * "gradient-flow" (the paper's): the first-order change of the gradient norm G(m) = ||dL/dm||^2 when m_u
    goes to 0, dG_u ~= -m_u * dG/dm_u = -2 m_u (H g)_u, a Hessian-gradient product through the gates;
    smallest |dG_u| first (a unit with no effect, dG_u = 0, is always the safest);
  * "energy": the exact change of L if u were removed at the current masks, smallest first;
  * "mask": the lowest mask first.
The score handed to the shared selection is the area under the unit's mask over the schedule (early-marked
units score lowest), ties broken by the marking rule. Weights are frozen by default; with train_weights they
are trained jointly on a copy, which the pruned model then inherits. See docs/methods.md for the equations
as implemented and docs/results.md for the measurement behind the default rule.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from diffprune.criteria.base import SCORE_NEUTRAL, Criterion, register
from diffprune.criteria.objectives import (
    AUTO,
    DENOISING_LOSS,
    GUIDED,
    check_objective,
    guided_objective,
    resolved_objective,
)
from diffprune.errors import DiffpruneError
from diffprune.module_state import preserved
from diffprune.outputs import write_json_atomically
from diffprune.structure.gates import gated, removal_values, variant_values
from diffprune.structure.selection import DEFAULT_BUDGET, Budget, select_units, unit_cost

MARKING_RULES = ("gradient-flow", "energy", "mask")


def exclusive_costs(units, cost: str) -> torch.Tensor:
    """Each unit's cost minus that of the units directly nested in it (so nested costs are not counted twice)."""
    values = []
    for unit in units:
        children = [
            other
            for other in units
            if unit.contains(other) and not any(unit.contains(mid) and mid.contains(other) for mid in units)
        ]
        values.append(unit_cost(unit, cost) - sum(unit_cost(child, cost) for child in children))
    return torch.tensor(values, dtype=torch.float64)


def ancestor_matrix(units) -> torch.Tensor:
    """A[u, a] = 1 when a is u itself or contains u: the effective mask of u is prod_a m_a^A[u, a]."""
    return torch.tensor([[1.0 if a is u or a.contains(u) else 0.0 for a in units] for u in units])


@dataclass
class _SoftPruning:
    """The state of one round of soft pruning; `state()` is what a checkpoint keeps."""

    units: list
    index: dict[str, int]  # unit name -> position in `units` (and in the masks)
    candidates: list[int]  # positions of the units being scored
    removed: list  # units removed in earlier rounds (their masks stay at 0)
    budget: Budget
    total: float  # the original's total cost, MACs or params as the budget counts
    exclusive: torch.Tensor  # each unit's cost less its directly nested units' (exclusive_costs)
    ancestors: torch.Tensor  # ancestor_matrix: which masks multiply into each unit's effective mask
    denoiser: torch.nn.Module
    masks: torch.nn.Parameter
    weight_optimizer: torch.optim.Optimizer | None
    stage_steps: list[int]  # the steps at which stages mark
    decay_steps: int  # how many steps a marked mask takes to decay to 0
    batches: list
    step: int  # the first step to run (after a resumed checkpoint)
    marked: dict[str, int]  # unit name -> step at which it was marked
    area: torch.Tensor  # running sum of each mask over the steps
    flow_at_marking: dict[str, float]

    def expected_cost_fraction(self) -> torch.Tensor:
        """C(m) / C_total: the fraction of the cost the masked model is expected to keep."""
        effective = torch.exp(self.ancestors @ torch.log(self.masks.clamp_min(1e-12)).double())
        return (self.total - (self.exclusive * (1 - effective)).sum()) / self.total

    def free(self) -> list[int]:
        return [i for i in self.candidates if self.units[i].name not in self.marked]

    def state(self, step: int) -> dict:
        return {
            "step": step,
            "marked": self.marked,
            "masks": self.masks.tolist(),
            "area": self.area.tolist(),
            "flow_at_marking": self.flow_at_marking,
        }


@register("gradflow")
@dataclass
class GradFlow(Criterion):
    splits_across_processes: ClassVar[bool] = False  # one joint optimisation over all masks
    uses_budget: ClassVar[bool] = True

    objective: str = AUTO
    direction_weight: float = 1.0
    marking: str = "energy"
    steps: int = 60
    stages: int = 3
    learning_rate: float = 0.05
    penalty: float = 10.0
    batch_size: int = 8
    criterion_batches: int = 2
    train_weights: bool = False
    weight_learning_rate: float = 1e-5
    checkpoint_every: int = field(default=10, metadata=SCORE_NEUTRAL)

    def __post_init__(self):
        check_objective(self.objective)
        if self.marking not in MARKING_RULES:
            raise DiffpruneError(f"unknown marking rule {self.marking!r}; choose one of {', '.join(MARKING_RULES)}")

    # -- the energy -------------------------------------------------------------------------------
    def _loss(self, context, denoiser, batch) -> torch.Tensor:
        """The objective on one batch: (clean latents, indices, generator) for the denoising loss, a tensor of
        trajectory pairs for the guided objective."""
        if resolved_objective(self, context) == DENOISING_LOSS:
            clean, indices, generator = batch
            return context.adapter.denoising_loss(denoiser, clean, indices, generator)
        return self._guided.loss(denoiser, batch)

    def _same_noise_loss(self, context, denoiser, batch) -> torch.Tensor:
        """The loss on a batch, leaving a denoising-loss batch's generator as it was (so every variant compared
        sees the same noise and timesteps)."""
        if resolved_objective(self, context) != DENOISING_LOSS:
            return self._loss(context, denoiser, batch)
        state = batch[2].get_state()
        loss = self._loss(context, denoiser, batch)
        batch[2].set_state(state)
        return loss

    def _batches(self, context, count: int, round_index: int) -> list:
        if resolved_objective(self, context) == DENOISING_LOSS:
            return list(context.loss_batches(count, self.batch_size, seed=round_index))
        return self._guided.pair_batches(count, self.batch_size, seed=round_index)

    def _energy(self, context, run: _SoftPruning, batch):
        """(E, L) at the current masks: the objective plus the penalty on the expected cost above the budget."""
        loss = self._loss(context, run.denoiser, batch)
        if run.budget.num_units is not None:
            return loss, loss
        excess = torch.relu(run.expected_cost_fraction() - run.budget.fraction_kept())
        return loss + self.penalty * excess.square().to(loss.dtype), loss

    # -- the marking criterion --------------------------------------------------------------------
    def gradient_flow_scores(self, context, denoiser, masks, free: list[int], batches) -> torch.Tensor:
        """|m_u * dG/dm_u| for every unit: the estimated change of the gradient norm if m_u went to 0."""
        total = torch.zeros(masks.shape[0], dtype=torch.float64)
        with sdpa_kernel(SDPBackend.MATH):  # fused attention kernels have no double backward
            for batch in batches:
                loss = self._loss(context, denoiser, batch)
                (gradient,) = torch.autograd.grad(loss, masks, create_graph=True)
                norm = gradient[free].square().sum()
                (flow,) = torch.autograd.grad(norm, masks)
                total += (masks.detach() * flow).double().cpu()
        return (total / max(len(batches), 1)).abs()

    def removal_energy_scores(self, context, denoiser, units, free: list[int], batches) -> torch.Tensor:
        """L(m with m_u = 0) - L(m) for every free unit u at the current masks (exact, forward passes only): a
        second set of gates with one variant per unit multiplies the masks (gates compose by product)."""
        scores = torch.zeros(len(units), dtype=torch.float64)
        per_call = context.variants_per_batch
        with torch.no_grad():
            current = sum(float(self._same_noise_loss(context, denoiser, batch)) for batch in batches) / len(batches)
            for start in range(0, len(free), per_call):
                group = free[start : start + per_call]
                if resolved_objective(self, context) == GUIDED:
                    with gated(denoiser, units, variant_values(units, [{units[i].name} for i in group])):
                        losses = sum(
                            self._guided.errors(denoiser, batch, len(group)).double().mean(0) for batch in batches
                        )
                else:  # the denoising loss draws its own noise per call: one variant at a time
                    losses = []
                    for i in group:
                        with gated(denoiser, units, removal_values(units, {units[i].name})):
                            losses.append(sum(float(self._same_noise_loss(context, denoiser, b)) for b in batches))
                    losses = torch.tensor(losses, dtype=torch.float64)
                scores[group] = losses.cpu() / len(batches) - current
        return scores.abs()

    # -- the progressive soft pruning -----------------------------------------------------------
    def score_pending(self, context, pending, removed, round_index) -> torch.nn.Module | None:
        with preserved(context.denoiser):  # the weights are frozen below; the caller's flags come back after
            return self._soft_prune(context, pending, removed, round_index)

    def _soft_prune(self, context, pending, removed, round_index) -> torch.nn.Module | None:
        """K stages of marking, each followed by masks decaying along a cosine ramp; scores go to the store. Returns
        the jointly trained copy of the denoiser with train_weights, else None."""
        run = self._start(context, pending, removed, round_index)
        with gated(run.denoiser, run.units, run.masks):
            progress = tqdm(range(run.step, self.steps), desc="gradflow", disable=not context.show_progress)
            for step in progress:
                if step in run.stage_steps:
                    self._mark(context, run, step)
                loss = self._descend(context, run, step)
                progress.set_postfix(loss=f"{float(loss.detach()):.4f}", marked=len(run.marked))
                if (step + 1) % self.checkpoint_every == 0:
                    self._save_state(context, round_index, run.state(step + 1))
        context.store.put_many(round_index, self._final_scores(context, run, pending))
        return run.denoiser if self.train_weights else None

    def _start(self, context, pending, removed, round_index) -> _SoftPruning:
        """The run's state: costs and nesting of the units, the denoiser (frozen, or a trainable copy), the masks
        (from an interrupted run's checkpoint where one exists), the stage schedule and the batches."""
        units = context.units
        budget = context.budget or DEFAULT_BUDGET
        total = float(context.total_costs.get(budget.cost) or sum(unit_cost(u, budget.cost) for u in units))
        index = {unit.name: i for i, unit in enumerate(units)}
        denoiser = context.denoiser
        if resolved_objective(self, context) == GUIDED:  # the original's predictions, before any mask or weight moves
            self._guided = guided_objective(context, self.direction_weight)
        if self.train_weights:  # every weight trains, however the input was
            denoiser = copy.deepcopy(denoiser).train().requires_grad_(True)
        else:
            denoiser.requires_grad_(False)
        masks = torch.nn.Parameter(removal_values(units, {u.name for u in removed}))
        saved = self._load_state(context, round_index)
        if saved:
            with torch.no_grad():
                masks.copy_(torch.tensor(saved["masks"]))
        # Stage k marks at step (k + 1) T / (K + 1): the first T / (K + 1) steps are a warm-up in which the masks
        # move under the budget, since a teacher-relative energy has zero gradient (and so no flow) at masks = 1.
        return _SoftPruning(
            units=units,
            index=index,
            candidates=[index[u.name] for u in pending],
            removed=list(removed),
            budget=budget,
            total=total,
            exclusive=exclusive_costs(units, budget.cost),
            ancestors=ancestor_matrix(units).double(),
            denoiser=denoiser,
            masks=masks,
            weight_optimizer=(
                torch.optim.AdamW(list(denoiser.parameters()), lr=self.weight_learning_rate)
                if self.train_weights
                else None
            ),
            stage_steps=[(stage + 1) * self.steps // (self.stages + 1) for stage in range(self.stages)],
            decay_steps=max(1, self.steps // (self.stages + 1)),
            batches=self._batches(context, self.steps + self.criterion_batches, round_index),
            step=saved["step"] if saved else 0,
            marked=saved["marked"] if saved else {},
            area=torch.tensor(saved["area"] if saved else [0.0] * len(units), dtype=torch.float64),
            flow_at_marking=saved["flow_at_marking"] if saved else {},
        )

    def _mark(self, context, run: _SoftPruning, step: int) -> None:
        """A stage: score the free candidates by the marking rule and mark this stage's slice of the budget."""
        stage = run.stage_steps.index(step)
        free = run.free()
        marking_batches = run.batches[-self.criterion_batches :]
        if self.marking == "gradient-flow":
            flow = self.gradient_flow_scores(context, run.denoiser, run.masks, free, marking_batches)
        elif self.marking == "energy":
            flow = self.removal_energy_scores(context, run.denoiser, run.units, free, marking_batches)
        else:  # "mask": the masks the budget pushed lowest against the energy go first
            flow = run.masks.detach().double().cpu()
        already = [run.units[run.index[name]] for name in run.marked] + run.removed
        newly = select_units(
            [run.units[i] for i in run.candidates] + run.removed,
            {run.units[i].name: float(flow[i]) for i in free},
            run.budget,
            int(run.total),
            already,
            target_fraction_removed=(stage + 1) / self.stages,
        )
        run.marked.update({unit.name: step for unit in newly})
        run.flow_at_marking.update({unit.name: float(flow[run.index[unit.name]]) for unit in newly})

    def _descend(self, context, run: _SoftPruning, step: int) -> torch.Tensor:
        """One step of the gradient flow: free masks descend the energy (projected to [0, 1]), marked masks follow
        their cosine decay, trained weights take an AdamW step; the masks' area grows. Returns the step's loss."""
        masks = run.masks
        energy, loss = self._energy(context, run, run.batches[step])
        parameters = [masks] + (list(run.denoiser.parameters()) if self.train_weights else [])
        gradients = torch.autograd.grad(energy, parameters, allow_unused=True)
        with torch.no_grad():
            free = run.free()
            masks[free] = (masks[free] - self.learning_rate * gradients[0][free]).clamp(0, 1)
            for name, start in run.marked.items():
                progress_in_decay = min(1.0, (step + 1 - start) / run.decay_steps)
                ramp = 0.5 * (1 + math.cos(math.pi * progress_in_decay))
                masks[run.index[name]] = min(float(masks[run.index[name]]), ramp)
        if run.weight_optimizer is not None:
            for parameter, gradient in zip(parameters[1:], gradients[1:], strict=True):
                parameter.grad = gradient
            run.weight_optimizer.step()
            run.weight_optimizer.zero_grad(set_to_none=True)
        run.area += masks.detach().double().cpu()
        return loss

    def _final_scores(self, context, run: _SoftPruning, pending) -> dict[str, float]:
        """Marked masks at 0 (recorded in context.cache["gradflow_masks"]); each pending unit's score is the area
        under its mask, never-marked units above every marked one, ties broken by the marking rule."""
        with torch.no_grad():
            for name in run.marked:
                run.masks[run.index[name]] = 0.0
        context.cache["gradflow_masks"] = {unit.name: float(run.masks.detach()[i]) for i, unit in enumerate(run.units)}
        largest_flow = max(run.flow_at_marking.values(), default=0.0) or 1.0
        scores = {}
        for unit in pending:
            tie_break = 1e-3 * run.flow_at_marking.get(unit.name, largest_flow) / largest_flow
            # never-marked units score above every marked one, so selection removes the marked units first
            # (a mask the budget pushed down without a mark is no verdict of the marking rule)
            unmarked = 0.0 if unit.name in run.marked else 1.0
            scores[unit.name] = unmarked + float(run.area[run.index[unit.name]]) / max(self.steps, 1) + tie_break
        return scores

    # -- resume -----------------------------------------------------------------------------------
    def _state_path(self, context):
        return context.work_folder / "gradflow_state.json" if context.work_folder else None

    def _save_state(self, context, round_index, state: dict) -> None:
        path = self._state_path(context)
        if path and not self.train_weights:  # trained weights are not checkpointed; such runs restart
            write_json_atomically(path, {"round": round_index, **state})

    def _load_state(self, context, round_index):
        path = self._state_path(context)
        if not path or not path.exists() or self.train_weights:
            return None
        state = json.loads(path.read_text())
        return state if state.get("round") == round_index else None
