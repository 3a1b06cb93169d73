"""Stubs of solution regions: ``raise NotImplementedError("not implemented yet: ...")`` ends
one exercise, not the lab; :func:`exercise_function` lets a later exercise that uses what a
stopped one would have returned stop the same way (an :class:`Unfinished` value)."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..records.results import Exercise

T = TypeVar("T")

#: How the error of a stub begins: ``raise NotImplementedError("not implemented yet: <what>")``
#: is what ``labrunner assign`` writes in place of a solution region (no import needed).
NOT_IMPLEMENTED = "not implemented yet"


def is_not_implemented(exc: BaseException) -> bool:
    """Whether ``exc`` is a stub's error: a ``NotImplementedError`` whose message starts with
    ``"not implemented yet"`` (an operation a backend lacks is a real error, not a stub)."""
    return isinstance(exc, NotImplementedError) and str(exc).startswith(NOT_IMPLEMENTED)


def _where_raised(exc: BaseException) -> str:
    """``file.py, line N`` of the innermost frame of ``exc`` (where the stub is), or where
    the stub of an :class:`Unfinished` value was."""
    where = getattr(exc, "labrunner_where", None)
    if isinstance(where, str):
        return where
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{Path(tb.tb_frame.f_code.co_filename).name}, line {tb.tb_lineno}"


def not_implemented_message(exc: BaseException) -> str:
    """What the report shows for a stub's error: its message and where the stub is."""
    where = _where_raised(exc)
    return f"{exc} ({where})" if where else str(exc)


class Unfinished:
    """What an exercise function that a stub stopped returns (see :func:`exercise_function`):
    a later exercise that uses it in any way stops with the same "not implemented yet"."""

    def __init__(self, error: BaseException):
        object.__setattr__(self, "_message", str(error))
        object.__setattr__(self, "_where", _where_raised(error))

    def _stop(self, *args: Any, **kwargs: Any) -> Any:
        exc = NotImplementedError(object.__getattribute__(self, "_message"))
        exc.labrunner_where = object.__getattribute__(self, "_where")  # type: ignore[attr-defined]
        raise exc

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        self._stop()

    __call__ = __getitem__ = __iter__ = __len__ = __bool__ = __contains__ = __setattr__ = __setitem__ = _stop
    __float__ = __int__ = __index__ = __neg__ = __pos__ = __abs__ = __round__ = __format__ = _stop
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _stop
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __matmul__ = __rmatmul__ = _stop
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _stop
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<unfinished: {object.__getattribute__(self, '_message')}>"


#: How many exercise functions are running (nested calls count): inside one, a stub's error
#: leaves the ``with`` block and the function, which returns an :class:`Unfinished` value.
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("in_exercise_function", default=0)


#: The exercises opened by the exercise function running now (see exercise_function).
_OPENED: contextvars.ContextVar[list[Exercise] | None] = contextvars.ContextVar("opened", default=None)


def exercise_function(func: Callable[..., T] | None = None, *, values: int = 1) -> Any:
    """Decorate a lab's exercise function, one that opens an exercise and returns what later
    exercises use (``@labrunner.exercise_function``, or ``@labrunner.exercise_function(values=2)``
    for one that returns a pair): when a stub stops it, the exercise records "not implemented
    yet" and the function returns an :class:`Unfinished` value (a tuple of ``values`` of them)
    instead of what it measured, so the lab goes on; a later exercise that uses such a value
    is "not implemented yet" too. A stub that stops the function outside its ``with`` block
    (a function that measures first, then records) is recorded by the exercise the function
    opened last: open it first (``ex = ctx.exercise(...)``, later ``with ex:``). Without the
    decorator a stub's error ends the ``with ctx.exercise(...)`` block and the function goes
    on after it (enough for a function that returns nothing, or only what it computed before
    the stub)."""

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            token = _DEPTH.set(_DEPTH.get() + 1)
            opened: list[Exercise] = []
            opened_token = _OPENED.set(opened)
            try:
                return func(*args, **kwargs)
            except NotImplementedError as exc:
                if not is_not_implemented(exc):
                    raise
                # Stopped outside its with block (measuring before recording): the exercise
                # it opened records the stub.
                if opened and not opened[-1].not_implemented:
                    opened[-1].not_implemented = not_implemented_message(exc)
                unfinished = Unfinished(exc)
                return unfinished if values == 1 else (unfinished,) * values  # type: ignore[return-value]
            finally:
                _OPENED.reset(opened_token)
                _DEPTH.reset(token)

        return wrapper

    return decorate(func) if func is not None else decorate


def in_exercise_function() -> bool:
    """Whether an exercise function is running: a stub's error then goes on out of the
    ``with`` block to it, which returns an :class:`Unfinished` value."""
    return _DEPTH.get() > 0


def note_opened(exercise: Exercise) -> None:
    """Note that the exercise function running now (if any) opened ``exercise``: a stub that
    stops the function outside its ``with`` block is recorded by the one opened last."""
    opened = _OPENED.get()
    if opened is not None:
        opened.append(exercise)
