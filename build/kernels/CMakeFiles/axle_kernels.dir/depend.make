# Empty dependencies file for axle_kernels.
# This may be replaced when dependencies are built.
