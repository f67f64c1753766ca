"""WebSocket client for the end-to-end checks: echo through weir to `weir upstream`.

    python3 ws_echo.py ws://HOST:PORT/ws      # exit 0 if every message comes back
"""

import sys

from websockets.sync.client import connect


def main(url):
    ok = True
    with connect(url, open_timeout=10, close_timeout=5) as ws:
        for message in ["hello through weir", "x" * 70_000]:
            ws.send(message)
            back = ws.recv(timeout=10)
            same = back == message
            print(("ok   " if same else "FAIL ") + f"websocket text echo ({len(message)} chars)")
            ok &= same
        data = bytes(range(256)) * 512
        ws.send(data)
        back = ws.recv(timeout=10)
        same = back == data
        print(("ok   " if same else "FAIL ") + f"websocket binary echo ({len(data)} bytes)")
        ok &= same
        ws.ping(b"p").wait(timeout=10)
        print("ok   websocket ping/pong")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
