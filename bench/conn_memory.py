#!/usr/bin/env python3
"""Memory per client connection of a running proxy, from the outside (`make bench`).

    conn_memory.py --port PORT --pid PID --conns N --mode idle|upload [--path /upload]

Reads the process's VmRSS, opens N connections to 127.0.0.1:PORT, puts each in the state the
mode names, waits for the process to settle, reads VmRSS again, and prints one line:

    kb_per_conn <value> rss_before_kb <a> rss_after_kb <b> open <n>

Modes:
- idle: each connection sends one GET, reads the whole answer, then stays open and silent (an
  idle keep-alive connection, as browsers and load balancers keep them);
- upload: each connection sends the head of a POST announcing 1 MB and 1 KiB of it, then
  stops sending (a stalled upload).

The connections are closed when the script ends. Only 127.0.0.1 is ever contacted.
"""
import argparse
import resource
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def read_response(sock):
    """Reads one response with a Content-Length body; returns its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(head.split(b" ")[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--mode", choices=["idle", "upload"], required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--settle", type=float, default=1.5)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    # Warm up: one full exchange, so lazily allocated process-wide state is already there.
    warm = socket.create_connection(("127.0.0.1", args.port))
    warm.sendall(f"GET {args.path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    warm.recv(65536)
    warm.close()
    time.sleep(args.settle)
    before = rss_kb(args.pid)

    socks = []
    body = b"x" * 1024
    for _ in range(args.conns):
        s = socket.create_connection(("127.0.0.1", args.port))
        if args.mode == "idle":
            s.sendall(f"GET {args.path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            status = read_response(s)
            if status != 200:
                raise SystemExit(f"the proxy answered {status}")
        else:
            s.sendall(
                f"POST {args.path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: 1000000\r\n\r\n".encode()
                + body
            )
        socks.append(s)
    time.sleep(args.settle)
    after = rss_kb(args.pid)
    still_open = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                continue  # closed by the server
        except BlockingIOError:
            pass
        except OSError:
            continue
        still_open += 1
    print(
        f"kb_per_conn {(after - before) / args.conns:.2f} rss_before_kb {before} "
        f"rss_after_kb {after} open {still_open}"
    )
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
