// Parsing of the virtio command-line options into VirtioConfig. Each bad value gets one line that
// names the option, the value and what was expected.
//   --disk path=FILE[,readonly] | vhost-user=SOCKET
//   --fs vhost-user=SOCKET,tag=TAG
//   --net tap=NAME|socket=PATH|vhost-user=SOCKET[,mac=XX:XX:XX:XX:XX:XX]
//   --console serial|virtio|vhost-user=SOCKET
//   --rng
#pragma once

#include <string>

#include "base/result.h"
#include "vmm/config.h"

namespace evmm {

Result<DiskConfig> parse_disk(const std::string& spec);
Result<FsConfig> parse_fs(const std::string& spec);
Result<NetConfig> parse_net(const std::string& spec);
// "serial" (the default: the UART on ttyS0 only), "virtio" (hvc0 on evmm's stdio) or
// "vhost-user=SOCKET" (hvc0 served by another process); sets v.console and v.console_vhost_user.
Result<void> parse_console(const std::string& spec, VirtioConfig& v);

}  // namespace evmm
