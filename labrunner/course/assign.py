"""``labrunner assign``: the student version of a lab package.

The instructor's lab is the solved assignment; comments mark what the student receives
differently (nbgrader's convention, on whole lines, found with the tokenizer)::

    def receptive_field(layers):
        # BEGIN SOLUTION the receptive-field recurrence
        r, j = 1, 1
        ...
        # END SOLUTION

    # BEGIN HIDDEN                       (code only the hidden checks need)
    ...
    # END HIDDEN

    ex.check_equal("rf_alexnet", r, 195, hidden=True)    # a hidden check or claim

    # STUDENT ANSWER
    ex.answer(text.A1, ...)

In the student version a solution region keeps its markers around a stub: by default
``raise NotImplementedError("not implemented yet: <label>")`` (the label after
``BEGIN SOLUTION``, else the enclosing function's name), or the region's own stub, given as
``# STUB: <line>`` comments inside it. A hidden region, and each hidden check or claim (a
statement of its own), is removed. A marked answer becomes ``ex.student_answer()``: the
student writes it in ``answers/<lab>.md`` (one section per exercise, with its question), and
the lab's template for it is blanked. The output is an installable package; the source is
only read. :func:`.markers.transplant` puts one version's solution regions into the other (the
solution back into the stubs, or a student's solutions into the instructor's code for
grading). The markers are read in :mod:`.markers`, one file is stubbed in :mod:`.stub`,
the student answers are found in :mod:`.studentanswers`; this module writes the student package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..base.errors import UsageError
from .markers import find_regions, transplant
from .stub import assign_source
from .studentanswers import SourceConstants, StudentAnswer, answer_file, blank_constant, in_run_order

#: What ``labrunner assign`` copies besides Python files (the lab's templates and text).
DATA_SUFFIXES = (".md", ".j2", ".txt", ".json", ".yaml", ".yml", ".csv")


#: The module attribute that says which package a student version was assigned from: a
#: plugin with it replaces the built-in plugin of the same name (see :mod:`.plugins`).
ASSIGNED_FROM = "__labrunner_assigned_from__"


# --------------------------------------------------------------------------- a package


@dataclass
class AssignedPackage:
    """What :func:`assign_package` wrote for one lab package."""

    source: Path
    name: str  # the package's import name in the student version
    labs: list[tuple[str, str]]  # (lab name, lab title)
    solutions: int = 0
    hidden: int = 0
    answers: dict[str, list[StudentAnswer]] = field(default_factory=dict)  # lab -> answers


def locate_package(spec: str) -> Path:
    """The folder of a lab package given as an importable name or a folder."""
    path = Path(spec)
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise UsageError(f"{spec}: not a Python package (no __init__.py)")
        return path.resolve()
    if any(sep in spec for sep in ("/", os.sep)) or spec.endswith(".py"):
        raise UsageError(f"{spec}: no such folder")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", spec):
        raise UsageError(f"{spec!r}: not a package name or a folder")
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"{spec}: cannot be found ({exc})") from None
    if found is None or not found.submodule_search_locations:
        raise UsageError(f"{spec}: no such package (give an importable package name or a folder)")
    return Path(next(iter(found.submodule_search_locations))).resolve()


def _package_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(p == "__pycache__" or p.startswith(".") for p in rel.parts) or not path.is_file():
            continue
        if path.suffix == ".py" or path.suffix in DATA_SUFFIXES:
            files.append(path)
    return files


def _labs_of(root: Path, spec: str) -> list[tuple[str, str]]:
    """(name, title) of the labs the package registers, importing it (lab packages import
    nothing heavy at module level)."""
    from ..settings.plugins import call_with

    try:
        module: ModuleType = (
            importlib.import_module(spec) if not Path(spec).is_dir() else _import_folder(root)
        )
    except Exception as exc:
        raise UsageError(f"{spec}: cannot be imported ({type(exc).__name__}: {exc})") from None
    labs: list[tuple[str, str]] = []
    register_labs = getattr(module, "register_labs", None)
    if callable(register_labs):
        from ..authoring.lab import validate_lab

        def register(lab: object) -> None:
            lab = validate_lab(lab)
            labs.append((lab.name, lab.title))

        call_with(register_labs, register=register)
    if not labs:
        raise UsageError(f"{spec}: registers no lab (no register_labs hook)")
    return labs


def _import_folder(root: Path) -> ModuleType:
    from ..settings.plugins import import_path

    return import_path(f"assign_{root.name}", root)


def assign_package(
    spec: str, sources: dict[str, str | bytes] | None = None
) -> tuple[AssignedPackage, dict[str, str | bytes]]:
    """The student version of one lab package, in memory: (summary, files by relative path)."""
    root = locate_package(spec)
    name = root.name
    labs = _labs_of(root, spec)
    files: dict[str, str | bytes] = {}
    texts: dict[str, str] = {}
    for path in _package_files(root):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".py":
            try:
                texts[rel] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"{path}: not UTF-8 text") from None
        else:
            files[rel] = path.read_bytes()
    consts = SourceConstants(texts)
    summary = AssignedPackage(source=root, name=name, labs=labs)
    blanks: list[tuple[str, str]] = []
    answers: list[StudentAnswer] = []
    for rel, text in texts.items():
        assigned = assign_source(text, rel, consts)
        files[rel] = assigned.text
        summary.solutions += assigned.solutions
        summary.hidden += assigned.hidden
        answers += assigned.answers
        blanks += assigned.blanked
    if answers:
        answers = in_run_order(answers, texts)
        if len(labs) > 1:
            raise UsageError(
                f"{spec}: registers {len(labs)} labs; student answers need one lab per package "
                "(the answer file is per lab)"
            )
        summary.answers[labs[0][0]] = answers
    for module, const in blanks:
        if module in files and isinstance(files[module], str):
            files[module] = blank_constant(files[module], const, module, labs[0][0])  # type: ignore[arg-type]
    init = files.get("__init__.py")
    if isinstance(init, str):
        files["__init__.py"] = (
            init.rstrip("\n")
            + f"\n\n#: The package this student version was assigned from (labrunner assign).\n"
            f"{ASSIGNED_FROM} = {_source_name(spec, root)!r}\n"
        )
    return summary, files


def _source_name(spec: str, root: Path) -> str:
    """The import name of the source package (a folder that is a built-in lab package gets
    that package's name, so that its student version replaces the built-in lab)."""
    if not Path(spec).is_dir():
        return spec
    from ..settings.plugins import BUILTIN_PLUGINS

    for name in BUILTIN_PLUGINS:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        locations = list(found.submodule_search_locations or []) if found else []
        if any(Path(p).resolve() == root for p in locations):
            return name
    return root.name


# --------------------------------------------------------------------------- the student's project


def _pyproject(
    project: str, packages: list[AssignedPackage], files: dict[str, dict[str, str | bytes]]
) -> str:
    names = [p.name for p in packages]
    all_packages = []
    data = {}
    for p in packages:
        subs = sorted({str(Path(rel).parent) for rel in files[p.name] if rel.endswith("__init__.py")})
        all_packages += [p.name if s == "." else f"{p.name}.{s.replace('/', '.')}" for s in subs]
        suffixes = sorted({Path(rel).suffix for rel in files[p.name] if not rel.endswith(".py")})
        if suffixes:
            data[p.name] = [f"*{s}" for s in suffixes]
    entry_points = "\n".join(f'{n} = "{n}"' for n in names)
    package_data = "\n".join(f'"{n}" = {globs!r}'.replace("'", '"') for n, globs in data.items())
    return (
        "[build-system]\n"
        'requires = ["setuptools>=69"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        f'name = "{project}"\n'
        'version = "0.1.0"\n'
        f'description = "Student version of {", ".join(names)} (labrunner assign)"\n'
        'requires-python = ">=3.10"\n'
        'dependencies = ["labrunner"]\n\n'
        "[project.entry-points.labrunner]\n"
        f"{entry_points}\n\n"
        "[tool.setuptools]\n"
        f"packages = {all_packages!r}\n".replace("'", '"')
        + ("\n[tool.setuptools.package-data]\n" + package_data + "\n" if package_data else "")
    )


def _readme(packages: list[AssignedPackage]) -> str:
    labs = [lab for p in packages for lab, _ in p.labs]
    answers = [lab for p in packages for lab in p.answers]
    lines = [
        "# Assignment\n",
        "Install once, then run, fill in, run again:\n",
        "```bash",
        "pip install -e .                 # registers the labs below with labrunner",
        f"labrunner run {' '.join(labs)}",
        "labrunner check                  # what is not implemented yet, failed checks, answers to write",
        "labrunner submit -o submission.zip",
        "```\n",
        "Write your code between each `# BEGIN SOLUTION` and `# END SOLUTION` line, in place of the",
        '`raise NotImplementedError("not implemented yet: ...")`; keep the marker lines. An exercise',
        'whose code is not written yet shows "not implemented yet" in the report; the others run.',
    ]
    if answers:
        lines += [
            "",
            "Write your answers in " + ", ".join(f"`answers/{lab}.md`" for lab in answers) + ", under each",
            "exercise's heading. They may cite your run: `{{ metrics.NAME }}`, `{{ claims.NAME }}`,",
            "`{{ figures.NAME }}` (the names are in the report's measurements).",
        ]
    return "\n".join(lines) + "\n"


def assign(specs: list[str], out: Path, *, force: bool = False, project: str = "") -> list[AssignedPackage]:
    """Write the student version of the lab packages ``specs`` into ``out``: one package per
    lab package, ``answers/<lab>.md`` for labs with student answers, a pyproject.toml that
    registers them with labrunner, and a README. Everything is checked before anything is
    written; ``out`` must be a new or empty folder (``force``: any folder, whose same-named
    files are replaced), and may not be inside a source package."""
    out = Path(out)
    if not specs:
        raise UsageError("give at least one lab package")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out}: not empty (use --force to write into it)")
    packages: list[AssignedPackage] = []
    files: dict[str, dict[str, str | bytes]] = {}
    resolved_out = out.resolve()
    for spec in specs:
        summary, pkg_files = assign_package(spec)
        src = summary.source
        dest = resolved_out / summary.name
        for a, b in ((resolved_out, src), (dest, src), (src, dest)):
            if a == b or b in a.parents:
                raise UsageError(
                    f"--out {out}: inside or over the source package {src} (the source is never modified)"
                )
        if summary.name in files:
            raise UsageError(f"{spec}: a second package named {summary.name!r}")
        packages.append(summary)
        files[summary.name] = pkg_files
    tree: dict[str, str | bytes] = {}
    for p in packages:
        for rel, data in files[p.name].items():
            tree[f"{p.name}/{rel}"] = data
        for lab, answers in p.answers.items():
            title = dict(p.labs)[lab]
            tree[f"answers/{lab}.md"] = answer_file(lab, title, answers)
    tree["pyproject.toml"] = _pyproject(
        project or f"{out.resolve().name}-assignment".lower().replace("_", "-"), packages, files
    )
    tree["README.md"] = _readme(packages)
    _write_tree(out, tree, merge=force)
    return packages


