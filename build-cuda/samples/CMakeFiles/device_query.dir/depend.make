# Empty dependencies file for device_query.
# This may be replaced when dependencies are built.
