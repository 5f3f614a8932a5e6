#!/usr/bin/env python3
"""End-to-end checks of piratchat behind nginx over TLS (standard library only).

Started by .ci/e2e-nginx.sh, which runs piratchat and nginx on loopback and
passes their ports and log files. Clients connect from other loopback
addresses (127.0.0.2 and up) so that the client address nginx sees differs
from the TCP peer piratchat sees (nginx itself, 127.0.0.1): the server must
take the client address from X-Forwarded-For.

Prints one line per check and a final "N passed, M failed"; exits 1 on any
failure.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import struct
import sys
import time
import traceback

TIMEOUT = 5.0  # seconds for any single network wait

# ---- a minimal RFC 6455 client --------------------------------------------


class WSClosed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed {code} {reason!r}")
        self.code, self.reason = code, reason


class HandshakeRefused(Exception):
    def __init__(self, status, body):
        super().__init__(f"upgrade refused: HTTP {status} {body!r}")
        self.status, self.body = status, body


class WebSocket:
    """A blocking WebSocket client over TLS: masked frames, text only."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, ctx, port, path, cookie=None, origin=None, source="127.0.0.1"):
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT,
                                       source_address=(source, 0))
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""
        self.deadline = time.monotonic() + TIMEOUT
        self.pings = 0  # pings received and answered
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                 "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        if origin:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (h.split(":", 1) for h in header_lines if ":" in h)}
        if status != 101:
            body = self.buf
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                self._fill()
                body = self.buf
            self.sock.close()
            raise HandshakeRefused(status, body[:length].decode("utf-8", "replace"))
        want = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            raise AssertionError("bad Sec-WebSocket-Accept")

    def _fill(self):
        # One deadline for the whole wait: pings answered on the way must
        # not extend it.
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise WSClosed(1006, "connection lost")
        self.buf += chunk

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_json(self, obj):
        self._send_frame(0x1, json.dumps(obj).encode())

    def recv(self, timeout=TIMEOUT):
        """The next text message as JSON; answers pings; raises WSClosed."""
        self.deadline = time.monotonic() + timeout
        message, op = b"", None
        while True:
            b0, b1 = self._take(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8))[0]
            mask = self._take(4) if b1 & 0x80 else None
            payload = self._take(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self.pings += 1
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                try:
                    self._send_frame(0x8, payload[:2])
                except OSError:
                    pass
                raise WSClosed(code, payload[2:].decode("utf-8", "replace"))
            elif opcode in (0x1, 0x2, 0x0):
                op = opcode if opcode else op
                message += payload
                if b0 & 0x80:
                    return json.loads(message.decode())

    def expect(self, pred, what, timeout=TIMEOUT):
        """Reads messages until one satisfies pred; fails after timeout."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout}s; got {seen}")
            try:
                msg = self.recv(left)
            except socket.timeout:
                continue
            if pred(msg):
                return msg
            seen.append(msg)

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
            self.sock.close()
        except OSError:
            pass


# ---- HTTP helpers -------------------------------------------------------------


class Client:
    def __init__(self, args, ctx):
        self.args, self.ctx = args, ctx

    def https(self, method, path, body=None, cookie=None, source="127.0.0.2", headers=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.args.https_port, context=self.ctx,
                                           timeout=TIMEOUT, source_address=(source, 0))
        return self._do(conn, method, path, body, cookie, headers)

    def http(self, port, method, path, body=None, cookie=None, source="127.0.0.1", headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT,
                                          source_address=(source, 0))
        return self._do(conn, method, path, body, cookie, headers)

    @staticmethod
    def _do(conn, method, path, body, cookie, headers):
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if cookie:
            h["Cookie"] = cookie
        try:
            conn.request(method, path, body=data, headers=h)
            res = conn.getresponse()
            raw = res.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            return res.status, res, raw, parsed
        finally:
            conn.close()


def session_cookie(res):
    """('session=...', the full Set-Cookie line) from a login response."""
    for value in res.headers.get_all("Set-Cookie") or []:
        if value.startswith("session="):
            return value.split(";", 1)[0], value
    raise AssertionError("no session cookie in the login response")


def host_part(addr):
    """127.0.0.2 from '127.0.0.2', '127.0.0.2:4431' or '[::1]:80'."""
    if addr.startswith("["):
        return addr[1:addr.index("]")]
    if addr.count(":") == 1:
        return addr.split(":")[0]
    return addr


# e.g. ... INFO http 127.0.0.2 GET "/api/online" 200 1ms (the path may be quoted)
ACCESS = re.compile(r'(\S+) (GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH) "?([^\s"]+)"? (\d{3})\b')


def wait_log_address(path, request_path, parse, what):
    """The client address logged for request_path, polling until a deadline."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                found = parse(line, request_path)
                if found:
                    return found
        time.sleep(0.05)
    raise AssertionError(f"{what}: no log line for {request_path}")


def server_address(line, request_path):
    m = ACCESS.search(line)
    return host_part(m.group(1)) if m and m.group(3) == request_path else None


def nginx_address(line, request_path):
    # combined format: $remote_addr - $remote_user [$time_local] "$request" ...
    m = re.match(r'(\S+) \S+ \S+ \[[^\]]*\] "\S+ (\S+) [^"]*"', line)
    return m.group(1) if m and m.group(2) == request_path else None


# ---- the checks -----------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--https-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--direct-port", type=int, required=True, help="piratchat itself")
    ap.add_argument("--ca", required=True, help="the self-signed certificate")
    ap.add_argument("--server-log", required=True)
    ap.add_argument("--nginx-log", required=True, help="nginx access log")
    ap.add_argument("--idle", type=float, default=0,
                    help="also keep a WebSocket idle this long (over nginx's 75 s read timeout)")
    args = ap.parse_args()

    # Real certificate verification against the test's own CA.
    ctx = ssl.create_default_context(cafile=args.ca)
    c = Client(args, ctx)
    origin = f"https://127.0.0.1:{args.https_port}"
    tag = os.urandom(3).hex()
    st = {}
    passed = failed = 0

    def check(name, fn):
        nonlocal passed, failed
        try:
            fn()
            passed += 1
            print(f"ok   {name}", flush=True)
        except Exception as e:  # one failed check must not hide the others
            failed += 1
            print(f"FAIL {name}: {e}", flush=True)
            if not isinstance(e, AssertionError):
                traceback.print_exc()

    def eq(got, want, what):
        if got != want:
            raise AssertionError(f"{what}: got {got!r}, want {want!r}")

    def redirect():
        status, res, _, _ = c.http(args.http_port, "GET", "/api/online?x=1")
        eq(status, 301, "status")
        loc = res.getheader("Location", "")
        if not loc.startswith("https://") or not loc.endswith("/api/online?x=1"):
            raise AssertionError(f"Location {loc!r}")

    def page():
        for path, ctype, needle in (("/", "text/html", b"<html"),
                                    ("/app.js", "text/javascript", b"WebSocket"),
                                    ("/style.css", "text/css", b"{")):
            status, res, raw, _ = c.https("GET", path)
            eq(status, 200, f"{path} status")
            if not res.getheader("Content-Type", "").startswith(ctype):
                raise AssertionError(f"{path} Content-Type {res.getheader('Content-Type')!r}")
            if needle not in raw:
                raise AssertionError(f"{path} body lacks {needle!r}")

    def register(name, source="127.0.0.2"):
        status, _, _, body = c.https("POST", "/api/register", {"username": name}, source=source)
        eq(status, 201, f"register {name}")
        if not re.fullmatch(r"[0-9a-f]{64}", body.get("key", "")):
            raise AssertionError(f"key {body!r}")
        return body["key"]

    def register_both():
        st["a"], st["b"] = f"ann{tag}", f"ben{tag}"
        st["akey"], st["bkey"] = register(st["a"]), register(st["b"])

    def login():
        for who in ("a", "b"):
            status, res, _, body = c.https("POST", "/api/login", {"key": st[who + "key"]})
            eq(status, 200, "status")
            eq(body, {"username": st[who]}, "body")
            cookie, line = session_cookie(res)
            attrs = [a.strip().lower() for a in line.split(";")[1:]]
            for need in ("secure", "httponly", "samesite=lax", "path=/"):
                if need not in attrs:
                    raise AssertionError(f"cookie lacks {need}: {line!r}")
            st[who + "cookie"] = cookie

    def no_secure_direct():
        # Straight to piratchat over plain HTTP: no Secure flag (it would be
        # dropped by the browser on http://).
        status, res, _, _ = c.http(args.direct_port, "POST", "/api/login", {"key": st["akey"]})
        eq(status, 200, "status")
        _, line = session_cookie(res)
        if "secure" in [a.strip().lower() for a in line.split(";")]:
            raise AssertionError(f"Secure on a plain-HTTP login: {line!r}")

    def me():
        status, _, _, body = c.https("GET", "/api/user/@me", cookie=st["acookie"])
        eq(status, 200, "status")
        eq(body.get("username"), st["a"], "username")

    def chat():
        wa = WebSocket(ctx, args.https_port, "/ws", st["acookie"], origin, source="127.0.0.2")
        st["wa"] = wa
        wb = WebSocket(ctx, args.https_port, "/ws", st["bcookie"], origin, source="127.0.0.3")
        st["wb"] = wb
        wa.expect(lambda m: m.get("event") == "join" and m.get("username") == st["b"], "join of b")
        wb.send_json({"message": "hello from b ✓"})
        ack = wb.expect(lambda m: "status" in m, "ack")
        eq(ack.get("status"), True, "ack")
        got = wa.expect(lambda m: "message" in m, "message at a")
        eq((got["message"], got["author"]), ("hello from b ✓", st["b"]), "message")
        wa.send_json({"message": "hi b"})
        eq(wa.expect(lambda m: "status" in m, "ack").get("status"), True, "ack")
        got = wb.expect(lambda m: "message" in m, "message at b")
        eq((got["message"], got["author"]), ("hi b", st["a"]), "message")
        wa.send_json({"message": "x" * 301})
        eq(wa.expect(lambda m: "status" in m, "ack"),
           {"status": False, "code": "message_too_long"}, "too-long ack")

    def stream():
        # An event stream through nginx: the head, then an event the moment
        # it is sent (a buffering proxy would hold it back: readline times out).
        conn = http.client.HTTPSConnection("127.0.0.1", args.https_port, context=ctx,
                                           timeout=TIMEOUT, source_address=("127.0.0.3", 0))
        try:
            conn.request("GET", "/api/events", headers={"Cookie": st["bcookie"]})
            res = conn.getresponse()
            eq(res.status, 200, "status")
            eq(res.getheader("Content-Type"), "text/event-stream", "Content-Type")
            text = f"to the stream {tag}"
            st["wa"].send_json({"message": text})
            eq(st["wa"].expect(lambda m: "status" in m, "ack").get("status"), True, "ack")
            block = []
            while True:
                line = res.readline()
                if not line:
                    raise AssertionError(f"the stream ended: {block!r}")
                if line == b"\n":
                    data = [l for l in block if l.startswith(b"data: ")]
                    if data and json.loads(data[0][6:]).get("message") == text:
                        break
                    block = []
                else:
                    block.append(line)
            got = json.loads(data[0][6:])
            eq(block[:2], [f"id: {got['id']}\n".encode(), b"event: message\n"], "id and event lines")
            eq(got["author"], st["a"], "author")
        finally:
            conn.close()

    def online():
        status, _, _, body = c.https("GET", "/api/online", cookie=st["acookie"])
        eq(status, 200, "status")
        eq(body.get("online_clients"), [st["a"], st["b"]], "online_clients")

    def second_socket():
        try:
            WebSocket(ctx, args.https_port, "/ws", st["acookie"], origin).close()
        except HandshakeRefused as e:
            eq(e.status, 409, "status")
            return
        raise AssertionError("a second socket of the same user was accepted")

    def foreign_origin():
        try:
            WebSocket(ctx, args.https_port, "/ws", st["bcookie"], "https://evil.example").close()
        except HandshakeRefused as e:
            eq(e.status, 403, "status")
            return
        raise AssertionError("a cross-site Origin was accepted")

    def leave():
        st["wb"].close()
        st["wa"].expect(lambda m: m.get("event") == "leave" and m.get("username") == st["b"],
                        "leave of b")

    def client_address():
        # A forged X-Forwarded-For from the client must not win: nginx appends
        # the address it saw, and the server takes the last entry.
        path = f"/api/user/nobody{tag}"
        status, _, _, _ = c.https("GET", path, cookie=st["acookie"], source="127.0.0.2",
                                  headers={"X-Forwarded-For": "203.0.113.7"})
        eq(status, 404, "status")
        seen_by_nginx = wait_log_address(args.nginx_log, path, nginx_address, "nginx")
        eq(seen_by_nginx, "127.0.0.2", "address in nginx's log")
        logged = wait_log_address(args.server_log, path, server_address, "piratchat")
        eq(logged, seen_by_nginx, "address in piratchat's log")

    def rate_limit_per_client():
        # Registrations are limited per client address. Behind nginx every TCP
        # peer is 127.0.0.1, so a limit hit from 127.0.0.4 must not touch
        # 127.0.0.5.
        statuses = []
        for i in range(40):
            status, res, _, _ = c.https("POST", "/api/register", {"username": f"r{tag}x{i}"},
                                        source="127.0.0.4")
            statuses.append(status)
            if status == 429:
                if not res.getheader("Retry-After", "").isdigit():
                    raise AssertionError("429 without a numeric Retry-After")
                break
        if statuses[-1] != 429:
            raise AssertionError(f"never rate limited: {statuses}")
        register(f"other{tag}", source="127.0.0.5")

    def metrics():
        status, _, _, _ = c.https("GET", "/metrics")
        eq(status, 404, "through nginx")
        status, _, raw, _ = c.http(args.direct_port, "GET", "/metrics")
        eq(status, 200, "direct")
        if b"# TYPE" not in raw and b"# HELP" not in raw:
            raise AssertionError("direct /metrics is not Prometheus text")

    def idle():
        # No frames from us for longer than nginx's read timeout: only the
        # server's pings (answered in recv) keep the proxied socket open.
        wa = st["wa"]
        pings = wa.pings
        deadline = time.monotonic() + args.idle
        while time.monotonic() < deadline:
            try:
                msg = wa.recv(max(0.1, deadline - time.monotonic()))
                raise AssertionError(f"unexpected frame {msg!r}")
            except socket.timeout:
                pass
        if wa.pings == pings:
            raise AssertionError("no ping from the server while idle")
        wa.send_json({"message": "still here"})
        eq(wa.expect(lambda m: "status" in m, "ack").get("status"), True, "ack after idle")

    def logout():
        status, _, _, body = c.https("POST", "/api/logout", cookie=st["acookie"])
        eq((status, body), (200, {}), "logout")
        try:
            st["wa"].expect(lambda m: False, "close", timeout=TIMEOUT)
        except WSClosed as e:
            eq((e.code, e.reason), (1000, "logged out"), "close")
            status, _, _, _ = c.https("GET", "/api/user/@me", cookie=st["acookie"])
            eq(status, 401, "after logout")
            return
        raise AssertionError("socket stayed open after logout")

    check("http on port 80 redirects to https", redirect)
    check("page, script and style served through nginx", page)
    check("register two users", register_both)
    if "akey" in st:
        check("login: cookie has Secure, HttpOnly, SameSite=Lax", login)
        check("login straight to the server over http: no Secure", no_secure_direct)
    if "acookie" in st:
        check("api/user/@me with the cookie", me)
        check("wss chat between two clients", chat)
        if "wa" in st:
            check("event stream through nginx gets a message at once", stream)
        if "wb" in st:
            check("api/online lists both", online)
            check("second socket of a user: 409", second_socket)
            check("foreign Origin: 403", foreign_origin)
            check("closing one socket: leave to the other", leave)
        check("client address: piratchat logs what nginx saw", client_address)
        if args.idle and "wa" in st:
            check(f"socket idle {args.idle:g}s through nginx stays open", idle)
        if "wa" in st:
            check("logout closes the socket with 1000 'logged out'", logout)
    check("register rate limit counts the client address, not nginx", rate_limit_per_client)
    check("/metrics: 404 through nginx, 200 directly", metrics)

    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
