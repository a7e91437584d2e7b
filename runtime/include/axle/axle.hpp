// axle/axle.hpp: the umbrella header of the Axle runtime.
//
// Thread-safety, in brief (each header says it per class): Device, Program and Kernel
// handles, device enumeration and selection, the program caches, configuration and
// logging may be used from any number of threads at once. A Stream (and everything
// enqueued through it, blas and dnn calls included) is used by one thread at a time;
// distinct streams may be driven from distinct threads. Move-only objects (Buffer,
// PinnedBuffer, Stream, Event) must not be moved or destroyed while another thread
// uses them. Functions named *_for_testing and the reset_* functions of the kernel
// library say what they need.
#pragma once

#include "axle/buffer.hpp"
#include "axle/config.hpp"
#include "axle/device.hpp"
#include "axle/error.hpp"
#include "axle/event.hpp"
#include "axle/log.hpp"
#include "axle/program.hpp"
#include "axle/stream.hpp"
#include "axle/types.hpp"
#include "axle/version.hpp"
