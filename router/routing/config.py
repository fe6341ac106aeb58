"""The routing config: its pydantic model, loading, validation and project overrides.

The default policy lives in ``config/routing.yaml``; every project starts from it and may
override any field.  Validation reports every problem at once, each with the dotted path of the
offending field and a message a person can act on.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "AnnotatorPriorConfig",
    "ConfigProblem",
    "ConsensusConfig",
    "CostsConfig",
    "ExpertsConfig",
    "GoldConfig",
    "GoldRateConfig",
    "LabelsConfig",
    "LeasesConfig",
    "QualityConfig",
    "RoutingConfig",
    "RoutingConfigInvalid",
    "ScoringConfig",
    "ThresholdsConfig",
    "check_config_file",
    "load_default_config",
    "merge_overrides",
    "parse_config",
]

CONFIG_ENV_VAR = "ROUTER_ROUTING_CONFIG"
"""Environment variable naming a YAML file to use instead of the shipped default policy."""

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"
"""The shipped default routing policy."""

# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class ScoringConfig(BaseModel):
    """How items are scored: uncertainty and disagreement measures and their blend."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    uncertainty: Literal["least_confidence", "margin", "entropy"]
    """Measure of model uncertainty on the committee's mean prediction (all in [0, 1])."""

    disagreement: Literal["vote_entropy", "jensen_shannon"]
    """Measure of committee disagreement (0 when the committee has one model)."""

    uncertainty_weight: float = Field(ge=0.0, allow_inf_nan=False, strict=True)
    """Weight of uncertainty in the priority blend (≥ 0)."""

    disagreement_weight: float = Field(ge=0.0, allow_inf_nan=False, strict=True)
    """Weight of disagreement in the priority blend (≥ 0)."""

    neutral_priority: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Priority given to items that arrive without model predictions, in [0, 1]."""

    @model_validator(mode="after")
    def _weights_not_both_zero(self) -> Self:
        if self.uncertainty_weight == 0.0 and self.disagreement_weight == 0.0:
            raise ValueError(
                "uncertainty_weight and disagreement_weight are both 0; "
                "at least one must be positive so that priority is defined"
            )
        return self


class ThresholdsConfig(BaseModel):
    """Score thresholds that decide auto-acceptance and expert routing."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    auto_max_uncertainty: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Auto-accept only when uncertainty is at most this, in [0, 1]."""

    auto_max_disagreement: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Auto-accept only when committee disagreement is at most this, in [0, 1]."""

    expert_min_priority: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Items whose priority is at least this go to the expert tier (within capacity)."""


class LabelsConfig(BaseModel):
    """How many labels each tier is asked for before an item can settle."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    crowd_target: int = Field(ge=1, strict=True)
    """Crowd labels wanted for an ordinary item (≥ 1)."""

    expert_target: int = Field(ge=1, strict=True)
    """Expert labels wanted for an item routed to the expert tier (≥ 1)."""

    crowd_overflow_target: int = Field(ge=1, strict=True)
    """Crowd labels wanted for a hard item the expert tier had no room for (≥ crowd_target)."""

    @field_validator("crowd_overflow_target")
    @classmethod
    def _overflow_at_least_crowd(cls, value: int, info: ValidationInfo) -> int:
        crowd_target = info.data.get("crowd_target")
        if isinstance(crowd_target, int) and value < crowd_target:
            raise ValueError(
                f"must be at least crowd_target ({crowd_target}), got {value}: a hard item "
                "the experts had no room for needs at least as many crowd labels as an "
                "ordinary one"
            )
        return value


class CostsConfig(BaseModel):
    """Cost of one label in each tier, in the project's own unit."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    crowd: float = Field(ge=0.0, allow_inf_nan=False, strict=True)
    """Cost of one crowd label (≥ 0)."""

    expert: float = Field(ge=0.0, allow_inf_nan=False, strict=True)
    """Cost of one expert label (≥ 0)."""


