#!/usr/bin/env python3
"""make bench: tinymta, Postfix and OpenSMTPD under the same load, on this machine.

Every server runs from a private directory on its own loopback port and
delivers into a local Maildir; nothing touches the machine's own mail set-up:
- tinymta: the release binary with a generated config;
- Postfix: `postfix -c DIR start`, with its own main.cf, master.cf (smtpd on
  127.0.0.1:PORT only, no chroot) and queue directory, delivering with the
  virtual(8) agent;
- OpenSMTPD: Debian's package unpacked under target/bench-peers (installing it
  would replace Postfix, as both provide mail-transport-agent) and started as
  `smtpd -d -f FILE` in a private mount namespace, where its compiled-in paths
  (/var/spool/smtpd, /usr/libexec/opensmtpd, its users, /etc/resolv.conf)
  are bind mounts of files under the run's own directory.

Postfix's smtp-source is the client for all three, with identical parameters.
Pushing is tinymta's alone (the others have no push transport): an ntfy route
to tests/peers/http_server.py on loopback, answering as ntfy does over HTTPS
with a test CA, beside what that server takes from a plain HTTPS client.
Each case runs RUNS times and the median is reported; comparisons that matter
are ratios from the same run (machines here are shared and noisy). The
table goes to stdout and bench/results.md. Needs root (private namespaces,
servers that drop privileges).
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The binary that ships: static, musl, stripped (make static).
STATIC_TARGET = f"{os.uname().machine}-unknown-linux-musl"
BIN = os.environ.get("TINYMTA_BENCH_BIN", os.path.join(ROOT, "target", STATIC_TARGET, "release", "tinymta"))
PEERS = os.path.join(ROOT, "target", "bench-peers")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))
SIZE = 4096
SESSIONS = (1, 10, 50)
RELAY_SESSIONS = 10
SAMPLE_INTERVAL = 0.05
PUSH_MESSAGES = int(os.environ.get("BENCH_PUSH_MESSAGES", "500"))
# Connections to the HTTPS server at a time. tinymta's push route holds at most
# delivery_workers - 1 of its workers: 1 with the default delivery_workers = 2.
PUSH_CONNECTIONS = (1, 4)
PUSH_TOKEN = "tk_bench_token"
HTTP_SERVER = os.path.join(ROOT, "tests", "peers", "http_server.py")


# --- what the bench needs, from Debian's packages --------------------------

def apt_install(packages):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # "No configuration": the package's binaries without a system instance on
    # port 25 (the machine's own mail set-up is left as it was).
    subprocess.run(["debconf-set-selections"], input=b"postfix postfix/main_mailer_type select No configuration\n",
                   check=False)
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + packages, env=env, check=True)


def postfix_tools():
    if not os.path.exists("/usr/sbin/postfix") or not os.path.exists("/usr/sbin/smtp-source"):
        apt_install(["postfix"])
    return "/usr/sbin/smtp-source", "/usr/sbin/smtp-sink"


def opensmtpd_root():
    """Debian's opensmtpd, unpacked (not installed) under target/bench-peers."""
    root = os.path.join(PEERS, "opensmtpd")
    smtpd = os.path.join(root, "usr", "sbin", "smtpd")
    if not os.path.exists(smtpd):
        os.makedirs(PEERS, exist_ok=True)
        download = tempfile.mkdtemp(dir=PEERS)
        os.chmod(download, 0o777)  # apt's download user writes here
        if subprocess.run(["apt-get", "download", "opensmtpd"], cwd=download).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "download", "opensmtpd"], cwd=download, check=True)
        deb = next(f for f in os.listdir(download) if f.endswith(".deb"))
        subprocess.run(["dpkg-deb", "-x", os.path.join(download, deb), root], check=True)
        shutil.copy(os.path.join(download, deb), os.path.join(PEERS, "opensmtpd.deb"))
        shutil.rmtree(download)
    missing = subprocess.run(["ldd", smtpd], capture_output=True, text=True).stdout
    if "not found" in missing:
        # Its shared libraries (Depends: of the package), not the package.
        apt_install(["libevent-2.1-7", "libdb5.3", "libpam0g", "libssl3", "zlib1g", "libcrypt1"])
    return root


