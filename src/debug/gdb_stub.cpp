#include "debug/gdb_stub.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "debug/gdb_packet.h"

namespace evmm::gdb {
namespace {

constexpr size_t kRegisterBytes = 536;
constexpr unsigned kRegisterCount = 57;
// Largest m/M/X transfer: the reply (two hex digits a byte) must fit in kMaxPacket.
constexpr uint64_t kMaxTransfer = kMaxPacket / 2 - 16;

struct Slot {
  size_t offset, size;
};

// gdb's register number n: where it sits in the 'g' packet (debug_target.h).
Slot slot(unsigned n) {
  if (n < 17) return {8 * n, 8};
  if (n < 24) return {136 + 4 * (n - 17), 4};
  if (n < 32) return {164 + 10 * (n - 24), 10};
  if (n < 40) return {244 + 4 * (n - 32), 4};
  if (n < 56) return {276 + 16 * (n - 40), 16};
  return {532, 4};
}

std::vector<uint8_t> to_bytes(const GdbRegisters& r) {
  std::vector<uint8_t> b(kRegisterBytes);
  auto put = [&](unsigned n, const void* v) { std::memcpy(b.data() + slot(n).offset, v, slot(n).size); };
  for (unsigned i = 0; i < 17; ++i) put(i, &r.gpr[i]);
  put(17, &r.eflags);
  for (unsigned i = 0; i < 6; ++i) put(18 + i, &r.seg[i]);
  for (unsigned i = 0; i < 8; ++i) put(24 + i, r.st[i].data());
  for (unsigned i = 0; i < 8; ++i) put(32 + i, &r.fpu_ctl[i]);
  for (unsigned i = 0; i < 16; ++i) put(40 + i, r.xmm[i].data());
  put(56, &r.mxcsr);
  return b;
}

GdbRegisters from_bytes(std::span<const uint8_t> b) {
  GdbRegisters r;
  auto get = [&](unsigned n, void* v) { std::memcpy(v, b.data() + slot(n).offset, slot(n).size); };
  for (unsigned i = 0; i < 17; ++i) get(i, &r.gpr[i]);
  get(17, &r.eflags);
  for (unsigned i = 0; i < 6; ++i) get(18 + i, &r.seg[i]);
  for (unsigned i = 0; i < 8; ++i) get(24 + i, r.st[i].data());
  for (unsigned i = 0; i < 8; ++i) get(32 + i, &r.fpu_ctl[i]);
  for (unsigned i = 0; i < 16; ++i) get(40 + i, r.xmm[i].data());
  get(56, &r.mxcsr);
  return r;
}

// "addr,len" with both in hex.
bool parse_addr_len(std::string_view s, uint64_t& addr, uint64_t& len) {
  size_t comma = s.find(',');
  if (comma == std::string_view::npos) return false;
  auto a = parse_hex_number(s.substr(0, comma)), l = parse_hex_number(s.substr(comma + 1));
  if (!a || !l) return false;
  addr = *a;
  len = *l;
  return true;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

std::string encode_registers(const GdbRegisters& r) { return to_hex(to_bytes(r)); }

std::optional<GdbRegisters> decode_registers(std::string_view hex, const GdbRegisters& current) {
  auto bytes = from_hex(hex);
  if (!bytes || bytes->size() > kRegisterBytes) return std::nullopt;
  // gdb may send fewer bytes than the whole set; the rest keep their values.
  std::vector<uint8_t> all = to_bytes(current);
  std::copy(bytes->begin(), bytes->end(), all.begin());  // an empty G packet copies nothing
  return from_bytes(all);
}

std::string Stub::error(int err) { return fmt::format("E{:02x}", err & 0xff); }

std::string Stub::bad() {
  ++malformed_;
  return error(EINVAL);
}

std::optional<int> Stub::parse_thread(std::string_view id) const {
  if (id == "-1") return -1;
  auto v = parse_hex_number(id);
  if (!v || *v > target_.thread_count()) return std::nullopt;
  return static_cast<int>(*v);
}

std::optional<std::string> Stub::handle(std::string_view p) {
  if (p.empty()) return std::string();
  std::string_view args = p.substr(1);
  switch (p[0]) {
    case '?': return stop_reply(last_stop_);
    case 'q': return query(p);
    case 'H': return set_thread(args);
    case 'T': {
      auto t = parse_thread(args);
      return t && *t > 0 ? "OK" : error(ESRCH);
    }
    case 'g': return read_registers();
    case 'G': return write_registers(args);
    case 'p': return read_register(args);
    case 'P': return write_register(args);
    case 'm': return read_memory(args);
    case 'M': return write_memory(args, false);
    case 'X': return write_memory(args, true);
    case 'Z': return breakpoint(args, true);
    case 'z': return breakpoint(args, false);
    case 'c': return resume_all(ResumeAction::Continue, args);
    case 's': return resume_all(ResumeAction::Step, args);
    case 'v':
      if (p == "vCont?") return std::string("vCont;c;C;s;S");
      if (starts_with(p, "vCont;")) return vcont(p.substr(6));
      return std::string();
    case 'D': {
      auto r = target_.detach();
      if (!r) return error(r.error().code());
      detached_ = true;
      return std::string("OK");
    }
    case 'k':
      killed_ = true;
      target_.kill();
      return std::nullopt;
    default: return std::string();
  }
}

std::string Stub::query(std::string_view q) {
  if (starts_with(q, "qSupported")) return fmt::format("PacketSize={:x};swbreak+;hwbreak+;vContSupported+", kMaxPacket);
  if (q == "qAttached") return "1";  // evmm made the VM before gdb came: detaching must not kill it
  if (q == "qC") return fmt::format("QC{:x}", g_thread_ + 1);
  if (q == "qfThreadInfo" || q == "qsThreadInfo") {
    if (q == "qfThreadInfo") thread_cursor_ = 0;
    if (thread_cursor_ >= target_.thread_count()) return "l";
    std::string out = "m";
    for (; thread_cursor_ < target_.thread_count(); ++thread_cursor_)
      out += fmt::format("{}{:x}", out.size() > 1 ? "," : "", thread_cursor_ + 1);
    return out;
  }
  if (starts_with(q, "qThreadExtraInfo,")) {
    auto t = parse_thread(q.substr(17));
    if (!t || *t <= 0) return bad();
    std::string name = fmt::format("vCPU {}", *t - 1);
    return to_hex(std::span(reinterpret_cast<const uint8_t*>(name.data()), name.size()));
  }
  return {};
}

std::string Stub::set_thread(std::string_view args) {
  if (args.size() < 2) return bad();
  auto t = parse_thread(args.substr(1));
  if (!t) return error(ESRCH);
  // 0 (any) and -1 (all) keep the current choice: every thread shares the memory, and 'Hc-1'
  // before a continue means "all threads", which is what all-stop does anyway.
  unsigned chosen = *t > 0 ? static_cast<unsigned>(*t - 1) : (args[0] == 'g' ? g_thread_ : c_thread_);
  if (args[0] == 'g') g_thread_ = chosen;
  else if (args[0] == 'c') c_thread_ = chosen;
  else return bad();
  return "OK";
}

std::string Stub::read_registers() {
  auto r = target_.read_registers(g_thread_);
  return r ? encode_registers(*r) : error(r.error().code());
}

std::string Stub::write_registers(std::string_view hex) {
  auto cur = target_.read_registers(g_thread_);
  if (!cur) return error(cur.error().code());
  auto regs = decode_registers(hex, *cur);
  if (!regs) return bad();
  auto w = target_.write_registers(g_thread_, *regs);
  return w ? "OK" : error(w.error().code());
}

std::string Stub::read_register(std::string_view args) {
  auto n = parse_hex_number(args);
  if (!n) return bad();
  if (*n >= kRegisterCount) return error(EINVAL);
  auto r = target_.read_registers(g_thread_);
  if (!r) return error(r.error().code());
  Slot s = slot(static_cast<unsigned>(*n));
  auto bytes = to_bytes(*r);
  return to_hex(std::span(bytes).subspan(s.offset, s.size));
}

std::string Stub::write_register(std::string_view args) {
  size_t eq = args.find('=');
  if (eq == std::string_view::npos) return bad();
  auto n = parse_hex_number(args.substr(0, eq));
  auto value = from_hex(args.substr(eq + 1));
  if (!n || !value || *n >= kRegisterCount) return bad();
  Slot s = slot(static_cast<unsigned>(*n));
  if (value->size() != s.size) return bad();
  auto cur = target_.read_registers(g_thread_);
  if (!cur) return error(cur.error().code());
  auto bytes = to_bytes(*cur);
  std::memcpy(bytes.data() + s.offset, value->data(), s.size);
  auto w = target_.write_registers(g_thread_, from_bytes(bytes));
  return w ? "OK" : error(w.error().code());
}

std::string Stub::read_memory(std::string_view args) {
  uint64_t addr, len;
  if (!parse_addr_len(args, addr, len) || len > kMaxTransfer) return bad();
  std::vector<uint8_t> buf(len);
  auto r = target_.read_memory(g_thread_, addr, buf);
  return r ? to_hex(buf) : error(r.error().code());
}

std::string Stub::write_memory(std::string_view args, bool binary) {
  size_t colon = args.find(':');
  uint64_t addr, len;
  if (colon == std::string_view::npos || !parse_addr_len(args.substr(0, colon), addr, len) || len > kMaxTransfer)
    return bad();
  std::string_view data = args.substr(colon + 1);
  std::vector<uint8_t> bytes;
  if (binary) {
    bytes.assign(data.begin(), data.end());  // the decoder has undone the escapes
  } else {
    auto h = from_hex(data);
    if (!h) return bad();
    bytes = std::move(*h);
  }
  if (bytes.size() != len) return bad();
  if (len == 0) return "OK";  // gdb probes for 'X' with an empty write
  auto w = target_.write_memory(g_thread_, addr, bytes);
  return w ? "OK" : error(w.error().code());
}

std::string Stub::breakpoint(std::string_view args, bool insert) {
  // type,addr,kind; a ';cond' tail (target-side conditions) is not announced, so never sent.
  if (args.size() < 4 || args[1] != ',' || args[0] < '0' || args[0] > '4') return bad();
  uint64_t addr, len;
  if (!parse_addr_len(args.substr(2), addr, len)) return bad();
  auto kind = static_cast<BreakKind>(args[0] - '0');
  auto r = insert ? target_.insert_breakpoint(kind, addr, len) : target_.remove_breakpoint(kind, addr, len);
  return r ? "OK" : error(r.error().code());
}

std::optional<std::string> Stub::resume_all(ResumeAction action, std::string_view addr) {
  // 'c addr' and 's addr' resume at addr first.
  if (!addr.empty()) {
    auto a = parse_hex_number(addr);
    if (!a) return bad();
    auto regs = target_.read_registers(c_thread_);
    if (!regs) return error(regs.error().code());
    regs->gpr[16] = *a;
    if (auto w = target_.write_registers(c_thread_, *regs); !w) return error(w.error().code());
  }
  std::vector<ResumeAction> actions(target_.thread_count(), ResumeAction::Continue);
  if (action == ResumeAction::Step) actions[c_thread_] = ResumeAction::Step;
  auto r = target_.resume(actions);
  if (!r) return error(r.error().code());
  return std::nullopt;
}

std::optional<std::string> Stub::vcont(std::string_view args) {
  // action[:thread](;action[:thread])*: the leftmost action that names a thread applies to it.
  // Signals (C, S) are not delivered: a guest has no signals, so they act as c and s.
  std::vector<std::optional<ResumeAction>> chosen(target_.thread_count());
  while (!args.empty()) {
    size_t semi = args.find(';');
    std::string_view item = args.substr(0, semi);
    args = semi == std::string_view::npos ? std::string_view() : args.substr(semi + 1);
    if (item.empty()) return bad();
    ResumeAction a;
    switch (item[0]) {
      case 'c': case 'C': a = ResumeAction::Continue; break;
      case 's': case 'S': a = ResumeAction::Step; break;
      default: return bad();
    }
    size_t colon = item.find(':');
    if (colon == std::string_view::npos) {
      for (auto& c : chosen) if (!c) c = a;
      continue;
    }
    auto t = parse_thread(item.substr(colon + 1));
    if (!t) return bad();
    if (*t <= 0) {
      for (auto& c : chosen) if (!c) c = a;
    } else if (!chosen[*t - 1]) {
      chosen[*t - 1] = a;
    }
  }
  // All-stop: a thread gdb left out runs too (it cannot stay parked while the others run).
  std::vector<ResumeAction> actions;
  for (auto& c : chosen) actions.push_back(c.value_or(ResumeAction::Continue));
  auto r = target_.resume(actions);
  if (!r) return error(r.error().code());
  return std::nullopt;
}

std::string Stub::stop_reply(const StopEvent& e) {
  last_stop_ = e;
  g_thread_ = c_thread_ = e.thread;
  std::string out = fmt::format("T{:02x}thread:{:x};", e.reason == StopEvent::Reason::Interrupt ? 2 : 5, e.thread + 1);
  switch (e.reason) {
    case StopEvent::Reason::SoftwareBreak: out += "swbreak:;"; break;
    case StopEvent::Reason::HardwareBreak: out += "hwbreak:;"; break;
    case StopEvent::Reason::Watch: {
      const char* kind = e.watch_kind == BreakKind::ReadWatch ? "rwatch" : e.watch_kind == BreakKind::AccessWatch ? "awatch" : "watch";
      out += fmt::format("{}:{:x};", kind, e.watch_addr);
      break;
    }
    default: break;
  }
  return out;
}

}  // namespace evmm::gdb
