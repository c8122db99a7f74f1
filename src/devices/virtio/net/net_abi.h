// <linux/virtio_net.h> (linux-libc-dev), included in one place: its control-queue header has a
// field named `class`, which C++ refuses, so the keyword is renamed while it is read.
#pragma once

#include "devices/virtio/virtio_abi.h"

#define class class_
#include <linux/virtio_net.h>
#undef class
