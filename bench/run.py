#!/usr/bin/env python3
"""make bench: tinymta measured on this machine, beside the disk's own limit.

For each case the median of RUNS runs is reported. Comparisons that matter
are ratios from the same run (machines here are shared and noisy). Writes
the table to bench/results.md.

Postfix and OpenSMTPD columns (same smtp-source load, private instances on
their own loopback ports) are the next step of issue 6; they are not faked.
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "tinymta")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))
SIZE = 4096


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def smtp_source():
    for path in ("/usr/sbin/smtp-source", shutil.which("smtp-source") or ""):
        if path and os.path.exists(path):
            return path
    sys.exit("smtp-source not found: apt-get install postfix")


def memory_kib(pid):
    """RSS and PSS of a process, in KiB."""
    rss = pss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def count_files(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


class Tinymta:
    def __init__(self, workdir):
        self.dir = workdir
        self.port = free_port()
        self.conf = os.path.join(workdir, "tinymta.conf")
        with open(self.conf, "w") as f:
            f.write(
                f"hostname = bench.test\nlisten = 127.0.0.1:{self.port}\n"
                f"spool_dir = {workdir}/spool\nmailbox_dir = {workdir}/mail\n"
                "local_domains = bench.test\nmax_connections = 64\n"
                "max_connections_per_ip = 64\nmax_message_size = 60M\n"
                f"log = {workdir}/log\nlog_level = warn\nuser = nobody\n"
                "dns_servers = 127.0.0.1:9\n"
            )
        os.chmod(workdir, 0o755)
        self.proc = None

    def start(self):
        started = time.monotonic()
        self.proc = subprocess.Popen([BIN, "-c", self.conf], stdin=subprocess.DEVNULL)
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"220"):
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.001)
            if time.monotonic() - started > 10:
                raise RuntimeError("tinymta did not start")

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()

    def maildir(self):
        return os.path.join(self.dir, "mail", "u", "new")


def disk_limit(workdir, writers, files):
    """Files/s for: write 4 KiB into tmp/, fsync, rename into new/, fsync new/."""
    tmp = os.path.join(workdir, "tmp")
    new = os.path.join(workdir, "new")
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(new, exist_ok=True)
    data = b"x" * SIZE
    per = files // writers

    def work(w):
        dfd = os.open(new, os.O_RDONLY)
        for n in range(per):
            name = f"{w}.{n}"
            fd = os.open(os.path.join(tmp, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.rename(os.path.join(tmp, name), os.path.join(new, name))
            os.fsync(dfd)
        os.close(dfd)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * writers / (time.monotonic() - started)


def run_load(sessions, reuse):
    """One run: messages/s accepted and delivered, peak RSS/PSS, landed count."""
    with tempfile.TemporaryDirectory() as workdir:
        server = Tinymta(workdir)
        server.start()
        peak = [0, 0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                rss, pss = memory_kib(server.proc.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        args = [smtp_source(), "-s", str(sessions), "-m", str(MESSAGES), "-l", str(SIZE),
                "-f", "bench@bench.test", "-t", "u@bench.test"]
        if reuse:
            args.append("-d")
        started = time.monotonic()
        subprocess.run(args + [f"127.0.0.1:{server.port}"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        accepted = time.monotonic() - started
        deadline = time.monotonic() + 120
        while count_files(server.maildir()) < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.005)
        delivered = time.monotonic() - started
        done.set()
        sampler.join()
        landed = count_files(server.maildir())
        server.stop()
        return MESSAGES / accepted, MESSAGES / delivered, peak[0], peak[1], landed


def idle_and_big(workdir):
    """Start-up time, idle RSS/PSS, and the RSS rise for a 50 MB message."""
    server = Tinymta(workdir)
    startup = server.start()
    time.sleep(0.5)
    idle = memory_kib(server.proc.pid)
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        f = s.makefile("rwb")
        f.readline()
        for line in (b"EHLO bench.test", b"MAIL FROM:<b@bench.test>", b"RCPT TO:<x@far.test>", b"DATA"):
            f.write(line + b"\r\n")
            f.flush()
            reply = f.readline()
            while reply[3:4] == b"-":
                reply = f.readline()
        chunk = (b"y" * 98 + b"\r\n") * 10000
        for _ in range(50 * 1024 * 1024 // len(chunk)):
            f.write(chunk)
        f.write(b".\r\n")
        f.flush()
        ok = f.readline().startswith(b"250")
    with open(f"/proc/{server.proc.pid}/status") as st:
        hwm = next(int(l.split()[1]) for l in st if l.startswith("VmHWM:"))
    server.stop()
    return startup, idle, hwm - idle[0], ok


def main():
    subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    rows = []
    print(f"tinymta bench: {MESSAGES} messages of {SIZE} octets, median of {RUNS} runs", flush=True)
    for sessions in (1, 10, 50):
        for reuse in (False, True):
            results = [run_load(sessions, reuse) for _ in range(RUNS)]
            with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DISK")) as d:
                disk = statistics.median(disk_limit(d, sessions, MESSAGES) for _ in range(RUNS))
            acc = statistics.median(r[0] for r in results)
            dlv = statistics.median(r[1] for r in results)
            rss = statistics.median(r[2] for r in results)
            pss = statistics.median(r[3] for r in results)
            landed = min(r[4] for r in results)
            mode = "reused connections" if reuse else "a connection per message"
            rows.append((sessions, mode, acc, dlv, disk, dlv / disk, rss, pss, landed))
            print(f"  {sessions:>2} sessions, {mode}: accepted {acc:.0f}/s, delivered {dlv:.0f}/s, "
                  f"disk limit {disk:.0f}/s ({dlv / disk:.0%}), peak RSS {rss} KiB, landed {landed}",
                  flush=True)
            if landed != MESSAGES:
                sys.exit(f"only {landed} of {MESSAGES} messages landed")
    with tempfile.TemporaryDirectory() as d:
        startup, idle, big_rise, big_ok = idle_and_big(d)
    size = os.path.getsize(BIN)
    lines = [
        f"# tinymta bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {os.cpu_count()} cores, {os.uname().machine}, kernel {os.uname().release}. "
        f"{MESSAGES} messages of {SIZE} octets by Postfix's smtp-source, median of {RUNS} runs; "
        "delivery into a local Maildir. The disk limit is this machine writing 4 KiB files "
        "(write, fsync, rename, fsync the directory) with as many writers as sessions.",
        "",
        "| sessions | connections | accepted msg/s | delivered msg/s | disk limit files/s | of the limit | peak RSS KiB | peak PSS KiB | landed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.0f} | {r[5]:.0%} | {r[6]} | {r[7]} | {r[8]} |")
    lines += [
        "",
        f"- start-up to accepting connections: {startup * 1000:.1f} ms",
        f"- idle: RSS {idle[0]} KiB, PSS {idle[1]} KiB",
        f"- a 50 MB message ({'accepted' if big_ok else 'NOT accepted'}) raised peak RSS by {big_rise} KiB",
        f"- release binary (glibc, {os.uname().machine}): {size} bytes; `make size` gives the static ones",
        "",
        "Postfix and OpenSMTPD under the same load: not measured yet (next step of issue 6).",
    ]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(ROOT, "bench", "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
