"""Brokers hand chunks to workers: one thread per local device (``--devices``), or one Ray actor
per GPU (or per CPU slot) of a Ray cluster (``--ray``). Ray is imported only here, only for ``--ray``.

A worker whose process dies mid-chunk (a killed actor, a lost node) has its chunk run again on
another worker; the chunk's segment is written under a temporary name and renamed only when
complete, so nothing is lost or written twice. Ctrl-C cancels the work in flight; the chunks
already finished stay in the journal for ``--resume``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterable

from upvid.errors import UsageError
from upvid.job.options import JobOptions
from upvid.job.render import Task, render

log = logging.getLogger("upvid")

Done = Callable[[Task, dict], None]


class Worker:
    """One device's worker: its own model and engine, loaded once, rendering tasks in turn.

    Args:
        opts: the job's options (its ``device`` replaced by this worker's).
        device: ``cpu``, ``cuda``, ``cuda:N``.
        threads: torch threads (CPU workers; ``None``: torch's default).
    """

    def __init__(self, opts: JobOptions, device: str, threads: int | None = None) -> None:
        from upvid.job.run import EngineFactory

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.opts = dataclasses.replace(opts, device=device)
        self.engines = EngineFactory(self.opts)

    def render(self, task: Task) -> dict:
        return render(task, self.opts, self.engines)

    def where(self) -> tuple[str, int]:
        """``(host name, process id)``."""
        return socket.gethostname(), os.getpid()


def parse_devices(text: str) -> list[str]:
    """``--devices cuda:0,cuda:1`` / ``all`` (every local CUDA device) / ``cpu,cpu``.

    Raises:
        UsageError: an empty list, ``all`` without CUDA, or a device that is not there.
    """
    import torch

    if text.strip() == "all":
        n = torch.cuda.device_count()
        if n == 0:
            raise UsageError("--devices all: no CUDA device here (use --ray for CPU workers, or --devices cpu,cpu)")
        return [f"cuda:{i}" for i in range(n)]
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices:
        raise UsageError("--devices needs a list, e.g. cuda:0,cuda:1, or all")
    from upvid.engine import resolve_device

    for d in devices:
        resolve_device(d)  # a usage error for a device that is not there
    return devices


class LocalBroker:
    """One thread per device of this machine, each with its own :class:`Worker`."""

    def __init__(self, opts: JobOptions, devices: list[str]) -> None:
        self.workers = [Worker(opts, d) for d in devices]

    def run(self, tasks: Iterable[Task], done: Done) -> None:
        """Render every task; ``done(task, entry)`` as each finishes (from the worker's thread).

        Raises:
            The first worker error (the others stop after their current chunk); KeyboardInterrupt.
        """
        todo: queue.Queue[Task] = queue.Queue()
        for t in tasks:
            todo.put(t)
        errors: list[BaseException] = []
        stop = threading.Event()

        def loop(w: Worker) -> None:
            while not stop.is_set():
                try:
                    t = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done(t, w.render(t))
                except BaseException as e:  # noqa: BLE001 - handed to the driver
                    errors.append(e)
                    stop.set()

        threads = [threading.Thread(target=loop, args=(w,), daemon=True, name=f"upvid-{i}")
                   for i, w in enumerate(self.workers)]
        for th in threads:
            th.start()
        try:
            for th in threads:
                while th.is_alive():
                    th.join(timeout=0.2)
        except KeyboardInterrupt:
            stop.set()
            raise
        if errors:
            raise errors[0]

    def close(self) -> None:
        pass


def import_ray():
    """Ray, or a usage error naming the extra (exit 2)."""
    try:
        import ray
    except ImportError:
        raise UsageError('--ray needs Ray: pip install "upvid[ray]"') from None
    return ray


class RayBroker:
    """One Ray actor per GPU of the cluster (``num_gpus=1``), or per CPU slot of ``threads`` CPUs.

    Args:
        opts: the job's options.
        address: an existing cluster (``host:port``, ``ray://...``, ``auto``), or ``None`` for a
            local ``ray.init()`` on this machine.
        workers: CPU actors to start (default: the cluster's CPUs // ``threads``); ignored with GPUs.
        threads: torch threads per CPU actor.
    """

    def __init__(self, opts: JobOptions, address: str | None, workers: int | None = None, threads: int = 1) -> None:
        ray = import_ray()
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            kw = {"address": address} if address else {"num_cpus": workers * threads if workers else None,
                                                       "object_store_memory": 256 * 2**20}
            ray.init(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                     **{k: v for k, v in kw.items() if v is not None})
        res = ray.cluster_resources()
        gpus = int(res.get("GPU", 0)) if opts.device != "cpu" else 0
        actor = ray.remote(max_restarts=4, max_task_retries=0)(Worker)
        if gpus:
            self.actors = [actor.options(num_gpus=1, num_cpus=1).remote(opts, "cuda") for _ in range(gpus)]
        else:
            n = workers or max(1, int(res.get("CPU", 1)) // threads)
            self.actors = [actor.options(num_cpus=threads).remote(opts, "cpu", threads) for _ in range(n)]
        log.info("Ray: %d %s workers", len(self.actors), "GPU" if gpus else "CPU")

    def where(self) -> list[tuple[str, int]]:
        """``(host, pid)`` of every actor (the tests kill one by its pid)."""
        return self.ray.get([a.where.remote() for a in self.actors])

    def run(self, tasks: Iterable[Task], done: Done, on_submit: Callable[[Task, int], None] | None = None) -> None:
        """Render every task, one in flight per actor; a chunk whose actor died runs again.

        Raises:
            The first task error (as raised in the worker); KeyboardInterrupt (work in flight cancelled).
        """
        ray = self.ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        pending = list(tasks)[::-1]
        inflight: dict = {}
        idle = list(range(len(self.actors)))

        def submit() -> None:
            while pending and idle:
                k = idle.pop(0)
                t = pending.pop()
                inflight[self.actors[k].render.remote(t)] = (k, t)
                if on_submit is not None:
                    on_submit(t, k)

        try:
            submit()
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1)
                ref = ready[0]
                k, t = inflight.pop(ref)
                try:
                    entry = ray.get(ref)
                except (RayActorError, ActorDiedError, ActorUnavailableError) as e:
                    log.warning("a worker died during chunk %d (%s); running it again", t.chunk.index,
                                type(e).__name__)
                    pending.append(t)
                    idle.append(k)  # Ray restarts the actor (max_restarts); its next task waits for it
                    submit()
                    continue
                except Exception as e:
                    cause = getattr(e, "cause", None)
                    raise cause if isinstance(cause, BaseException) else e from None
                done(t, entry)
                idle.append(k)
                submit()
        except BaseException:
            for ref in inflight:
                ray.cancel(ref, force=True)
            raise

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        if self.started:
            self.ray.shutdown()
