#!/usr/bin/env python3
"""A ClickHouse HTTP endpoint for tests: the real ClickHouse engine (chDB) behind a small server.

    python fixture.py --data-dir DIR [--port 0] [--exit-on-stdin-eof] [--verbose]

Binds 127.0.0.1:PORT (0 = any free port), prints `READY <port>` on stdout once it serves, and
runs until SIGTERM/SIGINT (or, with --exit-on-stdin-eof, until its stdin closes, so it never
outlives the test process that started it). Data lives in DIR: a restart on the same DIR keeps
every database and table.

It speaks enough of ClickHouse's HTTP interface for the Rust `clickhouse` crate (0.15, with lz4
compression and row validation on) and for curl:
  * GET /ping and GET / answer `Ok.`; GET /?query=... runs read-only queries.
  * POST / with SQL in the body, or in ?query= with the body as INSERT data (also chunked, also
    `decompress=1` ClickHouse compressed blocks, also `Content-Encoding: gzip|deflate|lz4`).
  * multipart/form-data bodies with a `query` field and `param_*` fields, and `param_*` URL
    parameters: server-side query parameters.
  * URL parameters database, default_format, query_id; every other URL parameter is a setting,
    applied for that one request (settings chDB does not know are ignored, with a note on stderr).
  * Errors as the server answers them: status 4xx/5xx, X-ClickHouse-Exception-Code, and a body
    `Code: N. DB::Exception: ... (NAME)`.
  * Responses carry X-ClickHouse-Summary, X-ClickHouse-Format and X-ClickHouse-Query-Id; a
    response is compressed (Content-Encoding lz4/gzip/deflate) only with enable_http_compression=1.

The session starts with the server's defaults where chDB's differ (async_insert=0,
date_time_input_format='basic', implicit_select=0); mutations_sync stays 1 (chDB's default),
so ALTER ... UPDATE/DELETE are done when the request returns.

One chDB session serves every request, one call at a time (a lock); request bodies are read
before taking the lock. This is a correctness fixture, not a benchmark target.

Where it differs from a server: session_id is ignored and all requests share the one session
(a `SET` or `USE` sent as SQL, or a temporary table, is seen by later requests; URL settings are
undone after each request); query_id is only echoed; `compress=1` (compressed native responses)
and zstd in `decompress=1` bodies are refused; GET is read-only by the query's first keyword;
responses are buffered, never streamed, and an error is always a whole error response.
"""

import argparse
import gzip
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

try:
    import lz4.block
    import lz4.frame
    from chdb import session as chdb_session
except ImportError as import_error:  # pragma: no cover - reported to the Rust side
    sys.stderr.write(
        "fixture.py: cannot import chdb/lz4 (%s); run ./tests/run.sh --setup-only to install "
        "the Python venv with tests/clickhouse/requirements.txt\n" % import_error
    )
    sys.stderr.flush()
    sys.exit(3)

SERVER_NAME = "glassbox-chdb-fixture"

# URL parameters that belong to the HTTP interface, not to the query's settings.
HTTP_PARAMS = {
    "query",
    "database",
    "default_format",
    "query_id",
    "decompress",
    "compress",
    "enable_http_compression",
    "http_zlib_compression_level",
    "http_native_compression_disable_checksumming_on_decompress",
    "session_id",
    "session_timeout",
    "session_check",
    "user",
    "password",
    "quota_key",
    "buffer_size",
    "wait_end_of_query",
    "http_wait_end_of_query",
    "send_progress_in_http_headers",
    "role",
    "client_protocol_version",
    "stacktrace",
    "readonly",
    "http_response_headers",
    "add_http_cors_header",
}

# Settings in which chDB's defaults differ from a ClickHouse server's; the session starts with
# the server's values and every request's own settings are undone back to these.
BASELINE_SETTINGS = {
    "async_insert": "0",
    "date_time_input_format": "basic",
    "implicit_select": "0",
}

# exceptionCodeToHTTPStatus of the server, by the error's name.
STATUS_BY_NAME = {}
for _name in (
    "BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE "
    "CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER "
    "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6 "
    "CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN ILLEGAL_COLUMN "
    "UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST TOO_BIG_AST "
    "UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH "
    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"
).split():
    STATUS_BY_NAME[_name] = 400
for _name in (
    "UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE "
    "UNKNOWN_DATABASE UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION "
    "UNKNOWN_FORMAT UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE"
).split():
    STATUS_BY_NAME[_name] = 404
