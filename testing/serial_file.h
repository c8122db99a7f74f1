// Where an in-process test VM's COM1 (and a Xen guest's console) writes: a file in /tmp, removed
// with the object, read back once the VM has stopped. Shared by the doorbell, suspend and Xen
// harnesses (and so by their benchmarks).
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace evmm::testing {

class SerialFile {
 public:
  SerialFile() = default;
  SerialFile(const SerialFile&) = delete;
  SerialFile& operator=(const SerialFile&) = delete;
  ~SerialFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  // Makes /tmp/<prefix>-XXXXXX; empty on success, else what failed.
  std::string create(const std::string& prefix) {
    std::string path = "/tmp/" + prefix + "-XXXXXX";
    int fd = ::mkstemp(path.data());
    if (fd < 0) return "mkstemp failed";
    ::close(fd);
    path_ = path;
    return {};
  }

  const std::string& path() const { return path_; }

  std::string contents() const {
    std::ifstream f(path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  std::string path_;
};

}  // namespace evmm::testing
