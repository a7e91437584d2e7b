# Empty dependencies file for axle_runtime_tests.
# This may be replaced when dependencies are built.
