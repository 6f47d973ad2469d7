"""Starts the real services as child processes on free local ports, and stops them.

Used by ``cardswitch demo``, the end-to-end tests and the benchmarks, so all three exercise the
same processes a deployment runs. Each child's output goes to ``<var>/logs/<name>.out``.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cardswitch.config import var_dir


def free_port() -> int:
    """A port free now and below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the same range as the local ports of
    outgoing connections, so between choosing it and a child process binding it (seconds, in a
    cluster start) a client connection may take it. Ports below that range are never handed out
    implicitly; a random pick there, checked by binding, only collides with another explicit
    choice.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # everything below the range is taken: fall back to the kernel
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, 10001)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class Cluster:
    """HSM, issuer and switch processes sharing one var directory and database setting."""

    var: Path
    database_url: str | None = None
    hsm_port: int = field(default_factory=free_port)
    issuer_port: int = field(default_factory=free_port)
    issuer_control_port: int = field(default_factory=free_port)
    switch_port: int = field(default_factory=free_port)
    hsm_metrics_port: int = field(default_factory=free_port)
    issuer_metrics_port: int = field(default_factory=free_port)
    switch_metrics_port: int = field(default_factory=free_port)
    #: HTTPS port of the switch's wallet notification endpoint, and of the wallet provider.
    switch_notify_port: int = field(default_factory=free_port)
    wallet_port: int = field(default_factory=free_port)
    switch_workers: int = 1
    insecure: bool = False
    procs: list[Proc] = field(default_factory=list)

    @property
    def hsm(self) -> str:
        return f"127.0.0.1:{self.hsm_port}"

    @property
    def switch(self) -> str:
        return f"127.0.0.1:{self.switch_port}"

    @property
    def issuer_control(self) -> str:
        return f"127.0.0.1:{self.issuer_control_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CARDSWITCH_VAR"] = str(self.var)
        env.pop("CARDSWITCH_DATABASE_URL", None)
        if self.database_url:
            env["CARDSWITCH_DATABASE_URL"] = self.database_url
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs a one-shot ``cardswitch`` command with this cluster's environment."""
        return subprocess.run([sys.executable, "-m", "cardswitch.cli", *args], env=self.env(),
                              capture_output=True, text=True, check=check, timeout=120)

    def start(self, name: str, *args: str, ready: str, timeout: float = 60.0) -> Proc:
        logs = self.var / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.out"
        offset = log_path.stat().st_size if log_path.exists() else 0
        out = open(log_path, "ab")
        popen = subprocess.Popen([sys.executable, "-m", "cardswitch.cli", *args],
                                 env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {popen.returncode}; see {log_path}:\n"
                                   + log_path.read_text()[-3000:])
            if ready in log_path.read_bytes()[offset:].decode(errors="replace"):
                return proc
            time.sleep(0.05)
        raise TimeoutError(f"{name} not ready within {timeout:.0f}s; see {log_path}")

    def start_hsm(self) -> Proc:
        return self.start("hsm", "hsm", "serve", "--port", str(self.hsm_port),
                          "--metrics-port", str(self.hsm_metrics_port), ready="HSM ready")

    def start_issuer(self) -> Proc:
        return self.start("issuer", "issuer", "serve", "--port", str(self.issuer_port),
                          "--control-port", str(self.issuer_control_port), "--hsm", self.hsm,
                          "--metrics-port", str(self.issuer_metrics_port), ready="ISSUER ready")

    def start_wallet(self) -> Proc:
        return self.start("wallet", "wallet", "serve", "--port", str(self.wallet_port),
                          "--hsm", self.hsm, "--notify-delay-ms", "1000", ready="WALLET ready")

    def start_switch(self) -> Proc:
        args = ["switch", "serve", "--port", str(self.switch_port), "--hsm", self.hsm,
                "--workers", str(self.switch_workers),
                "--metrics-port", str(self.switch_metrics_port),
                "--notify-port", str(self.switch_notify_port)]
        if self.insecure:
            args.append("--insecure")
        ready = "SWITCH ready"
        log_path = self.var / "logs" / "switch.out"
        offset = log_path.stat().st_size if log_path.exists() else 0
        proc = self.start("switch", *args, ready=ready)
        if self.switch_workers > 1:
            deadline = time.monotonic() + 60
            while (proc.log_path.read_bytes()[offset:].decode(errors="replace").count(ready)
                   < self.switch_workers):
                if time.monotonic() > deadline:
                    raise TimeoutError("switch workers not ready")
                time.sleep(0.05)
        return proc

    def stop(self, name: str | None = None, sig: int = signal.SIGTERM) -> None:
        for proc in list(reversed(self.procs)):
            if name is not None and proc.name != name:
                continue
            if proc.popen.poll() is None:
                os.killpg(proc.popen.pid, sig)
                try:
                    proc.popen.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                    proc.popen.wait(timeout=5)
            self.procs.remove(proc)

    def stop_all(self) -> None:
        self.stop()


def health_status(address: str, service: str = "",
                  credentials: grpc.ChannelCredentials | None = None) -> str:
    channel = (grpc.secure_channel(address, credentials) if credentials
               else grpc.insecure_channel(address))
    with channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def default_var() -> Path:
    return var_dir()
