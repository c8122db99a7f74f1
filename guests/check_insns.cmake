# Fails the build if guest code outside the assist test uses an instruction that the slow host's in-kernel
# emulator cannot run at CPL0 (DESIGN.md, "The host we run on"), or any SSE/AVX register.
# Usage: cmake -DOBJDUMP=... -DLIST=<file with one object per line> -DSTAMP=<file> -P check_insns.cmake
file(STRINGS "${LIST}" objects)
set(mnemonics "int3|clac|stac|fwait|popcnt[a-z]*|lzcnt[a-z]*|tzcnt[a-z]*|rdpid|xsave[a-z0-9]*|xrstor[a-z0-9]*|cmpxchg16b")
set(forbidden "\t(${mnemonics})[ \n]|%[xyz]mm[0-9]")
foreach(object IN LISTS objects)
  execute_process(COMMAND "${OBJDUMP}" -d --no-show-raw-insn "${object}"
                  OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "objdump failed on ${object}")
  endif()
  string(REGEX MATCHALL "[^\n]*(${forbidden})[^\n]*" bad "${listing}")
  if(bad)
    list(JOIN bad "\n" lines)
    message(FATAL_ERROR "${object} uses instructions the emulator lacks:\n${lines}")
  endif()
endforeach()
file(TOUCH "${STAMP}")
