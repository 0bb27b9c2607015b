"""The cost of the HTTP limits: uvicorn's plain httptools vs the limited protocols of clockify_core/server.py.

    .venv/bin/python bench/http_protocol.py                   # 3 rounds of 3 s per protocol
    .venv/bin/python bench/http_protocol.py --rounds 5 --duration 5 --json /tmp/http.json

Loopback only. Serves ``bench/_bare_app.py`` (the ceiling of bench/webhook_ingest.py: a bare
FastAPI endpoint that reads the body) with one uvicorn process per protocol, the same way
(``python -m uvicorn --http PROTOCOL``, uvloop, no access log), and drives it with
``bench/_loadgen.py`` (closed loop, keep-alive connections) with a webhook-shaped request:
a Clockify NEW_TIME_ENTRY body and a signature header of a Clockify token's size. The
protocols take turns, round after round, so a machine whose load drifts slows them alike.

Figures per protocol, the median over the rounds: requests/s, and CPU per request (user +
system time of the server process over the requests it answered, warm-up included), each
with its ratio to plain httptools, plus the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from clockify_core.testing.processes import free_port  # noqa: E402

PROTOCOLS = {
    "httptools (plain uvicorn)": "httptools",
    "LimitedHttpToolsProtocol": "clockify_core.server:LimitedHttpToolsProtocol",
    "LimitedH11Protocol": "clockify_core.server:LimitedH11Protocol",
}
SAMPLE = ROOT / "tests" / "fixtures" / "samples" / "NEW_TIME_ENTRY.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def start(protocol: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])}
    cmd = [
        sys.executable, "-m", "uvicorn", "_bare_app:app", "--host", "127.0.0.1", "--port", str(port),
        "--http", protocol, "--loop", "auto", "--log-level", "warning", "--no-access-log",
    ]
    with (workdir / "server.log").open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{protocol} exited: {(workdir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/docs", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{protocol} not ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(15)


def run(protocol: str, spec: Path, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    proc, port = start(protocol, workdir)
    try:
        cpu0 = cpu_seconds(proc.pid)
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "_loadgen.py"), "--port", str(port), "--spec", str(spec),
             "--mode", "closed", "--connections", str(args.connections), "--duration", str(args.duration),
             "--warmup", str(args.warmup)],
            check=True, capture_output=True, text=True, timeout=600,
        )
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        stop(proc)
    result = json.loads(out.stdout)
    if result["ok"] != result["requests"]:
        raise RuntimeError(f"{protocol}: not every answer was a 2xx: {result['statuses']}")
    return {"rps": float(result["rps"]), "cpu_us": cpu * 1e6 / max(1, int(result["total_sent"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16, help="closed-loop keep-alive connections")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON")
    args = parser.parse_args()

    body = json.loads(SAMPLE.read_text())
    body["id"], body["description"] = "{n}", "Bench entry {n}"
    with tempfile.TemporaryDirectory(prefix="http-protocol-") as tmp:
        workdir = Path(tmp)
        spec = workdir / "spec.json"
        spec.write_text(json.dumps({
            "path": "/webhooks/bench",
            # A Clockify webhook token is a signed JWT of about this size.
            "headers": [["clockify-signature", "e" * 900], ["clockify-webhook-event-type", "NEW_TIME_ENTRY"],
                        ["user-agent", "Clockify-Webhook"]],
            "body": json.dumps(body, separators=(",", ":")),
            "hex": True,
        }))
        load_before = loadavg()
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in PROTOCOLS}
        for _ in range(args.rounds):
            for name, protocol in PROTOCOLS.items():
                runs[name].append(run(protocol, spec, args, workdir))
        load_after = loadavg()

    medians = {name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "cpu_us")} for name, rs in runs.items()}
    base = medians["httptools (plain uvicorn)"]
    print(f"{args.rounds} rounds x {args.duration:g} s, {args.connections} connections; "
          f"load average {load_before} before, {load_after} after; {os.cpu_count()} cores")
    print(f"{'protocol':28} {'req/s':>8} {'vs plain':>9} {'CPU µs/req':>11} {'vs plain':>9}")
    for name, m in medians.items():
        print(f"{name:28} {m['rps']:8.0f} {m['rps'] / base['rps']:9.2f} {m['cpu_us']:11.0f} "
              f"{m['cpu_us'] / base['cpu_us']:9.2f}")
    if args.json:
        report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                  "medians": medians, "load_before": load_before, "load_after": load_after}
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
