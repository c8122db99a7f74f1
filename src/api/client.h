// The control API's client side, for `evmm ctl`: one request on a new connection to the socket,
// answered and closed. ECONNREFUSED/ENOENT when nothing listens there; ETIMEDOUT when the server
// does not answer within the timeout; EBADMSG for an answer that is not HTTP (http.h).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "api/http.h"
#include "base/result.h"

namespace evmm::api {

Result<HttpResponse> call(const std::string& socket, std::string_view method, std::string_view path, std::string_view body,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace evmm::api
