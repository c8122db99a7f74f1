// Emulation assists on the real host: a guest executes, at CPL0, the instructions evmm completes
// when KVM's emulator gives up on them, and one that nobody completes.
#include <gtest/gtest.h>

#include <regex>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

TEST(Assists, GuestInstructionsAreCompletedAndCounted) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "assist-force", 1, {"--stats"});
  // Each line is the guest checking the architectural result: return address, flags, registers.
  for (const char* name : {"int3", "int80", "clac", "stac", "fwait", "popcnt"})
    EXPECT_TRUE(has(r.out, fmt::format("assist: {} ok", name))) << name << "\n" << r.out;
  // On a host whose emulator lacks them, each was completed by evmm exactly as often as executed.
  for (const char* kind : {"int3", "int", "clac", "stac", "fwait"}) {
    unsigned n = assists(r.err, kind);
    EXPECT_TRUE(n == 0 || n == 1) << kind << ": " << r.err;
  }
  EXPECT_LE(assists(r.err, "popcnt"), 5u) << r.err;
  // lzcnt/tzcnt: a wrong result is only acceptable where KVM executed them itself (its emulator
  // decodes F3 0F BC/BD as BSF/BSR) and evmm never saw them; where evmm completed them, they must
  // be right.
  for (const char* name : {"lzcnt", "tzcnt"}) {
    if (has(r.out, fmt::format("assist: {} FAILED", name)))
      EXPECT_EQ(assists(r.err, name), 0u) << name << " was completed by evmm and is wrong: " << r.out;
    else
      EXPECT_TRUE(has(r.out, fmt::format("assist: {} ok", name))) << r.out;
  }
  if (has(r.out, "assist: rdpid ok")) {
    EXPECT_LE(assists(r.err, "rdpid"), 1u);
  }
  if (!has(r.out, "FAILED")) {
    EXPECT_EQ(r.exit_status, 1) << r.out;
  }
}

// On this host the counters must show evmm doing the work: these instructions trap to userspace.
TEST(Assists, EmulatedCpl0HostUsesAssists) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "assist-force", 1, {"--stats"});
  if (assists(r.err, "int3") == 0) GTEST_SKIP() << "this host runs int3 at CPL0 without the VMM";
  for (const char* kind : {"int3", "int", "fwait"}) EXPECT_EQ(assists(r.err, kind), 1u) << kind << ": " << r.err;
  EXPECT_EQ(assists(r.err, "popcnt"), 5u) << r.err;
}

// The count --stats printed for injected faults of a vector ("#NP"), 0 when absent.
// int n through refused IDT entries: the guest's #NP and #GP handlers see the SDM's error codes with
// RIP at the int, whether the CPU raised them or evmm injected them for an assist.
TEST(Assists, FaultingIntNIsInjectedIntoTheGuest) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "assist-fault", 1, {"--stats"});
  for (const char* name : {"np-gate", "np-segment", "gp-gate-type"})
    EXPECT_TRUE(has(r.out, fmt::format("assist-fault: {} ok", name))) << name << "\n" << r.out << r.err;
  EXPECT_TRUE(has(r.out, "assist-fault: all ok")) << r.out << r.err;
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  // Where KVM hands int n to evmm (as int3 shows), evmm injected each fault once; where the CPU ran
  // it, none.
  if (assists(boot("testprog.mb.elf", "assist-force", 1, {"--stats"}).err, "int3") > 0) {
    EXPECT_EQ(injected(r.err, "NP"), 2u) << r.err;
    EXPECT_EQ(injected(r.err, "GP"), 1u) << r.err;
  } else {
    EXPECT_TRUE(has(r.err, "injected_faults: none")) << r.err;
  }
}

// The memory-operand assists at CPL0, their faults injected, and each kind counted in --stats
// where the host hands it to evmm (where the CPU runs it itself the count is 0 and the guest's
// check of the result still holds).
TEST(Assists, MemoryOperandAssistsAndTheirFaults) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "assist-mem", 1, {"--stats"});
  for (const char* name : {"cmpxchg8b", "cmpxchg8b-miss", "cmpxchg16b", "cmpxchg16b-misaligned", "popcnt-mem",
                           "tzcnt-mem", "popcnt-noncanonical", "clflush", "popcnt-pf-not-present",
                           "cmpxchg16b-pf-read-only", "int1", "lsl", "lar", "lsl-null"})
    EXPECT_TRUE(has(r.out, fmt::format("assist-mem: {} ok", name))) << name << "\n" << r.out << r.err;
  EXPECT_TRUE(has(r.out, "assist-mem: all ok")) << r.out << r.err;
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  if (assists(boot("testprog.mb.elf", "assist-force", 1, {"--stats"}).err, "int3") == 0)
    GTEST_SKIP() << "this host runs CPL0 code without the VMM";
  // The guest runs each of these once (cmpxchg8b twice, cmpxchg16b once plus the faulting one,
  // popcnt once plus the faulting one); a kind the emulator handled itself shows 0.
  for (const char* kind : {"cmpxchg8b", "cmpxchg16b", "popcnt", "lzcnt", "tzcnt", "clflush", "int1", "lsl", "lar"})
    std::printf("assist-mem: %s counted %u\n", kind, assists(r.err, kind));
  // KVM's emulator raises the misaligned cmpxchg16b's #GP and the non-canonical popcnt's itself.
  EXPECT_EQ(assists(r.err, "cmpxchg16b"), 1u) << r.err;
  EXPECT_EQ(assists(r.err, "popcnt"), 1u) << r.err;
  EXPECT_EQ(assists(r.err, "int1"), 1u) << r.err;
  // Linux's NMI entry needs lsl; the emulator here runs neither lsl nor lar.
  EXPECT_EQ(assists(r.err, "lsl"), 2u) << r.err;
  EXPECT_EQ(assists(r.err, "lar"), 1u) << r.err;
  // Both page faults come from assists (popcnt, cmpxchg16b), so evmm injected them, CR2 and all.
  EXPECT_EQ(injected(r.err, "PF"), 2u) << r.err;
  if (has(r.out, "assist-mem: clwb ok")) {
    EXPECT_EQ(assists(r.err, "clwb"), 1u) << r.err;
  }
  // lzcnt run by the emulator is bsr (the guest says so); completed by evmm it is right.
  if (has(r.out, "lzcnt-mem ran as bsr")) EXPECT_EQ(assists(r.err, "lzcnt"), 0u) << r.err;
  else EXPECT_TRUE(has(r.out, "assist-mem: lzcnt-mem ok")) << r.out;
}