def _write_tree(out: Path, files: dict[str, str | bytes], merge: bool = False) -> None:
    """Write ``files`` under ``out``: into a temporary folder beside it first, then moved in,
    so that an error leaves nothing half-written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    os.chmod(
        tmp, 0o755
    )  # mkdtemp makes it private; the output is an ordinary folder (a grader's sandbox reads it)
    try:
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, str):
                path.write_text(data, encoding="utf-8")
            else:
                path.write_bytes(data)
        if not out.exists() or (out.is_dir() and not any(out.iterdir())):
            if out.exists():
                out.rmdir()
            os.replace(tmp, out)
            return
        if not merge:
            raise UsageError(f"{out}: not empty")
        for rel in files:
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def format_summary(packages: list[AssignedPackage], out: Path) -> str:
    lines = []
    for p in packages:
        answers = sum(len(a) for a in p.answers.values())
        lines.append(
            f"{p.name}: {p.solutions} solution region{'s' if p.solutions != 1 else ''} stubbed, "
            f"{p.hidden} hidden check{'s' if p.hidden != 1 else ''} or region{'s' if p.hidden != 1 else ''} kept back, "
            f"{answers} answer{'s' if answers != 1 else ''} for the student"
            + (f" (answers/{', answers/'.join(lab + '.md' for lab in p.answers)})" if p.answers else "")
        )
    lines.append(f"wrote the student version to {out} (pip install -e {out}; labrunner run ...)")
    return "\n".join(lines)


def add_subcommand(sub: object, parents: list[object]) -> None:
    parser = sub.add_parser(  # type: ignore[attr-defined]
        "assign",
        parents=parents,
        help="write the student version of lab packages (solutions stubbed, hidden checks kept back)",
        description="Write the student version of lab packages: each '# BEGIN SOLUTION' region becomes a "
        "stub, hidden checks and regions are left out, marked answers go to answers/<lab>.md. "
        "The source packages are only read.",
    )
    parser.add_argument("packages", nargs="+", metavar="PACKAGE", help="importable package name or folder")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="new or empty folder for the student version"
    )
    parser.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    parser.add_argument(
        "--name", default="", help="the student package's project name (default: DIR-assignment)"
    )
    parser.set_defaults(handler=_cmd_assign)


def _cmd_assign(args: object) -> int:
    packages = assign(args.packages, Path(args.out), force=args.force, project=args.name)  # type: ignore[attr-defined]
    if getattr(args, "verbosity", 0) >= 0:
        print(format_summary(packages, Path(args.out)))  # type: ignore[attr-defined]
    return 0


# --------------------------------------------------------------------------- transplanting regions


def transplant_package(into: Path, donor: Path, out: Path) -> list[str]:
    """Write into ``out`` the package ``into`` with every solution region taken from the same
    file of ``donor``; returns the files that had regions. ``out`` must not exist."""
    into, donor, out = Path(into), Path(donor), Path(out)
    if out.exists():
        raise UsageError(f"{out}: already exists")
    texts: dict[str, str | bytes] = {}
    changed = []
    for path in _package_files(into):
        rel = path.relative_to(into).as_posix()
        if path.suffix == ".py":
            text = path.read_text(encoding="utf-8")
            if any(r.kind == "solution" for r in find_regions(text, rel)):
                other = donor / rel
                if not other.is_file():
                    raise UsageError(f"{other}: missing (the other version has no {rel})")
                text = transplant(text, other.read_text(encoding="utf-8"), rel)
                changed.append(rel)
            texts[rel] = text
        else:
            texts[rel] = path.read_bytes()
    _write_tree(out, texts)
    return changed
