"""Byte code for a venv: every module gets an unchecked-hash .pyc.

Run by `repoctl build` as `python -c <this> VENV [--beside]`: right after
pip is bootstrapped (so the pip runs that follow import compiled modules),
with --beside while the app is installed (the requirements' modules, on the
cores pip leaves idle), and after everything is installed. A .pyc that is
already current (unchecked hash of the same source) is kept, so nothing is
compiled twice; every other file in a __pycache__ (timestamp .pyc written
by an import, optimized levels, leftovers of an uninstalled module) is
removed.

--beside: one worker fewer than there are cores, and no errors reported,
as files may change under it; the final pass compiles what it missed or
got wrong, and reports.

compileall cannot do this: without --force it keeps only timestamp .pyc
that match, and with it recompiles everything.
"""

import importlib.util
import multiprocessing
import os
import py_compile
import sys
from concurrent.futures import ProcessPoolExecutor

UNCHECKED_HASH = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little")


def scan(root):
    """The .py files below root, and every file in a __pycache__: one walk."""
    sources, cached = [], []
    for directory, _, names in os.walk(root):
        in_cache = os.path.basename(directory) == "__pycache__"
        for name in names:
            if in_cache:
                cached.append(os.path.join(directory, name))
            elif name.endswith(".py"):
                sources.append(os.path.join(directory, name))
    return sources, cached


def is_current(source, pyc):
    try:
        with open(pyc, "rb") as f:
            head = f.read(16)
        with open(source, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return head == UNCHECKED_HASH + importlib.util.source_hash(data)


def remove_strays(cached, keep):
    for path in cached:
        if path not in keep:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def compile_one(source):
    try:
        py_compile.compile(
            source,
            cfile=importlib.util.cache_from_source(source, optimization=""),
            optimize=0,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        return None
    except (py_compile.PyCompileError, OSError) as e:
        return str(e)


def main(root, beside=False):
    # The plain .pyc name, whatever PYTHONOPTIMIZE says.
    sources, cached = scan(root)
    pycs = {s: importlib.util.cache_from_source(s, optimization="") for s in sources}
    remove_strays(cached, set(pycs.values()))
    stale = [source for source, pyc in pycs.items() if not is_current(source, pyc)]
    cores = len(os.sched_getaffinity(0))
    workers = max(1, cores - 1) if beside else cores
    failed = 0
    if stale:
        # fork: workers find compile_one without importing __main__ (-c).
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=fork) as pool:
            for error in pool.map(compile_one, stale, chunksize=16):
                if error is not None and not beside:
                    failed += 1
                    print(error, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], beside="--beside" in sys.argv[2:]))
