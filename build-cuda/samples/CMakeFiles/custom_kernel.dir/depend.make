# Empty dependencies file for custom_kernel.
# This may be replaced when dependencies are built.
