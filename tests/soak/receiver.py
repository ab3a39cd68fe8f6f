#!/usr/bin/env python3
"""The soak's two witnesses of delivery (tests/soak/soak), and the final check.

  receiver.py serve PORT STATE        the webhook destination's receiver: answers every POST 200
                                      (the signature is not checked), records each event's
                                      messageId; GET /stats answers the counts as JSON.
  receiver.py follow PATH STATE STATUS
                                      follows the file destination's NDJSON at PATH through its
                                      rotations (the open file is read to its end before moving
                                      to the new one) and records each line's messageId; writes
                                      the counts to STATUS every second.
  receiver.py report HOOK_STATE FILE_STATE WRK_REQUESTS SINGLES_OK
                                      compares what each destination delivered with what the
                                      load was acknowledged; exit 1 when an event is missing.

Both recorders save their STATE (pickle) when they get SIGTERM and load it when they start, so
the receiver can be stopped and started again (an outage) without forgetting what it saw.

The messageIds of tests/bench/http_batch.lua are "<tag>-<request, 10 digits>-<1..100>": they are
kept as one bit per event in a bitmap per tag (an hour at 3,000 events/s is 1.4 MB), which also
tells whether a request arrived whole (a request is queued all or nothing: a request with only
some of its events delivered is a loss). Other messageIds (the soak's single /v1/track and
/v1/identify events) are kept in a set.
"""

import json
import os
import pickle
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EVENTS_PER_REQUEST = 100
MESSAGE_ID = re.compile(rb'"messageId":"([^"]*)"')
BATCH_ID = re.compile(rb"(\d*)-(\d{10})-(\d+)")  # the tag is empty when http_batch.lua's is


class Seen:
    """The messageIds seen, with the number of events (duplicates included)."""

    def __init__(self):
        self.bitmaps = {}  # tag -> bytearray, bit (request - 1) * 100 + (i - 1)
        self.others = set()
        self.events = 0
        self.unique = 0
        self.batches = 0

    def add(self, message_id):
        self.events += 1
        m = BATCH_ID.fullmatch(message_id)
        if m and 1 <= int(m.group(3)) <= EVENTS_PER_REQUEST and int(m.group(2)) >= 1:
            bit = (int(m.group(2)) - 1) * EVENTS_PER_REQUEST + int(m.group(3)) - 1
            bitmap = self.bitmaps.setdefault(m.group(1), bytearray())
            if bit // 8 >= len(bitmap):
                bitmap.extend(bytes(max(bit // 8 + 1 - len(bitmap), 1 << 16)))
            mask = 1 << (bit % 8)
            if not bitmap[bit // 8] & mask:
                bitmap[bit // 8] |= mask
                self.unique += 1
        elif message_id not in self.others:
            self.others.add(message_id)
            self.unique += 1

    def stats(self):
        return {"events": self.events, "unique": self.unique,
                "duplicates": self.events - self.unique, "batches": self.batches}

    def save(self, path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            pickle.dump(self.__dict__, f)
        os.replace(tmp, path)

    @staticmethod
    def load(path):
        seen = Seen()
        if os.path.exists(path):
            with open(path, "rb") as f:
                seen.__dict__.update(pickle.load(f))
        return seen


def serve(port, state):
    seen = Seen.load(state)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the webhook destination's client does

        def log_message(self, *args):
            pass

        def answer(self, body):
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ids = MESSAGE_ID.findall(body)
            with lock:
                seen.batches += 1
                for message_id in ids:
                    seen.add(message_id)
            self.answer({})

        def do_GET(self):
            with lock:
                stats = seen.stats()
            self.answer(stats)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    with lock:
        seen.save(state)


def follow(path, state, status):
    seen = Seen.load(state)
    position = seen.__dict__.pop("position", None)  # (inode, offset) of the file being read
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    f = None
    inode = None
    rest = b""

    def read_to_end():
        nonlocal rest
        while True:
            data = f.read(1 << 20)
            if not data:
                return
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            for message_id in MESSAGE_ID.findall(data, 0, cut):
                seen.add(message_id)

    last_status = 0.0
    while True:
        done = bool(stopping)  # one more full pass after SIGTERM
        if f is None:
            try:
                f = open(path, "rb")
                inode = os.fstat(f.fileno()).st_ino
                if position and position[0] == inode:
                    f.seek(position[1])
                position = None
            except FileNotFoundError:
                f = None
        if f is not None:
            read_to_end()
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current is not None and current != inode:
                # Rotated: the file we hold is complete (the destination closed it before the
                # rename); whatever it still had is read, then the new file from its start.
                read_to_end()
                if rest:
                    print(f"follow: {len(rest)} bytes without a final newline in a rotated file",
                          file=sys.stderr, flush=True)
                    rest = b""
                f.close()
                f = None
                continue
        now = time.time()
        if now - last_status >= 1 or done:
            last_status = now
            with open(status + ".tmp", "w") as out:
                json.dump(seen.stats(), out)
            os.replace(status + ".tmp", status)
        if done:
            break
        time.sleep(0.2)
    if f is not None:
        seen.position = (inode, f.tell() - len(rest))
    seen.save(state)


def report(hook_state, file_state, wrk_requests, singles_ok):
    acked = wrk_requests * EVENTS_PER_REQUEST + singles_ok
    ok = True
    print(f"acknowledged to the load: {acked} events ({wrk_requests} wrk requests x "
          f"{EVENTS_PER_REQUEST} + {singles_ok} single events)")
    results = {}
    for name, path in (("webhook", hook_state), ("file", file_state)):
        seen = Seen.load(path)
        whole = partial = 0
        for bitmap in seen.bitmaps.values():
            for request in range((len(bitmap) * 8) // EVENTS_PER_REQUEST):
                first = request * EVENTS_PER_REQUEST
                bits = int.from_bytes(bitmap[first // 8:(first + EVENTS_PER_REQUEST + 7) // 8 + 1],
                                      "little") >> (first % 8)
                got = bin(bits & ((1 << EVENTS_PER_REQUEST) - 1)).count("1")
                if got == EVENTS_PER_REQUEST:
                    whole += 1
                elif got:
                    partial += 1
        results[name] = seen
        line = (f"{name}: {seen.unique} distinct events delivered ({seen.events} deliveries, "
                f"{seen.events - seen.unique} duplicates); {whole} wrk requests arrived whole, "
                f"{partial} in part; {len(seen.others)} single events")
        missing_requests = max(0, wrk_requests - whole)
        missing_singles = max(0, singles_ok - len(seen.others))
        if partial or missing_requests or missing_singles:
            ok = False
            line += (f"  -> MISSING: {missing_requests} acknowledged requests not whole, "
                     f"{missing_singles} single events")
        else:
            line += f"  -> every acknowledged event delivered ({seen.unique - acked} more: " \
                    "requests queued whose answer the load did not get)"
        print(line)
    a, b = results["webhook"], results["file"]
    same = a.others == b.others and a.bitmaps.keys() == b.bitmaps.keys() and all(
        bytes(a.bitmaps[t]).rstrip(b"\0") == bytes(b.bitmaps[t]).rstrip(b"\0") for t in a.bitmaps)
    print(f"webhook and file delivered the same set of events: {'yes' if same else 'NO'}")
    return 0 if ok and same else 1


def main(argv):
    if len(argv) == 4 and argv[1] == "serve":
        serve(int(argv[2]), argv[3])
    elif len(argv) == 5 and argv[1] == "follow":
        follow(argv[2], argv[3], argv[4])
    elif len(argv) == 6 and argv[1] == "report":
        return report(argv[2], argv[3], int(argv[4]), int(argv[5]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
