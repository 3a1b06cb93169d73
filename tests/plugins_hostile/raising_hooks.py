"""Observer hooks that raise, one with an exception whose str() raises too."""

import labrunner


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


@labrunner.hookimpl
def run_started(run_dir, labs, settings):
    raise Unprintable()


@labrunner.hookimpl
def lab_started(lab, config, out_dir):
    raise ValueError("observer broke\non two lines")


@labrunner.hookimpl
def lab_finished(lab, result):
    raise RuntimeError("lab_finished broke")


@labrunner.hookimpl
def run_finished(run_dir, results):
    raise RuntimeError("run_finished broke")
