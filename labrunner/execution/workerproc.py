"""The entry point of labrunner's own worker processes: ``python -m labrunner.execution.workerproc``.

``worker FD``: one lab worker (the ``spawn`` start), talking to the parent over the socket
``FD``. ``zygote FD``: the zygote (:mod:`.zygote`), which imports torch once and forks a
worker per lab. Workers never import the user's ``__main__`` module: a script that calls
``labrunner.run`` is not run again in them.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("worker", "zygote") or not argv[1].isdigit():
        print(
            "usage: python -m labrunner.execution.workerproc worker|zygote FD (started by labrunner)",
            file=sys.stderr,
        )
        return 2
    fd = int(argv[1])
    if argv[0] == "zygote":
        from .zygote import zygote_main

        zygote_main(fd)
        return 0
    from multiprocessing.connection import Connection

    from .job import worker_main

    worker_main(Connection(fd), imports=True)  # never returns
    return 70  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