# --- measuring ---------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def process_tree(root):
    """The pid and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def memory_kib(pid):
    """RSS and PSS of one process, in KiB (0, 0 once it is gone)."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def tree_memory_kib(root):
    """Sum of RSS and of PSS over the process tree, in KiB."""
    total = [0, 0]
    for pid in process_tree(root):
        rss, pss = memory_kib(pid)
        total[0] += rss
        total[1] += pss
    return total[0], total[1]


def count_files(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


def wait_for_banner(port, started, what):
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"220"):
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.001)
        if time.monotonic() - started > 30:
            raise RuntimeError(f"{what} did not start")


def file_bytes(paths):
    return sum(os.path.getsize(p) for p in paths if os.path.isfile(p))


# --- the three servers ---------------------------------------------------------
# Each: start() -> seconds to the first 220, stop(), root_pid(), maildir(),
# port; relay_to=PORT makes it forward everything for far.test there
# (tinymta's push_to=PushService sends everything for *@push there, over
# push_connections at a time).

class Server:
    """What the three have in common: a private directory (that the users
    they deliver as can reach), a free port, and the Maildir of u@bench.test."""

    def __init__(self, workdir):
        self.dir = workdir
        self.port = free_port()
        os.chmod(workdir, 0o755)

    def maildir(self):
        return os.path.join(self.dir, "mail", "u", "new")


class Tinymta(Server):
    name = "tinymta"

    def __init__(self, workdir, relay_to=None, push_to=None, push_connections=1):
        super().__init__(workdir)
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
            if relay_to:
                f.write(f"smarthost = 127.0.0.1:{relay_to}\nsmarthost_tls = none\n")
            if push_to:
                f.write(f"hosts_file = {push_to.hosts_file}\ntls_ca_file = {push_to.ca}\n"
                        f"route = *@push ntfy url=https://push.test:{push_to.port}/alerts "
                        f"token_file={push_to.token_file}\ndelivery_workers = {push_connections + 1}\n")
        self.proc = None

    def start(self):
        started = time.monotonic()
        self.proc = subprocess.Popen([BIN, "-c", self.conf], stdin=subprocess.DEVNULL)
        return wait_for_banner(self.port, started, "tinymta")

    def root_pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()

    @staticmethod
    def binary_bytes():
        return file_bytes([BIN])


POSTFIX_SERVICES = """\
pickup    unix  n  -  n  60     1  pickup
cleanup   unix  n  -  n  -      0  cleanup
qmgr      unix  n  -  n  300    1  qmgr
rewrite   unix  -  -  n  -      -  trivial-rewrite
bounce    unix  -  -  n  -      0  bounce
defer     unix  -  -  n  -      0  bounce
trace     unix  -  -  n  -      0  bounce
verify    unix  -  -  n  -      1  verify
flush     unix  n  -  n  1000?  0  flush
proxymap  unix  -  -  n  -      -  proxymap
smtp      unix  -  -  n  -      -  smtp
relay     unix  -  -  n  -      -  smtp
showq     unix  n  -  n  -      -  showq
error     unix  -  -  n  -      -  error
retry     unix  -  -  n  -      -  error
discard   unix  -  -  n  -      -  discard
local     unix  -  n  n  -      -  local
virtual   unix  -  n  n  -      -  virtual
anvil     unix  -  -  n  -      1  anvil
scache    unix  -  -  n  -      1  scache
postlog   unix-dgram n - n -    1  postlogd
"""


