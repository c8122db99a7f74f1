#include "api/http.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace evmm::api {
namespace {

// RFC 9110 §5.6.2: the characters of a token (a method, a header name).
bool is_tchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

// A Content-Length value: 1 to max_digits decimal digits, nothing else.
std::optional<uint64_t> decimal(std::string_view v, size_t max_digits) {
  if (v.empty() || v.size() > max_digits || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  uint64_t n = 0;
  for (char c : v) n = n * 10 + uint64_t(c - '0');
  return n;
}

HttpError bad(int status, std::string message) { return HttpError{status, std::move(message)}; }

// Visible ASCII, no spaces: what a request target may hold (RFC 9112 §3.2, origin-form).
bool valid_target(std::string_view t) {
  if (t.empty() || t.front() != '/') return false;
  return std::all_of(t.begin(), t.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n == name) return std::string_view(v);
  return std::nullopt;
}

ParseResult parse_request(std::string_view buf, const Limits& limits) {
  // The head's lines, up to the empty line that ends it.
  std::vector<std::string_view> lines;
  size_t pos = 0, head_end = 0;
  for (;;) {
    const size_t nl = buf.find('\n', pos);
    if (nl == std::string_view::npos || nl + 1 > limits.max_head) {
      if (buf.size() > limits.max_head || (nl != std::string_view::npos && nl + 1 > limits.max_head))
        return bad(431, fmt::format("the request head is over {} bytes", limits.max_head));
      return std::monostate{};
    }
    std::string_view line = buf.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (line.empty()) {
      if (lines.empty()) return bad(400, "an empty line where the request line belongs");
      head_end = pos;
      break;
    }
    if (lines.size() > limits.max_headers) return bad(431, fmt::format("more than {} headers", limits.max_headers));
    lines.push_back(line);
  }

  HttpRequest req;
  // METHOD SP TARGET SP VERSION, single spaces (RFC 9112 §3).
  const std::string_view rl = lines[0];
  const size_t s1 = rl.find(' '), s2 = s1 == std::string_view::npos ? s1 : rl.find(' ', s1 + 1);
  if (s2 == std::string_view::npos || rl.find(' ', s2 + 1) != std::string_view::npos)
    return bad(400, "the request line is not METHOD TARGET VERSION");
  const std::string_view method = rl.substr(0, s1), target = rl.substr(s1 + 1, s2 - s1 - 1), version = rl.substr(s2 + 1);
  if (method.empty() || method.size() > 16 || !std::all_of(method.begin(), method.end(), is_tchar))
    return bad(400, "the method is not a token");
  if (!valid_target(target)) return bad(400, "the request target is not an absolute path");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    if (version.starts_with("HTTP/")) return bad(505, fmt::format("{} is not HTTP/1.0 or HTTP/1.1", version));
    return bad(400, "the request line has no HTTP version");
  }
  req.method = std::string(method);
  const size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  req.keep_alive = version == "HTTP/1.1";

  std::optional<uint64_t> length;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view l = lines[i];
    const size_t colon = l.find(':');
    // A line that starts with whitespace is the obsolete line folding, refused (RFC 9112 §5.2).
    if (colon == std::string_view::npos || colon == 0 || !std::all_of(l.begin(), l.begin() + long(colon), is_tchar))
      return bad(400, fmt::format("header line {} is not NAME: VALUE", i));
    const std::string_view value = trim(l.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), [](char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }))
      return bad(400, fmt::format("header line {} holds a control character", i));
    std::string name = lower(l.substr(0, colon));
    if (name == "transfer-encoding") return bad(501, "Transfer-Encoding is not supported: send Content-Length");
    if (name == "content-length") {
      const auto n = decimal(value, 18);
      if (!n) return bad(400, "Content-Length is not a decimal number");
      if (length && *length != *n) return bad(400, "two different Content-Length headers");
      length = n;
    }
    if (name == "connection") {
      const std::string v = lower(value);
      if (v.find("close") != std::string::npos) req.keep_alive = false;
      else if (v.find("keep-alive") != std::string::npos) req.keep_alive = true;
    }
    req.headers.emplace_back(std::move(name), std::string(value));
  }
  const uint64_t body = length.value_or(0);
  if (body > limits.max_body) return bad(413, fmt::format("a body of {} bytes is over the limit of {}", body, limits.max_body));
  if (buf.size() - head_end < body) return std::monostate{};
  req.body = std::string(buf.substr(head_end, body));
  return Parsed{std::move(req), head_end + body};
}

Result<HttpResponse> parse_response(std::string_view buf, size_t max_body) {
  const size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return make_error(EBADMSG, "the answer has no end of headers");
  const std::string_view head = buf.substr(0, head_end);
  if (!head.starts_with("HTTP/1.1 ") && !head.starts_with("HTTP/1.0 ")) return make_error(EBADMSG, "the answer is not HTTP/1.x");
  HttpResponse r{0, "", ""};
  const std::string_view code = head.substr(9, 3);
  if (code.size() != 3 || !std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return make_error(EBADMSG, "the answer has no status code");
  r.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  std::optional<uint64_t> length;
  for (size_t pos = head.find("\r\n"); pos != std::string_view::npos;) {
    const size_t next = head.find("\r\n", pos + 2);
    const std::string_view line = head.substr(pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
    pos = next;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return make_error(EBADMSG, "a header of the answer has no colon");
    const std::string name = lower(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-type") r.content_type = std::string(value);
    if (name == "content-length") {
      length = decimal(value, 12);
      if (!length) return make_error(EBADMSG, "the answer's Content-Length is not a number");
    }
  }
  std::string_view body = buf.substr(head_end + 4);
  if (length) {
    if (body.size() < *length) return make_error(EBADMSG, "the answer ended {} bytes into a body of {}", body.size(), *length);
    body = body.substr(0, *length);
  }
  if (body.size() > max_body) return make_error(EMSGSIZE, "the answer's body is over {} bytes", max_body);
  r.body = std::string(body);
  return r;
}

std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string format_response(int status, std::string_view body, bool close, std::string_view content_type) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", status, reason(status));
  out += "Server: evmm\r\n";
  if (!body.empty()) out += fmt::format("Content-Type: {}\r\n", content_type);
  out += fmt::format("Content-Length: {}\r\n", body.size());
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  out += body;
  return out;
}

}  // namespace evmm::api
