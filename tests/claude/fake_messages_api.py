#!/usr/bin/env python3
"""Fake Anthropic Messages API for running the real Claude Code client offline (stdlib only).

  fake_messages_api.py [--host 127.0.0.1] [--port 0] [--port-file F] [--log F] [--script F]

- HEAD/GET /                 -> 200
- POST /v1/messages[?...]    -> SSE stream when body.stream is true, else one JSON message
- POST .../count_tokens      -> {"input_tokens": N}
- anything else              -> 404 JSON error (GET) / {} (POST); never crashes the client
Every request is appended to --log as one JSON line: {"n","method","path","body","reply"}
(body parsed as JSON when possible, else the raw text).

Replies: default text is "ACK#<len(body.messages)>". --script names a JSON list of replies,
each {"text": "..."} and/or {"tool_use": {"name": "Bash", "input": {...}, "id": optional}}
(ids default to unique ones, so sessions continued across runs never repeat one),
consumed in order by *agent* requests only (those carrying a non-empty "tools" list, so side
requests such as title generation never eat script entries). When the last message carries
a tool_result, the reply is text: the next entry is consumed only if it has no tool_use,
otherwise the ACK text is sent, unless the entry says "chain": true (a tool call that follows
another's result, as an agent working through steps does). Once the script is exhausted the
ACK text is used. In a tool input, "{{plan_file}}" becomes the plan file the request names.
"""
import argparse, itertools, json, os, re, sys, threading, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
ARGS = None
SCRIPT = []
COUNTER = itertools.count(1)


def has_tool_result(body):
    try:
        content = body["messages"][-1].get("content")
        return isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    except Exception:
        return False


PLAN_FILE = re.compile(r'(?:[A-Za-z]:)?[^"\s:]*[/\\]plans[/\\][A-Za-z0-9_-]+\.md')


def fill(value, body):
    """The tool input with "{{plan_file}}" replaced by the plan file the request names (plan
    mode tells the model where to write its plan; a script cannot know the name before)."""
    if isinstance(value, str) and "{{plan_file}}" in value:
        m = PLAN_FILE.search(json.dumps(body, ensure_ascii=False).replace("\\\\", "\\"))
        return value.replace("{{plan_file}}", m.group(0) if m else "")
    if isinstance(value, dict):
        return {k: fill(v, body) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, body) for v in value]
    return value


def choose_reply(body, n):
    """Return a list of content blocks for this request."""
    msgs = body.get("messages") if isinstance(body, dict) else None
    ack = [{"type": "text", "text": "ACK#%d" % (len(msgs) if isinstance(msgs, list) else 0)}]
    if not (isinstance(body, dict) and isinstance(body.get("tools"), list) and body["tools"]):
        return ack
    with LOCK:
        if not SCRIPT:
            return ack
        entry = SCRIPT[0]
        if not isinstance(entry, dict):
            SCRIPT.pop(0)
            return ack
        if has_tool_result(body) and entry.get("tool_use") and not entry.get("chain"):
            return ack
        SCRIPT.pop(0)
    blocks = []
    if isinstance(entry.get("text"), str):
        blocks.append({"type": "text", "text": entry["text"]})
    tu = entry.get("tool_use")
    if isinstance(tu, dict):
        blocks.append({"type": "tool_use", "id": str(tu.get("id") or "toolu_fake%04d_%s" % (n, uuid.uuid4().hex[:12])),
                       "name": str(tu.get("name", "Bash")), "input": fill(tu.get("input") or {}, body)})
    return blocks or ack


def message_json(body, blocks, n):
    model = body.get("model") if isinstance(body, dict) else None
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return {"id": "msg_fake%06d" % n, "type": "message", "role": "assistant",
            "model": model if isinstance(model, str) else "claude-fake", "content": blocks,
            "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def sse(msg):
    def ev(name, data):
        return "event: %s\ndata: %s\n\n" % (name, json.dumps(data, ensure_ascii=False))
    start = dict(msg, content=[], stop_reason=None,
                 usage=dict(msg["usage"], output_tokens=1))
    out = [ev("message_start", {"type": "message_start", "message": start})]
    for i, b in enumerate(msg["content"]):
        if b["type"] == "text":
            first, delta = dict(b, text=""), {"type": "text_delta", "text": b["text"]}
        else:
            first = dict(b, input={})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(b["input"])}
        out.append(ev("content_block_start",
                      {"type": "content_block_start", "index": i, "content_block": first}))
        out.append(ev("content_block_delta",
                      {"type": "content_block_delta", "index": i, "delta": delta}))
        out.append(ev("content_block_stop", {"type": "content_block_stop", "index": i}))
    out.append(ev("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": msg["stop_reason"],
                                              "stop_sequence": None},
                                    "usage": {"output_tokens": msg["usage"]["output_tokens"]}}))
    out.append(ev("message_stop", {"type": "message_stop"}))
    return "".join(out).encode("utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # keep stderr quiet
        pass

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, code, payload, ctype="application/json"):
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", "req_fake")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def handle_any(self):
        n = next(COUNTER)
        raw, body, reply = b"", None, None
        try:
            raw = self.read_body()
            text = raw.decode("utf-8", "replace")
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            path = self.path.split("?", 1)[0].rstrip("/")
            if self.command == "POST" and path.endswith("/messages/count_tokens"):
                reply = {"input_tokens": 10}
                self.send(200, reply)
            elif self.command == "POST" and path.endswith("/v1/messages"):
                msg = message_json(body, choose_reply(body, n), n)
                reply = msg["content"]
                if isinstance(body, dict) and body.get("stream"):
                    self.send(200, sse(msg), "text/event-stream; charset=utf-8")
                else:
                    self.send(200, msg)
            elif path == "" and self.command in ("HEAD", "GET"):
                self.send(200, {})
            elif self.command == "POST":
                self.send(200, {})
            else:
                self.send(404, {"type": "error", "error": {"type": "not_found_error",
                                                          "message": "fake api: no route"}})
        except Exception as e:  # never let odd input kill the server
            reply = "error: %r" % (e,)
            try:
                self.send(500, {"type": "error", "error": {"type": "api_error", "message": reply}})
            except Exception:
                pass
        finally:
            if ARGS.log:
                line = json.dumps({"n": n, "method": self.command, "path": self.path,
                                   "body": body, "reply": reply}, ensure_ascii=False)
                with LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
                    f.write(line + "\n")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = handle_any


def main():
    global ARGS, SCRIPT
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log")
    p.add_argument("--script")
    ARGS = p.parse_args()
    if ARGS.script:
        with open(ARGS.script, encoding="utf-8") as f:
            SCRIPT = json.load(f)
        if not isinstance(SCRIPT, list):
            sys.exit("--script must hold a JSON list")
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((ARGS.host, ARGS.port), Handler)
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % server.server_address[1])
        os.replace(tmp, ARGS.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
