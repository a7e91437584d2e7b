# Empty dependencies file for axle_sample_kernels.
# This may be replaced when dependencies are built.