TEST(Assists, UnsupportedInstructionStopsTheVmWithOneLineAndTheDump) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "badinsn");
  if (has(r.out, "ran without the VMM")) GTEST_SKIP() << "this host executes crc32 at CPL0 itself";
  EXPECT_EQ(r.exit_status, 8) << r.err;
  // One evmm: line, with the guest address and the instruction bytes (crc32 %eax, %eax: f2 0f 38 f1 c0).
  std::string first = r.err.substr(0, r.err.find('\n'));
  EXPECT_TRUE(std::regex_search(first, std::regex("^evmm: .*at 0x8:0x[0-9a-f]+"))) << r.err;
  EXPECT_TRUE(has(first, "f2 0f 38 f1 c0")) << r.err;
  EXPECT_FALSE(has(r.err.substr(first.size()), "\nevmm:")) << r.err;  // no second failure line
  // Then the vCPU's register dump, whose code bytes are the same instruction.
  EXPECT_TRUE(std::regex_search(r.err, std::regex("\n  code at 0x[0-9a-f]+: f2 0f 38 f1 c0"))) << r.err;
}

// 32-bit protected mode, paging off (guests/iret32): a same-privilege iret, an outer-privilege iret
// to CPL3, and from the #UD handler CPL3's ud2 reaches on the TSS stack, an outer iret through the
// CPU's own frame. The guest checks what CPL3 sees (DS nulled, CS and SS with RPL 3), the frame and the
// accessed bits; on this host evmm completes each of its three irets.
TEST(Assists, Iret32ToCpl3AndBack) {
  REQUIRE_KVM();
  auto r = evmm({"run", "--kernel", guest("iret32.mb.elf"), "--stats"});
  EXPECT_EQ(r.out, "iret32 ok: 3 irets, cpl3 ds 0x0 cs 0x1b ss 0x23\n") << r.err;
  EXPECT_EQ(r.exit_status, 5) << r.out << r.err;
  unsigned n = assists(r.err, "iret");
  if (n == 0) GTEST_SKIP() << "this host runs a 32-bit iret at CPL0 without the VMM";
  EXPECT_EQ(n, 3u) << r.err;
}

// A nested-task return and a return to virtual-8086 mode are not assisted: evmm stops the VM with one
// line that says why, at the iret's address (guests/iret32 with "stop-nt" or "stop-vm").
TEST(Assists, RefusedIretStopsTheVmWithItsReason) {
  REQUIRE_KVM();
  for (auto [word, why] : {std::pair{"stop-nt", "iret with EFLAGS.NT: nested task return is not supported"},
                           std::pair{"stop-vm", "iret to virtual-8086 mode (popped EFLAGS 0x20002) is not supported"}}) {
    auto r = evmm({"run", "--kernel", guest("iret32.mb.elf"), "--cmdline", word, "--stats"});
    // A host that runs the iret itself gets as far as the guest's FAIL line without evmm's help.
    if (has(r.out, "iret32 FAIL") && assists(r.err, "iret") == 0)
      GTEST_SKIP() << "this host runs a 32-bit iret at CPL0 itself";
    EXPECT_EQ(r.exit_status, 8) << word << ": " << r.out << r.err;
    // The stop line (after --stats' line), then the register dump.
    size_t at = r.err.find("evmm: vCPU 0: cannot emulate");
    ASSERT_NE(at, std::string::npos) << r.err;
    std::string line = r.err.substr(at, r.err.find('\n', at) - at);
    EXPECT_TRUE(std::regex_search(line, std::regex("at 0x8:0x[0-9a-f]+: iret \\(cf\\): "))) << line;
    EXPECT_TRUE(has(line, why)) << line;
    EXPECT_FALSE(has(r.out, "iret32 ok")) << r.out;
  }
}

}  // namespace
}  // namespace evmm::testing