class Postfix(Server):
    name = "Postfix"

    def __init__(self, workdir, relay_to=None):
        super().__init__(workdir)
        self.conf = os.path.join(workdir, "conf")
        for d in ("conf", "queue", "data", "mail"):
            os.makedirs(os.path.join(workdir, d))
        shutil.chown(os.path.join(workdir, "data"), "postfix")
        shutil.chown(os.path.join(workdir, "mail"), "nobody")
        relayhost = f"[127.0.0.1]:{relay_to}" if relay_to else ""
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(
                "compatibility_level = 3.6\n"
                f"queue_directory = {workdir}/queue\ndata_directory = {workdir}/data\n"
                "mail_owner = postfix\nsetgid_group = postdrop\n"
                "myhostname = bench.test\nmydomain = bench.test\nmyorigin = bench.test\n"
                "mydestination =\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n"
                "mynetworks = 127.0.0.0/8\nsyslog_name = postfix-bench\n"
                f"maillog_file = {workdir}/maillog\nmaillog_file_prefixes = {workdir}\n"
                "virtual_mailbox_domains = bench.test\n"
                f"virtual_mailbox_base = {workdir}/mail\nvirtual_mailbox_maps = static:u/\n"
                "virtual_uid_maps = static:65534\nvirtual_gid_maps = static:65534\n"
                f"relayhost = {relayhost}\n"
                # No DNS at all: the relay host is a literal address.
                "smtp_dns_support_level = disabled\nsmtpd_peername_lookup = no\n"
                "alias_maps =\nalias_database =\nbiff = no\n"
            )
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + POSTFIX_SERVICES)

    def postfix(self, command):
        return subprocess.run(["/usr/sbin/postfix", "-c", self.conf, command],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self):
        started = time.monotonic()
        if self.postfix("start").returncode != 0:
            with open(os.path.join(self.dir, "maillog")) as f:
                raise RuntimeError("postfix did not start:\n" + f.read())
        return wait_for_banner(self.port, started, "Postfix")

    def root_pid(self):
        with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
            return int(f.read().split()[0])

    def stop(self):
        pids = process_tree(self.root_pid())
        self.postfix("abort")
        kill_all(pids)

    @staticmethod
    def binary_bytes():
        daemons = "/usr/lib/postfix/sbin"
        return file_bytes(["/usr/sbin/postfix"] + [os.path.join(daemons, f) for f in os.listdir(daemons)]
                          + [os.path.join("/usr/lib/postfix", f) for f in os.listdir("/usr/lib/postfix")
                             if f.startswith("libpostfix")])


