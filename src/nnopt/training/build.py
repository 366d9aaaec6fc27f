"""From a recipe to the objects of a run: data, model, optimizer, schedule, plateau, loss."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

import nnopt
from nnopt import data as data_sources
from nnopt import usercode
from nnopt.data import Dataset
from nnopt.data.batches import Batches
from nnopt.data.streamed import StreamedData
from nnopt.errors import RecipeError
from nnopt.init import InitDecision, initialize
from nnopt.models import build_model, count_parameters
from nnopt.optim import kernels
from nnopt.optim.muon_for import assign as muon_split
from nnopt.regularization import Penalty, param_groups
from nnopt.schedules import ReduceOnPlateau
from nnopt.training.threads import apply_threads

if TYPE_CHECKING:
    from nnopt.recipe import Recipe
    from nnopt.recipe.schema import ModelSpec


class NextTokenLoss(nn.Module):
    """Mean next-token cross-entropy: logits (batch, time, vocab) against ids (batch, time),
    -1/(B T) sum_{b,t} log softmax(logits[b, t])[y[b, t]]."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.flatten(0, -2), targets.flatten())


class Float32Loss(nn.Module):
    """``loss(out.float(), y)``: a bfloat16 model's output scored in float32, so the loss (and
    every metric made of it) is not rounded to bf16's 8 bits. Its gradient flows back to the
    bf16 output through the cast."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.loss(out.float() if out.is_floating_point() else out, target)
        return result


# model.dtype: what the model is converted to after it is built and initialized in float32.
# "float32" converts nothing: the model keeps the dtype it was built in.
MODEL_DTYPES: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16}


@dataclass
class RunParts:
    """Everything a training run is made of, built from one recipe."""

    dataset: Dataset | StreamedData  # in memory, or read by a DataLoader during training
    model: nn.Module
    optimizer: nnopt.Optimizer  # its .plateau: [plateau]'s controller, which scales its lr
    loss_fn: nn.Module
    penalty: Penalty | None  # [regularization] in_loss: added to the loss at every step
    batches: Batches  # the run's data order: built once, here, from the recipe
    total_steps: int
    device: torch.device
    init_decisions: list[InitDecision]  # saved as the run directory's init.txt
    threads: int  # torch's intra-op threads for this run (train.threads, or chosen by size)
    # model.dtype: what the model was converted to (floating inputs are fed in it); None: the
    # model as built, inputs as loaded
    dtype: torch.dtype | None = None
    metric: str = "val_loss"  # what the run is judged by (train.metric resolved)
    plateau_metric: str | None = None  # what [plateau] follows (its metric, else the run's)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """cpu, cuda (this rank's GPU under torchrun) or auto (cuda when there is one)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RecipeError("train.device is 'cuda' but no CUDA device is available; use 'cpu'")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def followed_metric(recipe: Recipe, task: str) -> str:
    """``train.metric``, "auto" resolved (val_accuracy for classification, else val_loss),
    checked against what the task's rows hold."""
    metric = recipe.train.metric
    if metric == "auto":
        return "val_accuracy" if task == "classification" else "val_loss"
    _check_metric("train.metric", metric, task)
    return str(metric)


def _check_metric(field: str, metric: str, task: str) -> None:
    if metric == "val_accuracy" and task != "classification":
        raise RecipeError(f"{field}: val_accuracy is a classification's; this data is {task}")
    if metric == "val_perplexity" and task != "language_model":
        raise RecipeError(f"{field}: val_perplexity is a language model's; this data is {task}")


def plateau_metric(recipe: Recipe, task: str) -> str | None:
    """What the plateau controller follows: plateau.metric, else the run's metric."""
    if recipe.plateau is None:
        return None
    if recipe.plateau.metric is None:
        return followed_metric(recipe, task)
    _check_metric("plateau.metric", recipe.plateau.metric, task)
    return str(recipe.plateau.metric)


def build_plateau(recipe: Recipe, metric: str | None) -> ReduceOnPlateau | None:
    spec = recipe.plateau
    if spec is None or metric is None:
        return None
    mode = spec.mode or ("max" if metric == "val_accuracy" else "min")
    return ReduceOnPlateau(
        mode=mode,
        factor=spec.factor,
        patience=spec.patience,
        threshold=spec.threshold,
        threshold_mode=spec.threshold_mode,
        cooldown=spec.cooldown,
        min_lr=spec.min_lr,
    )


def build_optimizer(
    recipe: Recipe, model: nn.Module, total_steps: int, *, user_model: bool = False
) -> nnopt.Optimizer:
    row, options = recipe.optimizer.resolved()
    # The built-in models own their parameters outright (no tying, sharing or views), so the
    # flat layout's storage change is invisible there; it is the fastest for many tensors. A
    # user's model may tie or share parameters: it keeps torch's layout. Compact storage
    # (state_dtype, or a param_update other than plain) is stepped tensor by tensor and
    # refuses flat=True, so it keeps torch's layout too.
    compact = (
        options.get("state_dtype") is not None or options.get("param_update", "plain") != "plain"
    )
    options.setdefault("flat", recipe.model.factory is None and not user_model and not compact)
    reg = recipe.regularization
    if reg.in_loss:  # the penalty goes into the loss instead; decoupled decay stays here
        groups = param_groups(model, weight_decay=reg.weight_decay, exclude=tuple(reg.exclude))
    else:
        groups = param_groups(
            model, l1=reg.l1, l2=reg.l2, weight_decay=reg.weight_decay, exclude=tuple(reg.exclude)
        )
    if not row.by_model:
        try:
            return row.build(groups, recipe.lr_schedule(total_steps), **options)
        except ValueError as exc:
            if "2D" not in str(exc) and "2-D" not in str(exc):
                raise
            # torch's Muon refuses the model's vectors (biases, norms): say what to use.
            raise RecipeError(
                f"optimizer {row.name!r} takes 2-D parameters only and this model has others "
                "(biases, norms); use optimizer.name = 'muon' (Muon on the hidden matrices, "
                "AdamW on the rest)"
            ) from None
    # muon: each group split by what its parameters are (hidden matrices to Muon)
    groups, choices = muon_split(model, groups)
    optimizer = row.build(groups, recipe.lr_schedule(total_steps), **options)
    optimizer.choices = choices  # type: ignore[attr-defined]  # (written as muon_split.txt)
    return optimizer


def build_penalty(recipe: Recipe, model: nn.Module) -> Penalty | None:
    """[regularization]'s L1/L2 as a loss term (``in_loss``); None when it is in the step."""
    reg = recipe.regularization
    if not (reg.in_loss and (reg.l1 or reg.l2)):
        return None
    return Penalty.of(model, l1=reg.l1, l2=reg.l2, exclude=tuple(reg.exclude))


def load_kernels(optimizer: nnopt.Optimizer, device: torch.device) -> None:
    """Build or load the native kernels now, before any clock starts.

    They are built on first use (seconds, or minutes on a loaded machine); left to the first
    ``step()``, the build would be counted in the run's wall time and in its first metrics row.
    """
    if device.type == "cpu" and kernels.use_native(optimizer.kernels):
        kernels.cpu.available()


def build_network(m: ModelSpec, dataset: Dataset | StreamedData) -> nn.Module:
    """The recipe's model: a built-in kind, or the user's ``model.factory``, which gets
    ``input_shape`` (one example's), ``input_dim`` (its size) and ``output_dim`` (classes or
    targets) when its signature names them."""
    if m.factory == usercode.PASSED:
        raise RecipeError(
            "model: this run's model was passed from Python (nnopt.train(..., model=...)); "
            "pass it again to resume"
        )
    if m.factory is not None:
        given = {
            "input_shape": dataset.input_shape,
            "input_dim": math.prod(dataset.input_shape),
            "output_dim": dataset.output_dim,
        }
        made = usercode.call(usercode.resolve(m.factory, "model.factory"), m.factory,
                            "model.factory", m.args, given)  # fmt: skip
        if not isinstance(made, nn.Module):
            raise RecipeError(
                f"model.factory: {m.factory} returned a {type(made).__name__}, expected a "
                "torch.nn.Module"
            )
        return made
    dims = len(dataset.input_shape)
    images = dims == 3 and m.kind == "resnet"
    if dims != 1 and dataset.task != "language_model" and not images:
        raise RecipeError(
            f"model.kind {m.kind!r} takes (examples, features) data, and this data's examples "
            f"are shaped {dataset.input_shape}: use a model.factory for it"
        )
    if (m.kind == "transformer") != (dataset.task == "language_model"):
        raise RecipeError(
            "model.kind 'transformer' is the language model of sequence data (data.name = "
            f"'charlm'); this recipe has model.kind {m.kind!r} and {dataset.task} data"
        )
    return build_model(
        m.kind,
        math.prod(dataset.input_shape),
        dataset.output_dim,
        hidden=tuple(m.hidden),
        activation=m.activation,
        dropout=m.dropout,
        channels=m.channels,
        width=m.width,
        layers=m.layers,
        heads=m.heads,
        input_shape=dataset.input_shape,
    )


def build_run(
    recipe: Recipe, local_rank: int = 0, *, model: nn.Module | None = None, data: object = None
) -> RunParts:
    """Data, model (initialized), optimizer, plateau and loss for a recipe, seeded.

    ``model`` and ``data`` are the user's objects passed from Python: the model is trained as
    given (its weights kept: no initialization), the data read as a data factory's return.
    """
    device = resolve_device(recipe.train.device, local_rank)
    dataset = data_sources.load(recipe.data, recipe.seed, data)
    # The same seed gives the same initial weights whatever the optimizer: comparisons of
    # recipes differ by the optimization alone.
    torch.manual_seed(recipe.seed)
    m = recipe.model
    user_made = model is not None
    if model is not None:
        decisions: list[InitDecision] = []  # the caller's weights are the starting point
    else:
        model = build_network(m, dataset)
        decisions = initialize(model, scheme=m.init, distribution=m.init_distribution)
    threads = apply_threads(recipe.train.threads, count_parameters(model))
    # Converted after the float32 init (the same initial weights as a float32 run) and before
    # the optimizer is built over its parameters.
    dtype = MODEL_DTYPES[m.dtype]
    if dtype is None:
        model.to(device)
    else:
        model.to(device=device, dtype=dtype)
    batches = recipe.batches(dataset.n_train)
    total_steps = recipe.steps_over(batches)
    optimizer = build_optimizer(recipe, model, total_steps, user_model=user_made)
    load_kernels(optimizer, device)
    metric = followed_metric(recipe, dataset.task)
    plateau_follows = plateau_metric(recipe, dataset.task)
    optimizer.plateau = build_plateau(recipe, plateau_follows)
    classification = dataset.task == "classification"
    loss_name = recipe.train.loss
    if loss_name == "auto":
        loss_name = "cross_entropy" if classification else "mse"
    loss_fn: nn.Module = nn.CrossEntropyLoss() if loss_name == "cross_entropy" else nn.MSELoss()
    if dataset.task == "language_model":
        loss_fn = NextTokenLoss()
    if dtype is not None:
        loss_fn = Float32Loss(loss_fn)
    return RunParts(
        dataset=dataset,
        model=model,
        optimizer=optimizer,
        loss_fn=loss_fn,
        penalty=build_penalty(recipe, model),
        batches=batches,
        total_steps=total_steps,
        device=device,
        init_decisions=decisions,
        threads=threads,
        dtype=dtype,
        metric=metric,
        plateau_metric=plateau_follows,
    )
