"""Start-up cost of a lab's worker process: the same tiny lab run in a fresh worker
(``--isolation process``) and in this process (``--isolation none``), interleaved.

    python benchmarks/bench_worker.py [--repeat 7]

The lab (``failing`` from tests/plugins) records two checks and imports nothing, so the
difference of the two medians is what a worker adds per lab: starting Python with
``spawn``, importing labrunner and the lab's plugin, importing torch and seeding. In-process
runs reuse this process's torch, imported once before timing. Prints the median and the
spread (min-max) of each, and the per-lab cost beside ``python -c "import torch"`` timed in
the same loop; also the wall time of a ``labrunner run`` whose lab is cached (the parent
alone, which never imports torch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "tests" / "plugins"


def spec_for(tmp: Path) -> tuple[dict, object]:
    from labrunner.cache import ResultCache, cache_key, source_hash
    from labrunner.config import RunConfig, config_as_dict, resolve_settings
    from labrunner.plugins import load_plugins
    from labrunner.runner import lab_job_spec

    plugins = load_plugins([PLUGINS])
    settings = resolve_settings(
        plugins, ["failing"], RunConfig(), profile="smoke", plugins_dirs=[str(PLUGINS)]
    )
    (lab,) = settings.labs
    key = cache_key(lab, config_as_dict(settings.configs["failing"]), 0, "cpu", False, source_hash(lab))
    return lab_job_spec(lab, settings, plugins, ResultCache(tmp / "cache"), key, tmp / "out" / "failing"), lab


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times):7.3f} s   spread {min(times):7.3f} - {max(times):7.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ["LABRUNNER_PLUGINS"] = "core_labs"
    import torch  # noqa: F401  (the in-process runs reuse it, as --isolation none does)

    from labrunner.progress import Reporter
    from labrunner.worker import LocalWorker, run_lab_job

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["LABRUNNER_CACHE_DIR"] = str(tmp / "cache")
        spec, _ = spec_for(tmp)
        worker, here, torch_import = [], [], []
        for _ in range(args.repeat):  # interleaved, so load changes hit all alike
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import torch"], check=True)
            torch_import.append(time.perf_counter() - start)
            start = time.perf_counter()
            outcome = LocalWorker(Reporter()).run(spec)
            worker.append(time.perf_counter() - start)
            assert outcome.reply and outcome.reply["status"] == "failed", outcome
            start = time.perf_counter()
            assert run_lab_job(spec)["status"] == "failed"
            here.append(time.perf_counter() - start)
        cmd = [sys.executable, "-m", "labrunner", "run", "failing", "--plugins-dir", str(PLUGINS), "-q"]
        env = {**os.environ}
        subprocess.run(cmd, cwd=tmp, env=env, capture_output=True)  # fills the cache
        cached = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=tmp, env=env, capture_output=True)
            cached.append(time.perf_counter() - start)
    extra = [w - h for w, h in zip(worker, here, strict=True)]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {args.repeat} repeats")
    print(f"{'lab in a worker':<28} {summary(worker)}")
    print(f"{'lab in this process':<28} {summary(here)}")
    print(f"{'worker cost per lab':<28} {summary(extra)}")
    print(f"{'import torch (alone)':<28} {summary(torch_import)}")
    print(f"{'labrunner run, lab cached':<28} {summary(cached)}")


if __name__ == "__main__":
    main()
