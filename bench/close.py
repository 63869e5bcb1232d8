"""Benchmark 1, period close: the time to accept and queue a period, against a plain loop.

A period of N invoices is closed three ways, each into an empty private Redis
with no worker running (the queue only fills):

- the library: ``producer.operations.runs.close_period`` in this process, the invoices already read;
- the CLI: ``heeros-export close-period P --invoices period.json``, a new process
  reading the JSON file ``heeros-export sample --out period.json`` writes (up to
  10,000 invoices), and ``--invoices period.ndjson``, the same invoices one a line,
  which the CLI closes as a stream;
- the API: ``POST /periods/P/close`` with ``{"invoices": [...]}`` and the bearer
  token, to ``heeros-export api`` running in its own process (a body over the API's
  64 MiB limit is refused, as it is in use);
- the API streamed: the same request with the invoices as NDJSON
  (``Content-Type: application/x-ndjson``), sent a piece at a time; the API records
  and queues them 1,000 at a time while they arrive. Its process's peak RSS is read
  after the largest close (target: under 300 MiB at 100,000 invoices).

Against them, in the same run: ``task.apply_async(args)`` once per invoice with
the product's own send task and arguments, i.e. the same N messages published the
plain way. The ratio is the loop's time over the close's, so ≥ 3× means the whole
close (records, kept copies, messages) takes a third of the plain loop's time.

The invoices are the first 1,000 sample invoices repeated with fresh numbers:
the same sizes and shapes as a real period, without minutes spent making them.

    python -m bench.close [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from bench.harness import System, peak_rss_mib, redis_figures, system
from bench.peers import ROOT, apply_async_loop
from bench.report import Table, Target, command, number, ratio
from producer.cli.localservices import LocalProcess, free_port
from producer.http.api import MAX_BODY_BYTES
from producer.operations.runs import close_period, queue_sends
from producer.operations.samples import sample_invoices
from worker.celery.orphans import read_sends
from worker.celery.tasks import EXPRESS_QUEUE, SEND_QUEUE, SEND_TASK
from worker.documents.invoice import Invoice
from worker.documents.keptcopy import compress_invoice
from worker.state.aggregator import summarize
from worker.state.windows import Windows

SIZES = (10_000, 100_000)
QUICK_SIZES = (200, 1_000)
TEMPLATES = 1_000
FIRST_NUMBER = 500_001
LIBRARY_UP_TO = 10_000
"""The library path is measured up to this size; past it the CLI path holds the same close."""
TOKEN = "bench-api-token-0001"
OVER_LOOP = Target(3, higher=True, unit="×")
API_RSS = Target(300, higher=False, unit=" MiB")
STREAM_PIECE = 1024 * 1024


def period_invoices(count: int) -> list[Invoice]:
    """``count`` invoices: the sample's first thousand, repeated with fresh numbers."""
    templates = list(sample_invoices(min(count, TEMPLATES)))
    return [
        templates[n % len(templates)].model_copy(update={"number": str(FIRST_NUMBER + n)})
        for n in range(count)
    ]


def invoices_json(invoices: Sequence[Invoice]) -> bytes:
    """The invoices as a JSON list, each as ``heeros-export sample --out x.json`` writes it."""
    listing = [invoice.model_dump(mode="json", round_trip=True) for invoice in invoices]
    return json.dumps(listing, ensure_ascii=False).encode()


def period_file(listing: bytes, period: str) -> bytes:
    """The file ``heeros-export sample --out x.json`` writes: the period and its invoices."""
    return b'{"period": ' + json.dumps(period).encode() + b', "invoices": ' + listing + b"}"


def close_body(listing: bytes) -> bytes:
    """The body of ``POST /periods/P/close``."""
    return b'{"invoices": ' + listing + b"}"


def invoices_ndjson(invoices: Sequence[Invoice]) -> bytes:
    """The invoices as NDJSON, one a line: a streamed close's body."""
    return b"".join(
        json.dumps(invoice.model_dump(mode="json", round_trip=True), ensure_ascii=False).encode()
        + b"\n"
        for invoice in invoices
    )


@dataclass(frozen=True)
class Closed:
    seconds: float
    queued: int
    total: int


def _queued(bench: System) -> int:
    """The sends waiting: those the messages in both send queues carry (a small close goes
    to the express one; a big run's window, a few sends to a message, to the other) and a
    big run's sends in its tenants' backlogs (worker.state.windows)."""
    client = redis.Redis.from_url(bench.redis.url, decode_responses=True)
    keys = bench.store.keys
    tenants = Windows.for_store(bench.store).tenants()
    backlogs = sum(int(client.llen(keys.backlog(tenant))) for tenant in tenants)
    carried = sum(
        len(read_sends(json.loads(raw)))
        for queue in (SEND_QUEUE, EXPRESS_QUEUE)
        for raw in client.lrange(queue, 0, -1)
    )
    return carried + backlogs


def _checked(bench: System, run: str, seconds: float) -> Closed:
    summary = summarize(bench.store, run)
    queued = _queued(bench)
    return Closed(seconds, queued, summary.total if summary else 0)