STATUS_BY_NAME.update(
    {
        "REQUIRED_PASSWORD": 401,
        "UNKNOWN_USER": 403,
        "WRONG_PASSWORD": 403,
        "AUTHENTICATION_FAILED": 403,
        "SET_NON_GRANTED_ROLE": 403,
        "ACCESS_DENIED": 403,
        "QUERY_IS_TOO_LARGE": 413,
        "NOT_IMPLEMENTED": 501,
        "SOCKET_TIMEOUT": 503,
        "CANNOT_OPEN_FILE": 503,
        "HTTP_LENGTH_REQUIRED": 411,
        "TIMEOUT_EXCEEDED": 408,
        "CANNOT_SCHEDULE_TASK": 503,
        "UNSUPPORTED_MEDIA_TYPE": 415,
    }
)

EXCEPTION_RE = re.compile(r"Code: (\d+)\. DB::Exception: (.*)", re.S)
EXCEPTION_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\s*$")
UNKNOWN_SETTING_RE = re.compile(r"Unknown setting '([^']+)'")
SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TRAILING_FORMAT_RE = re.compile(
    r"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*(?:SETTINGS\b[^;]*)?;?\s*$", re.I | re.S
)
INSERT_FORMAT_RE = re.compile(r"^(.*?)\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*;?\s*$", re.I | re.S)
INSERT_VALUES_RE = re.compile(r"^(.*?)\bVALUES\s*$", re.I | re.S)
READ_ONLY_KEYWORDS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "("}

CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
}

VERBOSE = False


def log(message):
    sys.stderr.write("fixture.py: %s\n" % message)
    sys.stderr.flush()


class ClickHouseError(Exception):
    """An error answered to the client the way the server does."""

    def __init__(self, code, name, message, status=None):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message
        self.status = status if status is not None else STATUS_BY_NAME.get(name, 500)

    @classmethod
    def from_chdb(cls, error):
        text = str(error)
        match = EXCEPTION_RE.search(text)
        if match is None:
            text = text.strip()
            return cls(1000, "POCO_EXCEPTION", text.rstrip(".") or type(error).__name__)
        code = int(match.group(1))
        rest = match.group(2).strip()
        name_match = EXCEPTION_NAME_RE.search(rest)
        name = name_match.group(1) if name_match else ""
        error = cls(code, name, rest)
        error.raw = "Code: %d. DB::Exception: %s" % (code, rest)
        return error

    def body(self):
        raw = getattr(self, "raw", None)
        if raw is None:
            raw = "Code: %d. DB::Exception: %s. (%s)" % (self.code, self.message, self.name)
        return (raw + "\n").encode("utf-8", "replace")


