# Empty dependencies file for axle_runtime.
# This may be replaced when dependencies are built.