class ExpertsConfig(BaseModel):
    """Limits of the expert tier."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    capacity: int = Field(ge=0, strict=True)
    """The most open (routed, not yet settled) items the expert tier may hold at once."""

    labels_per_item: int = Field(strict=True)
    """Expert labels that settle an item escalated to the expert tier (1 or 2)."""

    take_crowd_work: bool = Field(strict=True)
    """Whether experts may take crowd items when the expert queue is empty."""

    @field_validator("labels_per_item")
    @classmethod
    def _one_or_two(cls, value: int) -> int:
        if value not in (1, 2):
            raise ValueError(
                f"must be 1 or 2, got {value}: one expert label settles an escalated item, "
                "or two when every expert answer should be checked by a second expert"
            )
        return value


class AnnotatorPriorConfig(BaseModel):
    """Beta prior of an annotator's accuracy, before any gold answers are in."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    alpha: float = Field(gt=0.0, allow_inf_nan=False, strict=True)
    """Pseudo-count of correct answers (> 0)."""

    beta: float = Field(gt=0.0, allow_inf_nan=False, strict=True)
    """Pseudo-count of wrong answers (> 0)."""


class ConsensusConfig(BaseModel):
    """When an item's crowd labels settle it, and when it escalates to an expert."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    stop_confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """An item settles when its max posterior reaches this, in [0, 1] ..."""

    min_labels: int = Field(ge=1, strict=True)
    """... with at least this many crowd labels (≥ 1)."""

    escalate_disagreement: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Normalized posterior entropy at or above which an item goes to an expert, in [0, 1] ..."""

    min_labels_before_escalation: int = Field(ge=1, strict=True)
    """... once it has at least this many crowd labels (≥ 1)."""

    crowd_label_cap: int = Field(ge=1, strict=True)
    """The most crowd labels an item gets before escalation, or before settling on the crowd
    consensus when the expert tier is full (≥ min_labels and ≥ min_labels_before_escalation)."""

    annotator_prior: AnnotatorPriorConfig
    """Beta prior of an annotator's accuracy before gold answers."""

    expert_prior: AnnotatorPriorConfig | None = None
    """Beta prior of an expert-tier annotator's accuracy in consensus weights; None: the
    annotator prior. Experts answer little gold (they are scarce), so under the shared prior
    one expert label weighs about as much as a good crowd label; a prior worth tens of gold
    answers at the accuracy experts are hired for lets it outweigh two agreeing crowd labels.
    Suspension rules keep using the annotator prior."""

    model_prior_weight: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Share of the committee's mean prediction in an item's prior, the rest being the
    project's class frequencies: below 1, agreeing human labels can overturn a confident model
    (which spot checks need)."""

    relabel_after_refit: bool = False
    """Under ``quality.confusion_model: refit``: after each refit, every settled item with
    counted labels takes its posterior's most likely class (and its confidence) under the new
    matrices, so a label settled under an early, rougher fit is revised as the fit learns the
    annotators. An item whose class changes is updated in place and audited
    (``item.relabeled``); no webhook event is sent (``item.settled`` told its first label)."""

    @field_validator("crowd_label_cap")
    @classmethod
    def _cap_at_least_the_minimums(cls, value: int, info: ValidationInfo) -> int:
        for name in ("min_labels", "min_labels_before_escalation"):
            minimum = info.data.get(name)
            if isinstance(minimum, int) and value < minimum:
                raise ValueError(
                    f"must be at least {name} ({minimum}), got {value}: an item must be able "
                    f"to collect {minimum} crowd labels before the cap stops it"
                )
        return value


class GoldRateConfig(BaseModel):
    """Probability, per tier, that a claim serves a gold item instead of routed work."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    crowd: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Gold rate for crowd annotators, in [0, 1]."""

    expert: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Gold rate for experts, in [0, 1]."""


class GoldConfig(BaseModel):
    """How gold items (items with known answers) are mixed into annotators' streams."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    rate: GoldRateConfig
    """Probability that a claim serves a gold item instead of routed work, per tier."""

    new_annotator_rate: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """The gold rate for annotators with fewer than ``warmup`` gold answers, in [0, 1]."""

    warmup: int = Field(ge=0, strict=True)
    """Gold answers after which an annotator gets their tier's ordinary gold rate (≥ 0)."""

    onboarding_tasks: int = Field(ge=0, strict=True)
    """The first this-many tasks of a new annotator are gold (0 turns onboarding off) ..."""

    onboarding_min_accuracy: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """... and routed work starts only once their accuracy on them reaches this, in [0, 1]."""


