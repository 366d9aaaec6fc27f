"""The sections of a recipe: frozen pydantic models, unknown keys rejected.

Every field carries its default and constraint; the checks between fields of one section
(an option that does not apply to the chosen optimizer, a schedule missing the value its kind
needs, ``epochs`` and ``steps`` both set) live in that section's validator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, create_model, field_validator, model_validator

from nnopt.data.batches import Mode
from nnopt.data.dataset import TASKS
from nnopt.data.streamed import LOADERS
from nnopt.models import ACTIVATIONS, KINDS
from nnopt.optim import registry, table
from nnopt.recipe.errors import unknown_key
from nnopt.recipe.fields import Section, problem

# model.dtype's values (training/build.py maps them to torch dtypes).
MODEL_DTYPES = ("float32", "bfloat16")
# The metrics a run can follow (a metrics row's columns; "val_": the held-out split).
METRICS = ("val_loss", "val_accuracy", "val_perplexity", "train_loss")
Metric = Literal[*METRICS]  # type: ignore[valid-type]
Unit = Annotated[float, Field(ge=0, lt=1)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class DataSpec(Section):
    """``[data]``: which dataset (a built-in name, a file, or the user's ``factory``) and how
    to split and scale it."""

    NEEDS: ClassVar[str] = "name or factory"  # what a [data] table must have, for messages
    name: str | None = Field(None, min_length=1)
    factory: str | None = Field(None, min_length=1)  # "module:function" or "file.py:function"
    args: dict[str, Any] = Field(default_factory=dict)  # keyword arguments of the factory
    val_fraction: float = Field(0.2, gt=0, lt=1)
    standardize: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    # What val_* metrics are measured on. "auto": the data set's own test split when it ships
    # one (reported as "test"), else val_fraction of the training data ("validation").
    # "validation": always val_fraction of the training data; a shipped test split is unused.
    holdout: Literal["auto", "validation"] = "auto"
    # "auto": from the data (class labels, real targets, or a set's own kind, as charlm's)
    task: Literal["auto", *TASKS] = "auto"  # type: ignore[valid-type]
    # Datasets (not tensors) from a factory: read into memory, or streamed by a DataLoader;
    # "auto" streams those estimated over streamed.MEMORY_LIMIT bytes.
    loader: Literal[*LOADERS] = "auto"  # type: ignore[valid-type]
    workers: int = Field(0, ge=0)  # DataLoader worker processes (streamed data)
    pin_memory: bool = False  # page-locked batches for a CUDA device (streamed data)

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.name is None) == (self.factory is None):
            raise problem(
                "data: give exactly one of data.name (a built-in set or a .npz/.csv file) "
                "and data.factory ('module:function' returning the data)"
            )
        if self.args and self.factory is None:
            raise problem("data.args: only a data.factory takes args (use data.options)")
        if self.options and self.factory is not None:
            raise problem("data.options: a data.factory takes its options in data.args")
        return self

    @field_validator("options")
    @classmethod
    def _scalar_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        for key, value in options.items():
            if not isinstance(value, int | float | str | bool):
                raise problem(
                    f"data.options.{key} must be a number, string or boolean, "
                    f"got {type(value).__name__}"
                )
        return options


class ModelSpec(Section):
    """``[model]``: the network built for the data (input/output sizes come from the data)."""

    kind: Literal[*KINDS] = "mlp"  # type: ignore[valid-type]
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [128, 64])
    activation: Literal[*ACTIVATIONS] = "relu"  # type: ignore[valid-type]
    dropout: float = Field(0.0, ge=0, lt=1)
    channels: int = Field(25, ge=1)  # cnn1d filters; resnet: the first blocks' (then doubling)
    width: int = Field(64, ge=1)  # transformer: embedding width (a multiple of heads)
    layers: int = Field(2, ge=1)  # transformer, resnet: blocks
    heads: int = Field(4, ge=1)  # transformer: attention heads
    init: Literal["auto", "xavier", "he"] = "auto"
    init_distribution: Literal["uniform", "normal"] = "uniform"
    factory: str | None = Field(None, min_length=1)  # the user's: "module:function"
    args: dict[str, Any] = Field(default_factory=dict)  # keyword arguments of the factory
    # The weights' dtype: built and initialized in float32, then converted (built-in or factory
    # model alike). "bfloat16": pure bf16 weights (no autocast, no float32 master copy), inputs
    # cast to it, the loss and metrics computed in float32 (training/build.py). "float32"
    # converts nothing: the model keeps the dtype it was built in.
    dtype: Literal[*MODEL_DTYPES] = "float32"  # type: ignore[valid-type]

    # What only the built-in models read: a factory takes its options in model.args.
    BUILT_IN_ONLY: ClassVar[tuple[str, ...]] = (
        "kind",
        "hidden",
        "activation",
        "dropout",
        "channels",
        "width",
        "layers",
        "heads",
    )

    # The built-in fields each kind reads (models.build_model): the others do nothing for it.
    USES: ClassVar[dict[str, tuple[str, ...]]] = {
        "linear": (),
        "mlp": ("hidden", "activation", "dropout"),
        "cnn1d": ("channels", "activation", "dropout"),
        "resnet": ("channels", "layers"),
        "transformer": ("width", "layers", "heads", "dropout"),
    }

    def unused_fields(self) -> tuple[str, ...]:
        """Fields that do nothing for this model (a report leaves them out)."""
        if self.factory is not None:
            return self.BUILT_IN_ONLY
        return tuple(f for f in self.BUILT_IN_ONLY if f != "kind" and f not in self.USES[self.kind])

    @model_validator(mode="after")
    def _factory_or_built_in(self) -> ModelSpec:
        if self.factory is None:
            if self.args:
                raise problem("model.args: only a model.factory takes args")
            return self
        for name in self.BUILT_IN_ONLY:
            # (compared with the default, not "was it given": a saved recipe spells them all)
            default = type(self).model_fields[name].get_default(call_default_factory=True)
            if getattr(self, name) != default:
                raise problem(
                    f"model.{name}: applies to the built-in models; a model.factory takes its "
                    "options in [model.args]"
                )
        return self


# The type and range of every [optimizer] option any optimizer of the table has; its
# default is the class's own (None here means "unset: the optimizer's default").
_UNIT = {"ge": 0, "lt": 1}
_KINDS: dict[str, tuple[Any, dict[str, Any]]] = {
    "nonnegative": (float, {"ge": 0}),
    "positive": (float, {"gt": 0}),
    "unit": (float, _UNIT),
    "bool": (bool, {}),
    "pair": (tuple[Unit, Unit], {}),
    "count": (int, {"ge": 1}),
    "below_one": (float, {"lt": 1}),
    "positive_or_none": (float, {"gt": 0}),  # (unset is None: the class's default)
    "nonpositive": (float, {"le": 0}),
    "at_least_one": (float, {"ge": 1}),
    "iterations": (int, {"ge": 0, "lt": 100}),
    "choice": (str | None, {}),  # (its values are checked by the optimizer, named)
}
# An option whose range differs by optimizer: numbers here, the range checked by the class
# the recipe builds (Recipe._optimizer_accepts names the field).
_PER_CLASS: dict[str, tuple[Any, dict[str, Any]]] = {
    "unit": (int | float, {}),  # (an int stays an int: the message quotes the recipe's value)
    "pair": (tuple[int | float, ...], {}),
}
# Each [optimizer] option's type and range, from the one registry (nnopt.optim.registry).
OPTION_TYPES: dict[str, tuple[Any, dict[str, Any]]] = {
    name: (_PER_CLASS if registry.OPTIONS[name].per_class else _KINDS)[registry.OPTIONS[name].kind]
    for name in registry.RECIPE_OPTIONS
}
OPTIMIZERS = table.NAMES
# Which optimizer names each optional [optimizer] key applies to (name, lr, flat: all).
APPLIES_TO: dict[str, tuple[str, ...]] = table.applies_to()


def optimizer_keys(name: str) -> list[str]:
    """The [optimizer] keys optimizer ``name`` has: name, lr, flat and its own options."""
    return [k for k in OptimizerSpec.model_fields if name in APPLIES_TO.get(k, OPTIMIZERS)]


class _OptimizerBase(Section):
    """``[optimizer]``: the update rule and its hyperparameters.

    Options left unset take the optimizer's own default (its class signature, through the
    table in ``nnopt.optim.table``). Setting an option the chosen optimizer does not have is an
    error rather than silently ignored.
    """

    name: Literal[*OPTIMIZERS]  # type: ignore[valid-type]
    lr: float = Field(gt=0)
    flat: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        """An unknown key is named against the chosen optimizer's own options, so a did-you-mean
        never suggests one it does not have (adamw's weight_decay once got adagrad's lr_decay)."""
        if isinstance(data, dict) and data.get("name") in OPTIMIZERS:
            unknown = [key for key in data if key not in cls.model_fields]
            allowed = optimizer_keys(data["name"])
            if unknown:
                raise problem("\n".join(unknown_key("optimizer", k, allowed) for k in unknown))
        return data

    @field_validator("betas", mode="before", check_fields=False)
    @classmethod
    def _betas_tuple(cls, value: Any) -> Any:
        # (how many betas, and their range, is the optimizer's: Adam two, AdEMAMix three)
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _options_apply(self) -> _OptimizerBase:
        lines = [
            f"optimizer.{key} does not apply to optimizer {self.name!r}; "
            f"it applies to {', '.join(APPLIES_TO[key])}"
            for key in sorted(self.model_fields_set & APPLIES_TO.keys())
            if self.name not in APPLIES_TO[key]
        ]
        options = self.resolved()[1] if not lines else {}
        row = table.row(self.name)
        if row.options().get("nesterov") or options.get("nesterov"):
            momentum = options.get("momentum", row.options().get("momentum"))
            if momentum == 0:
                lines.append(f"optimizer.momentum must be > 0 for optimizer {self.name!r}, got 0")
        if lines:
            raise problem("\n".join(lines))
        return self

    def applies(self, key: str) -> bool:
        """Whether an [optimizer] key means something for this optimizer."""
        return self.name in APPLIES_TO.get(key, OPTIMIZERS)

    def resolved(self) -> tuple[table.Row, dict[str, Any]]:
        """The table row and the options this recipe sets (the class fills in the rest).

        Regularization is not here: it goes through parameter groups.
        """
        options = {
            key: getattr(self, key)
            for key in APPLIES_TO
            if self.applies(key) and getattr(self, key) is not None
        }
        if self.flat is not None:
            options["flat"] = self.flat
        return table.row(self.name), options


if TYPE_CHECKING:  # the options are fields made from the table: a type checker reads them as Any

    class OptimizerSpec(_OptimizerBase):
        def __getattr__(self, name: str) -> Any: ...

else:
    OptimizerSpec = create_model(
        "OptimizerSpec",
        __base__=_OptimizerBase,
        __doc__=_OptimizerBase.__doc__,
        **{
            key: (OPTION_TYPES[key][0] | None, Field(None, **OPTION_TYPES[key][1]))
            for key in APPLIES_TO
        },
    )


class PlateauSpec(Section):
    """``[plateau]``: cut the lr by ``factor`` when ``metric`` stops improving.

    ``patience`` and ``cooldown`` count evaluations (every ``train.eval_every`` steps), not
    steps. ``metric`` unset follows the run's ``train.metric``; ``mode`` unset means ``max``
    for ``val_accuracy`` and ``min`` otherwise.
    """

    metric: Metric | None = None  # None: the run's metric, train.metric
    mode: Literal["min", "max"] | None = None
    factor: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(10, ge=0)
    threshold: float = Field(1e-4, ge=0)
    threshold_mode: Literal["rel", "abs"] = "rel"
    cooldown: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)


class RegularizationSpec(Section):
    """``[regularization]``: penalties on the weights (names matching ``exclude`` are skipped).

    ``in_loss = true`` adds the L1/L2 penalty to the loss instead of the optimizer step.
    """

    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)
    weight_decay: float | None = Field(None, ge=0)
    exclude: list[str] = Field(default_factory=lambda: ["bias", "norm"])
    in_loss: bool = False


class TrainSpec(Section):
    """``[train]``: how the data is fed and for how long.

    Give ``epochs`` or ``steps``, not both; with neither, ``epochs = 10``. ``checkpoint_every``
    unset means a checkpoint at every evaluation. ``threads`` is torch's intra-op thread count
    for the run; unset, it is chosen from the model's size. ``compile = true`` runs the model's
    forward and loss through ``torch.compile``, compiled before the clock starts (its seconds are
    ``summary.json``'s ``compile_time``, not part of ``wall_time``; see training/compiled.py).
    """

    DEFAULT_EPOCHS: ClassVar[int] = 10

    mode: Mode = "minibatch"
    batch_size: int = Field(100, ge=1)
    epochs: int | None = Field(None, ge=1)
    steps: int | None = Field(None, ge=1)
    eval_every: int = Field(100, ge=1)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    # None: 1 for models under a million parameters, else the usable cores (training/threads.py)
    threads: int | None = Field(None, ge=1)
    checkpoint_every: int | None = Field(None, ge=1)
    shard_state: bool = False
    loss: Literal["auto", "cross_entropy", "mse"] = "auto"
    compile: bool = False
    # What the run is judged by: its summary's best, compare's table and --target, the
    # plateau controller. "auto": val_accuracy for classification, else val_loss.
    metric: Literal["auto", *METRICS] = "auto"  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _default_length(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("epochs") is None and data.get("steps") is None:
            return {**data, "epochs": cls.DEFAULT_EPOCHS}
        return data

    @model_validator(mode="after")
    def _one_length(self) -> TrainSpec:
        if self.epochs is not None and self.steps is not None:
            raise problem(
                "train.epochs and train.steps are both set; give one "
                "(epochs = passes over the training set, steps = optimizer updates)"
            )
        return self