def first_keyword(sql):
    """The first keyword of a query, upper-cased, after whitespace and comments."""
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace():
            i += 1
        elif sql.startswith("--", i) or sql.startswith("#", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            break
    if i < n and sql[i] == "(":
        return "("
    match = re.match(r"[A-Za-z_]+", sql[i:])
    return match.group(0).upper() if match else ""


def quote_setting(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def decompress_native(data):
    """ClickHouse's compressed-block stream (what `decompress=1` announces) to plain bytes."""
    out = []
    pos, n = 0, len(data)
    while pos < n:
        if n - pos < 25:
            raise ClickHouseError(271, "CANNOT_DECOMPRESS", "Truncated compressed block header")
        method = data[pos + 16]
        compressed_size, uncompressed_size = struct.unpack_from("<II", data, pos + 17)
        if compressed_size < 9 or pos + 16 + compressed_size > n:
            raise ClickHouseError(
                271, "CANNOT_DECOMPRESS", "Compressed block size %d is invalid" % compressed_size
            )
        payload = bytes(data[pos + 25 : pos + 16 + compressed_size])
        if method == 0x82:
            try:
                out.append(lz4.block.decompress(payload, uncompressed_size=uncompressed_size))
            except Exception as error:  # lz4.block.LZ4BlockError
                raise ClickHouseError(271, "CANNOT_DECOMPRESS", "LZ4 block: %s" % error)
        elif method == 0x02:
            out.append(payload)
        else:
            raise ClickHouseError(
                89,
                "UNKNOWN_COMPRESSION_METHOD",
                "Unknown compression method 0x%02x (the fixture reads LZ4 and NONE)" % method,
            )
        pos += 16 + compressed_size
    return b"".join(out)


def decode_content_encoding(encoding, body):
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity", "none"):
        return body
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        if encoding == "lz4":
            return lz4.frame.decompress(body)
    except Exception as error:
        raise ClickHouseError(271, "CANNOT_DECOMPRESS", "Content-Encoding %s: %s" % (encoding, error))
    raise ClickHouseError(
        89, "UNKNOWN_COMPRESSION_METHOD", "Unknown HTTP compression method: %s" % encoding
    )


def parse_multipart(content_type, body):
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ClickHouseError(36, "BAD_ARGUMENTS", "multipart/form-data without a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if value.endswith(b"\r\n"):
            value = value[:-2]
        name = re.search(rb'name="([^"]*)"', head)
        if name is not None:
            fields[name.group(1).decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return fields


class Engine:
    """The chDB session and what one request does with it, under one lock."""

    def __init__(self, data_dir):
        self.lock = threading.Lock()
        self.session = chdb_session.Session(data_dir)
        self.current_database = None
        baseline = ", ".join("%s = %s" % (k, quote_setting(v)) for k, v in BASELINE_SETTINGS.items())
        self.session.query("SET " + baseline, "TabSeparated")
        self.closed = False

    def close(self):
        with self.lock:
            if not self.closed:
                self.closed = True
                self.session.close()

    def _use(self, database):
        if database != self.current_database:
            self.current_database = None
            self.session.query("USE " + quote_identifier(database), "TabSeparated")
            self.current_database = database

    def _apply_settings(self, settings):
        """SET the request's settings; returns the names applied (to undo after the query)."""
        pending = dict(settings)
        for _ in range(len(settings) + 1):
            if not pending:
                return []
            statement = "SET " + ", ".join(
                "%s = %s" % (k, quote_setting(v)) for k, v in pending.items()
            )
            try:
                self.session.query(statement, "TabSeparated")
                return list(pending)
            except Exception as error:
                match = UNKNOWN_SETTING_RE.search(str(error))
                if match is None or match.group(1) not in pending:
                    raise
                log("ignoring setting %s, unknown to chDB" % match.group(1))
                del pending[match.group(1)]
        return []

    def _undo_settings(self, names):
        if not names:
            return
        parts = []
        for name in names:
            if name in BASELINE_SETTINGS:
                parts.append("%s = %s" % (name, quote_setting(BASELINE_SETTINGS[name])))
            else:
                parts.append("%s = DEFAULT" % name)
        try:
            self.session.query("SET " + ", ".join(parts), "TabSeparated")
        except Exception as error:
            log("could not undo settings %s: %s" % (names, error))

    def run(self, request):
        """Runs one request; returns (output bytes, summary dict). Raises ClickHouseError."""
        with self.lock:
            if self.closed:
                raise ClickHouseError(210, "NETWORK_ERROR", "The fixture is shutting down")
            try:
                self._use(request.database)
                applied = self._apply_settings(request.settings)
            except ClickHouseError:
                raise
            except Exception as error:
                raise ClickHouseError.from_chdb(error)
            try:
                if request.insert_head is not None:
                    return self._insert(request)
                return self._query(request)
            finally:
                self._undo_settings(applied)
                if first_keyword(request.sql_text_head()) == "USE":
                    self.current_database = None

    def _query(self, request):
        started = time.monotonic()
        try:
            result = self.session.query(request.sql, request.format, params=request.params or None)
        except Exception as error:
            raise ClickHouseError.from_chdb(error)
        if result is None:
            return b"", summary(0, 0, 0, 0, time.monotonic() - started)
        if result.has_error():
            raise ClickHouseError.from_chdb(RuntimeError(result.error_message()))
        output = bytes(result.bytes() or b"")
        return output, summary(
            result.rows_read(),
            result.bytes_read(),
            result.rows_written(),
            result.bytes_written(),
            result.elapsed(),
        )

    def _insert(self, request):
        started = time.monotonic()
        try:
            inserter = self.session.send_insert(request.insert_head, request.insert_format)
        except Exception as error:
            raise ClickHouseError.from_chdb(error)
        try:
            if request.data:
                inserter.append(request.data)
            result = inserter.finish()
        except Exception as error:
            try:
                inserter.cancel()
            except Exception:
                pass
            raise ClickHouseError.from_chdb(error)
        rows = getattr(result, "rows_written", 0) or 0
        written = getattr(result, "bytes_written", 0) or 0
        return b"", summary(0, 0, rows, written, time.monotonic() - started, result_rows=rows)


def quote_identifier(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def summary(read_rows, read_bytes, written_rows, written_bytes, elapsed, result_rows=None):
    fields = {
        "read_rows": str(int(read_rows or 0)),
        "read_bytes": str(int(read_bytes or 0)),
        "written_rows": str(int(written_rows or 0)),
        "written_bytes": str(int(written_bytes or 0)),
        "total_rows_to_read": str(int(read_rows or 0)),
        "elapsed_ns": str(int((elapsed or 0) * 1e9)),
    }
    if result_rows is not None:
        fields["result_rows"] = str(int(result_rows))
        fields["result_bytes"] = fields["written_bytes"]
    return fields


class Request:
    """What one HTTP request asks of the engine."""

    def __init__(self):
        self.database = "default"
        self.format = "TabSeparated"
        self.settings = {}
        self.params = {}
        self.sql = ""
        self.insert_head = None
        self.insert_format = None
        self.data = b""

    def sql_text_head(self):
        if self.insert_head is not None:
            return self.insert_head
        sql = self.sql
        if isinstance(sql, bytes):
            sql = sql[:4096].decode("utf-8", "replace")
        return sql


def build_request(method, params, headers, body):
    """Turns the HTTP request into a Request; raises ClickHouseError for a bad one."""
    request = Request()
    request.database = params.get("database") or headers.get("X-ClickHouse-Database") or "default"
    request.format = params.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated"
    if request.format in ("DataFrame", "ArrowTable", "Debug"):
        raise ClickHouseError(73, "UNKNOWN_FORMAT", "Unknown output format %s" % request.format)
    readonly = method == "GET" or params.get("readonly", "0") not in ("", "0")
    for name, value in params.items():
        if name.startswith("param_"):
            request.params[name[len("param_") :]] = value
        elif name in HTTP_PARAMS:
            continue
        elif SETTING_NAME_RE.match(name):
            request.settings[name] = value
        else:
            log("ignoring URL parameter %r" % name)
    if params.get("compress", "0") not in ("", "0"):
        raise ClickHouseError(
            48, "NOT_IMPLEMENTED", "compress=1 (compressed native blocks in responses) is not supported by the fixture"
        )

    url_query = params.get("query")
    content_type = headers.get("Content-Type") or ""
    if body and content_type.lower().startswith("multipart/form-data"):
        fields = parse_multipart(content_type, body)
        body = b""
        for name, value in fields.items():
            if name.startswith("param_"):
                request.params[name[len("param_") :]] = value
        if "query" in fields:
            url_query = fields["query"] if url_query is None else url_query + "\n" + fields["query"]

    if url_query is not None and url_query.strip():
        keyword = first_keyword(url_query)
        if keyword == "INSERT" and method == "POST":
            match = INSERT_FORMAT_RE.match(url_query)
            if match:
                request.insert_head, request.insert_format = match.group(1).strip(), match.group(2)
            else:
                match = INSERT_VALUES_RE.match(url_query)
                if match and body:
                    request.insert_head, request.insert_format = match.group(1).strip(), "Values"
            if request.insert_head is not None:
                request.data = body
                return request
        request.sql = url_query if not body else url_query.encode("utf-8") + b"\n" + body
    else:
        if method == "GET":
            request.sql = ""
        else:
            request.sql = body
    head = request.sql_text_head()
    if not head.strip():
        raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
    if readonly and first_keyword(head) not in READ_ONLY_KEYWORDS:
        raise ClickHouseError(
            164,
            "READONLY",
            "Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
            "readonly. You should use method POST for modifying queries",
        )
    if isinstance(request.sql, bytes):
        try:
            request.sql = request.sql.decode("utf-8")
        except UnicodeDecodeError:
            pass  # binary inline INSERT data: chDB takes the bytes as they are
    return request


def response_format(request):
    if request.insert_head is not None:
        return request.insert_format
    match = TRAILING_FORMAT_RE.search(request.sql_text_head())
    if match and first_keyword(request.sql_text_head()) != "INSERT":
        return match.group(1)
    return request.format


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = SERVER_NAME
    sys_version = ""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if VERBOSE:
            log("%s %s" % (self.address_string(), format % args))

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def do_HEAD(self):
        self.send_plain(200, b"", head_only=True)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("connection closed inside a chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    break
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ConnectionError("connection closed inside a chunk")
                chunks.append(chunk)
                self.rfile.readline(3)  # the CRLF after the chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return b""
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionError("connection closed inside the body")
        return body

    def handle_request(self, method):
        query_id = None
        try:
            split = urlsplit(self.path)
            params = dict(parse_qsl(split.query, keep_blank_values=True))
            query_id = params.get("query_id") or str(uuid.uuid4())
            path = split.path.rstrip("/") or "/"
            try:
                body = self.read_body() if method == "POST" else b""
            except (ConnectionError, ValueError) as error:
                log("bad request body: %s" % error)
                self.close_connection = True
                return
            if path in ("/ping", "/replicas_status") or (path == "/" and method == "GET" and "query" not in params):
                self.send_plain(200, b"Ok.\n")
                return
            if path != "/":
                self.send_plain(404, ("There is no handle %s\n\nUse / or /ping for health checks.\n" % split.path).encode())
                return
            body = decode_content_encoding(self.headers.get("Content-Encoding"), body)
            if params.get("decompress", "0") not in ("", "0") and body:
                body = decompress_native(body)
            request = build_request(method, params, self.headers, body)
            output, stats = self.server.engine.run(request)
            self.send_result(request, output, stats, query_id, params)
        except ClickHouseError as error:
            if VERBOSE or error.code != 0:
                log("query %s failed: %s" % (query_id, error.body().decode("utf-8", "replace").strip()[:2000]))
            self.send_error_response(error, query_id)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a bug of the fixture: still answer like the server
            log("internal error: %r" % (error,))
            self.send_error_response(ClickHouseError(1001, "STD_EXCEPTION", "fixture.py: %r" % (error,)), query_id)

    def send_result(self, request, output, stats, query_id, params):
        fmt = response_format(request)
        headers = [
            ("Content-Type", CONTENT_TYPES.get(fmt, "application/octet-stream" if "Binary" in fmt or fmt in ("Native", "Parquet", "Arrow", "ArrowStream", "ORC", "Avro") else "text/plain; charset=UTF-8")),
            ("X-ClickHouse-Server-Display-Name", SERVER_NAME),
            ("X-ClickHouse-Query-Id", query_id),
            ("X-ClickHouse-Format", fmt),
            ("X-ClickHouse-Timezone", "UTC"),
            ("X-ClickHouse-Summary", json.dumps(stats, separators=(",", ":"))),
        ]
        if params.get("enable_http_compression", "0") not in ("", "0"):
            accepted = [e.split(";")[0].strip().lower() for e in (self.headers.get("Accept-Encoding") or "").split(",")]
            for encoding, compress in (("lz4", lz4.frame.compress), ("gzip", gzip.compress), ("deflate", zlib.compress)):
                if encoding in accepted:
                    output = compress(output)
                    headers.append(("Content-Encoding", encoding))
                    break
        self.write_response(200, headers, output)

    def send_error_response(self, error, query_id):
        headers = [
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("X-ClickHouse-Server-Display-Name", SERVER_NAME),
            ("X-ClickHouse-Exception-Code", str(error.code)),
        ]
        if query_id:
            headers.append(("X-ClickHouse-Query-Id", query_id))
        self.write_response(error.status, headers, error.body())

    def send_plain(self, status, body, head_only=False):
        self.write_response(status, [("Content-Type", "text/html; charset=UTF-8")], body, head_only)

    def write_response(self, status, headers, body, head_only=False):
        reason = self.responses.get(status, ("",))[0]
        lines = ["HTTP/1.1 %d %s" % (status, reason), "Date: %s" % self.date_time_string()]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        lines.append("Content-Length: %d" % len(body))
        if self.close_connection:
            lines.append("Connection: close")
        else:
            lines.append("Connection: Keep-Alive")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head_only:
            data += body
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if VERBOSE:
            self.log_request(status, len(body))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="chDB data directory (kept between runs)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when stdin closes")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()
    VERBOSE = args.verbose or os.environ.get("GLASSBOX_FIXTURE_VERBOSE", "") not in ("", "0")

    os.makedirs(args.data_dir, exist_ok=True)
    try:
        engine = Engine(args.data_dir)
    except Exception as error:
        log("cannot open chDB at %s: %s" % (args.data_dir, error))
        return 2
    try:
        server = Server(("127.0.0.1", args.port), Handler)
    except OSError as error:
        log("cannot listen on 127.0.0.1:%d: %s" % (args.port, error))
        engine.close()
        return 2
    server.engine = engine

    stopping = threading.Event()

    def stop(*_):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.exit_on_stdin_eof:

        def watch_stdin():
            try:
                while os.read(0, 4096):
                    pass
            except Exception:
                pass
            stop()

        threading.Thread(target=watch_stdin, daemon=True).start()

    sys.stdout.write("READY %d\n" % server.server_address[1])
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
