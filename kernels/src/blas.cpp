// Placeholder until the BLAS library lands.
#include "axle/axle.hpp"
