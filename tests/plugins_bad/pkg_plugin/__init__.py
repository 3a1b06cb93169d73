"""A plugin shipped as a package in a plugins folder, using a relative import."""

import labrunner

from .lab import PackagedLab

__version__ = "0.3"


@labrunner.hookimpl
def register_labs(register):
    register(PackagedLab())
