"""CPU thread policy in one place: how many threads a run uses and how idle threads wait.

One decision, applied the same way everywhere (chapters, ``aerialseg train``, the book runner,
the Makefile, benchmarks):

* **threads**: the explicit argument (``--threads N``, ``make ... THREADS=N``), else the
  environment variable ``AERIALSEG_THREADS``, else ``OMP_NUM_THREADS`` if the caller set it,
  else every core this process may run on. ``"all"``, ``"auto"`` or ``0`` also mean all cores.
  On a shared machine use ``threads=1`` (or ``AERIALSEG_THREADS=1``).
* **OMP_WAIT_POLICY**: ``PASSIVE`` unless the argument or the environment says otherwise.
  With the default (spinning) policy an idle OpenMP thread keeps its core busy; with one core
  taken by another job a 2-thread run was 3.5x slower than a 1-thread run
  (``bench/bench_threads.py``). Passive waiting gives that core back.

The setting is ``torch.set_num_threads(n)`` plus ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OMP_WAIT_POLICY`` in ``os.environ``. OpenMP reads ``OMP_WAIT_POLICY`` once, when the runtime
is loaded (``import torch``), so in a process that has already imported torch it only reaches
*child* processes: the book runner therefore puts the variables into the environment of the
papermill kernels (:func:`child_thread_env`), and a script that wants it for itself sets it
before importing torch (:func:`configure_threads` does, if torch is not loaded yet).

:func:`configure_threads` returns a small description, e.g. ``{"threads": 1,
"omp_wait_policy": "PASSIVE", "source": "AERIALSEG_THREADS (aerialseg book run --threads)",
"cores": 2, "omp_wait_policy_in_effect": True}``, for chapters to print and to record in the
results' provenance.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

ENV_THREADS = "AERIALSEG_THREADS"
"""Thread count for every aerialseg process started from here (``all`` = every core)."""
ENV_SOURCE = "AERIALSEG_THREADS_SOURCE"
"""Where the parent took :data:`ENV_THREADS` from (for the child's description)."""
WAIT_POLICIES = ("PASSIVE", "ACTIVE")
DEFAULT_WAIT_POLICY = "PASSIVE"
_ALL = ("all", "auto", "0", "")


def available_cores() -> int:
    """Cores this process may run on (CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _parse_threads(value: int | str, what: str) -> int | None:
    """An int >= 1, or None for "all cores"; ValueError otherwise."""
    text = str(value).strip().lower()
    if text in _ALL:
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{what} must be a positive integer or 'all', got {value!r}") from None
    if n < 0:
        raise ValueError(f"{what} must be a positive integer or 'all', got {value!r}")
    return n or None


def _parse_policy(value: str, what: str) -> str:
    policy = str(value).strip().upper()
    if policy not in WAIT_POLICIES:
        raise ValueError(f"{what} must be one of {WAIT_POLICIES} (any case), got {value!r}")
    return policy


def resolve_threads(threads: int | str | None = None, *, wait_policy: str | None = None,
                    environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Decide the thread count and wait policy (nothing is set).

    Args:
        threads: explicit choice (int >= 1, or ``"all"``/``0``); None: from the environment.
        wait_policy: ``"passive"`` or ``"active"``; None: ``OMP_WAIT_POLICY`` if set, else
            passive.
        environ: the environment to read (default ``os.environ``).

    Returns:
        ``{"threads": n, "omp_wait_policy": "PASSIVE"|"ACTIVE", "source": str, "cores": c}``.

    Raises:
        ValueError: an unreadable thread count or wait policy (argument or environment).
    """
    env = os.environ if environ is None else environ
    cores = available_cores()
    if threads is not None:
        n, source = _parse_threads(threads, "threads"), "argument"
    elif env.get(ENV_THREADS, "").strip():
        n, source = _parse_threads(env[ENV_THREADS], ENV_THREADS), ENV_THREADS
        origin = env.get(ENV_SOURCE, "")
        if origin:
            source = f"{ENV_THREADS} ({origin})"
    elif env.get("OMP_NUM_THREADS", "").strip():
        n, source = _parse_threads(env["OMP_NUM_THREADS"], "OMP_NUM_THREADS"), "OMP_NUM_THREADS"
    else:
        n, source = None, "default"
    if n is None:
        n = cores
        source += " (all cores)"
    if wait_policy is not None:
        policy = _parse_policy(wait_policy, "wait_policy")
    elif env.get("OMP_WAIT_POLICY", "").strip():
        policy = _parse_policy(env["OMP_WAIT_POLICY"], "OMP_WAIT_POLICY")
    else:
        policy = DEFAULT_WAIT_POLICY
    return {"threads": n, "omp_wait_policy": policy, "source": source, "cores": cores}


def thread_env(threads: int | str | None = None, *, wait_policy: str | None = None,
               environ: Mapping[str, str] | None = None,
               origin: str | None = None) -> dict[str, str]:
    """The environment variables that give a child process the same thread policy.

    ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OMP_WAIT_POLICY``, ``AERIALSEG_THREADS`` (so
    :func:`configure_threads` in the child picks the same count) and
    ``AERIALSEG_THREADS_SOURCE``: ``origin`` (e.g. ``"aerialseg book run --threads"``), else
    where the count came from here.
    Merge it into the child's environment: ``subprocess.run(..., env={**os.environ, **env})``.
    """
    env = os.environ if environ is None else environ
    d = resolve_threads(threads, wait_policy=wait_policy, environ=env)
    if origin is None:
        # a count inherited through AERIALSEG_THREADS keeps the parent's origin
        inherited = d["source"].startswith(ENV_THREADS) and env.get(ENV_SOURCE, "")
        origin = inherited or d["source"]
    n = str(d["threads"])
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OMP_WAIT_POLICY": d["omp_wait_policy"],
            ENV_THREADS: n, ENV_SOURCE: origin}


