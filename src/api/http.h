// The control API's HTTP/1.1: a bounded request parser and the response writer. Hand-written
// because Debian's cpp-httplib (0.11) cannot listen on a Unix socket, and because every byte here
// comes from a socket peer: the parser takes a buffer, never reads past it, and bounds everything.
//
// Rules:
//   - A request is a request line ("METHOD TARGET HTTP/1.x"), header lines, an empty line, and a
//     body of exactly Content-Length bytes (none without one). Lines end in CRLF (a bare LF is
//     accepted, as most servers do).
//   - Chunked transfer coding is refused: the API's bodies are small JSON documents and every
//     Firecracker client sends Content-Length (Firecracker's micro_http refuses it too).
//   - Limits (Limits below): the head (request line and headers) at most 8 KiB, at most 32
//     headers, the body at most 51200 bytes (Firecracker's default http-api-max-payload-size).
//
// Errors: parse_request answers either a request, "need more bytes", or an HttpError carrying the
// status the server sends before it closes the connection:
//   400 malformed request line, header, or Content-Length; a target that is not an origin path
//   413 a body over the limit (said from the header, before the body is read)
//   431 a head over the limit or too many headers
//   501 a Transfer-Encoding
//   505 a version other than HTTP/1.0 or HTTP/1.1
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"

namespace evmm::api {

struct Limits {
  size_t max_head = 8192;
  size_t max_headers = 32;
  size_t max_body = 51200;
};

struct HttpRequest {
  std::string method;
  std::string path;   // the target without its query, as sent ("/drives/rootfs")
  std::string query;  // after '?', without it; empty when there is none
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed
  std::string body;
  bool keep_alive = true;  // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive

  // The first header of that (lower-case) name.
  std::optional<std::string_view> header(std::string_view name) const;
};

struct HttpError {
  int status;
  std::string message;
};

struct Parsed {
  HttpRequest request;
  size_t consumed;  // bytes of the buffer this request took (pipelined bytes may follow)
};

// std::monostate: the buffer holds no whole request yet (and nothing wrong so far).
using ParseResult = std::variant<std::monostate, Parsed, HttpError>;
ParseResult parse_request(std::string_view buf, const Limits& limits = {});

// A response as `evmm ctl` reads it from the server: the status line and headers, then the body to
// the end of the bytes given (the client asks for Connection: close and reads to EOF) or to its
// Content-Length. EBADMSG for anything else; at most max_body bytes of body.
struct HttpResponse {
  int status;
  std::string content_type;
  std::string body;
};
Result<HttpResponse> parse_response(std::string_view buf, size_t max_body = 1 << 20);

// The reason phrase of the statuses the API sends ("No Content" for 204).
std::string_view reason(int status);
// A whole response: status line, Content-Type (application/json unless told) when there is a body,
// Content-Length, and Connection: close when close is set.
std::string format_response(int status, std::string_view body, bool close = false,
                            std::string_view content_type = "application/json");

}  // namespace evmm::api