class QualityConfig(BaseModel):
    """When an annotator is suspended for low accuracy on gold."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    min_gold: int = Field(ge=0, strict=True)
    """Gold answers needed before the suspension rule applies (≥ 0)."""

    suspend_below: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Suspend when the upper 95% credible bound of accuracy falls below this, in [0, 1]."""

    drift_window: int = Field(ge=1, strict=True)
    """Drift compares accuracy over the annotator's last this-many gold answers ..."""

    drift_margin: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """... with their accuracy before them, and flags a fall of more than this ..."""

    drift_alpha: float = Field(default=0.01, gt=0.0, le=1.0, allow_inf_nan=False, strict=False)
    """... when a one-sided Fisher exact test finds the fall significant at this level, in
    (0, 1]; 1 flags on the margin alone."""

    refit_interval_s: float = Field(default=300.0, ge=0.0, allow_inf_nan=False, strict=False)
    """The scheduler refits a project's Dawid-Skene model when it has labels newer than its
    last fit and at least this many seconds have passed since that fit (≥ 0)."""

    confusion_model: Literal["symmetric", "refit"] = "refit"
    """Which confusion matrices consensus uses: ``symmetric`` (one gold-based accuracy per
    labeler) or ``refit`` (the last Dawid-Skene refit's matrices, with the symmetric one as a
    Dirichlet prior; labelers the refit did not see get the symmetric one)."""

    refit_prior_strength: float = Field(default=10.0, gt=0.0, allow_inf_nan=False, strict=False)
    """Under ``refit``: pseudo-labels per confusion row given to the symmetric prior (> 0)."""

    refit_prior: AnnotatorPriorConfig | None = None
    """Dirichlet prior of every confusion row in the Dawid-Skene refit itself: ``alpha``
    pseudo-counts on the correct class, ``beta`` spread over the wrong ones; None: the
    consensus annotator prior. With hundreds of labels per annotator a lighter prior (e.g.
    ``{alpha: 1.0, beta: 0.01}``, Dawid-Skene's usual smoothing) lets the counts speak."""

    anchoring_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, allow_inf_nan=False, strict=False
    )
    """Anchoring is flagged when, on gold items whose suggestion was wrong, the lower bound of
    the 95% interval of the rate at which the annotator gave that wrong suggestion is above
    this, in [0, 1] ..."""

    anchoring_min_answers: int = Field(default=10, ge=1, strict=False)
    """... once they have answered at least this many such gold items (≥ 1)."""


class AssistConfig(BaseModel):
    """Model-assisted labeling: a model's suggestion shown with the task (off by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    enabled: bool = Field(default=False, strict=True)
    """Whether tasks/next carries a `suggestion` for the tiers below."""

    model: str = Field(default="committee", min_length=1, max_length=200)
    """Whose prediction is suggested: a committee model's name (its prediction on the item;
    none if the item has no prediction from it), or ``committee`` for the mean of all of the
    item's predictions."""

    tiers: tuple[Literal["crowd", "expert"], ...] = ("crowd",)
    """Annotator tiers shown suggestions (by the annotator's tier, so that gold and routed
    work look alike)."""

    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False, strict=False)
    """No suggestion when the suggested class's probability is below this, in [0, 1]."""


