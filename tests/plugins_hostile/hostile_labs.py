"""Labs that end their process in every way a careless lab can, and labs that change
global state, to test that each lab fails alone and cannot affect the next one."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass

import labrunner


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("str() of this exception raises")


class NoText:
    def __str__(self):
        raise RuntimeError("no text")

    __repr__ = __str__


def _exit_zero(ctx):
    sys.exit(0)


def _exit_three(ctx):
    sys.exit(3)


def _os_exit(ctx):
    os._exit(0)


def _killed(ctx):  # what the out-of-memory killer does
    os.kill(os.getpid(), signal.SIGKILL)


def _memory(ctx):
    bytearray(1 << 50)


def _unprintable(ctx):
    raise Unprintable()


def _bad_check_value(ctx):
    with ctx.exercise("1. Check") as ex:
        ex.check("a value without text", True, expected=NoText())


def _bad_check_name(ctx):
    with ctx.exercise("1. Check") as ex:
        ex.check(NoText(), True)


def _unsaveable(ctx):
    """Puts a value past the recorder into the lab's metrics: only saving finds it."""
    ctx.result.metrics["no_text"] = NoText()


def _sleeper(ctx):
    with ctx.exercise("1. Wait") as ex, ctx.progress(total=1000, desc="waiting") as bar:
        for _ in range(1000):
            time.sleep(ctx.config.sleep_s)
            bar.update(1)
        ex.check("woke up", True)


def _forker(ctx):
    """Forks a child that outlives the lab (sleeps, holding every inherited descriptor)."""
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(ctx.config.sleep_s * 60_000)
        finally:
            os._exit(0)
    (ctx.out_dir / "child.pid").write_text(str(pid))
    with ctx.exercise("1. Fork") as ex:
        ex.check("forked", True)


BEHAVIOURS = {
    "forker": _forker,
    "exit_zero": _exit_zero,
    "exit_three": _exit_three,
    "os_exit": _os_exit,
    "killed": _killed,
    "memory": _memory,
    "unprintable": _unprintable,
    "bad_check_value": _bad_check_value,
    "bad_check_name": _bad_check_name,
    "unsaveable": _unsaveable,
    "sleeper": _sleeper,
}


@dataclass(frozen=True)
class SleepConfig:
    sleep_s: float = 0.01


def _make(name, behaviour):
    class HostileLab(labrunner.Lab):
        title = f"Hostile: {name}"
        version = "1"
        Config = SleepConfig

        def run(self, ctx):
            behaviour(ctx)

    HostileLab.name = name
    return HostileLab


# ----------------------------------------------------------------------------- the cache


class ManyFiles(labrunner.Lab):
    """Writes many files, so that runs storing it at the same time overlap."""

    name = "many_files"
    title = "Writes many files"
    version = "1"

    def run(self, ctx):
        with ctx.exercise("1. Files") as ex:
            for i in range(300):
                ctx.file(f"part-{i:03d}.txt").write_text(str(i) * 100)
            ex.metric("files", 300)
            ex.check("written", True)


class Checkpointing(labrunner.Lab):
    """Resumes from a checkpoint in its state folder when one is there."""

    name = "checkpointing"
    title = "Keeps a checkpoint"
    version = "1"

    def run(self, ctx):
        checkpoint = ctx.state_dir / "checkpoint.txt"
        with ctx.exercise("1. Resume") as ex:
            ex.metric("resumed", int(checkpoint.is_file()))
            ctx.state_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.write_text("done")
            ex.check("ran", True)


# ----------------------------------------------------------------------------- global state

#: The state a lab finds when it starts, recorded by ``state_reader``.
MODULE_GLOBAL = ["untouched"]


class StateChanger(labrunner.Lab):
    name = "state_changer"
    title = "Changes every global it can"
    version = "1"

    def run(self, ctx):
        import torch

        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(1)
        os.chdir(ctx.out_dir)
        signal.signal(signal.SIGTERM, lambda *a: None)
        os.environ["LABRUNNER_TEST_LEAK"] = "leaked"
        MODULE_GLOBAL[0] = "changed"
        with ctx.exercise("1. Change") as ex:
            ex.check("changed", True)


class StateReader(labrunner.Lab):
    name = "state_reader"
    title = "Records the global state it finds"
    version = "1"

    def run(self, ctx):
        import torch

        with ctx.exercise("1. Read") as ex:
            ex.check_equal("default dtype", str(torch.get_default_dtype()), "torch.float32")
            ex.check_equal("cwd", os.getcwd(), os.environ.get("LABRUNNER_TEST_CWD", os.getcwd()))
            ex.check("SIGTERM handler", signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
            ex.check_equal("environment", os.environ.get("LABRUNNER_TEST_LEAK", ""), "")
            ex.check_equal("module global", MODULE_GLOBAL[0], "untouched")
            ex.metric("torch_threads", torch.get_num_threads())


class Vanishing(labrunner.Lab):
    """Registered in the labrunner process only: its worker cannot find it."""

    name = "vanishing"
    title = "Missing in its worker"
    version = "1"

    def run(self, ctx):
        with ctx.exercise("1. Here") as ex:
            ex.check("ran", True)


@labrunner.hookimpl
def register_labs(register):
    if os.environ.get("LABRUNNER_WORKER") != "1":  # set in labrunner's worker processes
        register(Vanishing)
    for name, behaviour in BEHAVIOURS.items():
        register(_make(name, behaviour))
    register(StateChanger)
    register(StateReader)
    register(ManyFiles)
    register(Checkpointing)
