// axle/axle.hpp: the umbrella header of the Axle runtime.
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