class LeasesConfig(BaseModel):
    """How long an assignment is held for the annotator who claimed it."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    minutes: float = Field(gt=0.0, allow_inf_nan=False, strict=True)
    """Minutes an assignment is held before it returns to the queue (> 0)."""


class RoutingConfig(BaseModel):
    """A complete routing policy (the root of ``config/routing.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    scoring: ScoringConfig
    """How items are scored."""

    thresholds: ThresholdsConfig
    """Thresholds for auto-acceptance and expert routing."""

    spot_check_fraction: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
    """Fraction of auto-accept candidates sent to the crowd instead, as a spot check."""

    labels: LabelsConfig
    """Labels wanted from each tier before an item can settle."""

    costs: CostsConfig
    """Cost of one label in each tier."""

    experts: ExpertsConfig
    """Limits of the expert tier."""

    consensus: ConsensusConfig
    """When crowd labels settle an item, and when it escalates to an expert."""

    gold: GoldConfig
    """How gold items are mixed into annotators' streams."""

    quality: QualityConfig
    """When an annotator is suspended for low accuracy on gold."""

    leases: LeasesConfig
    """How long an assignment is held for its annotator."""

    assist: AssistConfig = AssistConfig()
    """Model-assisted labeling (suggestions in tasks/next)."""

    def as_dict(self) -> dict[str, Any]:
        """Return the config as a plain, JSON-able dict (same shape as the YAML file)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a routing config.

    Attributes:
        path: Dotted path of the offending field, e.g. ``"thresholds.auto_max_uncertainty"``;
            ``""`` for the document (or file) as a whole.
        message: What is wrong, in words a person can act on.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(root)'}: {self.message}"


class RoutingConfigInvalid(Exception):
    """A routing config failed validation.

    Attributes:
        problems: Every problem found, in document order.
    """

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _type_name(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return f"a boolean ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return f"{type(value).__name__} {value!r}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """Return the model class found by following ``loc`` from the root, if any."""
    model: type[BaseModel] = RoutingConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _message(error: Mapping[str, Any]) -> str:
    """Turn one pydantic error into a message a person can act on."""
    kind = str(error.get("type", ""))
    loc = tuple(error.get("loc", ()))
    value = error.get("input")
    msg = str(error.get("msg", ""))
    ctx = error.get("ctx") or {}

    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = ", ".join(parent.model_fields) if parent is not None else ""
        text = f"unknown field {str(loc[-1])!r}" if loc else "unknown field"
        return f"{text}; allowed here: {allowed}" if allowed else text
    if kind == "missing":
        return "required field is missing"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"must be a mapping of fields, got {_type_name(value)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}, got {_type_name(value)}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        symbol = {
            "greater_than_equal": ("≥", "ge"),
            "greater_than": (">", "gt"),
            "less_than_equal": ("≤", "le"),
            "less_than": ("<", "lt"),
        }[kind]
        return f"must be {symbol[0]} {ctx.get(symbol[1])}, got {value!r}"
    if kind == "finite_number":
        return f"must be a finite number, got {value!r}"
    if kind in {"int_type", "int_from_float", "int_parsing"}:
        return f"must be a whole number, got {_type_name(value)}"
    if kind in {"float_type", "float_parsing"}:
        return f"must be a number, got {_type_name(value)}"
    if kind in {"bool_type", "bool_parsing"}:
        return f"must be true or false, got {_type_name(value)}"
    if kind in {"string_type"}:
        return f"must be a string, got {_type_name(value)}"
    if kind == "value_error":
        error_obj = ctx.get("error")
        return str(error_obj) if error_obj is not None else msg.removeprefix("Value error, ")
    return f"{msg} (got {_type_name(value)})"


def _problems(error: ValidationError) -> list[ConfigProblem]:
    return [
        ConfigProblem(
            path=".".join(str(part) for part in e["loc"]),
            message=_message(e),
        )
        for e in error.errors(include_url=False)
    ]


def parse_config(data: object) -> RoutingConfig:
    """Validate a complete routing config mapping.

    Args:
        data: The parsed document (e.g. from YAML or JSON).

    Returns:
        The validated, immutable config.

    Raises:
        RoutingConfigInvalid: Listing every problem found, not just the first.
    """
    if not isinstance(data, Mapping):
        raise RoutingConfigInvalid(
            [
                ConfigProblem(
                    "",
                    "the routing config must be a mapping of sections (scoring, thresholds, "
                    "spot_check_fraction, labels, costs, experts, consensus, gold, quality, "
                    f"leases), got {_type_name(data)}",
                )
            ]
        )
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise RoutingConfigInvalid(
            [ConfigProblem("", f"field names must be strings, got {k!r}") for k in bad_keys]
        )
    try:
        return RoutingConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise RoutingConfigInvalid(_problems(exc)) from None


def _deep_merge(base: Mapping[str, Any], overrides: Mapping[Hashable, Any]) -> dict[Any, Any]:
    merged: dict[Any, Any] = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def merge_overrides(base: RoutingConfig, overrides: object) -> RoutingConfig:
    """Deep-merge partial overrides into a config and validate the result.

    Nested mappings merge field by field; anything else replaces the base value.

    Args:
        base: The config to start from (usually the default policy).
        overrides: A partial mapping shaped like the config, e.g.
            ``{"thresholds": {"expert_min_priority": 0.8}}``. ``None`` means no overrides.

    Returns:
        The merged, validated config.

    Raises:
        RoutingConfigInvalid: If the overrides are not a mapping, name unknown fields (their
            dotted paths are reported) or make the result invalid.
    """
    if overrides is None:
        return base
    if not isinstance(overrides, Mapping):
        raise RoutingConfigInvalid(
            [ConfigProblem("", f"overrides must be a mapping, got {_type_name(overrides)}")]
        )
    return parse_config(_deep_merge(base.as_dict(), overrides))


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects duplicate keys instead of keeping the last one."""


def _construct_unique_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Hashable, Any]:
    loader.flatten_mapping(node)
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        if isinstance(key, Hashable):
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def _read_yaml(path: Path) -> tuple[object, list[ConfigProblem]]:
    """Read a YAML file; return (document, []) or (None, [the one problem])."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [ConfigProblem("", f"file not found: {path}")]
    except IsADirectoryError:
        return None, [ConfigProblem("", f"not a file: {path}")]
    except UnicodeDecodeError as exc:
        return None, [ConfigProblem("", f"{path} is not UTF-8 text ({exc.reason})")]
    except OSError as exc:
        return None, [ConfigProblem("", f"cannot read {path}: {exc.strerror or exc}")]
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader), []  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = "; ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
        return None, [ConfigProblem("", f"invalid YAML in {path}{where}: {what}")]
    except yaml.YAMLError as exc:
        return None, [ConfigProblem("", f"invalid YAML in {path}: {exc}")]


def check_config_file(path: Path) -> list[ConfigProblem]:
    """Check a routing config file and return every problem found.

    Backs ``labelrouter check-config FILE``.

    Args:
        path: The YAML file to check.

    Returns:
        Every problem found (an unreadable file or a YAML syntax error is one problem, with the
        line and column in its message); an empty list when the file is a valid config.
    """
    data, problems = _read_yaml(Path(path))
    if problems:
        return problems
    try:
        parse_config(data)
    except RoutingConfigInvalid as exc:
        return exc.problems
    return []


@functools.lru_cache(maxsize=16)
def _load_cached(path: Path) -> RoutingConfig:
    data, problems = _read_yaml(path)
    if problems:
        raise RoutingConfigInvalid(problems)
    return parse_config(data)


def load_default_config(path: Path | None = None) -> RoutingConfig:
    """Load the default routing policy, cached per file.

    Args:
        path: The YAML file to load. Defaults to the file named by the ``ROUTER_ROUTING_CONFIG``
            environment variable, else the repository's ``config/routing.yaml``.

    Returns:
        The validated, immutable config (the same object on every call for the same file).

    Raises:
        RoutingConfigInvalid: If the file is missing, is not valid YAML or is not a valid config.
    """
    if path is None:
        from_env = os.environ.get(CONFIG_ENV_VAR)
        path = Path(from_env) if from_env else DEFAULT_CONFIG_PATH
    return _load_cached(Path(path).expanduser().resolve())