def alive(pid):
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_all(pids):
    """SIGKILL what is left of a process tree, and wait until it is gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.01)


class Opensmtpd(Server):
    name = "OpenSMTPD"
    # Debian builds it for users opensmtpd/opensmtpq; any free ids will do
    # inside the private namespace.
    USERS = ("opensmtpd:x:64990:64990::/var/lib/opensmtpd/empty:/usr/sbin/nologin\n"
             "opensmtpq:x:64991:64991::/var/lib/opensmtpd/empty:/usr/sbin/nologin\n")
    GROUPS = "opensmtpd:x:64990:\nopensmtpq:x:64991:\n"

    def __init__(self, workdir, relay_to=None):
        super().__init__(workdir)
        self.pkg = opensmtpd_root()
        for d in ("var/spool/smtpd", "var/lib/opensmtpd/empty", "var/run", "var/mail", "etc", "mail/u"):
            os.makedirs(os.path.join(workdir, d))
        os.chmod(os.path.join(workdir, "var/spool/smtpd"), 0o711)
        shutil.chown(os.path.join(workdir, "mail"), "nobody")
        shutil.chown(os.path.join(workdir, "mail/u"), "nobody")
        etc = os.path.join(workdir, "etc")
        with open("/etc/passwd") as src, open(os.path.join(etc, "passwd"), "w") as f:
            f.write(src.read() + self.USERS)
        with open("/etc/group") as src, open(os.path.join(etc, "group"), "w") as f:
            f.write(src.read() + self.GROUPS)
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\n")  # never the machine's resolver
        with open(os.path.join(workdir, "smtpd.conf"), "w") as f:
            f.write(
                'table vusers { "@bench.test" = "nobody" }\n'
                # Its default of 100 messages a session would fail smtp-source -d.
                "smtp limit max-mails 1000000\n"
                f"listen on 127.0.0.1 port {self.port}\n"
                f'action "bench" maildir "{workdir}/mail/u" virtual <vusers>\n'
                'match from any for domain "bench.test" action "bench"\n'
            )
            if relay_to:
                f.write(f'action "out" relay host smtp+notls://127.0.0.1:{relay_to}\n'
                        'match from local for domain "far.test" action "out"\n')
        with open(os.path.join(workdir, "ns.sh"), "w") as f:
            f.write(
                f"mount --bind {workdir}/var /var\n"
                f"mount --bind {etc}/passwd /etc/passwd\n"
                f"mount --bind {etc}/group /etc/group\n"
                f"mount --bind {etc}/resolv.conf /etc/resolv.conf\n"
                f"mount --bind {self.pkg}/usr/libexec /usr/libexec\n"
                f"exec {self.pkg}/usr/sbin/smtpd -d -f {workdir}/smtpd.conf\n"
            )
        self.proc = None

    def start(self):
        started = time.monotonic()
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh",
                                      os.path.join(self.dir, "ns.sh")],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        return wait_for_banner(self.port, started, "OpenSMTPD")

    def root_pid(self):
        return self.proc.pid

    def stop(self):
        pids = process_tree(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        kill_all(pids)
        self.proc.wait()
        self.log.close()

    @staticmethod
    def binary_bytes():
        pkg = opensmtpd_root()
        libexec = os.path.join(pkg, "usr/libexec/opensmtpd")
        return file_bytes([os.path.join(pkg, "usr/sbin/smtpd"), os.path.join(pkg, "usr/sbin/smtpctl")]
                          + [os.path.join(libexec, f) for f in os.listdir(libexec)])


class Sink:
    """smtp-sink on loopback, counting the messages it was given."""

    def __init__(self, smtp_sink):
        self.port = free_port()
        self.count = 0
        self.proc = subprocess.Popen([smtp_sink, "-u", "nobody", "-c", f"127.0.0.1:{self.port}", "1000"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        wait_for_banner(self.port, time.monotonic(), "smtp-sink")

    def read(self):
        tail = b""
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            counts = re.findall(rb"mesg=(\d+)", tail + chunk)
            if counts:
                self.count = int(counts[-1])
            tail = chunk[-32:]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def openssl(workdir, args):
    """The openssl command in workdir; its errors end the bench."""
    subprocess.run(["openssl"] + args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, check=True)


def make_test_ca(workdir):
    """A CA and a certificate for push.test signed by it, as the tests' TestCa
    makes them (P-256 keys); their paths (ca, cert, key)."""
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(workdir, ["req", "-x509", "-days", "2", "-subj", "/CN=tinymta bench CA"] + ec_key
            + ["-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    openssl(workdir, ["req", "-subj", "/CN=push.test"] + ec_key + ["-keyout", "key.pem", "-out", "req.csr"])
    with open(os.path.join(workdir, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:push.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl(workdir, ["x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                      "-days", "2", "-out", "cert.pem", "-extfile", "ext.cnf"])
    return tuple(os.path.join(workdir, name) for name in ("ca.pem", "cert.pem", "key.pem"))


class PushService:
    """The tests' HTTPS server (tests/peers/http_server.py, a ThreadingMixIn
    http.server with ssl) answering as ntfy does: it checks each request
    against ntfy's contract (the token among it) and answers 200 with ntfy's
    JSON, or 4xx. It keeps each request as a file: their number is the count."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "push")
        self.requests = os.path.join(self.dir, "requests")
        os.makedirs(self.requests)
        os.chmod(self.dir, 0o755)  # tinymta reads the CA and hosts file as nobody
        self.port = free_port()
        self.ca, cert, key = make_test_ca(self.dir)
        os.chmod(self.ca, 0o644)
        self.hosts_file = os.path.join(self.dir, "hosts")
        with open(self.hosts_file, "w") as f:
            f.write("127.0.0.1 push.test\n")
        os.chmod(self.hosts_file, 0o644)
        # Read at start-up, before the privilege drop: root's alone.
        self.token_file = os.path.join(self.dir, "token")
        with open(self.token_file, "w") as f:
            f.write(PUSH_TOKEN + "\n")
        os.chmod(self.token_file, 0o600)
        self.proc = subprocess.Popen(
            [sys.executable, HTTP_SERVER, "--port", str(self.port), "--out", self.requests, "--cert", cert,
             "--key", key, "--service", "ntfy", "--secrets", json.dumps({"token": PUSH_TOKEN}),
             "--answers", '[{"as_service": true}]'],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if self.proc.stdout.readline() != b"READY\n":
            raise RuntimeError("the HTTPS server did not start")

    def count(self):
        return count_files(self.requests)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def push_by_client(service, requests, body):
    """What a plain HTTPS client does for each push, as tinymta does it: a
    connection to 127.0.0.1, TLS checked for push.test against the test CA,
    one ntfy POST, the answer read, the connection closed."""
    context = ssl.create_default_context(cafile=service.ca)
    headers = {"Title": "bench", "Priority": "3", "Tags": "email", "Authorization": f"Bearer {PUSH_TOKEN}",
               "Connection": "close"}
    for _ in range(requests):
        conn = http.client.HTTPConnection("push.test", service.port)
        sock = socket.create_connection(("127.0.0.1", service.port))
        # http.client sends the head and a body this size apart: without this,
        # Nagle holds the body until the server's delayed ACK (40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = context.wrap_socket(sock, server_hostname="push.test")
        conn.request("POST", "/alerts", body, headers)
        answer = conn.getresponse()
        answer.read()
        conn.close()
        if answer.status != 200:
            sys.exit(f"HTTPS client: the server answered {answer.status}")


def push_ceiling(connections):
    """One run: requests/s the HTTPS server took from the plain client over
    this many connections at a time, PUSH_MESSAGES in all."""
    body = (b"La de da de da 1.\n" * (SIZE // 18))[:SIZE - 200]  # about what tinymta sends
    with tempfile.TemporaryDirectory() as workdir:
        service = PushService(workdir)
        clients = [threading.Thread(target=push_by_client, args=(service, PUSH_MESSAGES // connections, body))
                   for _ in range(connections)]
        started = time.monotonic()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.monotonic() - started
        received = service.count()
        service.stop()
    if received != PUSH_MESSAGES // connections * connections:
        sys.exit(f"HTTPS client: {received} requests arrived")
    return received / elapsed


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


def send_and_wait(server, sessions, reuse, rcpt, arrived, messages=MESSAGES):
    """smtp-source's messages to the server; seconds until it was done, and
    until arrived() counted them all (or 300 s passed)."""
    args = [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(SIZE),
            "-f", "bench@bench.test", "-t", rcpt] + (["-d"] if reuse else [])
    started = time.monotonic()
    run = subprocess.run(args + [f"127.0.0.1:{server.port}"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        sys.exit(f"{server.name}: smtp-source failed: {run.stderr.strip()}")
    accepted = time.monotonic() - started
    deadline = time.monotonic() + 300
    while arrived() < messages and time.monotonic() < deadline:
        time.sleep(0.005)
    return accepted, time.monotonic() - started


def run_load(kind, sessions, reuse):
    """One run: messages/s accepted and delivered, peak RSS/PSS, landed count."""
    with tempfile.TemporaryDirectory() as workdir:
        server = kind(workdir)
        server.start()
        root = server.root_pid()
        peak = [0, 0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                rss, pss = tree_memory_kib(root)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
                time.sleep(SAMPLE_INTERVAL)

        sampler = threading.Thread(target=sample)
        sampler.start()
        accepted, delivered = send_and_wait(server, sessions, reuse, "u@bench.test",
                                            lambda: count_files(server.maildir()))
        done.set()
        sampler.join()
        landed = count_files(server.maildir())
        server.stop()
        return MESSAGES / accepted, MESSAGES / delivered, peak[0], peak[1], landed


def run_relay(kind, reuse):
    """One run: messages/s accepted and forwarded to smtp-sink, and how many arrived."""
    sink = Sink(SMTP_SINK)
    with tempfile.TemporaryDirectory() as workdir:
        server = kind(workdir, relay_to=sink.port)
        server.start()
        accepted, forwarded = send_and_wait(server, RELAY_SESSIONS, reuse, "u@far.test", lambda: sink.count)
        time.sleep(0.2)  # a duplicate would show up as more than MESSAGES
        arrived = sink.count
        server.stop()
    sink.stop()
    return MESSAGES / accepted, MESSAGES / forwarded, arrived


def run_push(connections):
    """One run: messages/s tinymta accepted for nas@push and pushed to the
    HTTPS server over this many connections at a time, how many requests
    arrived and how many messages bounced."""
    with tempfile.TemporaryDirectory() as workdir:
        service = PushService(workdir)
        server = Tinymta(workdir, push_to=service, push_connections=connections)
        server.start()
        accepted, pushed = send_and_wait(server, RELAY_SESSIONS, False, "nas@push", service.count,
                                         PUSH_MESSAGES)
        time.sleep(0.2)  # a duplicate, or a retry, would show up as more than PUSH_MESSAGES
        arrived = service.count()
        # A push the server refused for good bounces to the sender, bench@bench.test.
        bounced = count_files(os.path.join(workdir, "mail", "bench", "new"))
        server.stop()
        service.stop()
    return PUSH_MESSAGES / accepted, PUSH_MESSAGES / pushed, arrived, bounced


def idle(kind):
    """Start-up time and idle RSS/PSS of the process tree after 1 s."""
    with tempfile.TemporaryDirectory() as workdir:
        server = kind(workdir)
        startup = server.start()
        time.sleep(1)
        memory = tree_memory_kib(server.root_pid())
        server.stop()
    return startup, memory


def big_message():
    """tinymta's peak RSS rise while it accepts a 50 MB message."""
    with tempfile.TemporaryDirectory() as workdir:
        server = Tinymta(workdir)
        server.start()
        time.sleep(0.5)
        before = memory_kib(server.proc.pid)[0]
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            f = s.makefile("rwb")
            f.readline()
            for line in (b"EHLO bench.test", b"MAIL FROM:<b@bench.test>", b"RCPT TO:<u@bench.test>", b"DATA"):
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
            hwm = next(int(line.split()[1]) for line in st if line.startswith("VmHWM:"))
        server.stop()
    return hwm - before, ok


def interleaved(cases):
    """Runs each case RUNS times, round-robin, so that a slow spell of this
    shared machine falls on all of them alike; {name: [results]}."""
    results = {name: [] for name in cases}
    for _ in range(RUNS):
        for name, case in cases.items():
            results[name].append(case())
    return results


def disk_limit_once(writers):
    with tempfile.TemporaryDirectory() as d:
        return disk_limit(d, writers, MESSAGES)


def median_of(results, i):
    return statistics.median(r[i] for r in results)


def main():
    global SMTP_SOURCE, SMTP_SINK
    if os.geteuid() != 0:
        sys.exit("make bench runs as root: private mount namespaces, and servers that drop privileges")
    SMTP_SOURCE, SMTP_SINK = postfix_tools()
    if "TINYMTA_BENCH_BIN" not in os.environ:
        subprocess.run(["make", "static", f"TARGET={STATIC_TARGET}"], cwd=ROOT, check=True)
    if not shutil.which("openssl"):
        apt_install(["openssl"])  # the push service's test CA
    wanted = os.environ.get("BENCH_SERVERS", "tinymta,Postfix,OpenSMTPD").lower().split(",")
    servers = [kind for kind in (Tinymta, Postfix, Opensmtpd) if kind.name.lower() in wanted]
    print(f"bench: {MESSAGES} messages of {SIZE} octets, median of {RUNS} runs", flush=True)

    load = []  # (sessions, mode, disk, {name: (acc, dlv, rss, pss, landed)})
    for sessions in SESSIONS:
        for reuse in (False, True):
            mode = "reused" if reuse else "per message"
            cases = {kind.name: (lambda kind=kind: run_load(kind, sessions, reuse)) for kind in servers}
            cases["disk"] = lambda: disk_limit_once(sessions)
            results = interleaved(cases)
            disk = statistics.median(results.pop("disk"))
            figures = {}
            for name, runs in results.items():
                figures[name] = tuple(median_of(runs, i) for i in range(4)) + (min(r[4] for r in runs),)
                acc, dlv, rss, pss, landed = figures[name]
                print(f"  {name:>9}, {sessions:>2} sessions, {mode}: accepted {acc:.0f}/s, "
                      f"delivered {dlv:.0f}/s, peak RSS {rss:.0f} KiB, landed {landed}", flush=True)
                if landed != MESSAGES:
                    sys.exit(f"{name}: only {landed} of {MESSAGES} messages landed")
            print(f"  disk limit, {sessions:>2} writers: {disk:.0f} files/s", flush=True)
            load.append((sessions, mode, disk, figures))

    relay = []  # (mode, {name: (acc, fwd, most arrived, fewest arrived)})
    for reuse in (False, True):
        mode = "reused" if reuse else "per message"
        results = interleaved({kind.name: (lambda kind=kind: run_relay(kind, reuse)) for kind in servers})
        figures = {}
        for name, runs in results.items():
            figures[name] = (median_of(runs, 0), median_of(runs, 1), max(r[2] for r in runs),
                             min(r[2] for r in runs))
            print(f"  {name:>9} relaying, {mode}: accepted {figures[name][0]:.0f}/s, "
                  f"forwarded {figures[name][1]:.0f}/s, arrived {figures[name][3]}", flush=True)
            if figures[name][2] != MESSAGES or figures[name][3] != MESSAGES:
                sys.exit(f"{name}: {figures[name][3]}..{figures[name][2]} of {MESSAGES} arrived")
        relay.append((mode, figures))

    push = []  # (connections, tinymta's accepted, pushed, the plain client's requests/s)
    for connections in PUSH_CONNECTIONS if Tinymta in servers else ():
        results = interleaved({"tinymta": lambda: run_push(connections), "client": lambda: push_ceiling(connections)})
        runs = results["tinymta"]
        for _, _, arrived, bounced in runs:
            if arrived != PUSH_MESSAGES or bounced:
                sys.exit(f"tinymta pushing: {arrived} of {PUSH_MESSAGES} requests arrived, {bounced} bounced")
        push.append((connections, median_of(runs, 0), median_of(runs, 1), statistics.median(results["client"])))
        print(f"    tinymta pushing, {connections} connections: accepted {push[-1][1]:.0f}/s, pushed "
              f"{push[-1][2]:.0f}/s; the HTTPS server took {push[-1][3]:.0f}/s from a plain client", flush=True)

    results = interleaved({kind.name: (lambda kind=kind: idle(kind)) for kind in servers})
    idles = {name: (statistics.median(r[0] for r in runs), statistics.median(r[1][0] for r in runs),
                    statistics.median(r[1][1] for r in runs)) for name, runs in results.items()}
    big_rise, big_ok = big_message()
    sizes = {kind.name: kind.binary_bytes() for kind in servers}

    write_results(servers, load, relay, push, idles, big_rise, big_ok, sizes)


def markdown_table(header, rows):
    """The lines of a Markdown table."""
    def line(cells):
        return "| " + " | ".join(str(c) for c in cells) + " |"
    return [line(header), "|" + "---|" * len(header)] + [line(r) for r in rows]


def write_results(servers, load, relay, push, idles, big_rise, big_ok, sizes):
    names = [k.name for k in servers]
    lines = [
        f"# tinymta bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {os.cpu_count()} cores, {os.uname().machine}, kernel {os.uname().release}. "
        f"{MESSAGES} messages of {SIZE} octets sent by Postfix's smtp-source (`-s N`, plus `-d` for "
        f"reused connections), median of {RUNS} runs taken in turn (server A, B, C, the disk, then A "
        "again), so that a slow spell of the machine falls on all alike. Every server delivers into a local Maildir; "
        "a run counts only when all messages landed. The disk limit is this machine writing 4 KiB "
        "files (write, fsync, rename, fsync the directory) with as many writers as sessions. "
        "Memory is the sum over each server's process tree, sampled every "
        f"{SAMPLE_INTERVAL * 1000:.0f} ms.",
        "",
        "## Accepted and delivered into a Maildir, messages/s",
        "",
    ]
    rows = []
    for sessions, mode, disk, f in load:
        t, p = f.get("tinymta", (0, 0))[1], f.get("Postfix", (0, 0))[1]
        rows.append([sessions, mode, f"{disk:.0f}"] + [f"{f[n][i]:.0f}" for n in names for i in (0, 1)]
                    + [f"{t / disk:.0%}", f"{t / p:.1f}x" if p else "-"])
    lines += markdown_table(["sessions", "connections", "disk limit"]
                            + [f"{n} {what}" for n in names for what in ("accepted", "delivered")]
                            + ["tinymta of the limit", "tinymta / Postfix"], rows)
    lines += ["", "## Peak memory under that load, KiB (RSS / PSS of the process tree)", ""]
    lines += markdown_table(["sessions", "connections"] + names,
                            [[sessions, mode] + [f"{f[n][2]:.0f} / {f[n][3]:.0f}" for n in names]
                             for sessions, mode, _, f in load])
    lines += ["", f"## Relaying to smtp-sink on loopback, {RELAY_SESSIONS} sessions, messages/s", ""]
    lines += markdown_table(["connections"] + [f"{n} {what}" for n in names for what in ("accepted", "forwarded")],
                            [[mode] + [f"{f[n][i]:.0f}" for n in names for i in (0, 1)] for mode, f in relay])
    if push:
        lines += ["", f"## Pushing to an HTTPS service on loopback, {RELAY_SESSIONS} sessions, pushes/s", ""]
        lines += markdown_table(["connections to the server", "tinymta accepted", "tinymta pushed",
                                 "plain HTTPS client to the same server", "tinymta / client"],
                                [[f"{c} (`delivery_workers = {c + 1}`)"] + [f"{x:.0f}" for x in figures]
                                 + [f"{figures[1] / figures[2]:.2f}x"] for c, *figures in push])
        lines += [
            "",
            f"{PUSH_MESSAGES} messages of {SIZE} octets to `nas@push`, routed by "
            "`route = *@push ntfy url=https://push.test:PORT/alerts token_file=...` (`hosts_file` and "
            "`tls_ca_file` name the server and its test CA); pushed is the time from smtp-source's first "
            "message to the last request the server received. The server is the tests' "
            "(tests/peers/http_server.py: Python's threaded http.server with ssl, answering as ntfy does, "
            "keeping each request as a file). Beside it, what the server took from a plain HTTPS client in Python "
            "(http.client): the same POST, one TLS connection per request as tinymta makes them, over as many "
            "connections at a time (a push route holds at most `delivery_workers - 1` workers; the default, 2, "
            "gives the first row). Where the client gains with more connections and tinymta reaches it there, "
            "the Python server is the limit, not tinymta; where tinymta is above the client, the Python client "
            "is the slower side. Postfix and OpenSMTPD have no push transport: this table is tinymta's alone.",
        ]
    lines += ["", "## Idle, start-up, size", ""]
    lines += markdown_table([""] + names, [
        ["idle RSS KiB (process tree)"] + [f"{idles[n][1]:.0f}" for n in names],
        ["idle PSS KiB (process tree)"] + [f"{idles[n][2]:.0f}" for n in names],
        ["start-up to first 220, ms"] + [f"{idles[n][0] * 1000:.1f}" for n in names],
        ["installed executables, bytes"] + [f"{sizes[n]}" for n in names],
    ])
    lines += [
        "",
        f"- tinymta, a 50 MB message ({'accepted' if big_ok else 'NOT accepted'}): peak RSS rose by {big_rise} KiB",
        f"- tinymta is the binary that ships: `make static` ({STATIC_TARGET}, static, stripped). "
        "Postfix's counts /usr/sbin/postfix, its daemons and libpostfix-*; OpenSMTPD's smtpd, smtpctl "
        "and its libexec helpers (shared system libraries are not counted for either).",
        "- Postfix's start-up includes `postfix start`'s own checks.",
        "- OpenSMTPD listens with a backlog of 5 (compiled in). With 10 or 50 sessions opening a "
        "connection per message, the connections beyond it wait for TCP's SYN retransmission "
        "(1 s, then 3 s; `nstat` counts them as TcpExtListenOverflows), which explains most of its "
        "low figures there. Relaying, it waits between deliveries by its own scheduling.",
    ]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(ROOT, "bench", "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
