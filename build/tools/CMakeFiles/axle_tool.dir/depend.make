# Empty dependencies file for axle_tool.
# This may be replaced when dependencies are built.
