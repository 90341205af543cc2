"""An OTLP/HTTP sink for bench/run.sh's traced gateway: answers 200 to POST /v1/traces.

    .venv/bin/python bench/otlp_sink.py PORT

Runs on the load CPUs, so its work is not the gateway's. Each batch is parsed (the test
extras' opentelemetry-proto) and one line per batch says how many spans it held, so a run
shows the spans really left; the totals are printed when it is stopped.
"""

import signal
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

totals = {"batches": 0, "spans": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's client expects

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        request = ExportTraceServiceRequest.FromString(body)
        spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        totals["batches"] += 1
        totals["spans"] += spans
        totals["bytes"] += len(body)
        print(f"batch {totals['batches']}: {spans} spans, {len(body)} bytes", flush=True)
        self.send_response(HTTPStatus.OK)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)

    def stop(signum: int, frame: FrameType | None) -> None:
        print(f"totals: {totals}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
