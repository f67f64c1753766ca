"""A tiny gRPC server and client for the end-to-end checks, without protoc.

    python3 grpc_echo.py server PORT_FILE     # serves on 127.0.0.1:0, writes the port
    python3 grpc_echo.py client HOST:PORT     # calls through weir; exit 0 if all checks hold

Messages are raw bytes (identity (de)serializers), so no generated code is needed.
"""

import sys
from concurrent import futures

import grpc

SERVICE = "weir.e2e.Echo"


def say(request, context):
    context.set_trailing_metadata((("x-echo-trailer", "kept"),))
    return b"echo:" + request


def count(request, context):
    for i in range(int(request.decode())):
        yield str(i).encode()


def missing(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + request.decode())


def serve(port_file):
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Missing": grpc.unary_unary_rpc_method_handler(missing),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    import os

    os.rename(port_file + ".tmp", port_file)
    server.wait_for_termination()


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (f": {detail}" if detail and not ok else ""))
    return ok


def client(target):
    ok = True
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        say_rpc = channel.unary_unary(f"/{SERVICE}/Say")
        reply, call = say_rpc.with_call(b"hello weir", timeout=10)
        ok &= check("grpc unary reply through weir", reply == b"echo:hello weir", repr(reply))
        ok &= check("grpc status OK", call.code() == grpc.StatusCode.OK, str(call.code()))
        trailers = dict(call.trailing_metadata() or ())
        ok &= check(
            "grpc trailing metadata intact",
            trailers.get("x-echo-trailer") == "kept",
            repr(trailers),
        )

        count_rpc = channel.unary_stream(f"/{SERVICE}/Count")
        items = [m.decode() for m in count_rpc(b"200", timeout=10)]
        ok &= check(
            "grpc server streaming (200 messages)",
            items == [str(i) for i in range(200)],
            f"{len(items)} messages",
        )

        missing_rpc = channel.unary_unary(f"/{SERVICE}/Missing")
        try:
            missing_rpc(b"the answer", timeout=10)
            ok &= check("grpc NOT_FOUND status", False, "the call succeeded")
        except grpc.RpcError as e:
            ok &= check("grpc NOT_FOUND status", e.code() == grpc.StatusCode.NOT_FOUND, str(e.code()))
            ok &= check(
                "grpc status details intact",
                e.details() == "no such thing: the answer",
                repr(e.details()),
            )

        unknown_rpc = channel.unary_unary(f"/{SERVICE}/Nope")
        try:
            unknown_rpc(b"", timeout=10)
            ok &= check("grpc UNIMPLEMENTED status", False, "the call succeeded")
        except grpc.RpcError as e:
            ok &= check(
                "grpc UNIMPLEMENTED status", e.code() == grpc.StatusCode.UNIMPLEMENTED, str(e.code())
            )
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(sys.argv[2])
    else:
        sys.exit(client(sys.argv[2]))
