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
from diffprune.criteria.objectives import DENOISING_LOSS, GUIDED, check_objective, guided_objective
from diffprune.errors import DiffpruneError
from diffprune.module_state import preserved
from diffprune.outputs import write_json_atomically
from diffprune.structure.gates import gated, removal_values, variant_values
from diffprune.structure.selection import DEFAULT_BUDGET, select_units, unit_cost

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


@register("gradflow")
@dataclass
class GradFlow(Criterion):
    splits_across_processes: ClassVar[bool] = False  # one joint optimisation over all masks
    uses_budget: ClassVar[bool] = True

    objective: str = GUIDED
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
        if self.objective == DENOISING_LOSS:
            clean, indices, generator = batch
            return context.adapter.denoising_loss(denoiser, clean, indices, generator)
        return self._guided.loss(denoiser, batch)

    def _same_noise_loss(self, context, denoiser, batch) -> torch.Tensor:
        """The loss on a batch, leaving a denoising-loss batch's generator as it was (so every variant compared
        sees the same noise and timesteps)."""
        if self.objective != DENOISING_LOSS:
            return self._loss(context, denoiser, batch)
        state = batch[2].get_state()
        loss = self._loss(context, denoiser, batch)
        batch[2].set_state(state)
        return loss

    def _batches(self, context, count: int, round_index: int) -> list:
        if self.objective == DENOISING_LOSS:
            return list(context.loss_batches(count, self.batch_size, seed=round_index))
        return self._guided.pair_batches(count, self.batch_size, seed=round_index)

    def _expected_cost_fraction(self, masks, units, cost: str, total: float) -> torch.Tensor:
        effective = torch.exp(self._ancestors @ torch.log(masks.clamp_min(1e-12)).double())
        return (total - (self._exclusive * (1 - effective)).sum()) / total

    def _energy(self, context, denoiser, masks, batch, units, budget, total):
        loss = self._loss(context, denoiser, batch)
        if budget.num_units is not None:
            return loss, loss
        excess = torch.relu(self._expected_cost_fraction(masks, units, budget.cost, total) - budget.fraction_kept())
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
                if self.objective == GUIDED:
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
    def score_pending(self, context, pending, removed, round_index) -> None:
        with preserved(context.denoiser):  # the weights are frozen below; the caller's flags come back after
            self._soft_prune(context, pending, removed, round_index)

    def _soft_prune(self, context, pending, removed, round_index) -> None:
        units = context.units
        budget = context.budget or DEFAULT_BUDGET
        total = float(context.total_costs.get(budget.cost) or sum(unit_cost(u, budget.cost) for u in units))
        self._exclusive = exclusive_costs(units, budget.cost)
        self._ancestors = ancestor_matrix(units).double()
        index = {unit.name: i for i, unit in enumerate(units)}
        candidates = [index[u.name] for u in pending]

        denoiser = context.denoiser
        if self.objective == GUIDED:  # the original's predictions, before any mask or weight moves
            self._guided = guided_objective(context, self.direction_weight)
        if self.train_weights:
            # every weight trains, however the input was
            denoiser = copy.deepcopy(denoiser).train().requires_grad_(True)
            context.cache["trained_denoiser"] = denoiser
        else:
            denoiser.requires_grad_(False)
        weight_optimizer = (
            torch.optim.AdamW([p for p in denoiser.parameters()], lr=self.weight_learning_rate)
            if self.train_weights
            else None
        )
        masks = torch.nn.Parameter(removal_values(units, {u.name for u in removed}))
        state = self._load_state(context, round_index) or {
            "step": 0,
            "marked": {},
            "masks": masks.tolist(),
            "area": [0.0] * len(units),
            "flow_at_marking": {},
        }
        with torch.no_grad():
            masks.copy_(torch.tensor(state["masks"]))
        marked: dict[str, int] = state["marked"]  # unit name -> step at which it was marked
        area = torch.tensor(state["area"], dtype=torch.float64)  # running sum of each mask over the steps
        flow_at_marking: dict[str, float] = state["flow_at_marking"]
        # Stage k marks at step (k + 1) T / (K + 1): the first T / (K + 1) steps are a warm-up in which the masks
        # move under the budget, since a teacher-relative energy has zero gradient (and so no flow) at masks = 1.
        stage_steps = [(stage + 1) * self.steps // (self.stages + 1) for stage in range(self.stages)]
        decay_steps = max(1, self.steps // (self.stages + 1))
        batches = self._batches(context, self.steps + self.criterion_batches, round_index)

        with gated(denoiser, units, masks):
            progress = tqdm(range(state["step"], self.steps), desc="gradflow", disable=not context.show_progress)
            for step in progress:
                if step in stage_steps:
                    stage = stage_steps.index(step)
                    free = [i for i in candidates if units[i].name not in marked]
                    marking_batches = batches[-self.criterion_batches :]
                    if self.marking == "gradient-flow":
                        flow = self.gradient_flow_scores(context, denoiser, masks, free, marking_batches)
                    elif self.marking == "energy":
                        flow = self.removal_energy_scores(context, denoiser, units, free, marking_batches)
                    else:  # "mask": the masks the budget pushed lowest against the energy go first
                        flow = masks.detach().double().cpu()
                    already = [units[index[name]] for name in marked] + list(removed)
                    newly = select_units(
                        [units[i] for i in candidates] + list(removed),
                        {units[i].name: float(flow[i]) for i in free},
                        budget,
                        int(total),
                        already,
                        target_fraction_removed=(stage + 1) / self.stages,
                    )
                    marked.update({unit.name: step for unit in newly})
                    flow_at_marking.update({unit.name: float(flow[index[unit.name]]) for unit in newly})
                energy, loss = self._energy(context, denoiser, masks, batches[step], units, budget, total)
                parameters = [masks] + ([p for p in denoiser.parameters()] if self.train_weights else [])
                gradients = torch.autograd.grad(energy, parameters, allow_unused=True)
                with torch.no_grad():
                    free = [i for i in candidates if units[i].name not in marked]
                    masks[free] = (masks[free] - self.learning_rate * gradients[0][free]).clamp(0, 1)
                    for name, start in marked.items():
                        progress_in_decay = min(1.0, (step + 1 - start) / decay_steps)
                        masks[index[name]] = min(
                            float(masks[index[name]]), 0.5 * (1 + math.cos(math.pi * progress_in_decay))
                        )
                if weight_optimizer is not None:
                    for parameter, gradient in zip(parameters[1:], gradients[1:], strict=True):
                        parameter.grad = gradient
                    weight_optimizer.step()
                    weight_optimizer.zero_grad(set_to_none=True)
                area += masks.detach().double().cpu()
                progress.set_postfix(loss=f"{float(loss.detach()):.4f}", marked=len(marked))
                if (step + 1) % self.checkpoint_every == 0:
                    self._save_state(
                        context,
                        round_index,
                        {
                            "step": step + 1,
                            "marked": marked,
                            "masks": masks.tolist(),
                            "area": area.tolist(),
                            "flow_at_marking": flow_at_marking,
                        },
                    )
        with torch.no_grad():
            for name in marked:
                masks[index[name]] = 0.0
        context.cache["gradflow_masks"] = {unit.name: float(masks.detach()[i]) for i, unit in enumerate(units)}
        largest_flow = max(flow_at_marking.values(), default=0.0) or 1.0
        scores = {}
        for unit in pending:
            tie_break = 1e-3 * flow_at_marking.get(unit.name, largest_flow) / largest_flow
            # never-marked units score above every marked one, so selection removes the marked units first
            # (a mask the budget pushed down without a mark is no verdict of the marking rule)
            unmarked = 0.0 if unit.name in marked else 1.0
            scores[unit.name] = unmarked + float(area[index[unit.name]]) / max(self.steps, 1) + tie_break
        context.store.put_many(round_index, scores)

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
