// The virtio ABI from the kernel's uapi headers (linux-libc-dev), included in one place: the split
// ring's legacy helpers (vring_init) are C that C++ refuses, so they are left out here.
#pragma once

#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
