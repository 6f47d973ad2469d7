"""bench/cpu.py: CPU seconds per process from /proc, per request, and the ceiling they imply."""

import os
import subprocess
import sys
import time

from bench import cpu


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_measure_counts_this_process_and_a_child_by_name():
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nend=time.process_time()+0.3\n"
                              "while time.process_time()<end: pass"])
    try:
        with cpu.measure({"child": child.pid}) as use:
            _spin(0.2)
            child.wait(10)
    finally:
        child.kill()
    # The child is reaped inside the block, so its last reading is 0: only ours is certain.
    assert use.seconds[cpu.LOAD_GENERATOR] >= 0.15
    assert set(use.seconds) == {"child", cpu.LOAD_GENERATOR}


def test_a_running_process_is_read_from_proc():
    before = cpu.process_cpu_s(os.getpid())
    _spin(0.1)
    assert cpu.process_cpu_s(os.getpid()) - before >= 0.08


def test_a_process_that_is_not_there_reads_zero():
    assert cpu.process_cpu_s(2**22 + 12345) == 0.0  # above the kernel's pid_max


def test_per_request_and_ceiling():
    use = cpu.CpuUse({"switch": 2.0, "issuer": 1.0})
    assert use.per_request_ms(1000) == {"switch": 2.0, "issuer": 1.0}
    assert use.total_per_request_ms(1000) == 3.0
    assert use.per_request_ms(0) == {"switch": 0.0, "issuer": 0.0}
    assert cpu.ceiling_rps(4.0, cores=2) == 500.0
    assert cpu.ceiling_rps(0.0, cores=2) == 0.0