def _openmp_loaded() -> bool:
    """Whether an OpenMP runtime is already mapped into this process (Linux; else guess)."""
    try:
        with open("/proc/self/maps") as fh:
            maps = fh.read()
    except OSError:
        return "torch" in sys.modules
    return any(name in maps for name in ("libgomp", "libiomp", "libomp"))


def configure_threads(threads: int | str | None = None, *, wait_policy: str | None = None,
                      environ: MutableMapping[str, str] | None = None) -> dict[str, Any]:
    """Choose the thread policy (see :func:`resolve_threads`) and apply it to this process.

    Sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OMP_WAIT_POLICY`` and
    ``AERIALSEG_THREADS`` in ``environ`` (default ``os.environ``: inherited by child processes),
    then ``torch.set_num_threads(n)``.

    Returns:
        :func:`resolve_threads`'s description plus ``omp_wait_policy_in_effect``: whether this
        process's OpenMP runtime runs with that policy. True when the runtime was not loaded yet
        (it reads the variable we just set) or the variable already held the value (set by the
        parent, the Makefile, or the script before ``import torch``); False means only child
        processes get it: start the process with the variable set (``make``, ``aerialseg book
        run`` and ``aerialseg train`` do) for it to apply here.
    """
    env = os.environ if environ is None else environ
    desc = resolve_threads(threads, wait_policy=wait_policy, environ=env)
    before = env.get("OMP_WAIT_POLICY", "").strip().upper()
    in_effect = before == desc["omp_wait_policy"] or not _openmp_loaded()
    env.update(thread_env(threads, wait_policy=wait_policy, environ=env))
    import torch  # after the variables: a first import of torch loads OpenMP with them

    torch.set_num_threads(desc["threads"])
    return {**desc, "omp_wait_policy_in_effect": in_effect}


@contextmanager
def child_thread_env(threads: int | str | None = None, *, wait_policy: str | None = None,
                     origin: str | None = None) -> Iterator[dict[str, Any]]:
    """Put :func:`thread_env` into ``os.environ`` while the block runs, then restore it.

    Child processes started inside the block (papermill's kernels, subprocesses) inherit the
    variables; this process's own torch threads are left alone. Yields the description.
    """
    desc = resolve_threads(threads, wait_policy=wait_policy)
    env = thread_env(threads, wait_policy=wait_policy, origin=origin)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield desc
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def describe(desc: Mapping[str, Any]) -> str:
    """One line for a log: ``threads: 1 of 2 cores (AERIALSEG_THREADS), OMP_WAIT_POLICY=...``."""
    line = (f"threads: {desc['threads']} of {desc['cores']} cores ({desc['source']}), "
            f"OMP_WAIT_POLICY={desc['omp_wait_policy']}")
    if desc.get("omp_wait_policy_in_effect") is False:
        line += " (for child processes only: this one started without it)"
    return line
