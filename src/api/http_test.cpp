// The API's HTTP parser on whole, partial, pipelined and malformed requests: each mistake its status.
#include "api/http.h"

#include <gtest/gtest.h>

namespace evmm::api {
namespace {

Parsed parsed(const ParseResult& r) {
  if (auto* e = std::get_if<HttpError>(&r)) ADD_FAILURE() << "refused " << e->status << ": " << e->message;
  if (std::holds_alternative<std::monostate>(r)) ADD_FAILURE() << "incomplete";
  auto* p = std::get_if<Parsed>(&r);
  return p ? *p : Parsed{};
}

int status(const ParseResult& r) {
  auto* e = std::get_if<HttpError>(&r);
  return e ? e->status : 0;
}

TEST(HttpParser, ARequestWithABodyAndWhatFollowsIt) {
  const std::string body = R"({"action_type":"InstanceStart"})";
  const std::string req = "PUT /actions?x=1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                          "Content-Length:  " + std::to_string(body.size()) + " \r\nAccept: */*\r\n\r\n" + body;
  const Parsed p = parsed(parse_request(req + "GET / HTTP/1.1\r\n"));
  EXPECT_EQ(p.request.method, "PUT");
  EXPECT_EQ(p.request.path, "/actions");
  EXPECT_EQ(p.request.query, "x=1");
  EXPECT_EQ(p.request.body, body);
  EXPECT_EQ(p.consumed, req.size());
  EXPECT_EQ(p.request.header("content-type"), "application/json");
  EXPECT_EQ(p.request.header("content-length"), std::to_string(body.size()));
  EXPECT_TRUE(p.request.keep_alive);
}

TEST(HttpParser, EveryPrefixOfARequestIsIncompleteNotWrong) {
  const std::string req = "PATCH /vm HTTP/1.1\nContent-Length: 18\n\n{\"state\":\"Paused\"}";
  for (size_t n = 0; n < req.size(); ++n)
    EXPECT_TRUE(std::holds_alternative<std::monostate>(parse_request(req.substr(0, n)))) << n;
  EXPECT_EQ(parsed(parse_request(req)).request.body, R"({"state":"Paused"})");
}

TEST(HttpParser, ConnectionCloseAndHttp10EndTheConnection) {
  EXPECT_FALSE(parsed(parse_request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")).request.keep_alive);
  EXPECT_FALSE(parsed(parse_request("GET / HTTP/1.0\r\n\r\n")).request.keep_alive);
  EXPECT_TRUE(parsed(parse_request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")).request.keep_alive);
}

TEST(HttpParser, EachMistakeGetsItsStatus) {
  EXPECT_EQ(status(parse_request("\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("GET /\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("GET  / HTTP/1.1\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("GET / HTTP/1.1 x\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("G(T / HTTP/1.1\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("GET http://host/ HTTP/1.1\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("GET / FTP/1.1\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("GET / HTTP/2.0\r\n\r\n")), 505);
  EXPECT_EQ(status(parse_request("GET / HTTP/1.1\r\nNo colon here\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("GET / HTTP/1.1\r\n folded: value\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")), 400);
  EXPECT_EQ(status(parse_request("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")), 501);
}

TEST(HttpParser, LimitsAreSaidBeforeTheBytesArrive) {
  Limits l{.max_head = 64, .max_headers = 2, .max_body = 10};
  // The body's size is refused from its header, with no byte of it read.
  EXPECT_EQ(status(parse_request("PUT / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", l)), 413);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(parse_request("PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", l)));
  // A head that has not ended within the limit: refused without waiting for its end.
  EXPECT_EQ(status(parse_request("GET / HTTP/1.1\r\nX-Long: " + std::string(60, 'a'), l)), 431);
  EXPECT_EQ(status(parse_request("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", l)), 431);
  EXPECT_EQ(parsed(parse_request("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", l)).request.headers.size(), 2u);
}

TEST(HttpResponse, StatusLineLengthAndClose) {
  EXPECT_EQ(format_response(204, ""), "HTTP/1.1 204 No Content\r\nServer: evmm\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(format_response(400, "{}", true),
            "HTTP/1.1 400 Bad Request\r\nServer: evmm\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            "Connection: close\r\n\r\n{}");
}

TEST(HttpResponseParser, WhatTheClientReads) {
  auto r = parse_response("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}tail");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_EQ(r->body, "{}");
  EXPECT_EQ(parse_response("HTTP/1.1 204 No Content\r\n\r\n")->body, "");
  EXPECT_EQ(parse_response(format_response(200, "abc", true, "text/plain"))->body, "abc");
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\n").error().code(), EBADMSG);
  EXPECT_EQ(parse_response("SSH-2.0\r\n\r\n").error().code(), EBADMSG);
  EXPECT_EQ(parse_response("HTTP/1.1 2x0 OK\r\n\r\n").error().code(), EBADMSG);
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").error().code(), EBADMSG);
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nbroken\r\n\r\n").error().code(), EBADMSG);
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\n\r\n" + std::string(100, 'x'), 10).error().code(), EMSGSIZE);
}

}  // namespace
}  // namespace evmm::api
