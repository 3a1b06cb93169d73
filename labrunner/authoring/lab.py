"""The lab contract: what a lab plugin registers.

A lab is a subclass of :class:`Lab` with a name, a title, a version, a typed
config (a dataclass whose fields all have defaults), named profiles that
override some of those defaults, and a ``run(ctx)`` method that records
exercises through its :class:`~labrunner.authoring.context.LabContext`.

Keep heavy imports (torch, torchvision, matplotlib) inside ``run`` so that
discovering plugins stays fast.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from ..base.errors import PluginError
from ..base.names import NAME_PATTERN, RESERVED_NAMES, reserved_why

if TYPE_CHECKING:
    from .context import LabContext

#: Profiles every lab understands; a lab may leave any of them equal to its defaults.
STANDARD_PROFILES = ("smoke", "quick", "full")


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """The config of a lab that has no settings."""


class Lab:
    """Base class of every lab.

    Class attributes a lab sets:

    - ``name``: identifier used on the command line (``[a-z][a-z0-9_]*``).
    - ``title``: the heading of the lab in the report.
    - ``version``: part of the cache key; bump it when results would change.
    - ``description``: one line for ``labrunner list``.
    - ``Config``: a dataclass; every field has a default and a type annotation, its
      bounds in ``metadata`` (``min``, ``max``, ``above``, ``below``, ``min_len``,
      ``max_len``, ``choices``) and a ``#:`` comment above it, its one-line description
      in ``labrunner config`` (or ``metadata={"help": ...}``).
    - ``profiles``: ``{"smoke": {...}, "quick": {...}, "full": {...}}``, each a
      mapping of config field to value that overrides the defaults.
    - ``part`` (optional): where the lab belongs in the assignment, shown above its
      title in the report, e.g. ``"Problem 1"``.
    - ``order`` (optional): the report's sort key (a number; smaller comes first, labs
      without one follow in run order). A config file's ``report: {order: [...]}`` wins.
    - ``expected_s`` (optional): about how many seconds the lab takes per profile,
      ``{"quick": 40}``; labs running in parallel start the longest first, so that a long
      lab does not start last and run alone. Labs without it start after, in run order.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    part: ClassVar[str] = ""
    order: ClassVar[float | None] = None
    expected_s: ClassVar[dict[str, float]] = {}

    def run(self, ctx: LabContext) -> None:
        """Run the lab, recording its exercises through ``ctx``."""
        raise NotImplementedError(f"lab {self.name!r} does not implement run(ctx)")

    def validate(self, config: Any) -> None:
        """Refuse settings this lab cannot run with: raise ``ValueError("field: why")``.

        Called with the resolved config before anything runs or is written; the message
        becomes the one-line error, shown with where ``field`` was set. The default accepts
        every config. A bound on one number is simpler declared on the field:
        ``draws: int = field(default=8, metadata={"min": 1})``.
        """

    def __repr__(self) -> str:
        return f"<Lab {self.name} {self.version}>"


def validate_lab(lab: object) -> Lab:
    """Check that ``lab`` honours the contract; raise :class:`PluginError` if not."""
    if isinstance(lab, type) and issubclass(lab, Lab):
        lab = lab()
    if not isinstance(lab, Lab):
        raise PluginError(f"registered {lab!r}, which is not a labrunner.Lab")
    name = getattr(lab, "name", "")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginError(
            f"invalid lab name {name!r}: use lower-case letters, digits and '_', starting with a letter"
        )
    if name in RESERVED_NAMES:
        raise PluginError(f"invalid lab name {name!r}: {reserved_why(name)}")
    if not isinstance(lab.title, str) or not lab.title:
        raise PluginError(f"lab {name!r} has no title")
    if not isinstance(lab.version, str) or not lab.version:
        raise PluginError(f"lab {name!r} has no version string")
    if not isinstance(lab.part, str):
        raise PluginError(f"lab {name!r}: part must be a string such as 'Problem 1'")
    if lab.order is not None and (isinstance(lab.order, bool) or not isinstance(lab.order, (int, float))):
        raise PluginError(f"lab {name!r}: order must be a number or None")
    config_cls = lab.Config
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise PluginError(f"lab {name!r}: Config must be a dataclass")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    for f in fields.values():
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise PluginError(f"lab {name!r}: config field {f.name!r} has no default")
    if not isinstance(lab.profiles, dict):
        raise PluginError(f"lab {name!r}: profiles must be a dict of dicts")
    for profile, overrides in lab.profiles.items():
        if not isinstance(overrides, dict):
            raise PluginError(f"lab {name!r}: profile {profile!r} must be a dict")
        for key in overrides:
            if key not in fields:
                raise PluginError(f"lab {name!r}: profile {profile!r} sets unknown field {key!r}")
    if type(lab).run is Lab.run:
        raise PluginError(f"lab {name!r} does not implement run(ctx)")
    return lab


def profile_names(lab: Lab) -> list[str]:
    """The profiles ``lab`` accepts: the standard three plus any it defines."""
    names = list(STANDARD_PROFILES)
    names += [p for p in lab.profiles if p not in names]
    return names