def close_library(bench: System, invoices: Sequence[Invoice], period: str) -> Closed:
    bench.reset()
    app, store, config = bench.app(), bench.store, bench.config
    started = time.perf_counter()
    accepted = close_period(app, store, config, invoices, period=period)
    seconds = time.perf_counter() - started
    app.close()
    return _checked(bench, accepted.run, seconds)


def close_cli(bench: System, path: Path, period: str) -> Closed:
    bench.reset()
    argv = [sys.executable, "-m", "producer.cli", "close-period", period, "--invoices", str(path)]
    started = time.perf_counter()
    done = subprocess.run(argv, env=bench.env, cwd=ROOT, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"close-period failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return _checked(bench, done.stdout.decode().strip(), seconds)


def cli_start_up(bench: System) -> float:
    """Seconds for ``heeros-export --help``: what any command pays before its work."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "producer.cli", "--help"],
        env=bench.env,
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def start_api(bench: System) -> LocalProcess:
    """``heeros-export api`` in its own process, with a bearer token, answering."""
    port = free_port()
    log_path = bench.folder / "api.log"
    argv = [sys.executable, "-m", "producer.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**bench.env, "HEEROS_API_TOKEN": TOKEN},
            cwd=ROOT,
            start_new_session=True,
        )
    api = LocalProcess("api", popen, url=f"http://127.0.0.1:{port}", log_path=log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not api.alive():
            raise RuntimeError(f"the API exited at start:\n{api.log_tail()}")
        try:
            if httpx.get(f"{api.url}/openapi.json", timeout=1).status_code == 200:
                return api
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    api.stop()
    raise RuntimeError(f"the API did not answer within 60 s:\n{api.log_tail()}")


def close_api(bench: System, api: LocalProcess, body: bytes, period: str) -> Closed:
    """The close with a JSON body, sent whole."""
    return _post_close(bench, api, period, body, "application/json")


def close_api_streamed(bench: System, api: LocalProcess, body: bytes, period: str) -> Closed:
    """The streamed close: NDJSON sent in pieces of 1 MiB, as a client streams a file."""

    def pieces() -> Iterator[bytes]:
        view = memoryview(body)
        for start in range(0, len(body), STREAM_PIECE):
            yield bytes(view[start : start + STREAM_PIECE])

    return _post_close(bench, api, period, pieces(), "application/x-ndjson")


def _post_close(
    bench: System, api: LocalProcess, period: str, content: bytes | Iterator[bytes], media: str
) -> Closed:
    bench.reset()
    started = time.perf_counter()
    answer = httpx.post(
        f"{api.url}/periods/{period}/close",
        content=content,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": media},
        timeout=1800,
    )
    seconds = time.perf_counter() - started
    if answer.status_code != 202:
        raise RuntimeError(f"the API answered {answer.status_code}: {answer.text[:2000]}")
    return _checked(bench, str(answer.json()["run"]), seconds)


def publish_loop(bench: System, count: int, period: str) -> float:
    """The plain way: ``apply_async`` of the product's send task, once per invoice."""
    bench.reset()
    app = bench.app()
    run = f"{period}-0001"
    seconds = apply_async_loop(
        app, SEND_TASK, [(run, f"{FIRST_NUMBER + n}/0") for n in range(count)]
    )
    app.close()
    return seconds


def queue_alone(bench: System, count: int, period: str) -> float:
    """The close's own queueing of the same messages, without its records and kept copies."""
    bench.reset()
    app = bench.app()
    run = f"{period}-0001"
    items = [f"{FIRST_NUMBER + n}/0" for n in range(count)]
    started = time.perf_counter()
    queue_sends(app, run, items)
    seconds = time.perf_counter() - started
    queued = _queued(bench)
    app.close()
    if queued != count:
        raise RuntimeError(f"queue_sends queued {queued} sends for {count}")
    return seconds


def _verify(closed: Closed, count: int, where: str) -> None:
    if closed.queued != count or closed.total != count:
        raise RuntimeError(
            f"{where}: {closed.queued} sends queued, a run of {closed.total}, for {count}"
        )


def run(
    sizes: Sequence[int] = SIZES,
    *,
    paths: Sequence[str] = ("library", "cli", "api", "stream"),
) -> Table:
    began = time.perf_counter()
    table = Table(
        "1. Period close",
        setup="Each close into an empty private Redis, no worker running; the loop publishes "
        "the same number of messages with apply_async in the same run. Ratio: the loop's time "
        "over the close's.",
        notes=[
            f"The library path and the CLI's JSON file are measured up to {LIBRARY_UP_TO:,} "
            "invoices; the CLI's NDJSON file (a streamed close) and the API at every size.",
            "CLI times include the process start-up and reading the JSON file; API times are "
            "the client's, from the request to the answer, with the body already encoded.",
            "The API's peak RSS is its process's high-water mark (VmHWM) after every close "
            "of the benchmark, JSON bodies included.",
        ],
    )
    with system(latency_ms=0, confirm_after_s=0) as bench:
        api = start_api(bench) if "api" in paths or "stream" in paths else None
        try:
            if "cli" in paths:
                table.add("CLI start-up (heeros-export --help)", cli_start_up(bench), " s")
            for size in sizes:
                _close_size(bench, table, api, size, paths)
            if api is not None and "stream" in paths:
                table.add(
                    f"{max(sizes):,}: API process peak RSS (streamed close)",
                    peak_rss_mib(api.popen.pid),
                    " MiB",
                    target=API_RSS if max(sizes) >= 100_000 else None,
                )
        finally:
            if api is not None:
                api.stop()
    table.seconds = time.perf_counter() - began
    return table


def _close_size(
    bench: System, table: Table, api: LocalProcess | None, size: int, paths: Sequence[str]
) -> None:
    invoices = period_invoices(size)
    loop_s = publish_loop(bench, size, f"L{size}")
    table.text(f"{size:,}: apply_async loop", f"{number(loop_s)} s ({number(size / loop_s)} /s)")
    if "library" in paths and size <= LIBRARY_UP_TO:
        before = redis_figures(bench.redis.url)["used_memory"]
        closed = close_library(bench, invoices, f"B{size}")
        _verify(closed, size, "library close")
        after = redis_figures(bench.redis.url)["used_memory"]
        _rows(table, size, "library (close_period)", closed.seconds, loop_s)
        table.add(
            f"{size:,}: Redis memory per invoice once queued (library)",
            (after - before) / size,
            " B",
        )
        table.add(
            f"{size:,}: apply_async loop ÷ the close's queueing alone (queue_sends)",
            ratio(loop_s, queue_alone(bench, size, f"Q{size}")),
            "×",
        )
        sample = invoices[: min(size, 2_000)]
        started = time.perf_counter()
        for invoice in sample:
            compress_invoice(invoice)
        table.add(
            f"{size:,}: of which compress_invoice alone (kept copy)",
            (time.perf_counter() - started) / len(sample) * size,
            " s",
        )
    listing: bytes | None = None
    if ("cli" in paths and size <= LIBRARY_UP_TO) or "api" in paths:
        listing = invoices_json(invoices)
        table.text(
            f"{size:,}: JSON of the invoices",
            f"{len(listing) / 2**20:,.1f} MiB ({number(len(listing) / size)} B per invoice)",
        )
    if "cli" in paths and listing is not None and size <= LIBRARY_UP_TO:
        path = bench.folder / f"period-{size}.json"
        path.write_bytes(period_file(listing, f"C{size}"))
        closed = close_cli(bench, path, f"C{size}")
        path.unlink()
        _verify(closed, size, "CLI close")
        _rows(table, size, "CLI (close-period, JSON file)", closed.seconds, loop_s)
    streamed = invoices_ndjson(invoices) if {"cli", "stream"} & set(paths) else b""
    if "cli" in paths:
        path = bench.folder / f"period-{size}.ndjson"
        path.write_bytes(streamed)
        closed = close_cli(bench, path, f"N{size}")
        path.unlink()
        _verify(closed, size, "CLI close of NDJSON")
        _rows(table, size, "CLI (close-period, NDJSON file)", closed.seconds, loop_s)
    if api is not None and "stream" in paths:
        closed = close_api_streamed(bench, api, streamed, f"S{size}")
        _verify(closed, size, "streamed API close")
        _rows(table, size, "API streamed (NDJSON)", closed.seconds, loop_s)
    del streamed
    if api is not None and listing is not None and "api" in paths:
        body = close_body(listing)
        if len(body) > MAX_BODY_BYTES:
            table.text(
                f"{size:,}: API (POST /periods/P/close), a JSON body",
                f"refused as documented: the body ({len(body) / 2**20:,.0f} MiB) is over the "
                f"API's {MAX_BODY_BYTES // 2**20} MiB limit (413); such a period streams "
                "(API streamed, above)",
            )
        else:
            closed = close_api(bench, api, body, f"A{size}")
            _verify(closed, size, "API close")
            _rows(table, size, "API (POST /periods/P/close)", closed.seconds, loop_s)


def _rows(table: Table, size: int, path: str, seconds: float, loop_s: float) -> None:
    table.text(f"{size:,}: {path}", f"{number(seconds)} s ({number(size / seconds)} /s)")
    table.add(f"{size:,}: apply_async loop ÷ {path}", ratio(loop_s, seconds), "×", target=OVER_LOOP)


def benchmark(*, quick: bool = False) -> Table:
    """The benchmark at its sizes (``quick``: small ones, for a smoke run)."""
    return run(QUICK_SIZES if quick else SIZES)


def main(argv: Sequence[str] | None = None) -> None:
    command(__doc__, benchmark, argv)


if __name__ == "__main__":
    main()


__all__ = [
    "benchmark",
    "close_body",
    "invoices_json",
    "invoices_ndjson",
    "period_file",
    "period_invoices",
    "run",
]
