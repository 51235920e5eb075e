"""orchestration: bounded waits that report a dead service with its log, and stop()."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from layerlab.orchestration import (
    ServiceError,
    free_port,
    is_alive,
    spawn,
    stop,
    wait_ready_file,
    wait_rpc,
    write_ready_file,
)


def test_a_service_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    proc = spawn(["no-such-command"], log)
    with pytest.raises(ServiceError, match="exited with code 2") as info:
        wait_ready_file(tmp_path / "svc.ready", proc, timeout=30, log_path=log)
    assert "no-such-command" in str(info.value)  # typer's complaint, from the log tail


def test_ready_file_round_trip(tmp_path: Path) -> None:
    ready = tmp_path / "x.ready"
    write_ready_file(ready, {"port": 1234})
    info = wait_ready_file(ready, timeout=1)
    assert info["port"] == 1234 and isinstance(info["pid"], int)


def test_waits_are_bounded(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ServiceError, match="did not appear"):
        wait_ready_file(tmp_path / "never.ready", timeout=0.3)
    with pytest.raises(ServiceError, match="did not answer"):
        wait_rpc(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    assert time.monotonic() - start < 10


def test_stop_terminates_the_process_group() -> None:
    script = ("import subprocess,sys,time; "
              "subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    time.sleep(0.3)
    assert is_alive(proc.pid)
    assert stop([proc.pid], timeout=5) == 1
    proc.wait(timeout=5)
    assert not is_alive(proc.pid)
    assert stop([proc.pid], timeout=1) == 0  # already gone


def test_peer_addresses_are_loopback_host_and_port() -> None:
    from layerlab.orchestration import ServiceError, parse_peer_address

    assert parse_peer_address("127.0.0.1:30303") == ("127.0.0.1", 30303)
    assert parse_peer_address("localhost:9") == ("127.0.0.1", 9)
    for bad in ("10.0.0.1:30303", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536",
                "127.0.0.1:x", "[::1]:1:2", 30303):
        with pytest.raises(ServiceError):
            parse_peer_address(bad)
