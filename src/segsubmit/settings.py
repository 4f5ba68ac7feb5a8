"""Typed settings of the stages, built once from the validated config (`from_config`) and
handed to the jobs through a rule's `params:` as plain dicts (`as_params` / `from_params`), so
that Snakemake's params trigger sees every value that decides an output."""

from dataclasses import asdict, dataclass, field, fields

from .plugins import backend_named


@dataclass(frozen=True)
class ModelSettings:
    """What decides a model's predictions: `model:` (with the backend's own section as
    `options`), the weights in use (the demo model's path when `model.weights` is null), the
    class count and `infer.precision` / `infer.channels_last`."""

    backend: str
    weights: str
    num_classes: int
    device: str = "auto"
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    precision: str = "fp32"
    channels_last: bool = False
    options: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, config, weights):
        model, infer = config["model"], config["infer"]
        return cls(
            backend=model["backend"],
            weights=str(weights),
            num_classes=len(config["classes"]),
            device=model["device"],
            mean=tuple(model["mean"]),
            std=tuple(model["std"]),
            precision=infer["precision"],
            channels_last=infer["channels_last"],
            options=dict(model.get(model["backend"], {})),
        )

    @property
    def declaration(self):
        """The backend's `plugins.Backend` declaration."""
        return backend_named(self.backend)

    def files(self):
        """{role: path} of the files the model is made of: `weights` and the backend's file
        options (e.g. a config file); the Snakemake inputs and the hashed files."""
        options = {key: self.options.get(key) for key in self.declaration.file_options}
        return {"weights": self.weights, **{key: path for key, path in options.items() if path}}

    def provenance(self):
        """The settings a result records about the model that made it."""
        record = {
            "backend": self.backend,
            "weights": self.weights,
            "device": self.device,
            "precision": self.precision,
            "channels_last": self.channels_last,
            **self.options,
        }
        if self.declaration.uses_normalisation:
            record.update(mean=list(self.mean), std=list(self.std))
        return record


@dataclass(frozen=True)
class InferSettings:
    """How the infer stage feeds the model (`infer:` apart from precision/channels_last)."""

    batch_size: object = 32  # an int, or "auto"
    workers: object = "auto"  # an int, or "auto" (`infer.resolve_workers`)
    on_bad_image: str = "error"
    max_image_pixels: int | None = None

    @classmethod
    def from_config(cls, config):
        infer = config["infer"]
        return cls(**{item.name: infer[item.name] for item in fields(cls)})


@dataclass(frozen=True)
class TTASettings:
    """Test-time augmentation (`infer.tta`): every combination of the listed flips (each off
    and on) with each scale, merged by the mean of softmax probabilities (`prob_mean`) or of
    logits (`logit_mean`). The defaults are no augmentation: the plain predictor."""

    flips: tuple = ()
    scales: tuple = (1.0,)
    merge: str = "prob_mean"

    @classmethod
    def from_config(cls, section):
        return cls(tuple(section["flips"]), tuple(map(float, section["scales"])), section["merge"])

    @property
    def enabled(self):
        return bool(self.flips) or self.scales != (1.0,)

    @property
    def views(self):
        """Forward passes per image."""
        return len(self.scales) * 2 ** len(self.flips)


def as_params(settings):
    """A settings dataclass as the plain dict a rule's `params:` holds."""
    return asdict(settings)


def from_params(settings_class, values):
    """The dataclass back from `as_params` (tuples restored where Snakemake gives lists)."""
    converted = {
        key: tuple(value) if isinstance(value, list) else value for key, value in values.items()
    }
    return settings_class(**converted)


@dataclass(frozen=True)
class MemberSettings:
    """One ensemble member (`ensemble.members[]`): its name, weight, model and TTA; the
    `infer:` settings other than TTA are the top-level ones."""

    name: str
    weight: float
    model: ModelSettings
    tta: TTASettings

    @classmethod
    def from_config(cls, config, member, weights):
        """From a validated `ensemble.members[]` entry; `weights`: its weights in use (the
        demo model's path when its `model.weights` is null)."""
        model = ModelSettings.from_config({**config, "model": member["model"]}, weights)
        return cls(
            member["name"], float(member["weight"]), model, TTASettings.from_config(member["tta"])
        )


@dataclass(frozen=True)
class EnsembleSettings:
    """`ensemble:`: how the members' predictions are combined (docs/ensembles.md)."""

    method: str
    members: tuple  # of MemberSettings, in config order (the tie order)
    csvs: tuple = ()
    weight_search: dict = field(default_factory=dict)
    infer_jobs: str = "per_member"  # or "shared": one infer job per shard for every member

    @classmethod
    def from_config(cls, config, demo_weights):
        """From the validated config (None without `ensemble:`)."""
        section = config.get("ensemble")
        if not section:
            return None
        members = tuple(
            MemberSettings.from_config(config, member, member["model"]["weights"] or demo_weights)
            for member in section["members"]
        )
        search = dict(section["weight_search"])
        return cls(
            section["method"], members, tuple(section["csvs"]), search, section["infer_jobs"]
        )

    @property
    def names(self):
        return [member.name for member in self.members]

    @property
    def weights(self):
        return [member.weight for member in self.members]

    def member(self, name):
        return next(member for member in self.members if member.name == name)

    def files(self):
        """{"<member>.<role>": path} of every member's model files (Snakemake inputs, hashed
        in provenance)."""
        return {
            f"{member.name}.{role}": path
            for member in self.members
            for role, path in member.model.files().items()
        }

    def provenance(self):
        """What a result records about the ensemble that made it."""
        return {
            "method": self.method,
            "members": [
                {
                    "name": m.name,
                    "weight": m.weight,
                    "model": m.model.provenance(),
                    "tta": asdict(m.tta),
                }
                for m in self.members
            ],
            "csvs": list(self.csvs),
        }
