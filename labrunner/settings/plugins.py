"""Finding plugins: built-in labs, the ``labrunner`` entry-point group, and a
``--plugins-dir`` folder, in that order.

A plugin that cannot be used (fails to import, even with ``SystemExit`` or
``KeyboardInterrupt``, implements an unknown hook, registers an invalid or
duplicate lab, raises while registering) is reported in one line naming it and
skipped; the others still load.

The runner calls hooks through the typed methods of :class:`Plugins`
(``plugins.lab_started(...)``), never through ``pm.hook``: each implementation is
called on its own, and one that raises is reported as a warning naming its plugin
while the run goes on.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from ..authoring import hookspecs
from ..authoring.lab import Lab, validate_lab
from ..base.errors import PluginError, UsageError, describe_exception, did_you_mean
from ..base.version import __version__

if TYPE_CHECKING:
    from ..records.results import LabResult

#: What a plugin's import may raise and still only cost that plugin: any error, and also
#: ``SystemExit`` (a stray ``sys.exit()``) and ``KeyboardInterrupt`` raised by its code.
IMPORT_FAILURES = (Exception, SystemExit, KeyboardInterrupt)

ENTRY_POINT_GROUP = "labrunner"
#: The module attribute of a student version (``labrunner assign``): the package it was
#: assigned from. Such a plugin replaces the built-in plugin of the same name.
ASSIGNED_FROM = "__labrunner_assigned_from__"
#: Comma-separated plugin names; when set, only these plugins load.
ENV_ALLOW = "LABRUNNER_PLUGINS"
#: The built-in labs, registered exactly like third-party plugins.
BUILTIN_PLUGINS = (
    "labrunner.labs.cnn_receptive",
    "labrunner.labs.adversarial",
    "labrunner.labs.rnn_lm",
    "labrunner.labs.attention",
)


@dataclass
class PluginInfo:
    """What ``labrunner plugins`` shows about one plugin."""

    name: str
    version: str
    source: str
    module: str
    hooks: list[str] = field(default_factory=list)
    labs: list[str] = field(default_factory=list)


@dataclass
class Problem:
    """A plugin that was skipped, and why."""

    plugin: str
    message: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} skipped: {self.message}"


class Plugins:
    """The loaded plugins and the labs they registered."""

    def __init__(self, only: set[str] | None = None) -> None:
        self.pm = pluggy.PluginManager("labrunner")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.labs: dict[str, Lab] = {}
        self.lab_plugin: dict[str, str] = {}
        self.problems: list[Problem] = []
        allow = os.environ.get(ENV_ALLOW, "").strip()
        self.allow = {n.strip() for n in allow.split(",") if n.strip()} if allow else None
        if only is not None:  # a worker loads only the plugin of its lab
            self.allow = set(only) if self.allow is None else self.allow & set(only)
        #: Where a hook that raised is reported (the runner points it at its reporter).
        self.warn: Callable[[str], None] = _print_warning

    # -- loading
    def load(self, plugins_dirs: list[Path] | None = None) -> Plugins:
        for module_name in BUILTIN_PLUGINS:
            name = module_name.rsplit(".", 1)[-1]
            self._add(name, "builtin", __version__, lambda m=module_name: importlib.import_module(m))
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            version = dist.version if dist is not None else ""
            source = f"entry point ({dist.metadata['Name']})" if dist is not None else "entry point"
            self._add(ep.name, source, version, ep.load)
        for folder in plugins_dirs or []:
            self.load_dir(Path(folder))
        return self

    def load_dir(self, folder: Path) -> None:
        if not folder.is_dir():
            raise UsageError(f"--plugins-dir {folder}: no such folder")
        if (folder / "__init__.py").is_file():  # pointed at a plugin package itself: load that package
            name = folder.resolve().name
            self._add(name, f"plugins-dir ({folder})", "", lambda p=folder, n=name: import_path(n, p))
            return
        for path in sorted(folder.iterdir()):
            if path.name.startswith(("_", ".")):
                continue
            if path.suffix == ".py" and path.is_file():
                name = path.stem
            elif path.is_dir() and (path / "__init__.py").is_file():
                name = path.name
            else:
                continue
            self._add(name, f"plugins-dir ({folder})", "", lambda p=path, n=name: import_path(n, p))

    def _add(self, name: str, source: str, version: str, load: Any) -> None:
        if self.allow is not None and name not in self.allow:
            return
        builtin = (
            self.infos.get(name) if name in self.infos and self.infos[name].source == "builtin" else None
        )
        if name in self.infos and builtin is None:
            self.problems.append(
                Problem(name, f"a plugin named {name!r} is already loaded ({self.infos[name].source})")
            )
            return
        try:
            module = load()
        except IMPORT_FAILURES as exc:  # any failure of third-party code at import
            self.problems.append(Problem(name, f"failed to import: {describe_exception(exc)}"))
            return
        if builtin is not None:
            # The student version of a built-in lab package (labrunner assign) takes its place.
            if getattr(module, ASSIGNED_FROM, None) != builtin.module:
                self.problems.append(Problem(name, f"a plugin named {name!r} is already loaded (builtin)"))
                return
            self._unregister(name)
            source = f"{source}, assigned from {builtin.module}"
        try:
            self._register(name, module, source, version)
        except PluginError as exc:
            self.problems.append(Problem(name, str(exc)))

    def _unregister(self, name: str) -> None:
        """Forget plugin ``name`` and its labs (a student version replaces a built-in)."""
        self.pm.unregister(name=name)
        info = self.infos.pop(name)
        for lab in info.labs:
            self.labs.pop(lab, None)
            self.lab_plugin.pop(lab, None)

    def _register(self, name: str, module: Any, source: str, version: str) -> None:
        specs = {n for n in dir(hookspecs) if self.pm.parse_hookspec_opts(hookspecs, n)}
        hooks = []
        for attr in dir(module):
            if self.pm.parse_hookimpl_opts(module, attr) is not None:
                if attr not in specs:
                    raise PluginError(f"implements unknown hook {attr!r}{did_you_mean(attr, specs)}")
                hooks.append(attr)
        try:
            self.pm.register(module, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"invalid hook: {exc}") from None
        labs: list[Lab] = []

        def register(lab: Any) -> None:
            labs.append(validate_lab(lab))

        try:
            if "register_labs" in hooks:
                call_with(module.register_labs, register=register)
            names = [lab.name for lab in labs]
            for lab in labs:
                if lab.name in self.labs:
                    raise PluginError(
                        f"lab {lab.name!r} is already registered by plugin {self.lab_plugin[lab.name]!r}"
                    )
                if names.count(lab.name) > 1:
                    raise PluginError(f"registers lab {lab.name!r} twice")
        except PluginError:
            self.pm.unregister(name=name)
            raise
        except IMPORT_FAILURES as exc:
            self.pm.unregister(name=name)
            raise PluginError(f"register_labs raised {describe_exception(exc)}") from None
        for lab in labs:
            self.labs[lab.name] = lab
            self.lab_plugin[lab.name] = name
        version = version or str(getattr(module, "__version__", ""))
        self.infos[name] = PluginInfo(
            name=name,
            version=version,
            source=source,
            module=getattr(module, "__name__", name),
            hooks=sorted(hooks),
            labs=[lab.name for lab in labs],
        )

    # -- queries
    def select(self, names: list[str]) -> list[Lab]:
        """The labs named on the command line ('all' for every lab), in order."""
        if not names or names == ["all"]:
            if not self.labs:
                raise UsageError("no labs are installed")
            return list(self.labs.values())
        selected: list[Lab] = []
        for name in names:
            if name == "all":
                selected += [lab for lab in self.labs.values() if lab not in selected]
                continue
            if name not in self.labs:
                known = ", ".join(self.labs) or "none"
                raise UsageError(
                    f"unknown lab {name!r}{did_you_mean(name, self.labs)}; installed labs: {known}"
                )
            if self.labs[name] not in selected:
                selected.append(self.labs[name])
        return selected

    # -- hooks, called through typed methods
    def _call(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of ``hook``; one that raises is reported with its
        plugin's name and the others still run."""
        caller = getattr(self.pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):  # pluggy's order: last registered first
            try:
                call_with(impl.function, **kwargs)
            except Exception as exc:
                self.warn(f"plugin {impl.plugin_name!r}: hook {hook} raised {describe_exception(exc)}")

    def run_started(self, *, run_dir: Path, labs: list[str], settings: dict[str, Any]) -> None:
        self._call("run_started", run_dir=run_dir, labs=labs, settings=settings)

    def lab_started(self, *, lab: Lab, config: Any, out_dir: Path) -> None:
        self._call("lab_started", lab=lab, config=config, out_dir=out_dir)

    def lab_finished(self, *, lab: Lab, result: LabResult) -> None:
        self._call("lab_finished", lab=lab, result=result)

    def run_finished(self, *, run_dir: Path, results: list[LabResult]) -> None:
        self._call("run_finished", run_dir=run_dir, results=results)

    def report_formats(self) -> dict[str, tuple[Callable[..., Path], str]]:
        """The report formats plugins registered: name -> (render, description)."""
        formats: dict[str, tuple[Callable[..., Path], str]] = {}

        def register(name: str, render: Callable[..., Path], description: str = "") -> None:
            formats[name] = (render, description)

        self._call("register_report_formats", register=register)
        return formats


def _print_warning(message: str) -> None:
    print(f"labrunner: warning: {message}", file=sys.stderr)


def call_with(func: Any, **kwargs: Any) -> Any:
    """Call a hook function with the keyword arguments it names (pluggy's rule)."""
    params = inspect.signature(func).parameters
    return func(**{k: v for k, v in kwargs.items() if k in params})


def import_path(name: str, path: Path) -> ModuleType:
    """Import a plugin file or package from a folder, under a private module name."""
    if "labrunner_plugins_dir" not in sys.modules:  # the parent, so relative imports work
        parent = ModuleType("labrunner_plugins_dir")
        parent.__path__ = []
        sys.modules["labrunner_plugins_dir"] = parent
    module_name = f"labrunner_plugins_dir.{name}"
    target = path / "__init__.py" if path.is_dir() else path
    spec = importlib.util.spec_from_file_location(
        module_name, target, submodule_search_locations=[str(path)] if path.is_dir() else None
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_plugins(plugins_dirs: list[Path] | None = None, only: set[str] | None = None) -> Plugins:
    """Load every plugin (or the ``only`` ones); problems are collected in ``.problems``,
    not raised."""
    return Plugins(only).load(plugins_dirs)
